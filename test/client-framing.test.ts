// raftline/client against a stand-in server that records the frames it
// receives: the requests of one event-loop turn travel in one frame, every
// answer in a frame of several reaches its caller, and a frame the client
// cannot split drops the connection, after which the requests go out again.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftlineClient } from '../src/client/index.js';
import { decodeRequest, encodeResponse, type ClientRequest } from '../src/transport/client-codec.js';
import { packFrame, unpackFrame } from '../src/transport/frame.js';
import { decodeCommand, isSessionRegistration } from '../src/server/kv-command.js';
import { loadUws } from '../src/transport/uws.js';
import type { us_listen_socket } from '@trufflesuite/uws-js-unofficial';

const uws = loadUws();
/** Each received frame, as the requests it held. */
const frames: ClientRequest[][] = [];
let connections = 0;
/** What the stand-in does with a frame: by default, answer each request in one frame of answers. */
let onFrame: (requests: ClientRequest[], send: (bytes: Uint8Array) => void) => void;
let listenSocket: us_listen_socket | undefined;
let endpoint = '';

/** A write's answer carries the number in its key (`k12` → revision 12), so each caller can tell it got its own. */
const revisionFor = (r: ClientRequest) => (r.command ? Number(Buffer.from(decodeCommand(r.command).txn.success[0]!.key).toString().slice(1)) : 0);

const answerAll = (requests: ClientRequest[], send: (bytes: Uint8Array) => void) => {
  const answers = requests.map((r) => {
    const registration = r.command !== undefined && isSessionRegistration(r.command);
    return encodeResponse({ id: r.id, errorCode: '', error: '', leader: null, revision: registration ? 0 : revisionFor(r), succeeded: true, duplicate: false, results: [], session: registration ? '#1' : '' });
  });
  send(packFrame(answers, 0, answers.length));
};

before(async () => {
  const app = uws
    .App()
    .get('/status', (res) => {
      res.end(JSON.stringify({ role: 'leader' }));
    })
    .ws('/v1/ws', {
      open: () => {
        connections++;
      },
      message: (ws, message) => {
        const { envelopes, error } = unpackFrame(Buffer.from(new Uint8Array(message)));
        assert.equal(error, undefined, 'the client sends well-formed frames');
        const requests = envelopes.map((e) => decodeRequest(e));
        frames.push(requests);
        onFrame(requests, (bytes) => ws.send(bytes, true));
      },
    });
  listenSocket = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('cannot listen')))));
  endpoint = `http://127.0.0.1:${uws.us_socket_local_port(listenSocket)}`;
});

after(() => {
  if (listenSocket) uws.us_listen_socket_close(listenSocket);
});

test('the requests of one turn go out in one frame, and every answer of a shared frame reaches its caller', async () => {
  onFrame = answerAll;
  const client = await RaftlineClient.connect({ endpoints: [endpoint] });
  try {
    await client.put('k0', 'v'); // registers the session, with a frame of its own
    frames.length = 0;
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    const answers = await Promise.all(keys.map((k, i) => (i % 2 ? client.put(k, 'v') : client.get(k, { consistency: 'stale' }))));
    assert.equal(frames.length, 1, `one frame for one turn's requests, got ${frames.length}`);
    assert.equal(frames[0]!.length, keys.length);
    assert.equal(new Set(frames[0]!.map((r) => r.id)).size, keys.length, 'each request once');
    answers.forEach((a, i) => {
      if (i % 2) assert.equal((a as { revision: number }).revision, i, `the put of ${keys[i]} got its own answer`);
      else assert.equal(a, null);
    });
  } finally {
    await client.close();
  }
});

test('a frame from the server that cannot be split drops the connection; unanswered requests go out again on the next one', async () => {
  onFrame = answerAll;
  const client = await RaftlineClient.connect({ endpoints: [endpoint] });
  try {
    await client.put('k1', 'v');
    let damaged = false;
    onFrame = (requests, send) => {
      if (damaged) return answerAll(requests, send);
      damaged = true;
      // A length prefix that runs past the end of the frame.
      send(Buffer.from([200, 0, 0, 0, 1, 2]));
    };
    const before = connections;
    const r = await client.put('k7', 'v');
    assert.equal(connections, before + 1, 'the client reconnected once');
    assert.equal(r.revision, 7);
  } finally {
    await client.close();
  }
});
