// raftline/client against a scripted endpoint (uWebSockets.js in this
// process): which requests it sends, when, and what it makes of the answers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftlineClient, RaftlineClientError } from '../src/client/index.js';
import { decodeCommand } from '../src/server/kv-command.js';
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

/** One fake member: reports itself leader with `maxRequestBytes`, and answers requests as `policy` says. */
class ScriptedEndpoint {
  readonly received: Received[] = [];
  /** Requests held back, answered by `release`. */
  private readonly held: { ws: { send(data: Uint8Array, isBinary: boolean): number }; id: number }[] = [];
  policy: (r: Received) => 'answer' | 'hold' | { errorCode: string; error: string } = () => 'answer';
  maxRequestBytes = 2 << 20;
  url = '';
  private listenSocket: unknown;

  async start(): Promise<void> {
    const uws = loadUws();
    const app = uws
      .App()
      .get('/status', (res) => {
        res.cork(() => res.writeHeader('Content-Type', 'application/json').end(JSON.stringify({ role: 'leader', term: 1, limits: { maxRequestBytes: this.maxRequestBytes } })));
      })
      .ws('/v1/ws', {
        maxPayloadLength: 64 << 20,
        message: (ws, message) => {
          const { envelopes } = unpackFrame(Buffer.from(new Uint8Array(message)));
          const answers: Uint8Array[] = [];
          for (const bytes of envelopes) {
            const request = decodeRequest(bytes);
            const command = request.command ? decodeCommand(request.command) : undefined;
            const r: Received = { request, clientId: command?.clientId, sequence: command?.sequence };
            this.received.push(r);
            const what = this.policy(r);
            if (what === 'hold') this.held.push({ ws, id: request.id });
            else if (what === 'answer') answers.push(answer(request.id));
            else answers.push(encodeResponse({ id: request.id, errorCode: what.errorCode, error: what.error, leader: null, revision: 0, succeeded: false, duplicate: false, results: [] }));
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

function answer(id: number): Uint8Array {
  return encodeResponse({ id, errorCode: '', error: '', leader: null, revision: 1, succeeded: true, duplicate: false, results: [] });
}

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

test('two clients given the same clientId label keep separate sessions', async () => {
  endpoint.received.length = 0;
  const a = await RaftlineClient.connect({ endpoints: [endpoint.url], clientId: 'svc' });
  const b = await RaftlineClient.connect({ endpoints: [endpoint.url], clientId: 'svc' });
  try {
    await a.put('x', '1');
    await b.put('x', '2');
    const [first, second] = endpoint.received;
    assert.equal(first.sequence, 1);
    assert.equal(second.sequence, 1);
    assert.match(first.clientId!, /^svc\//);
    assert.match(second.clientId!, /^svc\//);
    assert.notEqual(first.clientId, second.clientId, 'the servers would take the second write for a retry of the first');
  } finally {
    await a.close();
    await b.close();
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

test('a write refused because the servers forgot its session is of unknown outcome, and later writes go under a new session from sequence 1', async () => {
  endpoint.received.length = 0;
  const client = await RaftlineClient.connect({ endpoints: [endpoint.url], clientId: 'svc' });
  try {
    await client.put('a', '1');
    await client.put('a', '2');
    const before = client.clientId;
    endpoint.policy = (r) => (r.sequence === 3 ? { errorCode: 'session_expired', error: 'the cluster no longer remembers this session' } : 'answer');
    const refused = await client.put('a', '3').then(() => null, (err: unknown) => err);
    assert.ok(refused instanceof RaftlineClientError, String(refused));
    assert.equal(refused.code, 'outcome_unknown', 'an earlier attempt may have applied before the session was forgotten');
    assert.equal(refused.serverCode, 'session_expired');
    endpoint.policy = () => 'answer';
    await client.put('a', '4');
    const last = endpoint.received.at(-1)!;
    assert.notEqual(last.clientId, before, 'a new session');
    assert.match(last.clientId!, /^svc\//, 'under the same label');
    assert.equal(last.sequence, 1);
    assert.equal(client.clientId, last.clientId);
  } finally {
    endpoint.policy = () => 'answer';
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
