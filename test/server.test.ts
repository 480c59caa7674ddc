// `raftline serve` processes on loopback, driven over HTTP like a user would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { eventually } from './support/eventually.js';
import { clusterArgs, freePorts, MAIN, spawnServer, writableThroughEvery } from './support/servers.js';
import { tempDir } from './support/tmp.js';

const IDS = ['n1', 'n2', 'n3'];

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('raftline serve', () => {
  const { dir, cleanup } = tempDir('server');
  const children = new Map<string, ChildProcess>();
  let clientUrl: Record<string, string> = {};
  let args: Record<string, string[]> = {};
  let n4PeerAddress = '';

  /** Each process's JSON log lines, parsed. */
  const logs = new Map<string, Record<string, unknown>[]>();

  function start(id: string): ChildProcess {
    const { child, logs: lines } = spawnServer(args[id]);
    children.set(id, child);
    logs.set(id, lines);
    return child;
  }

  async function put(id: string, key: string, value: string, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${clientUrl[id]}/v1/kv/${encodeURIComponent(key)}`, { method: 'PUT', body: value, headers });
  }

  async function v3(id: string, op: string, body: unknown): Promise<{ status: number; json: Record<string, any> }> {
    const r = await fetch(`${clientUrl[id]}/v3/kv/${op}`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: r.status, json: (await r.json()) as Record<string, any> };
  }

  before(async () => {
    const ports = await freePorts(8, 10_000);
    const secretFile = path.join(dir, 'secret');
    writeFileSync(secretFile, 'server-test-secret-0123456789');
    ({ args, clientUrl } = clusterArgs(IDS, ports, dir, secretFile));
    const peers = IDS.map((id, i) => `${id}=127.0.0.1:${ports[i]}`).join(',');
    // A fourth server, joining later through raftline ctl.
    args.n4 = ['--id', 'n4', '--data', path.join(dir, 'n4'), '--peer-listen', `127.0.0.1:${ports[6]}`, '--client-listen', `127.0.0.1:${ports[7]}`,
      '--peers', `${peers},n4=127.0.0.1:${ports[6]}`, '--secret-file', secretFile, '--election-timeout-ms', '500', '--heartbeat-interval-ms', '50', '--join'];
    clientUrl.n4 = `http://127.0.0.1:${ports[7]}`;
    n4PeerAddress = `127.0.0.1:${ports[6]}`;
    for (const id of IDS) start(id);
    await writableThroughEvery(Object.fromEntries(IDS.map((id) => [id, clientUrl[id]])));
  });

  after(async () => {
    for (const c of children.values()) if (c.exitCode === null) c.kill('SIGKILL');
    cleanup();
  });

  test('/v1: any node takes writes, reads are linearizable, preconditions and deletes behave', async () => {
    const r = await put('n2', 'color', 'blue');
    assert.equal(r.status, 200);
    const { revision } = (await r.json()) as { revision: number };
    const got = await fetch(`${clientUrl.n3}/v1/kv/color`);
    assert.equal(got.status, 200);
    assert.equal(await got.text(), 'blue');
    assert.equal(got.headers.get('x-raftline-mod-revision'), String(revision));
    assert.equal((await put('n1', 'color', 'red', { 'If-Match': String(revision + 100) })).status, 412);
    assert.equal((await put('n3', 'color', 'red', { 'If-Match': String(revision) })).status, 200);
    // The ETag a GET gives is what If-Match takes; * asks only that the key exist.
    const etag = (await fetch(`${clientUrl.n1}/v1/kv/color`)).headers.get('etag')!;
    assert.match(etag, /^"\d+"$/);
    assert.equal((await put('n2', 'color', 'red', { 'If-Match': etag })).status, 200);
    assert.equal((await put('n2', 'color', 'red', { 'If-Match': etag })).status, 412, 'the ETag of an older version');
    assert.equal((await put('n2', 'no-such-color', 'red', { 'If-Match': '*' })).status, 412);
    assert.equal((await put('n2', 'color', 'red', { 'If-Match': '*' })).status, 200);
    assert.equal((await put('n2', 'color', 'red', { 'If-Match': 'W/"3"' })).status, 400, 'a weak ETag never matches for a write');
    assert.equal((await put('n1', 'color', 'green', { 'If-None-Match': '*' })).status, 412);
    assert.equal((await put('n1', 'shape', 'round', { 'If-None-Match': '*' })).status, 200);
    assert.equal(await (await fetch(`${clientUrl.n1}/v1/kv/color?consistency=lease`)).text(), 'red');
    const del = await fetch(`${clientUrl.n2}/v1/kv/color`, { method: 'DELETE' });
    assert.equal(((await del.json()) as { deleted: number }).deleted, 1);
    const missing = await fetch(`${clientUrl.n1}/v1/kv/color`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { code: string }).code, 'key_not_found');
  });

  test('/status shows each node, and the leader its followers', async () => {
    let all: Record<string, any>[] = [];
    await eventually('every node names the same single leader', async () => {
      all = await Promise.all(IDS.map(async (id) => (await (await fetch(`${clientUrl[id]}/status`)).json()) as Record<string, any>));
      const leaders = all.filter((s) => s.role === 'leader');
      // A follower's acknowledgement of the last write may still be on its way.
      return leaders.length === 1 && all.every((s) => s.leader === leaders[0].id) &&
        Object.values(leaders[0].followers as Record<string, { match: number }>).every((f) => f.match > 0);
    });
    const leader = all.find((s) => s.role === 'leader')!;
    assert.deepEqual(Object.keys(leader.followers).sort(), IDS.filter((id) => id !== leader.id));
    for (const f of Object.values(leader.followers) as { lag: number }[]) assert.ok(f.lag >= 0);
    for (const s of all) {
      assert.deepEqual([...s.configuration.voters].sort(), IDS);
      assert.ok(s.appliedIndex > 0 && s.revision >= 1);
    }
  });

  test('/metrics speaks Prometheus text: requests by route and status, write latency, log appends, Raft state', async () => {
    assert.equal((await put('n1', 'metric-probe', 'x')).status, 200);
    assert.equal((await fetch(`${clientUrl.n1}/v3/kv/lease`, { method: 'POST', body: '{}' })).status, 404);
    const r = await fetch(`${clientUrl.n1}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
    const text = await r.text();
    assert.match(text, /raftline_http_requests_total\{route="\/v1\/kv\/\{key\}",status="200"\} [1-9]/);
    assert.match(text, /raftline_http_requests_total\{route="\/v3\/kv\/unknown",status="404"\} 1/);
    assert.match(text, /raftline_write_duration_seconds_count [1-9]/);
    assert.match(text, /raftline_log_append_duration_seconds_count [1-9]/);
    assert.match(text, /raftline_apply_batch_entries_count [1-9]/);
    assert.match(text, /raftline_commit_index [1-9]/);
    assert.match(text, /raftline_leader_changes_total [1-9]/);
    const leaderId = ((await (await fetch(`${clientUrl.n1}/status`)).json()) as { leader: string }).leader;
    const leaderText = await (await fetch(`${clientUrl[leaderId]}/metrics`)).text();
    for (const id of IDS.filter((x) => x !== leaderId)) assert.match(leaderText, new RegExp(`raftline_follower_lag_entries\\{follower="${id}"\\} \\d+`));
  });

  test('/v1: listing by prefix is ordered and limited', async () => {
    for (const k of ['dir/c', 'dir/a', 'dir/b', 'dis']) assert.equal((await put('n1', k, k.toUpperCase())).status, 200);
    const list = (await (await fetch(`${clientUrl.n2}/v1/kv?prefix=dir/&limit=2`)).json()) as { kvs: { key: string; value: string }[]; more: boolean; count: number };
    assert.deepEqual(list.kvs.map((kv) => kv.key), ['dir/a', 'dir/b']);
    assert.equal(list.kvs[0].value, 'DIR/A');
    assert.equal(list.more, true);
    assert.equal(list.count, 3);
  });

  test('/v1: the query is form-decoded, keys and values that are not text are refused as text and given in base64, unknown or repeated parameters refused', async () => {
    assert.equal((await put('n1', 'q/a+b', 'plus')).status, 200);
    assert.equal((await put('n1', 'q/a b', 'space')).status, 200);
    const list = async (query: string) => {
      const r = await fetch(`${clientUrl.n2}/v1/kv?${query}`);
      return { status: r.status, json: (await r.json()) as Record<string, any> };
    };
    const plus = await list('prefix=q/a%2B');
    assert.equal(plus.status, 200);
    assert.deepEqual(plus.json.kvs.map((kv: { key: string }) => kv.key), ['q/a+b']);
    const byUrlSearchParams = await list(new URLSearchParams({ prefix: 'q/a ' }).toString());
    assert.deepEqual(byUrlSearchParams.json.kvs.map((kv: { key: string }) => kv.key), ['q/a b'], 'a space written as +');

    const binary = Buffer.from([0x71, 0xff, 0x00, 0xfe]);
    assert.equal((await fetch(`${clientUrl.n1}/v1/kv/q%2Fbin`, { method: 'PUT', body: binary })).status, 200);
    const asText = await list('prefix=q/bin');
    assert.equal(asText.status, 406);
    assert.equal(asText.json.code, 'not_text');
    assert.match(asText.json.error, /encoding=base64/);
    const asBase64 = await list('prefix=q/&encoding=base64');
    assert.equal(asBase64.status, 200);
    const byKey = new Map(asBase64.json.kvs.map((kv: { key: string; value: string }) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64')]));
    assert.deepEqual(byKey.get('q/bin'), binary);
    assert.deepEqual(byKey.get('q/a+b'), Buffer.from('plus'));
    const badKey = Buffer.from([0x72, 0x2f, 0xff]);
    assert.equal((await v3('n1', 'put', { key: badKey.toString('base64'), value: Buffer.from('text').toString('base64') })).status, 200);
    const keyAsText = await list('prefix=r/');
    assert.equal(keyAsText.status, 406);
    const named = `a key in the answer (base64 ${badKey.toString('base64')}) is not UTF-8 text`;
    assert.ok(keyAsText.json.error.startsWith(named), keyAsText.json.error);

    for (const [query, reason] of [
      ['prefx=q/', /unknown query parameter "prefx"/],
      ['prefix=q/&prefix=r/', /given more than once/],
      ['prefix=%zz', /not valid percent-encoding/],
      ['prefix=q/&encoding=hex', /encoding must be text or base64/],
    ] as const) {
      const r = await list(query);
      assert.equal(r.status, 400, query);
      assert.match(r.json.error, reason, query);
    }
    const keyQuery = await fetch(`${clientUrl.n1}/v1/kv/q%2Fa%2Bb?consistency=stale&limit=1`);
    assert.equal(keyQuery.status, 400);
    assert.match(((await keyQuery.json()) as { error: string }).error, /unknown query parameter "limit"/);
    assert.equal(await (await fetch(`${clientUrl.n1}/v1/kv/q%2Fa%2Bb?consistency=stale`)).text(), 'plus');
  });

  test('a range answer of many megabytes arrives whole through /v3 and /v1, to a client that reads it slowly', async () => {
    const value = (i: number) => Buffer.alloc(3000, `big-${i}-`).toString();
    const keys = Array.from({ length: 2500 }, (_, i) => `big/${String(i).padStart(4, '0')}`);
    for (let from = 0; from < keys.length; from += 400) {
      const success = keys.slice(from, from + 400).map((k, j) => ({ request_put: { key: Buffer.from(k).toString('base64'), value: Buffer.from(value(from + j)).toString('base64') } }));
      assert.equal((await v3('n1', 'txn', { success })).status, 200);
    }
    // Read with pauses, so the server meets a full socket and must wait for the client.
    const slowly = (url: string, body?: string) =>
      new Promise<Buffer>((resolve, reject) => {
        const req = httpRequest(url, { method: body === undefined ? 'GET' : 'POST' }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (chunk: Buffer) => {
            parts.push(chunk);
            res.pause();
            setTimeout(() => res.resume(), 2);
          });
          res.on('end', () => resolve(Buffer.concat(parts)));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      });
    const v3Answer = JSON.parse((await slowly(`${clientUrl.n2}/v3/kv/range`, JSON.stringify({ key: Buffer.from('big/').toString('base64'), range_end: Buffer.from('big0').toString('base64') }))).toString());
    assert.equal(v3Answer.count, '2500');
    assert.deepEqual(v3Answer.kvs.map((kv: { key: string }) => Buffer.from(kv.key, 'base64').toString()), keys);
    assert.ok(v3Answer.kvs.every((kv: { value: string }, i: number) => Buffer.from(kv.value, 'base64').toString() === value(i)), 'every value intact');
    const v1Bytes = await slowly(`${clientUrl.n3}/v1/kv?prefix=big/`);
    assert.ok(v1Bytes.length > 7_000_000, `${v1Bytes.length} bytes`);
    const v1Answer = JSON.parse(v1Bytes.toString());
    assert.deepEqual(v1Answer.kvs.map((kv: { key: string }) => kv.key), keys);
    assert.ok(v1Answer.kvs.every((kv: { value: string }, i: number) => kv.value === value(i)), 'every value intact');
    assert.equal(v3Answer.header.revision, String(v1Answer.revision), 'no write in between');
    // Writes whose answers list more key-values than one turn encodes.
    const range = { key: Buffer.from('big/').toString('base64'), range_end: Buffer.from('big0').toString('base64') };
    const txn = await v3('n2', 'txn', { success: [{ request_range: range }, { request_put: { key: b64('big-txn'), value: b64('done') } }] });
    assert.equal(txn.status, 200);
    const ranged = txn.json.responses[0].response_range;
    assert.equal(ranged.count, '2500');
    assert.deepEqual(ranged.kvs.map((kv: { key: string }) => Buffer.from(kv.key, 'base64').toString()), keys);
    assert.ok(ranged.kvs.every((kv: { value: string }, i: number) => Buffer.from(kv.value, 'base64').toString() === value(i)), 'every value in the transaction intact');
    assert.deepEqual(txn.json.responses[1], { response_put: { header: { revision: txn.json.header.revision } } });
    const deletion = await v3('n1', 'deleterange', { ...range, prev_kv: true });
    assert.equal(deletion.status, 200);
    assert.equal(deletion.json.deleted, '2500');
    assert.deepEqual(deletion.json.prev_kvs.map((kv: { key: string }) => Buffer.from(kv.key, 'base64').toString()), keys);
    assert.ok(deletion.json.prev_kvs.every((kv: { value: string }, i: number) => Buffer.from(kv.value, 'base64').toString() === value(i)), 'every deleted value intact');
  });

  test('bad requests get a 4xx with a JSON reason, and the servers keep serving', async () => {
    const cases: [string, RequestInit, number, string][] = [
      ['/v1/kv/' + 'k'.repeat(2000), { method: 'PUT', body: 'v' }, 413, 'key_too_large'],
      ['/v1/kv/k', { method: 'PUT', body: 'v'.repeat((1 << 20) + 1) }, 413, 'value_too_large'],
      ['/v1/kv/k?consistency=eventual', {}, 400, 'bad_request'],
      ['/v1/kv/k', { method: 'PATCH' }, 405, 'method_not_allowed'],
      ['/v1/kv/%E0%A4%A', {}, 400, 'bad_request'],
      ['/v1/kv/k', { method: 'PUT', body: 'v', headers: { 'If-Match': 'abc' } }, 400, 'bad_request'],
      ['/nowhere', {}, 404, 'not_found'],
      ['/v3/kv/put', { method: 'POST', body: '{nope' }, 400, 'bad_request'],
      ['/v3/kv/put', { method: 'POST', body: '[]' }, 400, 'bad_request'],
      ['/v3/kv/put', { method: 'POST', body: JSON.stringify({ key: 'not base64!' }) }, 400, 'bad_request'],
      ['/v3/kv/range', { method: 'POST', body: JSON.stringify({}) }, 400, 'bad_request'],
      ['/v3/kv/range', { method: 'GET' }, 405, 'method_not_allowed'],
      ['/v3/kv/txn', { method: 'POST', body: JSON.stringify({ compare: [{ key: b64('a'), target: 'COLOR' }] }) }, 400, 'bad_request'],
      // Names an object's prototype has: no target either (they reached the log, and every member refused the entry).
      ['/v3/kv/txn', { method: 'POST', body: JSON.stringify({ compare: [{ key: b64('a'), target: 'constructor' }] }) }, 400, 'bad_request'],
      ['/v3/kv/txn', { method: 'POST', body: JSON.stringify({ compare: [{ key: b64('a'), result: '__proto__' }] }) }, 400, 'bad_request'],
      ['/v3/kv/txn', { method: 'POST', body: JSON.stringify({ compare: Array.from({ length: 129 }, () => ({ key: b64('a'), range_end: b64('b'), target: 'MOD', result: 'LESS', mod_revision: '9' })) }) }, 400, 'too_many_operations'],
      ['/v3/kv/txn', { method: 'POST', body: JSON.stringify({ success: Array.from({ length: 1025 }, (_, i) => ({ request_put: { key: b64(`many/${i}`) } })) }) }, 400, 'too_many_operations'],
      ['/v1/kv/k', { method: 'DELETE', headers: { 'If-None-Match': '*' } }, 400, 'bad_request'],
      ['/v3/kv/txn', { method: 'POST', body: JSON.stringify({ success: [{ request_nothing: {} }] }) }, 400, 'bad_request'],
      ['/v3/kv/lease', { method: 'POST', body: '{}' }, 404, 'not_found'],
      ['/v1/admin/promote', { method: 'POST', body: 'null' }, 400, 'bad_request'],
      ['/v1/admin/change-peers', { method: 'POST', body: JSON.stringify({ voters: ['n1', 'n2', 'n2'] }) }, 400, 'bad_request'],
      ['/v1/admin/reset-peers', { method: 'POST', body: JSON.stringify({ voters: ['n1', 'n1'] }) }, 400, 'bad_request'],
    ];
    for (const [url, init, status, code] of cases) {
      const r = await fetch(`${clientUrl.n2}${url}`, init);
      assert.equal(r.status, status, `${init.method ?? 'GET'} ${url.slice(0, 40)}`);
      const body = (await r.json()) as { code: string | number; reason?: string; error: string; message?: string };
      if (url.startsWith('/v3/')) {
        // Shaped as etcd's gateway errors: a gRPC code, the text twice, raftline's code beside.
        assert.equal(body.reason, code);
        assert.equal(body.code, { 400: 3, 404: 5, 405: 12 }[status]);
        assert.equal(body.message, body.error);
      } else {
        assert.equal(body.code, code);
      }
      if (status === 405) assert.match(r.headers.get('allow') ?? '', /^(GET, PUT, DELETE|POST)$/, `${url}: Allow names the methods it takes`);
      assert.ok(body.error.length > 0);
    }
    assert.equal((await put('n2', 'still', 'alive')).status, 200);
    // A delete's If-Match is a condition on the key's mod revision, as a put's.
    const modRevision = Number((await fetch(`${clientUrl.n2}/v1/kv/still`)).headers.get('x-raftline-mod-revision'));
    const refused = await fetch(`${clientUrl.n2}/v1/kv/still`, { method: 'DELETE', headers: { 'If-Match': String(modRevision + 1) } });
    assert.equal(refused.status, 412);
    assert.equal((await fetch(`${clientUrl.n2}/v1/kv/still`)).status, 200, 'not deleted');
    const deleted = await fetch(`${clientUrl.n2}/v1/kv/still`, { method: 'DELETE', headers: { 'If-Match': String(modRevision) } });
    assert.equal(deleted.status, 200);
    assert.equal(((await deleted.json()) as { deleted: number }).deleted, 1);
  });

  test('/v3: the etcd JSON gateway shapes for put, range, deleterange and txn', async () => {
    const p = await v3('n3', 'put', { key: b64('etcd/a'), value: b64('1') });
    assert.equal(p.status, 200);
    assert.deepEqual(Object.keys(p.json.header).sort(), ['cluster_id', 'member_id', 'raft_term', 'revision']);
    assert.match(p.json.header.revision, /^\d+$/);
    await v3('n1', 'put', { key: b64('etcd/b'), value: b64('2') });
    const prev = await v3('n2', 'put', { key: b64('etcd/a'), value: b64('11'), prev_kv: true });
    assert.equal(Buffer.from(prev.json.prev_kv.value, 'base64').toString(), '1');
    const range = await v3('n2', 'range', { key: b64('etcd/'), range_end: b64('etcd0') });
    assert.equal(range.json.count, '2');
    assert.deepEqual(range.json.kvs.map((kv: { key: string }) => Buffer.from(kv.key, 'base64').toString()), ['etcd/a', 'etcd/b']);
    assert.deepEqual(Object.keys(range.json.kvs[0]).sort(), ['create_revision', 'key', 'mod_revision', 'value', 'version']);
    assert.equal(range.json.kvs[0].version, '2');
    const empty = await v3('n1', 'range', { key: b64('nothing-here') });
    assert.equal(empty.json.kvs, undefined, 'etcd omits empty kvs');
    assert.equal(empty.json.count, undefined, 'and a zero count');
    const mod = Number(range.json.kvs[1].mod_revision);
    const txn = (expected: number) =>
      v3('n3', 'txn', {
        compare: [{ key: b64('etcd/b'), target: 'MOD', result: 'EQUAL', mod_revision: String(expected) }],
        success: [{ request_put: { key: b64('etcd/b'), value: b64('3') } }],
        failure: [{ request_range: { key: b64('etcd/b') } }],
      });
    const won = await txn(mod);
    assert.equal(won.json.succeeded, true);
    assert.ok(won.json.responses[0].response_put.header);
    const lost = await txn(mod);
    assert.equal(lost.json.succeeded, undefined, 'etcd omits succeeded when false');
    assert.equal(Buffer.from(lost.json.responses[0].response_range.kvs[0].value, 'base64').toString(), '3');
    const del = await v3('n1', 'deleterange', { key: b64('etcd/'), range_end: b64('etcd0'), prev_kv: true });
    assert.equal(del.json.deleted, '2');
    assert.equal(del.json.prev_kvs.length, 2);
  });

  test('SIGTERM stops a node cleanly (exit 0); the others carry on and it rejoins with its data', async () => {
    const child = children.get('n1')!;
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const before = logs.get('n1')!;
    child.kill('SIGTERM');
    assert.equal(await exit, 0);
    assert.ok(before.some((l) => l.msg === 'serving' && l.node === 'n1'), 'a structured line says it started');
    assert.ok(before.some((l) => l.msg === 'stopped'), 'and one that it stopped');
    assert.ok(before.every((l) => typeof l.level === 'number' && typeof l.time === 'number'));
    const requestLines = before.filter((l) => /\brequests?\b|\/v[13]\/kv/i.test(String(l.msg)));
    assert.deepEqual(requestLines, [], 'no line per request at info');
    assert.ok(before.length < 40, `${before.length} log lines for a few dozen requests and one stop`);
    await eventually('the others take writes', async () => (await put('n2', 'after-stop', 'yes')).status === 200);
    start('n1');
    await eventually('the restarted node serves what was written while it was down', async () => {
      const r = await fetch(`${clientUrl.n1}/v1/kv/after-stop`);
      return r.status === 200 && (await r.text()) === 'yes';
    });
    assert.equal(await (await fetch(`${clientUrl.n1}/v1/kv/shape`)).text(), 'round', 'its own data survived');
  });

  test('raftline ctl: status, members, a node joins as learner and is promoted, leadership moves, snapshots, removal', async () => {
    const endpoints = IDS.map((id) => clientUrl[id]).join(',');
    const ctl = (...argv: string[]) => {
      const r = spawnSync(process.execPath, [MAIN, 'ctl', '--endpoints', endpoints, ...argv], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 0, `ctl ${argv.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const status = JSON.parse(ctl('status', '--json')) as { status: { role: string } }[];
    assert.equal(status.filter((s) => s.status.role === 'leader').length, 1);
    assert.match(ctl('status'), /leader/);
    const members = JSON.parse(ctl('members', '--json')) as { voters: string[]; leader: string };
    assert.deepEqual([...members.voters].sort(), IDS);
    // Changes that can never apply are refused as such (409), not as "busy, retry" (503).
    const refused = (argv: string[], pattern: RegExp) => {
      const r = spawnSync(process.execPath, [MAIN, 'ctl', '--endpoints', endpoints, ...argv], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 1, `ctl ${argv.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, pattern);
    };
    refused(['promote', 'n1'], /\(invalid_change\)/);
    refused(['change-peers', 'n1,n2,zz'], /zz: not a member; add it first.*\(invalid_change\)/);
    refused(['transfer-leader', members.leader], /already leader \(invalid_change\)/);
    refused(['add-learner', 'n9', '127.0.0.1:99999'], /port 1-65535 \(bad_request\)/);
    assert.deepEqual([...(JSON.parse(ctl('members', '--json')) as { voters: string[] }).voters].sort(), IDS, 'nothing changed');

    start('n4');
    await eventually('n4 answers', async () => (await fetch(`${clientUrl.n4}/status`)).ok);
    assert.match(ctl('add-learner', 'n4', n4PeerAddress), /learners n4/);
    await eventually('n4 caught up as a learner', async () => (await fetch(`${clientUrl.n4}/v1/kv/shape?consistency=stale`).then((r) => r.text())) === 'round');
    ctl('promote', 'n4');
    const grown = JSON.parse(ctl('members', '--json')) as { voters: string[]; members: Record<string, { peer: string }> };
    assert.deepEqual([...grown.voters].sort(), [...IDS, 'n4']);
    assert.equal(grown.members.n4.peer, n4PeerAddress);
    assert.equal((await put('n4', 'from-n4', 'yes')).status, 200, 'the new voter takes writes');

    // Answered once the leadership has moved.
    ctl('transfer-leader', 'n4');
    assert.equal(((await (await fetch(`${clientUrl.n4}/status`)).json()) as { role: string }).role, 'leader');
    const snap = JSON.parse(ctl('snapshot', '--json')) as { index: number }[];
    assert.equal(snap.length, 3);
    for (const s of snap) assert.ok(s.index > 0);

    // The leader, n4, is not among the endpoints: ctl finds it through the client URL it recorded.
    assert.match(ctl('members'), /^leader n4/);
    // The leader removes itself: it cannot write once out; the next leader forgets its address on every member.
    ctl('remove-peer', 'n4');
    for (const id of IDS) {
      await eventually(`${id} forgot the address of n4`, async () => {
        const seen = (await (await fetch(`${clientUrl[id]}/v1/admin/members`)).json()) as { voters: string[]; members: Record<string, unknown> };
        return seen.voters.length === 3 && !seen.voters.includes('n4') && seen.members.n4 === undefined;
      });
    }
    // A voter that never started, added and then left out by change-peers: its address is forgotten too.
    ctl('add-peer', 'n5', '127.0.0.1:1');
    ctl('change-peers', IDS.join(','));
    const pruned = JSON.parse(ctl('members', '--json')) as { voters: string[]; members: Record<string, unknown> };
    assert.deepEqual([...pruned.voters].sort(), IDS);
    assert.equal(pruned.members.n5, undefined, 'change-peers forgets the address of a voter it removed');
    // A frozen member is reported unreachable instead of hanging the command.
    const frozen = children.get('n3')!;
    frozen.kill('SIGSTOP');
    try {
      const r = spawnSync(process.execPath, [MAIN, 'ctl', '--endpoints', endpoints, 'status'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stdout, new RegExp(`${clientUrl.n3}  unreachable: .*no answer within 2000 ms`));
      assert.match(r.stdout, /leader/);
    } finally {
      frozen.kill('SIGCONT');
    }
    const bad = spawnSync(process.execPath, [MAIN, 'ctl', '--endpoints', endpoints, 'add-peer', 'n5'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /add-peer takes 2 arguments/);
  });

  test('with no leader, requests get 503 with Retry-After and a JSON reason', async () => {
    for (const id of ['n2', 'n3', 'n4']) {
      const child = children.get(id);
      if (!child || child.exitCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    let last: Response | undefined;
    await eventually('n1 gives up leadership without a quorum', async () => {
      last = await put('n1', 'lonely', 'x');
      return last.status === 503;
    });
    assert.equal(last!.headers.get('retry-after'), '1');
    const body = (await last!.json()) as { code: string; error: string };
    assert.equal(body.code, 'no_leader');
    assert.ok(body.error.length > 0);
  });

  test('a server whose client or peer port is taken says so and exits 1, without joining the cluster', () => {
    // n4 is stopped by now, its ports free; each run takes one of n1's instead.
    const cases: [string, string, RegExp][] = [
      ['--client-listen', new URL(clientUrl.n1).host, /cannot listen for clients on 127\.0\.0\.1:\d+/],
      ['--peer-listen', args.n1[args.n1.indexOf('--peer-listen') + 1], /cannot listen on 127\.0\.0\.1:\d+/],
    ];
    for (const [flag, taken, message] of cases) {
      const argv = [...args.n4];
      argv[argv.indexOf(flag) + 1] = taken;
      argv[argv.indexOf('--data') + 1] = path.join(dir, `taken${flag}`);
      const r = spawnSync(process.execPath, [MAIN, 'serve', ...argv], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 1, `${flag} ${taken}: exit status (signal ${r.signal}): ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.ok(r.stderr.includes(taken), r.stderr);
    }
  });

  test('a server given the data directory of a running one says it is in use and exits 1; that one runs on, its log untouched', async () => {
    // Only n1 runs by now (without a quorum); n4's ports are free.
    const status = async () => (await (await fetch(`${clientUrl.n1}/status`)).json()) as { id: string; lastIndex: number; storage: { ok: boolean } };
    const before = await status();
    const n1Data = args.n1[args.n1.indexOf('--data') + 1];
    const argv = [...args.n4];
    argv[argv.indexOf('--data') + 1] = n1Data;
    const r = spawnSync(process.execPath, [MAIN, 'serve', ...argv], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 1, `exit status (signal ${r.signal}): ${r.stderr}`);
    assert.match(r.stderr, /is in use/);
    assert.ok(r.stderr.includes(n1Data), r.stderr);
    assert.equal(children.get('n1')!.exitCode, null, 'n1 still runs');
    const after = await status();
    assert.equal(after.id, 'n1');
    assert.equal(after.storage.ok, true);
    assert.equal(after.lastIndex, before.lastIndex);
  });

  test('wrong flags are refused with the setting named and exit code 2', () => {
    const run = (secret: string, ...argv: string[]) =>
      spawnSync(process.execPath, [MAIN, 'serve', ...argv], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH, RAFTLINE_SECRET: secret } });
    const secret = 'a-secret-long-enough-1234';
    const base = ['--id', 'a', '--data', dir, '--peer-listen', '127.0.0.1:1', '--client-listen', '127.0.0.1:2'];
    const nullConfig = path.join(dir, 'null.json');
    writeFileSync(nullConfig, 'null');
    const numericIdConfig = path.join(dir, 'numeric-id.json');
    writeFileSync(numericIdConfig, JSON.stringify({ id: 7 }));
    const cases: [string[], RegExp][] = [
      [[], /missing --id/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--secret-file', path.join(dir, 'no-such-secret')], /--secret-file: cannot read/],
      [[...base, '--peers', 'b=127.0.0.1:1'], /must include this node \(a\)/],
      [[...base, '--peers', 'a=localhost'], /must be HOST:PORT/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--bogus', '1'], /unknown flag --bogus/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--election-timeout-ms', 'soon'], /--election-timeout-ms must be an integer/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--election-timeout-ms', '10'], /the default --heartbeat-interval-ms \(100\) must be at most half of --election-timeout-ms \(10\)/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--config', path.join(dir, 'missing.json')], /config file .*missing\.json/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--config', nullConfig], /config file .*null\.json: must hold a JSON object of settings, got null/],
      [[...base.slice(2), '--peers', 'a=127.0.0.1:1', '--config', numericIdConfig], /config id must be a string, got 7/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--join=yes'], /--join must be true or false \(or 1 or 0\), got 'yes'/],
      [[...base, '--peers', 'a=127.0.0.1:0'], /\(a\) must be HOST:PORT \(an IPv6 host in brackets\) with a port from 1 to 65535, got '127\.0\.0\.1:0'/],
      [[...base, '--peers', 'a=http://127.0.0.1:7000'], /\(a\) must be HOST:PORT \(an IPv6 host in brackets\) with a port from 1 to 65535, got 'http:\/\/127\.0\.0\.1:7000'/],
      [['--id', 'a', '--data', dir, '--peer-listen', '127.0.0.1:1', '--client-listen', '127.0.0.1:0', '--peers', 'a=127.0.0.1:1'], /--client-listen must be HOST:PORT with a port from 1 to 65535/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--max-unread-answer-bytes', '1000'], /--max-unread-answer-bytes must be an integer ≥ 1048576/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--max-unread-answer-bytes', String(1 << 30)], /--max-unread-answer-bytes must be at most 536870912 \(512 MiB\), got '1073741824'/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--max-value-bytes', String(32 << 20)], /--max-value-bytes must be at most 16777216 \(16 MiB\), got '33554432'/],
      [[...base, '--peers', 'a=127.0.0.1:1', '--segment-bytes', String(2 ** 31)], /--segment-bytes must be at most 1073741824 \(1 GiB\), got '2147483648'/],
    ];
    for (const [argv, message] of cases) {
      const r = run(secret, ...argv);
      assert.equal(r.status, 2, argv.join(' '));
      assert.match(r.stderr, message);
    }
    const short = run('short', ...base, '--peers', 'a=127.0.0.1:1');
    assert.equal(short.status, 2);
    assert.match(short.stderr, /secret must be at least 16 bytes/);
  });
});
