import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type { PeerMessage } from '../src/transport/index.js';
import { encodeEnvelope, UwsTransport, type UwsTransportOptions } from '../src/transport/index.js';
import { packFrame } from '../src/transport/frame.js';
import { decodeHello, encodeProof, encodeWelcome, newNonce, UPGRADE_PEER_ID_HEADER, UPGRADE_TOKEN_HEADER, upgradeToken, verifyWelcome } from '../src/transport/handshake.js';
import { loadUws } from '../src/transport/uws.js';
import { eventually } from './support/eventually.js';
import { freePorts } from './support/servers.js';

const SECRET = 'correct horse battery staple, 32b';
const OVERALL_MS = 15_000;

function within<T>(p: Promise<T>, what: string, timeoutMs = OVERALL_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Deep copy with byte arrays as plain arrays, so Buffer views and Uint8Arrays compare equal. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

const quiet: UwsTransportOptions['onLog'] = () => {};

function options(id: string, extra: Partial<UwsTransportOptions> = {}): UwsTransportOptions {
  return { id, port: 0, peers: {}, secret: SECRET, onLog: quiet, reconnectInitialMs: 10, reconnectMaxMs: 100, ...extra };
}

/** Transports that all know each other, connected. */
async function mesh(ids: string[], extra: Partial<UwsTransportOptions> = {}): Promise<Map<string, UwsTransport>> {
  const ts = new Map<string, UwsTransport>();
  try {
    for (const id of ids) ts.set(id, await UwsTransport.listen(options(id, extra)));
    for (const [id, t] of ts) for (const [other, o] of ts) if (other !== id) t.setPeer(other, `127.0.0.1:${o.port}`);
    await eventually('the mesh to connect', () => [...ts].every(([id, t]) => ids.every((o) => o === id || t.stats().peers[o]?.connected)));
  } catch (err) {
    await closeAll(ts);
    throw err;
  }
  return ts;
}

async function closeAll(ts: Map<string, UwsTransport> | UwsTransport[]): Promise<void> {
  await Promise.all([...ts.values()].map((t) => t.close()));
}

/** The rounds of the heartbeats `t` delivers to `id` in group 'g', in arrival order. */
function heartbeatRounds(t: UwsTransport, id: string): number[] {
  const rounds: number[] = [];
  t.register('g', id, (m) => {
    if (m.type === 'heartbeat') rounds.push(m.round);
  });
  return rounds;
}

function heartbeat(from: string, to: string, round: number): PeerMessage {
  return { type: 'heartbeat', from, to, term: 3, commit: round, round };
}

function append(from: string, to: string, entryBytes: number[], prevIndex = 9): PeerMessage {
  return {
    type: 'append',
    from,
    to,
    term: 3,
    prevIndex,
    prevTerm: 2,
    commit: 8,
    entries: entryBytes.map((n, i) => ({ index: prevIndex + 1 + i, term: 3, type: 2, data: new Uint8Array(n).fill(i + 1) })),
  };
}

function shapes(from: string, to: string, group: string): PeerMessage[] {
  return [
    heartbeat(from, to, group.length),
    { type: 'vote', from, to, term: 4, lastLogIndex: 2 ** 40, lastLogTerm: 3, transfer: false },
    append(from, to, [3, 0, 1000]),
    {
      type: 'snapshotChunk',
      from,
      to,
      term: 3,
      file: { meta: { index: 500, term: 2, configuration: { voters: ['n1', 'n2', 'n3'], learners: [] } }, bytes: 2 ** 33, crc: 0xdeadbeef },
      offset: 4096,
      data: new Uint8Array([9, 8, 7, 6]),
    },
    { type: 'appendResp', from, to, term: 3, index: 11, reject: true, hintIndex: 4, hintTerm: 2 },
  ];
}

test('messages of every group reach exactly the receiver registered for that group and node', async () => {
  const ids = ['n1', 'n2', 'n3'];
  const groups = ['g1', 'g2'];
  const ts = await mesh(ids);
  try {
    const got = new Map<string, PeerMessage[]>();
    let total = 0;
    for (const g of groups) {
      for (const id of ids) {
        ts.get(id)!.register(g, id, (m) => {
          const key = `${g}/${id}/${m.from}`;
          got.set(key, [...(got.get(key) ?? []), m]);
          total++;
        });
      }
    }
    const expected = new Map<string, PeerMessage[]>();
    for (const g of groups) {
      for (const from of ids) {
        for (const to of ids) {
          if (from === to) continue;
          const ms = shapes(from, to, g);
          expected.set(`${g}/${to}/${from}`, ms);
          for (const m of ms) ts.get(from)!.send(g, m);
        }
      }
    }
    const sent = [...expected.values()].reduce((n, ms) => n + ms.length, 0);
    await eventually(`${sent} messages`, () => total >= sent);
    assert.equal(total, sent);
    assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort());
    // Control messages overtake bulk ones, so compare without order across lanes.
    const byType = (ms: PeerMessage[] | undefined) => plain([...(ms ?? [])].sort((x, y) => x.type.localeCompare(y.type)));
    for (const [key, ms] of expected) assert.deepEqual(byType(got.get(key)), byType(ms), key);
    const s = ts.get('n1')!.stats();
    assert.equal(s.messagesReceived, 2 * 2 * shapes('a', 'b', 'g').length);
    assert.deepEqual(s.rejected, { auth: 0, protocol: 0, malformed: 0, oversized: 0, unroutable: 0 });
  } finally {
    await closeAll(ts);
  }
});

test('500 heartbeats sent in one turn arrive in order in at most two frames', async () => {
  const ts = await mesh(['a', 'b']);
  try {
    const a = ts.get('a')!;
    const rounds = heartbeatRounds(ts.get('b')!, 'b');
    const before = a.stats().peers.b!.framesSent;
    for (let i = 0; i < 500; i++) a.send('g', heartbeat('a', 'b', i));
    await eventually('500 heartbeats', () => rounds.length >= 500);
    assert.deepEqual(rounds, Array.from({ length: 500 }, (_, i) => i));
    const after = a.stats().peers.b!;
    assert.ok(after.framesSent - before <= 2, `${after.framesSent - before} frames for 500 heartbeats`);
    assert.equal(after.messagesSent, 500);
    assert.equal(ts.get('b')!.stats().framesReceived, after.framesSent);
  } finally {
    await closeAll(ts);
  }
});

test('with maxFrameBytes under a frame\'s usual size, a burst of small messages goes out in frames the peer takes', async () => {
  const maxFrameBytes = 64 * 1024;
  const ts = await mesh(['a', 'b'], { maxFrameBytes });
  try {
    const rounds = heartbeatRounds(ts.get('b')!, 'b');
    const a = ts.get('a')!;
    for (let i = 1; i <= 5000; i++) a.send('g', heartbeat('a', 'b', i));
    await eventually('every heartbeat', () => rounds.length >= 5000);
    assert.deepEqual(rounds, Array.from({ length: 5000 }, (_, i) => i + 1));
    assert.ok(a.stats().peers.b!.framesSent > 1, 'more than one frame');
    assert.equal(ts.get('b')!.stats().rejected.oversized, 0);
    assert.equal(a.stats().peers.b!.reconnects, 0);
  } finally {
    await closeAll(ts);
  }
});

test('flush() writes what was sent at once, not at the end of the turn; a later flush has nothing left to write', async () => {
  const ts = await mesh(['a', 'b']);
  try {
    const a = ts.get('a')!;
    const rounds = heartbeatRounds(ts.get('b')!, 'b');
    const before = a.stats().peers.b!.framesSent;
    a.send('g', heartbeat('a', 'b', 1));
    a.send('g', heartbeat('a', 'b', 2));
    assert.equal(a.stats().peers.b!.framesSent, before, 'queued until the end of the turn');
    a.flush();
    assert.equal(a.stats().peers.b!.framesSent, before + 1, 'written by flush, in one frame');
    a.flush();
    await eventually('both heartbeats', () => rounds.length >= 2);
    assert.deepEqual(rounds, [1, 2]);
    assert.equal(a.stats().peers.b!.framesSent, before + 1, 'nothing written twice');
  } finally {
    await closeAll(ts);
  }
});

test('a heartbeat sent after a big append in the same turn is delivered first', async () => {
  const ts = await mesh(['a', 'b']);
  try {
    const order: string[] = [];
    ts.get('b')!.register('g', 'b', (m) => order.push(m.type));
    const a = ts.get('a')!;
    a.send('g', append('a', 'b', [512 * 1024, 512 * 1024, 512 * 1024]));
    a.send('g', heartbeat('a', 'b', 1));
    await eventually('both messages', () => order.length >= 2);
    assert.deepEqual(order, ['heartbeat', 'append']);
  } finally {
    await closeAll(ts);
  }
});

test('an empty append never overtakes the appends sent before it, even while they wait for the socket to drain', async () => {
  const ts = await mesh(['a', 'b'], { highWaterBytes: 1024 * 1024 });
  try {
    const arrivals: number[] = [];
    ts.get('b')!.register('g', 'b', (m) => {
      if (m.type === 'append') arrivals.push(m.entries.length);
    });
    const a = ts.get('a')!;
    for (let i = 0; i < 8; i++) a.send('g', append('a', 'b', [1024 * 1024], 9 + i));
    // Its previous entry is the last one sent above: ahead of them, the follower would reject it.
    a.send('g', append('a', 'b', [], 17));
    await new Promise((r) => setImmediate(r));
    a.send('g', append('a', 'b', [], 17));
    await eventually('every append', () => arrivals.length >= 10);
    assert.deepEqual(arrivals, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
  } finally {
    await closeAll(ts);
  }
});

test('a link that sends all the time stays up past its silence limit: it pings the server, which answers', async () => {
  const silenceMs = 800;
  const ts = await mesh(['a', 'b'], { silenceMs });
  try {
    const rounds = heartbeatRounds(ts.get('b')!, 'b');
    const a = ts.get('a')!;
    let round = 0;
    const sender = setInterval(() => a.send('g', heartbeat('a', 'b', ++round)), 20);
    await new Promise((r) => setTimeout(r, 4 * silenceMs));
    clearInterval(sender);
    await eventually('the last heartbeat', () => rounds.at(-1) === round);
    assert.equal(a.stats().peers.b!.reconnects, 0);
    assert.equal(a.stats().peers.b!.dropped, 0);
    assert.deepEqual(rounds, Array.from({ length: round }, (_, i) => i + 1));
  } finally {
    await closeAll(ts);
  }
});

test('heartbeats overtake bulk that waits for the socket to drain', async () => {
  const highWaterBytes = 1024 * 1024;
  const ts = await mesh(['a', 'b'], { highWaterBytes });
  try {
    const arrivals: string[] = [];
    ts.get('b')!.register('g', 'b', (m) => arrivals.push(m.type));
    const a = ts.get('a')!;
    const appends = 48;
    for (let i = 0; i < appends; i++) a.send('g', append('a', 'b', [1024 * 1024]));
    // Next turn: the bulk lane is now waiting on backpressure.
    await new Promise((r) => setImmediate(r));
    assert.ok(a.stats().peers.b!.queuedBytes > 0, 'bulk should be held back by highWaterBytes');
    a.send('g', heartbeat('a', 'b', 1));
    await eventually('every message', () => arrivals.length >= appends + 1);
    const at = arrivals.indexOf('heartbeat');
    assert.ok(at < appends, `heartbeat arrived after all ${appends} appends`);
    assert.equal(a.stats().peers.b!.dropped, 0);
  } finally {
    await closeAll(ts);
  }
});

test('a transport with the wrong secret cannot deliver anything; the right one still can', async () => {
  const ts = await mesh(['a', 'b']);
  let evil: UwsTransport | undefined;
  try {
    const b = ts.get('b')!;
    const got: PeerMessage[] = [];
    b.register('g', 'b', (m) => got.push(m));
    const evilLog: string[] = [];
    evil = await UwsTransport.listen(
      options('evil', { secret: 'another secret of 32 bytes......', peers: { b: `127.0.0.1:${b.port}` }, onLog: (e) => evilLog.push(e.message) }),
    );
    await eventually('rejected handshakes', () => b.stats().rejected.auth >= 2 && evil!.stats().peers.b!.reconnects >= 2);
    assert.ok(evil.stats().rejected.auth >= 2, 'the refusals are counted on the caller too');
    assert.ok(evilLog.some((m) => /refused our peer token \(401\): its cluster secret is not ours/.test(m)), evilLog.join('\n'));
    for (let i = 0; i < 10; i++) evil.send('g', heartbeat('evil', 'b', i));
    assert.equal(evil.stats().peers.b!.connected, false);
    assert.ok(evil.stats().peers.b!.dropped >= 10);
    ts.get('a')!.send('g', heartbeat('a', 'b', 7));
    await eventually('the heartbeat from a', () => got.length >= 1);
    assert.deepEqual(
      got.map((m) => m.from),
      ['a'],
    );
  } finally {
    await closeAll(ts);
    await evil?.close();
  }
});

test('a peer speaking another protocol is refused, both sides saying so; one naming none is taken to speak the unnamed protocol', async () => {
  const serverLog: string[] = [];
  const server = await UwsTransport.listen(options('srv', { protocol: 'kv/3', unnamedProtocol: 'kv/2', onLog: (e) => serverLog.push(e.message) }));
  const got: PeerMessage[] = [];
  server.register('g', 'srv', (m) => got.push(m));
  const callers: UwsTransport[] = [];
  const caller = async (id: string, protocol: string | undefined, log: string[] = []) => {
    const t = await UwsTransport.listen(options(id, { protocol, peers: { srv: `127.0.0.1:${server.port}` }, onLog: (e) => log.push(e.message) }));
    callers.push(t);
    return t;
  };
  try {
    const olderLog: string[] = [];
    const older = await caller('older', 'kv/2', olderLog);
    await eventually('the older caller refused twice', () => server.stats().rejected.protocol >= 2);
    assert.ok(serverLog.some((m) => m.includes('refused "older": it speaks kv/2 and this member speaks kv/3')), serverLog.join('\n'));
    assert.ok(olderLog.some((m) => /refused us \(409\): it does not speak kv\/2, so it runs another version/.test(m)), olderLog.join('\n'));
    assert.equal(server.stats().rejected.auth, 0, 'it held the secret: not counted as an authentication failure');
    assert.ok(older.stats().rejected.protocol >= 1, 'the caller counts the refusal too');
    older.send('g', heartbeat('older', 'srv', 1));
    assert.equal(older.stats().peers.srv!.connected, false);
    const same = await caller('same', 'kv/3');
    await eventually('the caller speaking kv/3 connected', () => same.stats().peers.srv!.connected);
    same.send('g', heartbeat('same', 'srv', 2));
    await eventually('the heartbeat of the caller speaking kv/3', () => got.some((m) => m.from === 'same'));
    // No protocol named: a build from before there was one, taken to speak kv/2.
    const unnamed = await caller('unnamed', undefined);
    await eventually('the caller naming none refused too', () => serverLog.some((m) => m.includes('refused "unnamed": it speaks kv/2')));
    unnamed.send('g', heartbeat('unnamed', 'srv', 3));
    assert.equal(unnamed.stats().peers.srv!.connected, false);
    assert.deepEqual(got.map((m) => m.from), ['same'], 'nothing from the callers of another protocol');
  } finally {
    await closeAll(callers);
    await server.close();
  }
  // A server whose own protocol is the unnamed one takes callers naming none.
  const current = await UwsTransport.listen(options('cur', { protocol: 'kv/2', unnamedProtocol: 'kv/2' }));
  const unnamed = await UwsTransport.listen(options('unnamed', { peers: { cur: `127.0.0.1:${current.port}` } }));
  try {
    const heard: PeerMessage[] = [];
    current.register('g', 'cur', (m) => heard.push(m));
    await eventually('the caller naming no protocol connected', () => unnamed.stats().peers.cur!.connected);
    unnamed.send('g', heartbeat('unnamed', 'cur', 4));
    await eventually('the heartbeat of the caller naming no protocol', () => heard.length === 1);
    assert.equal(current.stats().rejected.protocol, 0);
  } finally {
    await closeAll([unnamed, current]);
  }
});

test('a client refuses a server that cannot prove it holds the secret', async () => {
  const uws = loadUws();
  let received = 0;
  const app = uws.App().ws('/raft', {
    open: (ws) => {
      const hello = Buffer.concat([Buffer.from('RLH1'), Buffer.from([1]), newNonce()]);
      ws.send(hello, true);
    },
    message: (ws, _m) => {
      received++;
      // A welcome whose MAC is made up without the secret.
      ws.send(Buffer.concat([Buffer.from('RLH1'), Buffer.from([3]), Buffer.alloc(32, 7)]), true);
    },
  });
  const socket = await new Promise<unknown>((resolve) => app.listen('127.0.0.1', 0, resolve));
  assert.ok(socket);
  const port = uws.us_socket_local_port(socket as never);
  const a = await UwsTransport.listen(options('a', { peers: { fake: `127.0.0.1:${port}` } }));
  try {
    await eventually('the client to reject the fake server twice', () => a.stats().rejected.auth >= 2);
    a.send('g', heartbeat('a', 'fake', 1));
    assert.equal(a.stats().peers.fake!.connected, false);
    assert.equal(a.stats().peers.fake!.framesSent, 0);
    // Only proofs reached the fake server, one per attempt.
    assert.ok(received >= 2);
  } finally {
    await a.close();
    uws.us_listen_socket_close(socket as never);
  }
});

test('a client leaves a server speaking another protocol, in its welcome or (naming none, as 0.2.0) by default', async () => {
  // Servers that accept every caller and welcome it properly, naming `protocol` (or none), as a build that checks nothing would.
  const uws = loadUws();
  const sockets: unknown[] = [];
  const server = async (protocol: string): Promise<number> => {
    const nonces = new Map<unknown, Buffer>();
    const app = uws.App().ws('/raft', {
      open: (ws) => {
        const nonceS = newNonce();
        nonces.set(ws, nonceS);
        ws.send(Buffer.concat([Buffer.from('RLH1'), Buffer.from([1]), nonceS]), true);
      },
      message: (ws, m) => {
        const proof = Buffer.from(m);
        if (proof[4] !== 2) return;
        const idBytes = proof.readUInt16LE(5);
        const nonceC = proof.subarray(7 + idBytes, 7 + idBytes + 32);
        ws.send(encodeWelcome(Buffer.from(SECRET), Buffer.from(nonceC), nonces.get(ws)!, protocol), true);
      },
    });
    const socket = await new Promise<unknown>((resolve) => app.listen('127.0.0.1', 0, resolve));
    sockets.push(socket);
    return uws.us_socket_local_port(socket as never);
  };
  const unnamed = await server('');
  const newer = await server('kv/4');
  const log: string[] = [];
  const a = await UwsTransport.listen(
    options('a', { protocol: 'kv/3', unnamedProtocol: 'kv/2', peers: { unnamed: `127.0.0.1:${unnamed}`, newer: `127.0.0.1:${newer}` }, onLog: (e) => log.push(e.message) }),
  );
  const b = await UwsTransport.listen(options('b', { protocol: 'kv/2', unnamedProtocol: 'kv/2', peers: { unnamed: `127.0.0.1:${unnamed}` } }));
  try {
    await eventually('both servers left, twice each', () => a.stats().rejected.protocol >= 4 && a.stats().peers.unnamed!.reconnects >= 2 && a.stats().peers.newer!.reconnects >= 2);
    assert.ok(log.some((m) => /closing connection to .*: it speaks kv\/2 and this member speaks kv\/3; members of different versions must not run together/.test(m)), log.join('\n'));
    assert.ok(log.some((m) => /it speaks kv\/4 and this member speaks kv\/3/.test(m)), log.join('\n'));
    assert.equal(a.stats().peers.unnamed!.connected, false);
    assert.equal(a.stats().peers.newer!.connected, false);
    assert.equal(a.stats().rejected.auth, 0, 'the servers proved the secret');
    await eventually('a client speaking kv/2 stays with the server naming none', () => b.stats().peers.unnamed!.connected);
    assert.equal(b.stats().rejected.protocol, 0);
  } finally {
    await closeAll([a, b]);
    for (const socket of sockets) uws.us_listen_socket_close(socket as never);
  }
});

/** A raw ws client: messages as a queue of promises. */
function rawClient(port: number, headers: Record<string, string>): { ws: WebSocket; next: () => Promise<Buffer>; closed: Promise<number>; error: Promise<Error> } {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/raft`, { perMessageDeflate: false, headers });
  const queue: Buffer[] = [];
  const waiting: ((b: Buffer) => void)[] = [];
  ws.on('message', (data) => {
    const b = data as Buffer;
    const w = waiting.shift();
    if (w) w(b);
    else queue.push(b);
  });
  const error = new Promise<Error>((resolve) => ws.on('error', resolve));
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  const next = () => {
    const b = queue.shift();
    return b ? Promise.resolve(b) : new Promise<Buffer>((resolve) => waiting.push(resolve));
  };
  return { ws, next, closed, error };
}

test('a raw client is closed without a handshake; after one, malformed frames are dropped and oversized ones close it', async () => {
  const maxFrameBytes = 64 * 1024;
  const ts = await mesh(['a', 'b'], { maxFrameBytes });
  try {
    const b = ts.get('b')!;
    const got: PeerMessage[] = [];
    b.register('g', 'b', (m) => got.push(m));

    // No upgrade token, or one made with another secret: refused before a
    // WebSocket opens, so nothing it sends is ever buffered.
    const secret = Buffer.from(SECRET);
    // Nor one made for another member: an endpoint that a member dialed
    // by mistake cannot pass its token on to b.
    const strangers: Record<string, string>[] = [
      {},
      { [UPGRADE_TOKEN_HEADER]: upgradeToken(Buffer.from('another-secret-0123456789'), 'b') },
      { [UPGRADE_TOKEN_HEADER]: upgradeToken(Buffer.from(SECRET), 'a') },
    ];
    for (const headers of strangers) {
      const stranger = rawClient(b.port, headers);
      assert.match((await within(stranger.error, 'the upgrade to be refused')).message, /Unexpected server response: 401/);
    }
    assert.equal(b.stats().rejected.auth, 3);

    // A valid token (replayed, say), then garbage instead of a proof.
    const attacker = rawClient(b.port, { [UPGRADE_TOKEN_HEADER]: upgradeToken(secret, 'b') });
    await within(attacker.next(), 'hello');
    attacker.ws.send(packFrame([encodeEnvelope('g', heartbeat('x', 'b', 1))], 0, 1));
    await within(attacker.closed, 'the attacker to be closed');
    assert.equal(b.stats().rejected.auth, 4);

    // A proof made with the secret, but for another member (relayed to b).
    const relay = rawClient(b.port, { [UPGRADE_TOKEN_HEADER]: upgradeToken(secret, 'b') });
    const relayNonceS = decodeHello(await within(relay.next(), 'hello'));
    relay.ws.send(encodeProof(secret, 'a', 'c', relayNonceS, newNonce()));
    await within(relay.closed, 'the relayed proof to be refused');
    assert.equal(b.stats().rejected.auth, 5);
    assert.equal(got.length, 0);

    // A correct handshake by hand.
    const raw = rawClient(b.port, { [UPGRADE_TOKEN_HEADER]: upgradeToken(secret, 'b') });
    const nonceS = decodeHello(await within(raw.next(), 'hello'));
    const nonceC = newNonce();
    raw.ws.send(encodeProof(secret, 'raw', 'b', nonceS, nonceC));
    verifyWelcome(secret, await within(raw.next(), 'welcome'), nonceC, nonceS);

    // An envelope the codec refuses, then a length prefix that runs past the frame.
    raw.ws.send(packFrame([new Uint8Array(16).fill(0xff)], 0, 1));
    const badPrefix = Buffer.alloc(8);
    badPrefix.writeUInt32LE(1000, 0);
    raw.ws.send(badPrefix);
    raw.ws.send(packFrame([encodeEnvelope('g', heartbeat('raw', 'b', 2))], 0, 1));
    await eventually('the valid frame after the malformed ones', () => got.length >= 1);
    assert.equal(b.stats().rejected.malformed, 2);
    assert.deepEqual(
      got.map((m) => [m.from, m.type]),
      [['raw', 'heartbeat']],
    );

    raw.ws.send(Buffer.alloc(maxFrameBytes + 1));
    await within(raw.closed, 'the oversized frame to close the connection');
    assert.equal(b.stats().rejected.oversized, 1);

    ts.get('a')!.send('g', heartbeat('a', 'b', 3));
    await eventually('the real peer to still get through', () => got.length >= 2);
    assert.equal(got[1]!.from, 'a');
  } finally {
    await closeAll(ts);
  }
});

/** A raw WebSocket to `server` through the handshake, as the peer `id`. */
async function authenticatedRawClient(server: UwsTransport, serverId: string, id: string): Promise<ReturnType<typeof rawClient>> {
  const secret = Buffer.from(SECRET);
  const raw = rawClient(server.port, { [UPGRADE_TOKEN_HEADER]: upgradeToken(secret, serverId) });
  const nonceS = decodeHello(await within(raw.next(), 'hello'));
  const nonceC = newNonce();
  raw.ws.send(encodeProof(secret, id, serverId, nonceS, nonceC));
  verifyWelcome(secret, await within(raw.next(), 'welcome'), nonceC, nonceS);
  return raw;
}

test('a frame of zeros from a peer is one malformed frame, not one per four bytes; the peer still gets through', async () => {
  const b = await UwsTransport.listen(options('b'));
  try {
    const got: PeerMessage[] = [];
    b.register('g', 'b', (m) => got.push(m));
    const raw = await authenticatedRawClient(b, 'b', 'raw');
    raw.ws.send(Buffer.alloc(1024 * 1024));
    raw.ws.send(packFrame([encodeEnvelope('g', heartbeat('raw', 'b', 1))], 0, 1));
    // One connection's frames are handled in order: the heartbeat comes after the zeros.
    await eventually('the heartbeat after the zeros', () => got.length >= 1);
    assert.equal(b.stats().rejected.malformed, 1);
    raw.ws.close();
  } finally {
    await b.close();
  }
});

test('refused upgrades from one address are logged once a second, whatever peer ids they claim', async () => {
  const lines: string[] = [];
  const b = await UwsTransport.listen(options('b', { onLog: (e) => lines.push(e.message) }));
  try {
    const wrongSecret = Buffer.from('another-secret-0123456789');
    const startMs = performance.now();
    for (let batch = 0; batch < 6; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => {
          const headers = { [UPGRADE_TOKEN_HEADER]: upgradeToken(wrongSecret, 'b'), [UPGRADE_PEER_ID_HEADER]: `impostor-${batch * 50 + i}` };
          return within(rawClient(b.port, headers).error, 'the upgrade to be refused');
        }),
      );
    }
    // The limiter lets one refusal a second through: no more lines than seconds begun.
    const windows = Math.floor((performance.now() - startMs) / 1000) + 1;
    assert.equal(b.stats().rejected.auth, 300);
    const refusals = lines.filter((l) => /wrong cluster secret/.test(l));
    assert.ok(refusals.length >= 1 && refusals.length <= windows, `${refusals.length} refusals logged in ${windows} s`);
    assert.match(refusals[0]!, /calling itself "impostor-\d+"/, 'the line still names the id the caller claimed');
  } finally {
    await b.close();
  }
});

test('a peer that restarts on the same port is reconnected to', async () => {
  const ts = await mesh(['a', 'b']);
  let b2: UwsTransport | undefined;
  try {
    const a = ts.get('a')!;
    const b = ts.get('b')!;
    const port = b.port;
    await b.close();
    await eventually('a to notice b is gone', () => !a.stats().peers.b!.connected);
    const dropped = a.stats().peers.b!.dropped;
    for (let i = 0; i < 5; i++) a.send('g', heartbeat('a', 'b', i));
    assert.equal(a.stats().peers.b!.dropped, dropped + 5);

    b2 = await UwsTransport.listen(options('b', { port }));
    const got: PeerMessage[] = [];
    b2.register('g', 'b', (m) => got.push(m));
    // Raft retransmits; so does the test, until the link is back.
    let round = 100;
    const resend = setInterval(() => a.send('g', heartbeat('a', 'b', round++)), 10);
    try {
      await eventually('a message through the new connection', () => got.length > 0);
    } finally {
      clearInterval(resend);
    }
    assert.ok(a.stats().peers.b!.reconnects >= 1);
    assert.ok(got.every((m) => m.type === 'heartbeat' && m.round >= 100));
  } finally {
    await closeAll(ts);
    await b2?.close();
  }
});

test('a link the peer closes as soon as it is used backs off instead of reconnecting at the first delay', async () => {
  // b takes smaller frames than a sends: every connection dies on its first append.
  const b = await UwsTransport.listen(options('b', { maxFrameBytes: 64 * 1024 }));
  const a = await UwsTransport.listen(options('a', { reconnectInitialMs: 20, reconnectMaxMs: 1000 }));
  let sender: NodeJS.Timeout | undefined;
  try {
    a.setPeer('b', `127.0.0.1:${b.port}`);
    await eventually('a connected to b', () => a.stats().peers.b?.connected === true);
    sender = setInterval(() => a.send('g', append('a', 'b', [200 * 1024])), 5);
    await new Promise((r) => setTimeout(r, 2000));
    const { reconnects } = a.stats().peers.b!;
    assert.ok(b.stats().rejected.oversized >= 2, 'the connections were closed for their frames');
    // Each close schedules one reconnect; the delays, at least 10, 20, 40, 80, 160, 320, 500, 500 and 500 ms,
    // leave room for at most 9 closes in 2 s. Without backoff (10-20 ms each) there were 88.
    assert.ok(reconnects <= 10, `${reconnects} reconnects in 2 s`);
  } finally {
    clearInterval(sender);
    await closeAll([a, b]);
  }
});

test('unknown peers and unregistered groups are counted, never thrown', async () => {
  const ts = await mesh(['a', 'b']);
  try {
    const a = ts.get('a')!;
    const b = ts.get('b')!;
    const got: PeerMessage[] = [];
    b.register('known', 'b', (m) => got.push(m));
    assert.doesNotThrow(() => a.send('known', heartbeat('a', 'nobody', 1)));
    assert.equal(a.stats().unknownPeerDropped, 1);
    a.send('unknown', heartbeat('a', 'b', 2));
    a.send('known', heartbeat('a', 'b', 3));
    await eventually('the routable message', () => got.length >= 1);
    assert.equal(b.stats().rejected.unroutable, 1);
    assert.equal(b.stats().messagesReceived, 1);
    assert.equal((got[0] as { round: number }).round, 3);

    // After unregistering (a node stopping or restarting), its messages are
    // dropped as a network would, and not counted as refused input.
    const unregister = b.register('other', 'b', (m) => got.push(m));
    unregister();
    a.send('other', heartbeat('a', 'b', 4));
    a.send('known', heartbeat('a', 'b', 5));
    await eventually('the second routable message', () => got.length >= 2);
    assert.equal(b.stats().rejected.unroutable, 1);
    assert.equal(b.stats().receiverAbsentDropped, 1);
  } finally {
    await closeAll(ts);
  }
});

test('options, peer addresses and repeated registrations are checked, and a taken port is refused', async () => {
  await assert.rejects(UwsTransport.listen(options('a', { secret: 'short' })), /at least 16/);
  await assert.rejects(UwsTransport.listen(options('a', { secret: new Uint8Array(15) })), /at least 16/);
  // A protocol name travels in an HTTP header: printable ASCII only, and no spaces a parser would trim.
  for (const protocol of ['kv 3', 'kv/3 ', 'kv/ü', 'x'.repeat(257)]) {
    await assert.rejects(UwsTransport.listen(options('a', { protocol })), /protocol must be at most 256 printable ASCII characters without spaces/, JSON.stringify(protocol));
  }
  await assert.rejects(UwsTransport.listen(options('a', { unnamedProtocol: 'a\tb' })), /unnamedProtocol must be/);
  await assert.rejects(UwsTransport.listen(options('a', { maxFrameBytes: 4096 })), /maxFrameBytes must be at least 16384, got 4096/);
  // Addresses a link could only fail to dial, forever, are refused up front.
  for (const address of ['localhost', 'http://127.0.0.1:7312', '127.0.0.1:0', '127.0.0.1:70000', '']) {
    await assert.rejects(UwsTransport.listen(options('a', { peers: { b: address } })), /the address of peer b must be host:port with a port 1-65535/, address);
  }
  const t = await UwsTransport.listen(options('a', { peers: { b: '127.0.0.1:7312', c: '[::1]:7313' } }));
  try {
    assert.throws(() => t.setPeer('d', 'localhost'), /the address of peer d must be host:port/);
    // A second node of the same group and id would silently take the first one's messages.
    const unregister = t.register('g', 'a', () => undefined);
    assert.throws(() => t.register('g', 'a', () => undefined), /a of group g is already registered here; shut that node down first/);
    unregister();
    t.register('g', 'a', () => undefined)();
  } finally {
    await t.close();
  }
  // A port chosen up front as well as one the kernel picked: uSockets would share either (SO_REUSEPORT) unless told not to.
  const [chosen] = await freePorts(1, 21_000);
  for (const port of [0, chosen]) {
    const a = await UwsTransport.listen(options('a', { port }));
    try {
      // Were the second to bind anyway, it is closed, so that the test fails instead of hanging.
      const second = UwsTransport.listen(options('b', { port: a.port })).then((b) => b.close());
      await assert.rejects(second, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${a.port}`));
    } finally {
      await a.close();
      await a.close();
    }
  }
});
