// raftline/client against a scripted endpoint (uWebSockets.js in this
// process): which requests it sends, when, and what it makes of the answers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftlineClient, RaftlineClientError } from '../src/client/index.js';
import { decodeCommand, isSessionRegistration } from '../src/server/kv-command.js';
import { decodeRequest, encodeResponse, type ClientRequest } from '../src/transport/client-codec.js';
import { packFrames, unpackFrame } from '../src/transport/frame.js';
import { loadUws } from '../src/transport/uws.js';
import { eventually } from './support/eventually.js';

interface Received {
  request: ClientRequest;
  /** For writes: the command's session and sequence. */
  clientId?: string;
  sequence?: number;
}

/** One fake member: reports itself leader with `maxRequestBytes`, registers sessions, and answers other requests as `policy` says. */
class ScriptedEndpoint {
  readonly received: Received[] = [];
  /** Session registrations answered (not in `received`). */
  registrations = 0;
  /** Session registrations are answered with this error while it is set. */
  refuseRegistration: { errorCode: string; error: string } | null = null;
  /** Requests held back, answered by `release`. */
  private readonly held: { ws: { send(data: Uint8Array, isBinary: boolean): number }; id: number }[] = [];
  /** 'disconnect' closes the connection the request came on, unanswered. */
  /** `thenDisconnect`: the refusal is sent, then the connection closed. */
  policy: (r: Received) => 'answer' | 'hold' | 'disconnect' | { errorCode: string; error: string; thenDisconnect?: boolean } = () => 'answer';
  /** WebSocket connections opened. */
  connections = 0;
  maxRequestBytes = 2 << 20;
  /** Upgrades are refused with 401 while set, as a server whose client token changed would. */
  refuseUpgrades = false;
  /** Upgrades are answered this much later. */
  upgradeDelayMs = 0;
  /** What /status reports. */
  role: 'leader' | 'follower' = 'leader';
  term = 1;
  url = '';
  private listenSocket: unknown;

  async start(): Promise<void> {
    const uws = loadUws();
    const app = uws
      .App()
      .get('/status', (res) => {
        res.cork(() => res.writeHeader('Content-Type', 'application/json').end(JSON.stringify({ role: this.role, term: this.term, limits: { maxRequestBytes: this.maxRequestBytes } })));
      })
      .ws('/v1/ws', {
        maxPayloadLength: 64 << 20,
        upgrade: (res, req, context) => {
          if (this.refuseUpgrades) {
            res.writeStatus('401 Unauthorized').end();
            return;
          }
          const headers = ['sec-websocket-key', 'sec-websocket-protocol', 'sec-websocket-extensions'].map((h) => req.getHeader(h));
          const upgrade = () => res.upgrade({}, headers[0]!, headers[1]!, headers[2]!, context);
          if (this.upgradeDelayMs === 0) return upgrade();
          let aborted = false;
          res.onAborted(() => (aborted = true));
          setTimeout(() => {
            if (!aborted) res.cork(upgrade);
          }, this.upgradeDelayMs);
        },
        open: () => {
          this.connections++;
        },
        message: (ws, message) => {
          const { envelopes } = unpackFrame(Buffer.from(new Uint8Array(message)));
          const answers: Uint8Array[] = [];
          for (const bytes of envelopes) {
            const request = decodeRequest(bytes);
            if (request.command && isSessionRegistration(request.command)) {
              if (this.refuseRegistration) {
                answers.push(refusal(request.id, this.refuseRegistration));
                continue;
              }
              answers.push(encodeResponse({ ...success(request.id), session: `#${++this.registrations}` }));
              continue;
            }
            const command = request.command ? decodeCommand(request.command) : undefined;
            const r: Received = { request, clientId: command?.clientId, sequence: command?.sequence };
            this.received.push(r);
            const what = this.policy(r);
            if (what === 'disconnect') {
              ws.end(1011, 'scripted disconnect');
              return;
            }
            if (what === 'hold') this.held.push({ ws, id: request.id });
            else if (what === 'answer') answers.push(answer(request.id));
            else {
              answers.push(refusal(request.id, what));
              if (what.thenDisconnect) {
                for (const frame of packFrames(answers)) ws.send(frame, true);
                ws.end(1011, 'scripted disconnect');
                return;
              }
            }
          }
          if (answers.length > 0) for (const frame of packFrames(answers)) ws.send(frame, true);
        },
      });
    await new Promise<void>((resolve, reject) =>
      app.listen('127.0.0.1', 0, (socket) => {
        if (!socket) return reject(new Error('listen failed'));
        this.listenSocket = socket;
        this.url = `http://127.0.0.1:${uws.us_socket_local_port(socket as never)}`;
        resolve();
      }),
    );
  }

  /** Forgets the held requests of a connection that is gone. */
  dropHeld(): void {
    this.held.length = 0;
  }

  /** Answers every held request. */
  release(): void {
    for (const { ws, id } of this.held.splice(0)) ws.send(packFrames([answer(id)])[0], true);
  }

  stop(): void {
    loadUws().us_listen_socket_close(this.listenSocket as never);
  }
}

const success = (id: number) => ({ id, errorCode: '', error: '', leader: null, revision: 1, succeeded: true, duplicate: false, results: [], session: '' });

const answer = (id: number): Uint8Array => encodeResponse(success(id));

const refusal = (id: number, { errorCode, error }: { errorCode: string; error: string }): Uint8Array =>
  encodeResponse({ ...success(id), errorCode, error, revision: 0, succeeded: false });

/** The key of a write's first operation ('' for a read). */
const keyOf = (r: Received): string => (r.request.command ? Buffer.from(decodeCommand(r.request.command).txn.success[0]!.key).toString() : '');

const endpoint = new ScriptedEndpoint();
before(() => endpoint.start());
after(() => endpoint.stop());

test('the sequences of writes in flight span at most 512, however long the oldest is held up; held writes go out once it is answered', async () => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url] });
  endpoint.policy = (r) => (r.sequence === 1 ? 'hold' : 'answer');
  try {
    const writes = Array.from({ length: 1500 }, (_, i) => client.put(`k${i}`, 'v'));
    await eventually('the writes the span allows were sent', () => endpoint.received.length >= 512);
    // Answers to everything but sequence 1 came back meanwhile; nothing more may go out.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(endpoint.received.length, 512);
    assert.equal(Math.max(...endpoint.received.map((r) => r.sequence!)), 512);
    endpoint.policy = () => 'answer';
    endpoint.release();
    const results = await Promise.all(writes);
    assert.equal(results.length, 1500);
    const sequences = endpoint.received.map((r) => r.sequence!).sort((a, b) => a - b);
    assert.deepEqual(sequences, Array.from({ length: 1500 }, (_, i) => i + 1), 'each write sent once, under its own sequence');
  } finally {
    endpoint.policy = () => 'answer';
    await client.close();
  }
});

test('a write waiting for room times out from its call and is never sent', async (t) => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url], requestTimeoutMs: 1500 });
  endpoint.policy = (r) => (r.sequence === 1 ? 'hold' : 'answer');
  // The clock stands still while the writes are made, so the held one and the
  // queued ones share a deadline: on a loaded machine the queued ones were
  // made milliseconds later, and the held one's expiry let them go first.
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
  try {
    const writes = Array.from({ length: 600 }, (_, i) => client.put(`t${i}`, 'v'));
    await eventually('the writes the span allows were sent', () => endpoint.received.length >= 512);
    t.mock.timers.tick(1500);
    const outcomes = await Promise.allSettled(writes);
    const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as RaftlineClientError] : []));
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 511);
    assert.equal(errors.length, 89);
    assert.match(errors[0].message, /no answer within 1500 ms; the write may still apply/, 'the held write');
    for (const e of errors.slice(1)) {
      assert.equal(e.code, 'timeout');
      assert.match(e.message, /never sent/);
    }
    assert.equal(endpoint.received.length, 512);
  } finally {
    endpoint.policy = () => 'answer';
    endpoint.release();
    await client.close();
  }
});

test('a client registers one session before its first write, and writes made meanwhile go out under it', async () => {
  endpoint.received.length = 0;
  const registered = endpoint.registrations;
  const a = await RaftlineClient.connect({ endpoints: [endpoint.url] });
  const b = await RaftlineClient.connect({ endpoints: [endpoint.url] });
  try {
    assert.equal(a.sessionId, null);
    assert.equal(endpoint.registrations, registered, 'connecting registers nothing');
    await Promise.all([a.put('x', '1'), a.put('x', '2'), a.put('x', '3')]);
    await b.put('x', '4');
    assert.equal(endpoint.registrations, registered + 2, 'one registration per client');
    const ofA = endpoint.received.filter((r) => r.clientId === a.sessionId);
    assert.deepEqual(ofA.map((r) => r.sequence), [1, 2, 3]);
    assert.equal(endpoint.received.at(-1)!.clientId, b.sessionId);
    assert.equal(endpoint.received.at(-1)!.sequence, 1);
    assert.notEqual(a.sessionId, b.sessionId);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a registration the servers refuse fails the writes waiting for it, unsent, and the next write asks again', async () => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url] });
  endpoint.refuseRegistration = { errorCode: 'unauthorized', error: 'a client token is required' };
  try {
    const outcomes = await Promise.allSettled([client.put('r', '1'), client.put('r', '2')]);
    for (const o of outcomes) {
      assert.equal(o.status, 'rejected');
      const err = o.reason as RaftlineClientError;
      assert.equal(err.code, 'unauthorized');
      assert.match(err.message, /no client session could be registered \(a client token is required\); the write was never sent/);
    }
    assert.equal(endpoint.received.length, 0);
    endpoint.refuseRegistration = null;
    await client.put('r', '3');
    assert.equal(endpoint.received.length, 1);
    assert.equal(endpoint.received[0].clientId, client.sessionId);
  } finally {
    endpoint.refuseRegistration = null;
    await client.close();
  }
});

test('an unknown read consistency and a request over the servers\' limit are refused at the call, and the connection goes on', async () => {
  endpoint.received.length = 0;
  endpoint.maxRequestBytes = 4096;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url] });
  try {
    await assert.rejects(client.get('k', { consistency: 'serializable' as never }), (err: RaftlineClientError) => err.code === 'bad_request' && /linearizable, lease, stale/.test(err.message));
    await assert.rejects(client.put('big', 'v'.repeat(5000)), (err: RaftlineClientError) => err.code === 'too_large' && /at most 4092/.test(err.message));
    assert.equal(endpoint.received.length, 0, 'neither was sent');
    await client.put('small', 'v');
    assert.equal(endpoint.received.length, 1);
  } finally {
    endpoint.maxRequestBytes = 2 << 20;
    await client.close();
  }
});

test('a write sent more than once and then refused because the servers forgot its session is of unknown outcome; later writes go under a new session from sequence 1', async () => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url] });
  try {
    await client.put('a', '1');
    await client.put('a', '2');
    const before = client.sessionId;
    const registered = endpoint.registrations;
    let attempts = 0;
    const expired = { errorCode: 'session_expired', error: 'the cluster does not know this session' };
    // Its first attempt is answered busy, so that attempt may still have applied when the second is refused.
    endpoint.policy = (r) => (r.sequence === 3 ? (++attempts === 1 ? { errorCode: 'busy', error: 'try again' } : expired) : 'answer');
    const refused = await client.put('a', '3').then(() => null, (err: unknown) => err);
    assert.ok(refused instanceof RaftlineClientError, String(refused));
    assert.equal(refused.code, 'outcome_unknown', 'an earlier attempt may have applied before the session was forgotten');
    assert.equal(refused.serverCode, 'session_expired');
    assert.equal(attempts, 2);
    endpoint.policy = () => 'answer';
    await client.put('a', '4');
    const last = endpoint.received.at(-1)!;
    assert.notEqual(last.clientId, before, 'a new session');
    assert.equal(endpoint.registrations, registered + 1, 'registered anew');
    assert.equal(last.sequence, 1);
    assert.equal(client.sessionId, last.clientId);
  } finally {
    endpoint.policy = () => 'answer';
    await client.close();
  }
});

test('a write sent once and refused because the servers forgot its session never applied: it goes again under a new session', async () => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url] });
  try {
    await client.put('e', '1');
    const before = client.sessionId;
    const registered = endpoint.registrations;
    endpoint.policy = (r) => (r.clientId === before ? { errorCode: 'session_expired', error: 'the cluster does not know this session' } : 'answer');
    const r = await client.put('e', '2');
    assert.equal(r.duplicate, false);
    assert.equal(endpoint.registrations, registered + 1, 'registered anew');
    const [refused, again] = endpoint.received.slice(-2);
    assert.deepEqual([refused.clientId, refused.sequence], [before, 2]);
    assert.deepEqual([again.clientId, again.sequence], [client.sessionId, 1]);
    assert.notEqual(client.sessionId, before);
  } finally {
    endpoint.policy = () => 'answer';
    await client.close();
  }
});

test('a request whose connection closes each time it is sent fails after three connections, and the client goes on', async () => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url], requestTimeoutMs: 10_000 });
  try {
    await client.put('p', '0');
    endpoint.policy = (r) => (keyOf(r) === 'poison' ? 'disconnect' : 'answer');
    const connectionsBefore = endpoint.connections;
    const err = await client.put('poison', 'v').then(() => null, (e: unknown) => e);
    assert.ok(err instanceof RaftlineClientError, String(err));
    assert.equal(err.code, 'connection_lost');
    assert.match(err.message, /3 connections closed while this request was in flight.*the write may have applied/);
    assert.equal(endpoint.received.filter((r) => keyOf(r) === 'poison').length, 3);
    assert.equal(endpoint.connections - connectionsBefore, 2, 'the open connection, then one new connection per attempt');
    await client.put('after', 'v');
  } finally {
    endpoint.policy = () => 'answer';
    await client.close();
  }
});

test('a request refused as busy is retried at growing intervals, not every 50 ms', async () => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url], requestTimeoutMs: 1500 });
  endpoint.policy = () => ({ errorCode: 'busy', error: 'too many uncommitted entries' });
  try {
    const started = Date.now();
    const refused = await client.put('b', 'v').then(() => null, (err: unknown) => err);
    assert.ok(refused instanceof RaftlineClientError && refused.code === 'timeout', String(refused));
    const elapsedMs = Date.now() - started;
    // Pauses of at least 25, 50, 100, 200, 400 and then 500 ms: at most 7 attempts in 1.5 s (at 50 ms each, 30).
    assert.ok(endpoint.received.length <= 8, `${endpoint.received.length} attempts in ${elapsedMs} ms`);
    assert.ok(endpoint.received.length >= 2, 'it was retried');
  } finally {
    endpoint.policy = () => 'answer';
    await client.close();
  }
});

test('a connection idle for longer than the silence limit is kept when its next request takes a while', async (t) => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url] });
  try {
    await client.put('i', '1');
    const connections = endpoint.connections;
    // Five idle seconds, on the client's clock.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 5000 });
    endpoint.policy = () => 'hold';
    const write = client.put('i', '2');
    await eventually('the write sent', () => endpoint.received.length === 2);
    // Two sweeps of the client look at the connection meanwhile.
    await new Promise((r) => setTimeout(r, 600));
    endpoint.policy = () => 'answer';
    endpoint.release();
    await write;
    assert.equal(endpoint.connections, connections, 'the same connection');
    assert.equal(endpoint.received.length, 2, 'sent once');
  } finally {
    endpoint.policy = () => 'answer';
    await client.close();
  }
});

test('a client moving to a new leader lets the requests in flight on the old connection be answered there', async () => {
  const other = new ScriptedEndpoint();
  await other.start();
  other.role = 'follower';
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url, other.url] });
  try {
    await client.put('m', '0');
    endpoint.policy = (r) => (r.request.read ? { errorCode: 'no_leader', error: 'no leader here' } : keyOf(r) === 'held' ? 'hold' : 'answer');
    const held = client.put('held', 'v');
    await eventually('the write reached the first member', () => endpoint.received.some((r) => keyOf(r) === 'held'));
    endpoint.role = 'follower';
    other.role = 'leader';
    other.term = 2;
    // Refused by the old member, the read makes the client look for the leader and goes there.
    assert.equal(await client.get('x'), null);
    assert.ok(other.received.some((r) => r.request.read), 'the read went to the new leader');
    // The new connection drops; what it carried goes out again, but not the write still in flight on the old one.
    let dropped = false;
    other.policy = (r) => {
      if (!r.request.read || dropped) return 'answer';
      dropped = true;
      return 'disconnect';
    };
    assert.equal(await client.get('y'), null);
    assert.ok(dropped);
    endpoint.release();
    const r = await held;
    assert.equal(r.duplicate, false);
    assert.equal(other.received.filter((x) => keyOf(x) === 'held').length, 0, 'the held write was answered where it was sent, not sent again');
  } finally {
    endpoint.policy = () => 'answer';
    endpoint.role = 'leader';
    await client.close();
    other.stop();
  }
});

test('a leader lookup that ends while the client reconnects to a follower still moves it to the leader', async () => {
  const other = new ScriptedEndpoint();
  await other.start();
  other.role = 'follower';
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url, other.url], requestTimeoutMs: 5000 });
  try {
    assert.equal(await client.get('l'), null);
    endpoint.role = 'follower';
    other.role = 'leader';
    other.term = 2;
    // The first refusal starts a lookup, and the closed connection makes the client reconnect to the same
    // member, slowly, meanwhile; on that connection the member refuses reads for want of a leader.
    endpoint.upgradeDelayMs = 300;
    let disconnected = false;
    endpoint.policy = (r) => {
      if (!r.request.read) return 'answer';
      const thenDisconnect = !disconnected;
      disconnected = true;
      return { errorCode: 'no_leader', error: 'no leader here', thenDisconnect };
    };
    assert.equal(await client.get('l'), null);
    assert.ok(other.received.some((r) => r.request.read), 'the read reached the leader');
  } finally {
    endpoint.policy = () => 'answer';
    endpoint.role = 'leader';
    endpoint.upgradeDelayMs = 0;
    await client.close();
    other.stop();
  }
});

test('a client whose reconnection is refused for its token fails a write it had sent as possibly applied', async () => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url] });
  try {
    await client.put('u', '0');
    endpoint.policy = () => 'disconnect';
    endpoint.refuseUpgrades = true;
    const err = await client.put('u', '1').then(() => null, (e: unknown) => e);
    assert.ok(err instanceof RaftlineClientError, String(err));
    assert.equal(err.code, 'unauthorized');
    assert.match(err.message, /the write was sent before and may have applied/);
  } finally {
    endpoint.policy = () => 'answer';
    endpoint.refuseUpgrades = false;
    await client.close();
  }
});

test('closing the client says which writes were sent (and may still apply) and which were never sent', async () => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url] });
  endpoint.policy = () => 'hold';
  try {
    const writes = Array.from({ length: 600 }, (_, i) => client.put(`c${i}`, 'v').then(() => null, (err: unknown) => err as RaftlineClientError));
    await eventually('the writes the span allows were sent', () => endpoint.received.length >= 512);
    await client.close();
    const errors = await Promise.all(writes);
    assert.ok(errors.every((e) => e instanceof RaftlineClientError && e.code === 'closed'));
    assert.equal(errors.filter((e) => /sent and may still apply/.test(e!.message)).length, 512);
    assert.equal(errors.filter((e) => /never sent/.test(e!.message)).length, 88);
  } finally {
    endpoint.policy = () => 'answer';
    endpoint.dropHeld();
  }
});
