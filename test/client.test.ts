// raftline/client against three `raftline serve` processes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { RaftlineClient, RaftlineClientError } from '../src/client/index.js';
import { encodeCommand, SESSION_REGISTRATION } from '../src/server/kv-command.js';
import { decodeResponse, encodeRequest, type ClientResponse, type ReadConsistency } from '../src/transport/client-codec.js';
import { packFrame, packFrames, unpackFrame } from '../src/transport/frame.js';
import { eventually } from './support/eventually.js';
import { clusterArgs, freePorts, spawnServer, writableThroughEvery } from './support/servers.js';
import { tempDir } from './support/tmp.js';

const IDS = ['n1', 'n2', 'n3'];
/** n3 sends answers of at most this many bytes on the binary protocol. */
const ANSWER_LIMIT_N3 = 4 << 20;

describe('raftline/client', () => {
  const { dir, cleanup } = tempDir('client');
  const children = new Map<string, ChildProcess>();
  let clientUrl: Record<string, string> = {};
  let endpoints: string[] = [];

  before(async () => {
    const ports = await freePorts(6, 20_000);
    const secretFile = path.join(dir, 'secret');
    writeFileSync(secretFile, 'client-test-secret-0123456789');
    const cluster = clusterArgs(IDS, ports, dir, secretFile);
    clientUrl = cluster.clientUrl;
    endpoints = IDS.map((id) => clientUrl[id]);
    cluster.args.n3.push('--max-unread-answer-bytes', String(ANSWER_LIMIT_N3));
    for (const id of IDS) children.set(id, spawnServer(cluster.args[id]).child);
    await writableThroughEvery(clientUrl);
  });

  after(() => {
    for (const c of children.values()) if (c.exitCode === null) c.kill('SIGKILL');
    cleanup();
  });

  /** A raw connection to `id`'s binary protocol, collecting every answer. */
  async function rawConnection(id: string): Promise<{ ws: WebSocket; answers: ClientResponse[] }> {
    const ws = new WebSocket(`${clientUrl[id].replace('http', 'ws')}/v1/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => resolve());
      ws.on('error', reject);
    });
    const answers: ClientResponse[] = [];
    ws.on('message', (data) => {
      const { envelopes, error } = unpackFrame(data as Buffer);
      assert.equal(error, undefined);
      for (const e of envelopes) answers.push(decodeResponse(e));
    });
    return { ws, answers };
  }

  const readRequest = (id: number, key: string, consistency: ReadConsistency = 'linearizable') =>
    encodeRequest({ id, read: { key: Buffer.from(key), limit: 0, keysOnly: false, countOnly: false, consistency } });

  test('puts, gets, preconditions, deletes, prefixes and transactions', async () => {
    await assert.rejects(
      RaftlineClient.connect({ endpoints: [clientUrl.n1.replace('http://', '')] }),
      (err: Error) => err instanceof RaftlineClientError && err.code === 'bad_request' && /is not a URL like http:\/\/127\.0\.0\.1:7201/.test(err.message),
    );
    const client = await RaftlineClient.connect({ endpoints });
    try {
      const first = await client.put('user/1', 'ada');
      assert.ok(first.revision > 1);
      const kv = await client.get('user/1');
      assert.equal(Buffer.from(kv!.value).toString(), 'ada');
      assert.equal(kv!.version, 1);
      assert.equal((await client.put('user/1', 'grace', { ifModRevision: kv!.modRevision + 1000 })).succeeded, false);
      assert.equal((await client.put('user/1', 'grace', { ifModRevision: kv!.modRevision })).succeeded, true);
      assert.equal((await client.put('user/1', 'x', { ifAbsent: true })).succeeded, false);
      await client.put('user/2', 'linus');
      await client.put('users', 'not in the prefix');
      const users = await client.prefix('user/');
      assert.deepEqual(users.kvs.map((k) => Buffer.from(k.key).toString()), ['user/1', 'user/2']);
      const deleted = await client.delete('user/2', { prevKv: true });
      assert.equal(deleted.results[0].deleted, 1);
      assert.equal(Buffer.from(deleted.results[0].prevKvs[0].value).toString(), 'linus');
      assert.equal(await client.get('user/2'), null);
      const t = await client.txn({
        compare: [{ key: Buffer.from('user/1'), target: 'value', result: 'equal', value: Buffer.from('grace') }],
        success: [{ type: 'put', key: Buffer.from('seen'), value: Buffer.from('yes') }, { type: 'range', key: Buffer.from('user/1') }],
        failure: [],
      });
      assert.equal(t.succeeded, true);
      assert.equal(Buffer.from(t.results[1].kvs[0].value).toString(), 'grace');
      await assert.rejects(client.put('k'.repeat(5000), 'v'), (err: Error) => err instanceof RaftlineClientError && err.code === 'key_too_large');
      // From JavaScript, text where bytes belong is refused at the call (it was written as as many zero bytes).
      const untyped = client.txn as (txn: unknown) => Promise<unknown>;
      const refused = (message: RegExp) => (err: Error) => err instanceof RaftlineClientError && err.code === 'bad_request' && message.test(err.message);
      await assert.rejects(untyped.call(client, { compare: [], success: [{ type: 'put', key: 'seen', value: 'no' }], failure: [] }), refused(/success\[0\]\.key must be a Uint8Array/));
      await assert.rejects(
        untyped.call(client, { compare: [{ key: Buffer.from('seen'), target: 'VALUE', result: 'equal' }], success: [], failure: [] }),
        refused(/compare\[0\]\.target must be one of value, version, create, mod, not "VALUE"/),
      );
      // A limit the command's varint cannot hold (-1 made an entry every member failed to decode).
      await assert.rejects(
        client.txn({ compare: [], success: [{ type: 'range', key: Buffer.from('seen'), limit: -1 }], failure: [] }),
        refused(/success\[0\]\.limit must be a non-negative integer/),
      );
      assert.equal(Buffer.from((await client.get('seen', { consistency: 'stale' }))!.value).toString(), 'yes');
    } finally {
      await client.close();
    }
  });

  test('a write whose results list thousands of key-values arrives whole', async () => {
    const client = await RaftlineClient.connect({ endpoints });
    try {
      const keys = Array.from({ length: 2500 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
      for (let from = 0; from < keys.length; from += 500) {
        await client.txn({ compare: [], success: keys.slice(from, from + 500).map((k) => ({ type: 'put', key: Buffer.from(k), value: Buffer.from(`v-${k}`) })), failure: [] });
      }
      const inTxn = await client.txn({ compare: [], success: [{ type: 'range', key: Buffer.from('many/'), rangeEnd: Buffer.from('many0') }, { type: 'put', key: Buffer.from('many-done'), value: Buffer.from('1') }], failure: [] });
      assert.equal(inTxn.results[0].count, keys.length);
      assert.deepEqual(inTxn.results[0].kvs.map((kv) => Buffer.from(kv.key).toString()), keys);
      const deleted = await client.delete('many/', { rangeEnd: 'many0', prevKv: true });
      assert.equal(deleted.results[0].deleted, keys.length);
      assert.deepEqual(deleted.results[0].prevKvs.map((kv) => Buffer.from(kv.key).toString()), keys);
      assert.ok(deleted.results[0].prevKvs.every((kv, i) => Buffer.from(kv.value).toString() === `v-${keys[i]}`), 'every deleted value intact');
      assert.equal(deleted.revision, inTxn.revision + 1);
    } finally {
      await client.close();
    }
  });

  test('malformed binary frames get an error answer and the connection keeps serving', async () => {
    const { ws, answers } = await rawConnection('n2');
    const ready = (id: number) => readRequest(id, 'ready');
    // Not a frame: too short for a length prefix.
    ws.send(Buffer.from([1, 2, 3]), { binary: true });
    // A frame holding one request that is not one.
    ws.send(packFrame([Buffer.alloc(64, 0xff)], 0, 1), { binary: true });
    // A good request, then a length prefix that runs past the end: the request is still answered.
    ws.send(Buffer.concat([packFrame([ready(8)], 0, 1), Buffer.from([200, 0, 0, 0, 1])]), { binary: true });
    // Two requests in one frame, each answered.
    ws.send(packFrame([ready(7), ready(9)], 0, 2), { binary: true });
    // A request whose id decodes but whose consistency is unknown: answered under its id.
    ws.send(packFrame([readRequest(42, 'ready', 'serializable' as ReadConsistency)], 0, 1), { binary: true });
    await eventually('seven answers', () => answers.length === 7);
    const byId = (id: number) => answers.filter((a) => a.id === id);
    assert.deepEqual(byId(0).map((a) => a.errorCode), ['bad_request', 'bad_request', 'bad_request']);
    assert.match(byId(0).map((a) => a.error).join('\n'), /malformed frame: length prefix 200/);
    for (const id of [7, 8, 9]) assert.deepEqual(byId(id).map((a) => a.errorCode), [''], `request ${id} is answered once`);
    assert.deepEqual(byId(42).map((a) => a.errorCode), ['bad_request']);
    assert.match(byId(42)[0].error, /unknown consistency 255/);
    ws.close();
  });

  test('a write older than the 1024 sequences its session remembers is refused as sequence_too_old, not applied', async () => {
    const { ws, answers } = await rawConnection('n1');
    const write = (id: number, sequence: number, value: string) =>
      encodeRequest({ id, command: encodeCommand({ clientId: 'raw-session', sequence, txn: { compare: [], success: [{ type: 'put', key: Buffer.from('seq/k'), value: Buffer.from(value) }], failure: [] } }) });
    for (let at = 1; at <= 1030; at += 100) {
      const batch = Array.from({ length: Math.min(100, 1031 - at) }, (_, i) => write(at + i, at + i, `v${at + i}`));
      for (const frame of packFrames(batch)) ws.send(frame, { binary: true });
      await eventually(`${at + batch.length - 1} writes answered`, () => answers.length === at + batch.length - 1);
    }
    assert.deepEqual(answers.filter((a) => a.errorCode !== ''), [], 'every write applied');
    ws.send(packFrame([write(5000, 1, 'late')], 0, 1), { binary: true });
    await eventually('the late write answered', () => answers.some((a) => a.id === 5000));
    const late = answers.find((a) => a.id === 5000)!;
    assert.equal(late.errorCode, 'sequence_too_old');
    assert.match(late.error, /no longer remembers whether it was applied/);
    ws.close();
    const client = await RaftlineClient.connect({ endpoints });
    try {
      assert.equal(Buffer.from((await client.get('seq/k'))!.value).toString(), 'v1030', 'the late write was not applied');
    } finally {
      await client.close();
    }
  });

  test('a session registered through any member is named by its log index; writes under it apply once, and an id never registered is refused', async () => {
    for (const id of ['n1', 'n2']) {
      const { ws, answers } = await rawConnection(id);
      const answer = async (requestId: number) => {
        await eventually(`answer ${requestId}`, () => answers.some((a) => a.id === requestId));
        return answers.find((a) => a.id === requestId)!;
      };
      const write = (requestId: number, clientId: string, sequence: number) =>
        encodeRequest({ id: requestId, command: encodeCommand({ clientId, sequence, txn: { compare: [], success: [{ type: 'put', key: Buffer.from(`reg/${id}`), value: Buffer.from(String(requestId)) }], failure: [] } }) });
      ws.send(packFrame([encodeRequest({ id: 1, command: SESSION_REGISTRATION })], 0, 1), { binary: true });
      const registration = await answer(1);
      assert.equal(registration.errorCode, '', registration.error);
      assert.match(registration.session, /^#[1-9][0-9]*$/);
      ws.send(packFrame([write(2, registration.session, 1)], 0, 1), { binary: true });
      const first = await answer(2);
      ws.send(packFrame([write(3, registration.session, 1)], 0, 1), { binary: true });
      const retry = await answer(3);
      assert.equal(retry.duplicate, true);
      assert.equal(retry.revision, first.revision);
      // The cluster's first entry (a new leader's empty entry) is no registration.
      ws.send(packFrame([write(4, '#1', 1)], 0, 1), { binary: true });
      const stranger = await answer(4);
      assert.equal(stranger.errorCode, 'session_expired');
      ws.close();
      const client = await RaftlineClient.connect({ endpoints });
      try {
        const kv = (await client.get(`reg/${id}`))!;
        assert.equal(Buffer.from(kv.value).toString(), '2');
        assert.equal(kv.version, 1, 'the retry and the stranger applied nothing');
      } finally {
        await client.close();
      }
    }
  });

  test('an answer larger than a member sends in one is refused as too_large; the connection keeps serving', async () => {
    const writer = await RaftlineClient.connect({ endpoints });
    try {
      for (let i = 0; i < 5; i++) await writer.put(`cap/${i}`, Buffer.alloc(1000 * 1024, i));
    } finally {
      await writer.close();
    }
    const client = await RaftlineClient.connect({ endpoints: [clientUrl.n3] });
    try {
      await eventually('n3 applied the values', async () => (await client.range('cap/', 'cap0', { consistency: 'stale', countOnly: true })).count === 5);
      await assert.rejects(client.prefix('cap/', { consistency: 'stale' }), (err: RaftlineClientError) => err.code === 'too_large' && new RegExp(`more than the ${ANSWER_LIMIT_N3} sent in one answer`).test(err.message));
      const half = await client.prefix('cap/', { consistency: 'stale', limit: 2 });
      assert.equal(half.kvs.length, 2);
      assert.equal(half.more, true);
      // The same limit holds for JSON answers over HTTP.
      const everything = { key: Buffer.from('cap/').toString('base64'), range_end: Buffer.from('cap0').toString('base64') };
      const v3 = await fetch(`${clientUrl.n3}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ ...everything, serializable: true }) });
      assert.equal(v3.status, 413);
      const v3Error = (await v3.json()) as { reason: string; message: string };
      assert.equal(v3Error.reason, 'too_large');
      assert.match(v3Error.message, new RegExp(`the answer is more than the ${ANSWER_LIMIT_N3} sent in one answer: ask for less`));
      const v1 = await fetch(`${clientUrl.n3}/v1/kv?prefix=cap/&consistency=stale`);
      assert.equal(v1.status, 413);
      assert.equal(((await v1.json()) as { code: string }).code, 'too_large');
      const limited = await fetch(`${clientUrl.n3}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ ...everything, serializable: true, limit: 2 }) });
      assert.equal(limited.status, 200, 'a limited range is answered');
      assert.equal(((await limited.json()) as { kvs: unknown[] }).kvs.length, 2);
      // A write whose results are too large has applied, and says so.
      const deletion = await client.delete('cap/', { rangeEnd: 'cap0', prevKv: true }).then(() => null, (err: unknown) => err);
      assert.ok(deletion instanceof RaftlineClientError, String(deletion));
      assert.equal(deletion.code, 'results_too_large');
      assert.match(deletion.message, /the write was applied \(revision \d+, succeeded true\)/);
      assert.equal((await client.range('cap/', 'cap0', { countOnly: true })).count, 0, 'the values are gone');
      // Through the etcd gateway too, a write whose results are too large says it applied.
      for (let i = 0; i < 5; i++) await client.put(`cap/${i}`, Buffer.alloc(1000 * 1024, i));
      await eventually('n3 applied the values again', async () => (await client.range('cap/', 'cap0', { consistency: 'stale', countOnly: true })).count === 5);
      const gatewayDelete = await fetch(`${clientUrl.n3}/v3/kv/deleterange`, { method: 'POST', body: JSON.stringify({ ...everything, prev_kv: true }) });
      assert.equal(gatewayDelete.status, 413);
      const deleteError = (await gatewayDelete.json()) as { reason: string; message: string };
      assert.equal(deleteError.reason, 'results_too_large');
      assert.match(deleteError.message, /the write was applied \(revision \d+, succeeded true\), but its results are more than the \d+ sent in one answer, and are not sent: ask for fewer key-values in them/);
      assert.equal((await client.range('cap/', 'cap0', { countOnly: true })).count, 0, 'deleted');
      // Ranges that each fit but together do not: the transaction applies and says so, through both protocols.
      for (let i = 0; i < 3; i++) await client.put(`cap/${i}`, Buffer.alloc(1000 * 1024, i));
      const everyCap = { type: 'range', key: Buffer.from('cap/'), rangeEnd: Buffer.from('cap0') } as const;
      const oneRange = await client.txn({ compare: [], success: [everyCap], failure: [] });
      assert.equal((oneRange.results[0] as { kvs: unknown[] }).kvs.length, 3, 'one range of 3 MB fits');
      const ranges = await client.txn({ compare: [], success: [{ type: 'put', key: Buffer.from('cap/marker'), value: Buffer.from('m') }, everyCap, everyCap], failure: [] }).then(() => null, (err: unknown) => err);
      assert.ok(ranges instanceof RaftlineClientError, String(ranges));
      assert.equal(ranges.code, 'results_too_large');
      const gatewayTxn = await fetch(`${clientUrl.n3}/v3/kv/txn`, {
        method: 'POST',
        body: JSON.stringify({ success: [{ request_put: { key: Buffer.from('cap/marker2').toString('base64'), value: 'bQ==' } }, { request_range: everything }, { request_range: everything }] }),
      });
      assert.equal(gatewayTxn.status, 413);
      assert.equal(((await gatewayTxn.json()) as { reason: string }).reason, 'results_too_large');
      assert.equal((await client.range('cap/marker', 'cap/markes', { countOnly: true })).count, 2, 'both transactions applied');
    } finally {
      await client.close();
    }
  });

  test('answers to a client that reads slowly wait for it instead of being dropped', async () => {
    const client = await RaftlineClient.connect({ endpoints: [clientUrl.n2] });
    try {
      await client.put('slow/big', Buffer.alloc(1000 * 1024, 7));
      await client.put('slow/big2', Buffer.alloc(1000 * 1024, 8));
      await eventually('n2 applied the values', async () => (await client.get('slow/big2', { consistency: 'stale' }))?.value.length === 1000 * 1024);
    } finally {
      await client.close();
    }
    const { ws, answers } = await rawConnection('n2');
    const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.pause();
    // Every tenth read ranges over both values: an answer longer than a
    // frame, which goes out in fragments between the others.
    const isRange = (id: number) => id % 10 === 0;
    const reads = Array.from({ length: 150 }, (_, i) =>
      isRange(i + 1)
        ? encodeRequest({ id: i + 1, read: { key: Buffer.from('slow/'), rangeEnd: Buffer.from('slow0'), limit: 0, keysOnly: false, countOnly: false, consistency: 'stale' } })
        : readRequest(i + 1, 'slow/big', 'stale'),
    );
    for (const frame of packFrames(reads)) ws.send(frame, { binary: true });
    // 165 MB of answers: far past what uWS buffers for one connection (it would drop the rest).
    await new Promise((r) => setTimeout(r, 2000));
    socket.resume();
    await eventually('every read answered', () => answers.length === 150, 60_000);
    assert.deepEqual(answers.map((a) => a.id).sort((a, b) => a - b), Array.from({ length: 150 }, (_, i) => i + 1));
    for (const a of answers) {
      assert.equal(a.errorCode, '', `answer ${a.id}`);
      const kvs = a.results[0].kvs;
      assert.deepEqual(kvs.map((kv) => [Buffer.from(kv.key).toString(), kv.value.length, kv.value[0]]), isRange(a.id) ? [['slow/big', 1000 * 1024, 7], ['slow/big2', 1000 * 1024, 8]] : [['slow/big', 1000 * 1024, 7]], `answer ${a.id}`);
    }
    ws.close();
  });

  test('a client asking for more answers than it reads is cut off as soon as they pass the limit, before the rest are built', async () => {
    const client = await RaftlineClient.connect({ endpoints: [clientUrl.n3] });
    try {
      await client.put('flood/big', Buffer.alloc(1000 * 1024, 3));
      await eventually('n3 applied the value', async () => (await client.get('flood/big', { consistency: 'stale' }))?.value.length === 1000 * 1024);
    } finally {
      await client.close();
    }
    const { ws, answers } = await rawConnection('n3');
    const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.pause();
    const closed = new Promise<[number, string]>((resolve) => ws.once('close', (code, reason) => resolve([code, reason.toString()])));
    // 200 MB of answers asked for in one frame, to a member that lets 4 MiB wait.
    ws.send(packFrame(Array.from({ length: 200 }, (_, i) => readRequest(i + 1, 'flood/big', 'stale')), 0, 200), { binary: true });
    await new Promise((r) => setTimeout(r, 1000));
    socket.resume();
    assert.deepEqual(await closed, [1008, `more than ${ANSWER_LIMIT_N3} bytes of answers unread`]);
    // Reserved as each was built, none went out: the connection closed within the burst that built them.
    // Counted only once all were built, the answers that fit uWS's send buffer (16 MiB) went out before the close.
    assert.ok(answers.length < ANSWER_LIMIT_N3 / (1000 * 1024), `${answers.length} answers sent`);
  });

  test('a burst of answers that together pass the limit reaches a client that reads them', async () => {
    const client = await RaftlineClient.connect({ endpoints: [clientUrl.n3] });
    try {
      await client.put('burst/big', Buffer.alloc(1000 * 1024, 5));
      await eventually('n3 applied the value', async () => (await client.get('burst/big', { consistency: 'stale' }))?.value.length === 1000 * 1024);
      // 6 MB asked for at once of a member that lets 4 MiB wait: what uWS's send buffer takes is not waiting.
      const reads = await Promise.all(Array.from({ length: 6 }, () => client.get('burst/big', { consistency: 'stale' })));
      assert.deepEqual(reads.map((kv) => kv?.value.length), Array(6).fill(1000 * 1024));
    } finally {
      await client.close();
    }
  });

  test('a connection with more requests than the member works on at once gets every answer; a client id longer than 128 bytes is refused', async () => {
    const { ws, answers } = await rawConnection('n2');
    const reads = Array.from({ length: 3000 }, (_, i) => readRequest(i + 1, 'ready', 'stale'));
    for (const frame of packFrames(reads)) ws.send(frame, { binary: true });
    const txn = { compare: [], success: [{ type: 'put' as const, key: Buffer.from('long-id'), value: Buffer.from('v') }], failure: [] };
    ws.send(packFrame([encodeRequest({ id: 5000, command: encodeCommand({ clientId: 'c'.repeat(129), sequence: 1, txn }) })], 0, 1), { binary: true });
    await eventually('every request answered', () => answers.length === 3001, 60_000);
    assert.deepEqual(answers.filter((a) => a.id <= 3000).map((a) => a.errorCode).filter((code) => code !== ''), []);
    assert.deepEqual(new Set(answers.map((a) => a.id)).size, 3001);
    const refused = answers.find((a) => a.id === 5000)!;
    assert.equal(refused.errorCode, 'bad_request');
    assert.match(refused.error, /a client id may have 128 bytes at most/);
    ws.close();
  });

  test('a client whose server freezes (SIGSTOP) moves to another endpoint and its requests complete there', async () => {
    const statuses = await Promise.all(IDS.map(async (id) => ({ id, s: (await (await fetch(`${clientUrl[id]}/status`)).json()) as { role: string } })));
    const leader = statuses.find((x) => x.s.role === 'leader')!.id;
    const client = await RaftlineClient.connect({ endpoints, requestTimeoutMs: 25_000 });
    const frozen = children.get(leader)!;
    try {
      await client.put('freeze/before', '1');
      frozen.kill('SIGSTOP');
      // Rejects with a timeout if the client stays on the frozen server.
      await client.put('freeze/after', '2');
      assert.equal(Buffer.from((await client.get('freeze/after'))!.value).toString(), '2');
    } finally {
      frozen.kill('SIGCONT');
      await client.close();
    }
    await writableThroughEvery(clientUrl);
  });

  test('leader killed during a pipelined write loop: every acknowledged write is readable, none applied twice', async () => {
    const client = await RaftlineClient.connect({ endpoints, requestTimeoutMs: 60_000 });
    const acked: string[] = [];
    let next = 0;
    let stop = false;
    const loop = async () => {
      while (!stop) {
        const key = `loop/${next++}`;
        await client.put(key, `v-${key}`);
        acked.push(key);
      }
    };
    const loops = Array.from({ length: 16 }, loop);
    try {
      await eventually('200 acknowledged writes', () => acked.length >= 200);
      const statuses = await Promise.all(IDS.map(async (id) => ({ id, s: (await (await fetch(`${clientUrl[id]}/status`)).json()) as { role: string } })));
      const leader = statuses.find((x) => x.s.role === 'leader')!.id;
      const child = children.get(leader)!;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      const atKill = acked.length;
      await eventually('200 more acknowledged writes after the kill', () => acked.length >= atKill + 200, 60_000);
    } finally {
      stop = true;
      await Promise.all(loops);
      await client.close();
    }
    const reader = await RaftlineClient.connect({ endpoints: endpoints.filter((e) => children.get(IDS[endpoints.indexOf(e)])!.exitCode === null) });
    try {
      const all = await reader.prefix('loop/');
      const byKey = new Map(all.kvs.map((kv) => [Buffer.from(kv.key).toString(), kv]));
      const missing = acked.filter((k) => Buffer.from(byKey.get(k)?.value ?? []).toString() !== `v-${k}`);
      assert.deepEqual(missing, [], 'acknowledged writes lost');
      const twice = all.kvs.filter((kv) => kv.version !== 1).map((kv) => Buffer.from(kv.key).toString());
      assert.deepEqual(twice, [], 'writes applied more than once');
    } finally {
      await reader.close();
    }
  });
});
