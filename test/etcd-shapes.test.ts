// The etcd v3 JSON gateway subset answered the way etcd 3.4 answers: the same
// requests go to a real etcd (Debian's etcd-server, which .ci/run installs) and
// to a one-node raftline, and the answers must match field for field (only
// the cluster and member ids and the raft term, which name different things,
// are set aside). Both stores start at revision 1, so revisions match too.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { eventually } from './support/eventually.js';
import { clusterArgs, freePorts, spawnServer } from './support/servers.js';
import { tempDir } from './support/tmp.js';

const ETCD = '/usr/bin/etcd';
const { dir, cleanup } = tempDir('etcd-shapes');
const children: ChildProcess[] = [];
let etcdUrl = '';
let raftlineUrl = '';

before(async () => {
  assert.ok(existsSync(ETCD), `${ETCD} is missing: install Debian's etcd-server (apt-get install etcd-server), as .ci/run does`);
  const ports = await freePorts(4, 25_000);
  etcdUrl = `http://127.0.0.1:${ports[2]}`;
  children.push(
    spawn(ETCD, ['--name', 'shapes', '--data-dir', path.join(dir, 'etcd'), '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', `http://127.0.0.1:${ports[3]}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${ports[3]}`,
      '--initial-cluster', `shapes=http://127.0.0.1:${ports[3]}`], { stdio: 'ignore' }),
  );
  const secretFile = path.join(dir, 'secret');
  writeFileSync(secretFile, 'etcd-shapes-secret-0123456789');
  const cluster = clusterArgs(['n1'], ports, dir, secretFile);
  raftlineUrl = cluster.clientUrl.n1;
  children.push(spawnServer(cluster.args.n1).child);
  const ready = (url: string) => async () => (await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64('probe') }) })).ok;
  await eventually('etcd answers', ready(etcdUrl));
  await eventually('raftline answers', ready(raftlineUrl));
});

after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  cleanup();
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Sets aside what differs by nature between two clusters: their ids and Raft terms. */
function comparable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(comparable);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, k === 'cluster_id' || k === 'member_id' || k === 'raft_term' ? typeof v : comparable(v)]),
    );
  }
  return value;
}

test('put, range, deleterange and txn answer exactly as etcd 3.4 does', async () => {
  const steps: [string, unknown][] = [
    ['put', { key: b64('foo'), value: b64('bar') }],
    ['put', { key: b64('foo'), value: b64('baz'), prev_kv: true }],
    ['range', { key: b64('foo') }],
    ['range', { key: b64('missing') }],
    ['put', { key: b64('a/1'), value: b64('1') }],
    ['put', { key: b64('a/2'), value: b64('2') }],
    ['put', { key: b64('a/3'), value: b64('3') }],
    ['put', { key: b64('empty'), value: '' }],
    ['range', { key: b64('empty') }],
    ['range', { key: b64('a/'), range_end: b64('a0'), limit: 2 }],
    ['range', { key: b64('a/'), range_end: b64('a0'), count_only: true }],
    ['range', { key: b64('a/'), range_end: b64('a0'), keys_only: true }],
    ['range', { key: b64('\0'), range_end: b64('\0'), serializable: true }],
    ['txn', { compare: [{ key: b64('foo'), target: 'VALUE', result: 'EQUAL', value: b64('baz') }], success: [{ request_put: { key: b64('foo'), value: b64('qux') } }], failure: [] }],
    ['txn', { compare: [{ key: b64('foo'), target: 'MOD', result: 'LESS', mod_revision: '2' }], success: [], failure: [{ request_range: { key: b64('foo') } }] }],
    ['txn', { compare: [{ key: b64('nope'), target: 'CREATE', result: 'EQUAL', create_revision: '0' }], success: [{ request_put: { key: b64('nope'), value: b64('1') } }, { request_range: { key: b64('a/'), range_end: b64('a0') } }] }],
    ['txn', { compare: [{ key: b64('foo'), target: 'VERSION', result: 'GREATER', version: '1' }], success: [{ request_delete_range: { key: b64('nope'), prev_kv: true } }] }],
    // A compared range that holds no key compares as one missing key.
    ['txn', { compare: [{ key: b64('x/'), range_end: b64('x0'), target: 'VERSION', result: 'GREATER', version: '0' }], success: [{ request_put: { key: b64('x/1'), value: b64('a') } }] }],
    ['txn', { compare: [{ key: b64('x/'), range_end: b64('x0'), target: 'VALUE', result: 'EQUAL', value: '' }], success: [{ request_put: { key: b64('x/2'), value: b64('b') } }] }],
    ['txn', { compare: [{ key: b64('x/'), range_end: b64('x0'), target: 'CREATE', result: 'EQUAL', create_revision: '0' }], success: [{ request_put: { key: b64('x/3'), value: b64('c') } }] }],
    ['range', { key: b64('x/'), range_end: b64('x0') }],
    ['deleterange', { key: b64('a/'), range_end: b64('a0'), prev_kv: true }],
    ['deleterange', { key: b64('missing') }],
    ['range', { key: b64('\0'), range_end: b64('\0') }],
    // etcd's gateway also takes the fields' JSON names.
    ['put', { key: b64('c/1'), value: b64('1') }],
    ['put', { key: b64('c/1'), value: b64('2'), prevKv: true }],
    ['range', { key: b64('c/'), rangeEnd: b64('c0'), countOnly: true }],
    ['range', { key: b64('c/'), rangeEnd: b64('c0'), keysOnly: true }],
    ['range', { key: b64('c/'), rangeEnd: b64('c/2'), range_end: b64('c0') }],
    ['range', { key: b64('c/'), range_end: b64('c0'), countOnly: true, count_only: false }],
    ['txn', { compare: [{ key: b64('c/1'), target: 'MOD', result: 'LESS', modRevision: '1000', rangeEnd: b64('c0') }], success: [{ requestRange: { key: b64('c/'), rangeEnd: b64('c0') } }, { requestDeleteRange: { key: b64('c/1'), prevKv: true } }] }],
  ];
  for (const [op, body] of steps) {
    const [etcd, ours] = await Promise.all(
      [etcdUrl, raftlineUrl].map(async (url) => {
        const r = await fetch(`${url}/v3/kv/${op}`, { method: 'POST', body: JSON.stringify(body) });
        return { status: r.status, body: (await r.json()) as unknown };
      }),
    );
    assert.equal(ours.status, etcd.status, `${op} ${JSON.stringify(body)}: status`);
    assert.deepEqual(comparable(ours.body), comparable(etcd.body), `${op} ${JSON.stringify(body)}`);
  }
});

test('requests etcd refuses are refused alike, and fields raftline does not implement are refused instead of ignored', async () => {
  const post = async (url: string, op: string, body: unknown) => {
    const r = await fetch(`${url}/v3/kv/${op}`, { method: 'POST', body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as { error?: string; message?: string; code?: unknown; reason?: string } };
  };
  const refusedByBoth: [string, unknown][] = [
    ['txn', { success: [{ request_put: { key: b64('d'), value: b64('1') } }, { request_put: { key: b64('d'), value: b64('2') } }] }],
    ['txn', { success: [{ request_put: { key: b64('d/1'), value: b64('1') } }, { request_delete_range: { key: b64('d/'), range_end: b64('d0') } }] }],
    ['range', { key: b64('d'), limit: '0x10' }],
    ['range', { key: b64('d'), limit: '' }],
  ];
  for (const [op, body] of refusedByBoth) {
    const [etcd, ours] = await Promise.all([post(etcdUrl, op, body), post(raftlineUrl, op, body)]);
    assert.equal(etcd.status, 400, `etcd: ${op} ${JSON.stringify(body)}`);
    assert.equal(ours.status, 400, `raftline: ${op} ${JSON.stringify(body)}`);
    // The same shape as etcd's: what an etcd client reads is there, with the same gRPC code.
    assert.deepEqual(Object.keys(ours.body).filter((k) => k in etcd.body).sort(), Object.keys(etcd.body).sort(), JSON.stringify(etcd.body));
    assert.equal(ours.body.code, etcd.body.code);
    assert.equal(typeof ours.body.message, 'string');
  }
  await post(raftlineUrl, 'put', { key: b64('kept'), value: b64('value') });
  const unsupported: [string, unknown, string][] = [
    ['range', { key: b64('kept'), revision: '2' }, 'revision'],
    ['range', { key: b64('\0'), range_end: b64('\0'), sort_order: 'DESCEND' }, 'sort_order'],
    ['range', { key: b64('\0'), range_end: b64('\0'), sort_target: 'MOD' }, 'sort_target'],
    ['put', { key: b64('kept'), ignore_value: true }, 'ignore_value'],
    ['put', { key: b64('kept'), value: b64('other'), lease: '12345' }, 'lease'],
    ['txn', { success: [{ request_put: { key: b64('kept'), ignore_value: true } }] }, 'ignore_value'],
  ];
  for (const [op, body, field] of unsupported) {
    const ours = await post(raftlineUrl, op, body);
    assert.equal(ours.status, 400, `${op} ${JSON.stringify(body)}`);
    assert.equal(ours.body.reason, 'unsupported');
    assert.equal(ours.body.code, 3, 'InvalidArgument, as etcd answers a field it refuses');
    assert.match(ours.body.error!, new RegExp(`^${field} is not supported`));
  }
  const kept = await post(raftlineUrl, 'range', { key: b64('kept') });
  assert.equal((kept.body as { kvs: { value: string }[] }).kvs[0].value, b64('value'), 'no refused put changed the value');
  // Fields at their defaults are accepted.
  assert.equal((await post(raftlineUrl, 'range', { key: b64('kept'), revision: '0', sort_order: 'NONE', sort_target: 'KEY' })).status, 200);
});
