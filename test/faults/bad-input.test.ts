// Bad input on every port of a running cluster, under a light write workload:
// random and damaged frames on the peer port (before and after
// authenticating), on the binary client protocol, and on the HTTP APIs. The
// servers must keep serving, answer with a clear refusal (or close what cannot
// be parsed) and count why; the workload's history must stay linearizable.
// Inputs come from a seeded PRNG; the seed is printed and
// RAFTLINE_FUZZ_SEED=<seed> replays a run.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import type { PeerMessage } from '../../src/transport/index.js';
import { decodeEnvelope, encodeEnvelope, FrameError } from '../../src/transport/index.js';
import { packFrame, unpackFrame } from '../../src/transport/frame.js';
import { decodeHello, encodeProof, newNonce, secretBytes, UPGRADE_TOKEN_HEADER, upgradeToken, verifyWelcome } from '../../src/transport/handshake.js';
import { decodeResponse, encodeRequest } from '../../src/transport/client-codec.js';
import { encodeCommand } from '../../src/server/kv-command.js';
import { Prng } from '../support/prng.js';
import { tempDir } from '../support/tmp.js';
import { CLUSTER_SECRET, FaultCluster, summaryTable, verify, Workload, type ScenarioReport } from './harness.js';

const SEED = Number(process.env.RAFTLINE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
console.log(`bad-input seed ${SEED} (RAFTLINE_FUZZ_SEED=${SEED} replays this run)`);

const { dir, cleanup } = tempDir('bad-input');
const reports: ScenarioReport[] = [];
after(() => {
  console.log(`\nBad-input scenarios (seed ${SEED}):\n\n${summaryTable(reports)}\n`);
  cleanup();
});

/** A server that neither answers nor closes within this is hung (uWS closes idle HTTP connections after 10 s). */
const HANG_BOUND_MS = 20_000;
/** Fuzzed keys sort after the workload's (k0..k5), and one damaged byte cannot turn one into another. */
const FUZZ_KEY = 'zz-fuzz-key-0001';
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `inject` on a fresh three-member cluster under a workload, then checks the history. */
async function scenario(name: string, region: number, inject: (c: FaultCluster, rng: Prng) => Promise<void>): Promise<void> {
  const cluster = new FaultCluster(`${dir}/${name.replace(/\W+/g, '-')}`);
  await cluster.start(region);
  const workload = new Workload(cluster, 4, SEED % 1000);
  try {
    workload.start(2);
    await pause(300);
    const before = workload.acknowledged;
    await inject(cluster, new Prng(SEED + region));
    await cluster.until('writes acknowledged after the bad input', async () => workload.acknowledged > before);
    await workload.stop();
    const report = await verify(name, cluster, workload);
    reports.push(report);
    assert.ok(cluster.ids.every((id) => cluster.running(id)), 'every server is still running');
    assert.equal(report.anomalies, 0, report.detail);
  } finally {
    await workload.stop();
    cluster.stopAll();
  }
}

/** One damaged copy of `bytes`, by a single change: a byte flipped, cut short, garbage appended, or four bytes overwritten with a huge or random length. */
function mutate(rng: Prng, bytes: Uint8Array): Buffer {
  const out = Buffer.from(bytes);
  switch (rng.int(0, 3)) {
    case 0:
      out[rng.int(0, out.length - 1)] ^= rng.int(1, 255);
      return out;
    case 1:
      return out.subarray(0, rng.int(0, out.length - 1));
    case 2:
      return Buffer.concat([out, rng.bytes(rng.int(1, 64))]);
    default:
      if (out.length >= 4) out.writeUInt32LE(rng.chance(0.5) ? 0xffffffff : rng.int(0, 1 << 24), rng.int(0, out.length - 4));
      return out;
  }
}

function pick<T>(rng: Prng, items: readonly T[]): T {
  return items[rng.int(0, items.length - 1)]!;
}

/** What the server did with one raw TCP exchange. */
interface RawOutcome {
  /** The HTTP status line's code, if the server answered with one. */
  status: number | null;
  /** The error body's `code`, if any. */
  code: string | null;
  /** False: the connection was still open, unanswered, after HANG_BOUND_MS. */
  closedByServer: boolean;
}

/** Writes `chunks` to a fresh connection (`gapMs` apart), keeps it open, and waits for the server to close it. */
function rawExchange(port: number, chunks: Uint8Array[], gapMs = 0): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    const done = (closedByServer: boolean) => {
      clearTimeout(bound);
      socket.destroy();
      const text = received.toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      // raftline's own error code: `code` on /v1, `reason` on the etcd gateway (whose `code` is gRPC's).
      const code = /"(?:code|reason)":"([a-z_]+)"/.exec(text);
      resolve({ status: status ? Number(status[1]) : null, code: code ? code[1]! : null, closedByServer });
    };
    const bound = setTimeout(() => done(false), HANG_BOUND_MS);
    socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    socket.on('error', () => undefined);
    socket.on('close', () => done(true));
    socket.on('connect', async () => {
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        socket.write(chunk);
        if (gapMs) await pause(gapMs);
      }
    });
  });
}

/** Runs `tasks` with at most `width` at a time (so hundreds of sockets do not open at once). */
async function limited<T>(width: number, tasks: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]!();
      }
    }),
  );
  return out;
}

interface PeerCounters {
  framesReceived: number;
  rejected: { auth: number; malformed: number; oversized: number; unroutable: number };
}

async function peerCounters(c: FaultCluster, id: string): Promise<PeerCounters> {
  const s = (await (await fetch(`${c.clientUrl[id]}/status`)).json()) as { peerTransport: PeerCounters };
  return s.peerTransport;
}

/** A WebSocket client whose messages queue up from the start: one can arrive in the same read as the upgrade's answer. */
interface Socket {
  ws: WebSocket;
  next(): Promise<Buffer>;
  closed: Promise<{ code: number; reason: string }>;
}

function openSocket(url: string, headers: Record<string, string> = {}): Promise<Socket> {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 << 20, headers });
  const queue: Buffer[] = [];
  let wake = () => {};
  ws.on('message', (data) => {
    queue.push(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer));
    wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const next = async (): Promise<Buffer> => {
    while (queue.length === 0) {
      const arrived = new Promise<void>((resolve) => (wake = resolve));
      const end = await Promise.race([arrived.then(() => null), closed]);
      if (end && queue.length === 0) throw new Error(`closed with ${end.code} before a message`);
    }
    return queue.shift()!;
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, next, closed }));
    ws.once('error', reject);
  });
}

// ------------------------------------------------------------------ peer port

/** Real messages of each shape, addressed so that none reaches a Raft node: to a node id nobody has, or in a group nobody runs. */
function peerEnvelopes(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const [group, to] of [['kv', 'nz'], ['fuzz-group', 'n1'], ['', 'n1']] as const) {
    const messages: PeerMessage[] = [
      { type: 'heartbeat', from: 'n1', to, term: 3, commit: 9, round: 1 },
      { type: 'vote', from: 'n1', to, term: 4, lastLogIndex: 20, lastLogTerm: 3, transfer: false },
      { type: 'append', from: 'n1', to, term: 3, prevIndex: 9, prevTerm: 2, commit: 8, entries: [{ index: 10, term: 3, type: 2, data: new Uint8Array(40).fill(7) }, { index: 11, term: 3, type: 2, data: new Uint8Array(3) }] },
      { type: 'snapshotChunk', from: 'n1', to, term: 3, file: { meta: { index: 500, term: 2, configuration: { voters: ['n1', 'n2'], learners: [] } }, bytes: 100, crc: 5 }, offset: 0, data: new Uint8Array([1, 2, 3]) },
      { type: 'snapshot', from: 'n1', to, term: 3, snapshot: { index: 5, term: 1, configuration: { voters: ['n1'], learners: ['n2'], outgoing: ['n3'] } } },
      { type: 'forward', from: 'n1', to, term: 3, requestId: 5, data: new Uint8Array(30).fill(1) },
      { type: 'appendResp', from: 'n1', to, term: 3, index: 11, reject: true, hintIndex: 4, hintTerm: 2 },
    ];
    for (const m of messages) out.push(encodeEnvelope(group, m));
  }
  return out;
}

/** A frame after authentication: random bytes, or real envelopes packed and then damaged (lengths included). */
function peerFrame(rng: Prng, envelopes: Uint8Array[]): Buffer {
  if (rng.chance(0.2)) return Buffer.from(rng.bytes(rng.int(0, 600)));
  const count = rng.int(1, 3);
  const chosen = Array.from({ length: count }, () => pick(rng, envelopes));
  const frame = packFrame(chosen, 0, count);
  if (rng.chance(0.15)) return frame; // intact: refused as unroutable
  if (rng.chance(0.3)) {
    // A length prefix that lies: zero, one short, one long, or huge.
    frame.writeUInt32LE(pick(rng, [0, chosen[0]!.byteLength - 1, chosen[0]!.byteLength + 1, 0x7fffffff, 0xffffffff]), 0);
    return frame;
  }
  return mutate(rng, frame);
}

/** How the receiving transport must count `frame`, by running the same decoding here. */
function expectedCounts(frame: Uint8Array, members: string[]): { malformed: number; unroutable: number; deliverable: number } {
  const { envelopes, error } = unpackFrame(frame);
  const counts = { malformed: error === undefined ? 0 : 1, unroutable: 0, deliverable: 0 };
  for (const bytes of envelopes) {
    try {
      const { group, message } = decodeEnvelope(bytes);
      if (group === 'kv' && members.includes(message.to)) counts.deliverable++;
      else counts.unroutable++;
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      counts.malformed++;
    }
  }
  return counts;
}

/** The upgrade header a process holding the cluster secret sends to member `id` (or one that saw such a request replays). */
function peerToken(id: string): Record<string, string> {
  return { [UPGRADE_TOKEN_HEADER]: upgradeToken(secretBytes(CLUSTER_SECRET), id) };
}

/** Upgrade headers to member `id` from a process without the cluster secret (or passing on one meant for another member). */
function badPeerToken(rng: Prng, id: string): Record<string, string> {
  const good = peerToken(id)[UPGRADE_TOKEN_HEADER]!;
  switch (rng.int(0, 4)) {
    case 0:
      return {};
    case 1:
      return { [UPGRADE_TOKEN_HEADER]: upgradeToken(secretBytes('not-the-cluster-secret-0123'), id) };
    case 2:
      return peerToken(`${id}-elsewhere`);
    case 3:
      return { [UPGRADE_TOKEN_HEADER]: Buffer.from(mutate(rng, Buffer.from(good, 'latin1'))).toString('latin1').replace(/[^\x21-\x7e]/g, 'x') };
    default:
      return { [UPGRADE_TOKEN_HEADER]: rng.bytes(rng.int(0, 120)).reduce((t, b) => t + String.fromCharCode(0x21 + (b % 94)), '') };
  }
}

/** A peer connection to member `serverId` that has passed the handshake with the cluster secret. */
async function authenticatedPeer(address: string, serverId: string, clientId: string): Promise<WebSocket> {
  const { ws, next } = await openSocket(`ws://${address}/raft`, peerToken(serverId));
  const secret = secretBytes(CLUSTER_SECRET);
  const nonceS = decodeHello(await next());
  const nonceC = newNonce();
  ws.send(encodeProof(secret, clientId, serverId, nonceS, nonceC), { binary: true });
  verifyWelcome(secret, await next(), nonceC, nonceS);
  return ws;
}

/** What an unauthenticated client sends member `serverId` instead of a valid proof. */
function badProof(rng: Prng, serverId: string, nonceS: Buffer, envelopes: Uint8Array[]): { data: Uint8Array; binary: boolean } {
  const good = encodeProof(secretBytes(CLUSTER_SECRET), 'n1', serverId, nonceS, newNonce());
  switch (rng.int(0, 5)) {
    case 0:
      return { data: rng.bytes(rng.int(0, 200)), binary: true };
    case 1:
      return { data: encodeProof(secretBytes('not-the-cluster-secret-0123'), 'n1', serverId, nonceS, newNonce()), binary: true };
    case 2:
      return { data: mutate(rng, good), binary: true };
    case 3:
      // A proof made for another member, passed on.
      return { data: encodeProof(secretBytes(CLUSTER_SECRET), 'n1', `${serverId}-elsewhere`, nonceS, newNonce()), binary: true };
    case 4:
      return { data: packFrame([pick(rng, envelopes)], 0, 1), binary: true };
    default:
      return { data: good, binary: false };
  }
}

/** Damaged WebSocket upgrades and garbage at the TCP level; each connection must be closed by the server. */
function rawPeerInputs(rng: Prng, address: string): Uint8Array[][] {
  const upgrade = Buffer.from(
    `GET /raft HTTP/1.1\r\nHost: ${address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  return Array.from({ length: 24 }, (_, i): Uint8Array[] => {
    switch (i % 3) {
      case 0:
        return [rng.bytes(rng.int(1, 2048))];
      case 1:
        return [mutate(rng, upgrade)];
      default:
        // A good upgrade, then bytes that are not valid WebSocket frames (unmasked, reserved opcodes, absurd lengths).
        return [upgrade, rng.bytes(rng.int(1, 512))];
    }
  });
}

test('peer port: random and damaged frames, unauthenticated and after the handshake, are refused and counted; the cluster keeps serving', () =>
  scenario('bad input: peer port', 10_000, async (c, rng) => {
    const envelopes = peerEnvelopes();
    // Upgrades without a valid token are refused (401) before a WebSocket
    // opens; with one (replayed, say), every bad proof is refused with close
    // code 4001. Both are counted.
    const authBefore = await Promise.all(c.ids.map((id) => peerCounters(c, id)));
    const perMember = 20;
    const tokenless = 10;
    await limited(
      16,
      c.ids.flatMap((id) =>
        Array.from({ length: tokenless }, () => async () => {
          await assert.rejects(openSocket(`ws://${c.peerAddress(id)}/raft`, badPeerToken(rng, id)), /Unexpected server response: 401/);
        }),
      ),
    );
    c.faults += c.ids.length * tokenless;
    const codes = await limited(
      16,
      c.ids.flatMap((id) =>
        Array.from({ length: perMember }, () => async () => {
          const { ws, next, closed } = await openSocket(`ws://${c.peerAddress(id)}/raft`, peerToken(id));
          const nonceS = decodeHello(await next());
          const { data, binary } = badProof(rng, id, nonceS, envelopes);
          ws.send(binary ? data : Buffer.from(data).toString('latin1'), { binary });
          return (await closed).code;
        }),
      ),
    );
    c.faults += codes.length;
    assert.deepEqual(new Set(codes), new Set([4001]), 'every bad proof closes the connection with 4001');
    for (const [i, id] of c.ids.entries()) {
      const now = await peerCounters(c, id);
      assert.equal(now.rejected.auth - authBefore[i]!.rejected.auth, tokenless + perMember, `${id} counts each refused upgrade and handshake under rejected.auth`);
    }

    // Unauthenticated, at the TCP level, left to run (uWS closes unfinished
    // requests only after 10 s) while the authenticated part goes on: these
    // connections never authenticate, so they cannot touch its counters.
    const rawDone = Promise.all(
      c.ids.flatMap((id) => {
        const address = c.peerAddress(id);
        return rawPeerInputs(rng, address).map((chunks) => rawExchange(Number(address.split(':')[1]), chunks));
      }),
    );

    // Authenticated: damaged frames must be dropped and counted exactly as the codec judges them.
    for (const id of c.ids) {
      const before = await peerCounters(c, id);
      const ws = await authenticatedPeer(c.peerAddress(id), id, `fuzzer-${id}`);
      const expected = { malformed: 0, unroutable: 0 };
      let skipped = 0;
      for (let i = 0; i < 150; i++) {
        if (rng.chance(0.05)) {
          ws.send(Buffer.from(rng.bytes(rng.int(1, 100))).toString('latin1'), { binary: false });
          expected.malformed++;
          c.faults++;
          continue;
        }
        const frame = peerFrame(rng, envelopes);
        const counts = expectedCounts(frame, c.ids);
        // A damaged frame that still decodes to a message for a real node is a
        // forged Raft message from a peer that holds the secret: every holder
        // of the secret is trusted (docs/transport.md), so it is not sent.
        if (counts.deliverable > 0) {
          skipped++;
          continue;
        }
        ws.send(frame, { binary: true });
        expected.malformed += counts.malformed;
        expected.unroutable += counts.unroutable;
        c.faults++;
      }
      assert.ok(skipped < 15, `few frames had to be skipped (${skipped})`);
      const delta = async () => {
        const now = await peerCounters(c, id);
        return { malformed: now.rejected.malformed - before.rejected.malformed, unroutable: now.rejected.unroutable - before.rejected.unroutable };
      };
      await c.until(`${id} has judged every frame`, async () => {
        const d = await delta();
        return d.malformed + d.unroutable >= expected.malformed + expected.unroutable;
      });
      assert.deepEqual(await delta(), expected, `${id} counts each refused frame and envelope by reason`);
      assert.equal(ws.readyState, WebSocket.OPEN, 'damaged frames from an authenticated peer are dropped, not the connection');
      ws.close();
    }
    const rawOutcomes = await rawDone;
    c.faults += rawOutcomes.length;
    assert.ok(rawOutcomes.every((o) => o.closedByServer), 'the server closes every damaged connection');
    const metrics = await (await fetch(`${c.clientUrl.n1}/metrics`)).text();
    assert.match(metrics, /raftline_peer_frames_rejected_total\{reason="malformed"\} [1-9]/);
    assert.match(metrics, /raftline_peer_frames_rejected_total\{reason="auth"\} [1-9]/);
    // Log lines come through a pipe, on their own schedule.
    await c.until('n1 logged why it dropped peer input', async () =>
      c.logs.get('n1')!.some((l) => l.component === 'transport' && /dropped|authentication failed/.test(String(l.msg))));
  }));

// ------------------------------------------------------ binary client protocol

/** Real binary-protocol requests on the fuzz key: reads, puts and a transaction (never a range delete). */
function clientRequests(): Uint8Array[] {
  const key = Buffer.from(FUZZ_KEY);
  const read = { key, limit: 0, keysOnly: false, countOnly: false, consistency: 'linearizable' as const };
  return [
    encodeRequest({ id: 1, read }),
    encodeRequest({ id: 2, read: { ...read, rangeEnd: Buffer.from('zz-fuzz-kez'), limit: 5, consistency: 'stale' } }),
    encodeRequest({ id: 3, command: encodeCommand({ clientId: 'fuzzer', sequence: 1, txn: { compare: [], success: [{ type: 'put', key, value: Buffer.from('v') }], failure: [] } }) }),
    encodeRequest({
      id: 4,
      command: encodeCommand({
        clientId: 'fuzzer',
        sequence: 2,
        txn: {
          compare: [{ key, target: 'value', result: 'equal', value: Buffer.from('v') }],
          success: [{ type: 'put', key, value: Buffer.from('w'), prevKv: true }],
          failure: [{ type: 'range', key, limit: 1 }],
        },
      }),
    }),
  ];
}

/** What a well-behaved server may answer a damaged request with. */
const CLIENT_REFUSALS = new Set(['', 'bad_request', 'key_too_large', 'value_too_large']);

test('binary client protocol: random and damaged requests get error answers or a close with a reason; the cluster keeps serving', () =>
  scenario('bad input: binary protocol', 15_000, async (c, rng) => {
    const requests = clientRequests();
    const codes = new Map<string, number>();
    for (const id of c.ids) {
      const { ws, next } = await openSocket(`${c.clientUrl[id]!.replace('http', 'ws')}/v1/ws`);
      // Random bytes; frames of damaged requests; frames damaged themselves (their length prefixes too).
      const frames = Array.from({ length: 100 }, () => {
        if (rng.chance(0.25)) return Buffer.from(rng.bytes(rng.int(0, 400)));
        const damaged = Array.from({ length: rng.int(1, 3) }, () => mutate(rng, pick(rng, requests)));
        const frame = packFrame(damaged, 0, damaged.length);
        return rng.chance(0.3) ? mutate(rng, frame) : frame;
      });
      for (const f of frames) ws.send(f, { binary: true });
      c.faults += frames.length;
      // Every request the server can find in a frame is answered, and so is a frame it cannot split.
      const expected = frames.reduce((n, f) => {
        const { envelopes, error } = unpackFrame(f);
        return n + envelopes.length + (error ? 1 : 0);
      }, 0);
      for (let answered = 0; answered < expected; ) {
        const { envelopes, error } = unpackFrame(await next());
        assert.equal(error, undefined, 'the server sends well-formed frames');
        for (const e of envelopes) {
          let code: string;
          try {
            code = decodeResponse(e).errorCode;
          } catch (err) {
            code = `an undecodable answer (${(err as Error).message})`;
          }
          codes.set(code, (codes.get(code) ?? 0) + 1);
          answered++;
        }
      }
      assert.equal(ws.readyState, WebSocket.OPEN, 'damaged binary requests are answered, the connection stays');
      ws.close();
    }
    for (const code of codes.keys()) assert.ok(CLIENT_REFUSALS.has(code), `no answer like '${code}' to a damaged request: ${JSON.stringify([...codes])}`);
    assert.ok((codes.get('bad_request') ?? 0) > 0, 'damaged requests are answered bad_request');

    // Not a request at all: a text frame, and one larger than any body the server takes.
    const text = await openSocket(`${c.clientUrl.n1!.replace('http', 'ws')}/v1/ws`);
    text.ws.send('GET /v1/kv/k0', { binary: false });
    assert.deepEqual(await text.closed, { code: 1003, reason: 'binary frames only' });
    const huge = await openSocket(`${c.clientUrl.n2!.replace('http', 'ws')}/v1/ws`);
    huge.ws.send(Buffer.alloc(3 << 20), { binary: true });
    assert.notEqual((await huge.closed).code, 1000, 'a frame over the limit closes the connection');
    c.faults += 2;
    const metrics = await (await fetch(`${c.clientUrl.n1}/metrics`)).text();
    assert.match(metrics, /raftline_http_requests_total\{route="ws:malformed",status="400"\} [1-9]/);
  }));

// ------------------------------------------------------------------ HTTP APIs

/** Well-formed HTTP with bad content, and the refusal each must get. */
const BAD_REQUESTS: [string, RequestInit, number, string][] = [
  ['/v1/kv/zz-x?consistency=sometimes', {}, 400, 'bad_request'],
  ['/v1/kv/%E0%A4%A', {}, 400, 'bad_request'],
  [`/v1/kv/${FUZZ_KEY}`, { method: 'PATCH', body: 'v' }, 405, 'method_not_allowed'],
  [`/v1/kv/${FUZZ_KEY}`, { method: 'PUT', body: 'v', headers: { 'If-Match': 'yesterday' } }, 400, 'bad_request'],
  [`/v1/kv/${FUZZ_KEY}`, { method: 'PUT', body: 'v', headers: { 'If-None-Match': '"abc"' } }, 400, 'bad_request'],
  [`/v1/kv/${'z'.repeat(2000)}`, { method: 'PUT', body: 'v' }, 413, 'key_too_large'],
  [`/v1/kv/${FUZZ_KEY}`, { method: 'PUT', body: Buffer.alloc((1 << 20) + 1) }, 413, 'value_too_large'],
  [`/v1/kv/${FUZZ_KEY}`, { method: 'PUT', body: Buffer.alloc(3 << 20) }, 413, 'body_too_large'],
  ['/v1/kv?limit=-1', {}, 400, 'bad_request'],
  ['/v1/kv', { method: 'POST', body: '{}' }, 405, 'method_not_allowed'],
  ['/v3/kv/put', {}, 405, 'method_not_allowed'],
  ['/v3/kv/put', { method: 'POST', body: '{"key": "enotZnV6', headers: { 'Content-Type': 'application/json' } }, 400, 'bad_request'],
  ['/v3/kv/put', { method: 'POST', body: '"just a string"' }, 400, 'bad_request'],
  ['/v3/kv/put', { method: 'POST', body: JSON.stringify({ key: 'not base64!' }) }, 400, 'bad_request'],
  ['/v3/kv/put', { method: 'POST', body: JSON.stringify({ key: 'enotZnV6', value: 'abc' }) }, 400, 'bad_request'],
  ['/v3/kv/range', { method: 'POST', body: JSON.stringify({ key: 'enotZnV6', limit: 'many' }) }, 400, 'bad_request'],
  ['/v3/kv/range', { method: 'POST', body: JSON.stringify({ key: 'enotZnV6', serializable: 'yes' }) }, 400, 'bad_request'],
  ['/v3/kv/txn', { method: 'POST', body: JSON.stringify({ compare: 'all' }) }, 400, 'bad_request'],
  ['/v3/kv/txn', { method: 'POST', body: JSON.stringify({ compare: [{ key: 'enotZnV6', result: 'ROUGHLY' }] }) }, 400, 'bad_request'],
  ['/v3/kv/txn', { method: 'POST', body: JSON.stringify({ success: [{ request_put: { key: '' } }] }) }, 400, 'bad_request'],
  ['/v3/kv/nothing', { method: 'POST', body: '{}' }, 404, 'not_found'],
  ['/v1/admin/add-peer', { method: 'POST', body: JSON.stringify({ id: 'bad id!', address: 'x' }) }, 400, 'bad_request'],
  ['/v1/admin/change-peers', { method: 'POST', body: JSON.stringify({ voters: [] }) }, 400, 'bad_request'],
  ['/v1/admin/transfer-leader', { method: 'POST', body: '[1,2' }, 400, 'bad_request'],
  ['/v1/admin/members', { method: 'DELETE' }, 405, 'method_not_allowed'],
  ['/status', { method: 'DELETE' }, 405, 'method_not_allowed'],
  ['/metrics', { method: 'PUT', body: 'x' }, 405, 'method_not_allowed'],
  ['/v1/cluster', { method: 'POST', body: '{}' }, 405, 'method_not_allowed'],
  ['/../../etc/passwd', {}, 404, 'not_found'],
];

/** Requests that are not HTTP uWS can parse, or that never finish: none may be answered with 5xx or left hanging. */
function rawHttpInputs(rng: Prng): Uint8Array[][] {
  const put = (key: string, body: string) => `PUT /v1/kv/${key} HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  const v3 = (body: string) => `POST /v3/kv/put HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  const valid = [put(FUZZ_KEY, 'value'), v3(JSON.stringify({ key: Buffer.from(FUZZ_KEY).toString('base64'), value: 'dmFsdWU=' })), `GET /v1/kv/${FUZZ_KEY}?consistency=stale HTTP/1.1\r\nHost: a\r\n\r\n`];
  const fixed = [
    'GET /status HTTP/1.1\r\n\r\n', // no Host
    'GET /status HTTP/1.0\r\nHost: a\r\n\r\n', // this uWS speaks only HTTP/1.1
    'GET /status HTTP/1.1\r\nHost: a\r\nX-Cut: shor', // headers cut short
    `PUT /v1/kv/${FUZZ_KEY} HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc`, // body cut short
    `GET /status HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(1 << 20)}\r\n\r\n`, // a 1 MiB header
    `GET /status HTTP/1.1\r\nHost: a\r\n${Array.from({ length: 500 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\n`,
    'BREW /status HTTP/1.1\r\nHost: a\r\n\r\n',
    `PUT /v1/kv/${FUZZ_KEY} HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n`,
    `PUT /v1/kv/${FUZZ_KEY} HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n`,
    `PUT /v1/kv/${FUZZ_KEY} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
    `PUT /v1/kv/${FUZZ_KEY} HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    'GET /status HTTP/9.9\r\nHost: a\r\n\r\n',
    `GET /v1/kv/${'z'.repeat(70_000)} HTTP/1.1\r\nHost: a\r\n\r\n`,
    'GET /v1/kv/zz\0fuzz HTTP/1.1\r\nHost: a\r\n\r\n',
  ].map((text) => [Buffer.from(text, 'latin1')]);
  const random = Array.from({ length: 20 }, () => [rng.bytes(rng.int(1, 4096))]);
  const damaged = Array.from({ length: 40 }, () => [mutate(rng, Buffer.from(pick(rng, valid)))]);
  return [...fixed, ...random, ...damaged];
}

test('HTTP APIs: garbage, cut-short, huge, slow and ill-formed requests get a 4xx or a closed connection, never a 5xx or a hang; the cluster keeps serving', () =>
  scenario('bad input: HTTP', 20_000, async (c, rng) => {
    const port = (id: string) => Number(new URL(c.clientUrl[id]!).port);
    const inputs = rawHttpInputs(rng);
    // Slow-loris: a request trickled in a few bytes at a time, then abandoned, on every member at once.
    const slow = c.ids.map((id) => {
      const text = Buffer.from(`PUT /v1/kv/${FUZZ_KEY} HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc`);
      const chunks = Array.from({ length: Math.ceil(text.length / 4) }, (_, i) => text.subarray(i * 4, i * 4 + 4));
      return rawExchange(port(id), chunks, 60);
    });
    const raw = inputs.map((chunks, i) => rawExchange(port(c.ids[i % c.ids.length]!), chunks));
    for (const [i, [url, init, status, code]] of BAD_REQUESTS.entries()) {
      const r = await fetch(`${c.clientUrl[c.ids[i % c.ids.length]!]}${url}`, init);
      const body = (await r.json()) as { code?: string | number; reason?: string; error?: string };
      const ownCode = url.startsWith('/v3/') ? body.reason : body.code;
      assert.deepEqual([r.status, ownCode], [status, code], `${init.method ?? 'GET'} ${url.slice(0, 60)}: ${body.error}`);
      assert.ok(body.error, 'the refusal says why');
    }
    c.faults += BAD_REQUESTS.length;

    const outcomes = await Promise.all(raw);
    const slowOutcomes = await Promise.all(slow);
    c.faults += inputs.length + slow.length;
    for (const [i, o] of [...outcomes, ...slowOutcomes].entries()) {
      assert.ok(o.closedByServer || o.status !== null, `input ${i} was neither answered nor closed within ${HANG_BOUND_MS} ms`);
      // A damaged request can still be a valid write, and a loaded machine can
      // be between leaders or slow to commit: that 503 or 504 is about the
      // cluster, not the input.
      const aboutTheCluster = (o.status === 503 && o.code === 'no_leader') || (o.status === 504 && o.code === 'timeout');
      assert.ok(o.status === null || o.status < 500 || aboutTheCluster, `input ${i} got a ${o.status} ${o.code}`);
    }
    for (const [i, o] of outcomes.slice(0, inputs.length - 40).entries()) {
      assert.ok(o.status === null || (o.status >= 400 && o.status < 500), `malformed input ${i} got a ${o.status}, not a 4xx`);
    }
    const metrics = await Promise.all(c.ids.map(async (id) => (await fetch(`${c.clientUrl[id]}/metrics`)).text()));
    for (const m of metrics) assert.doesNotMatch(m, /raftline_http_requests_total\{[^}]*status="500"\}/, 'no request met an internal error');
  }));
