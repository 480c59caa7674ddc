// raftline/client against three `raftline serve` processes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { RaftlineClient, RaftlineClientError } from '../src/client/index.js';
import { decodeResponse, encodeRequest } from '../src/transport/client-codec.js';
import { packFrame, unpackFrame } from '../src/transport/frame.js';
import { eventually } from './support/eventually.js';
import { clusterArgs, freePorts, spawnServer, writableThroughEvery } from './support/servers.js';
import { tempDir } from './support/tmp.js';

const IDS = ['n1', 'n2', 'n3'];

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
    for (const id of IDS) children.set(id, spawnServer(cluster.args[id]).child);
    await writableThroughEvery(clientUrl);
  });

  after(() => {
    for (const c of children.values()) if (c.exitCode === null) c.kill('SIGKILL');
    cleanup();
  });

  test('puts, gets, preconditions, deletes, prefixes and transactions', async () => {
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
      assert.equal(Buffer.from((await client.get('seen', { consistency: 'stale' }))!.value).toString(), 'yes');
    } finally {
      await client.close();
    }
  });

  test('malformed binary frames get an error answer and the connection keeps serving', async () => {
    const ws = new WebSocket(`${clientUrl.n2.replace('http', 'ws')}/v1/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => resolve());
      ws.on('error', reject);
    });
    const answers: ReturnType<typeof decodeResponse>[] = [];
    ws.on('message', (data) => {
      const { envelopes, error } = unpackFrame(data as Buffer);
      assert.equal(error, undefined);
      for (const e of envelopes) answers.push(decodeResponse(e));
    });
    const ready = (id: number) => encodeRequest({ id, read: { key: Buffer.from('ready'), limit: 0, keysOnly: false, countOnly: false, consistency: 'linearizable' } });
    // Not a frame: too short for a length prefix.
    ws.send(Buffer.from([1, 2, 3]), { binary: true });
    // A frame holding one request that is not one.
    ws.send(packFrame([Buffer.alloc(64, 0xff)], 0, 1), { binary: true });
    // A good request, then a length prefix that runs past the end: the request is still answered.
    ws.send(Buffer.concat([packFrame([ready(8)], 0, 1), Buffer.from([200, 0, 0, 0, 1])]), { binary: true });
    // Two requests in one frame, each answered.
    ws.send(packFrame([ready(7), ready(9)], 0, 2), { binary: true });
    await eventually('six answers', () => answers.length === 6);
    const byId = (id: number) => answers.filter((a) => a.id === id);
    assert.deepEqual(byId(0).map((a) => a.errorCode), ['bad_request', 'bad_request', 'bad_request']);
    assert.match(byId(0).map((a) => a.error).join('\n'), /malformed frame: length prefix 200/);
    for (const id of [7, 8, 9]) assert.deepEqual(byId(id).map((a) => a.errorCode), [''], `request ${id} is answered once`);
    ws.close();
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
