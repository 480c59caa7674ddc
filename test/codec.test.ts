import { test } from 'node:test';
import * as flatbuffers from 'flatbuffers';
import assert from 'node:assert/strict';
import type { PeerMessage } from '../src/transport/index.js';
import { decodeEnvelope, encodeEnvelope, FrameError } from '../src/transport/codec.js';
import { ClientFrameError, decodeRequest, decodeResponse, encodeRequest, encodeResponse, encodeResponseInTurns, KVS_AT_ONCE, KVS_PER_TURN } from '../src/transport/client-codec.js';
import { KeyValue as WireKeyValue } from '../src/transport/generated/raftline/client/key-value.js';
import { Response as WireResponse } from '../src/transport/generated/raftline/client/response.js';
import { Result as WireResult } from '../src/transport/generated/raftline/client/result.js';
import { Configuration as WireConfiguration } from '../src/transport/generated/raftline/wire/configuration.js';
import { Envelope as WireEnvelope } from '../src/transport/generated/raftline/wire/envelope.js';
import { MessageType } from '../src/transport/generated/raftline/wire/message-type.js';
import { SnapshotMeta as WireSnapshotMeta } from '../src/transport/generated/raftline/wire/snapshot-meta.js';
import { applyConfChange, MAX_CONFIGURATION_MEMBERS, type Configuration } from '../src/core/index.js';
import { Prng } from './support/prng.js';

const base = { from: 'n1', to: 'n2', term: 7 };
const entries = [
  { index: 10, term: 6, type: 2, data: new Uint8Array([1, 2, 3]) },
  { index: 11, term: 7, type: 0, data: new Uint8Array(0) },
];
const samples: PeerMessage[] = [
  { ...base, type: 'preVote', lastLogIndex: 9, lastLogTerm: 5, transfer: false },
  { ...base, type: 'vote', lastLogIndex: 2 ** 40, lastLogTerm: 5, transfer: true },
  { ...base, type: 'preVoteResp', reject: true },
  { ...base, type: 'voteResp', reject: false },
  { ...base, type: 'append', prevIndex: 9, prevTerm: 6, commit: 8, entries },
  { ...base, type: 'append', prevIndex: 9, prevTerm: 6, commit: 8, entries: [] },
  { ...base, type: 'appendResp', index: 11, reject: true, hintIndex: 4, hintTerm: 3 },
  { ...base, type: 'heartbeat', commit: 11, round: 99 },
  { ...base, type: 'heartbeatResp', round: 99, lastIndex: 41 },
  { ...base, type: 'commit', commit: 2 ** 40 },
  { ...base, type: 'timeoutNow' },
  { ...base, type: 'snapshot', snapshot: { index: 500, term: 6, configuration: { voters: ['n1', 'n2'], learners: ['n3'] } } },
  { ...base, type: 'snapshot', snapshot: { index: 500, term: 6, configuration: { voters: ['n1'], learners: [], outgoing: ['n1', 'n2', 'n3'] } } },
  { ...base, type: 'readIndex', requestId: 12345 },
  { ...base, type: 'readIndexResp', requestId: 12345, index: 11, reject: false },
  {
    ...base,
    type: 'snapshotChunk',
    file: { meta: { index: 500, term: 6, configuration: { voters: ['n1', 'n2', 'n3'], learners: [] } }, bytes: 2 ** 33, crc: 0xdeadbeef },
    offset: 2 ** 32,
    data: new Uint8Array([9, 8, 7]),
  },
  {
    ...base,
    type: 'snapshotChunk',
    file: { meta: { index: 1, term: 1, configuration: { voters: ['n1'], learners: [] } }, bytes: 10, crc: 1 },
    offset: 0,
    data: new Uint8Array(0),
  },
  { ...base, type: 'snapshotChunkResp', index: 500, crc: 0xdeadbeef, held: 4096, reject: true },
  { ...base, type: 'forward', requestId: 77, data: new Uint8Array([1, 2, 3, 4]) },
  { ...base, type: 'forwardResp', requestId: 77, index: 1234, error: '', leaderHint: null },
  { ...base, type: 'forwardResp', requestId: 78, index: 0, error: 'ERR_RAFTLINE_NOT_LEADER', leaderHint: 'n3' },
];

/** Deep copy with byte arrays as plain arrays, so Buffer views and Uint8Arrays compare equal. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

test('every message type survives encoding and decoding unchanged', () => {
  for (const m of samples) {
    const decoded = decodeEnvelope(encodeEnvelope('group-a', m));
    assert.equal(decoded.group, 'group-a');
    assert.deepEqual(plain(decoded.message), plain(m), m.type);
  }
});

test('entries whose checksum does not match are refused', () => {
  const frame = encodeEnvelope('g', samples[4]);
  // The payload bytes 1, 2, 3 of the first entry: their last occurrence in the frame.
  const at = Buffer.from(frame).lastIndexOf(Buffer.from([1, 2, 3]));
  assert.ok(at > 0);
  frame[at] ^= 0x40;
  assert.throws(() => decodeEnvelope(frame), (err: Error) => err instanceof FrameError && /payload checksum mismatch/.test(err.message));
});

test('frames that are too short, too long, or of an unknown type are refused with a reason', () => {
  assert.throws(() => decodeEnvelope(new Uint8Array(3)), /too short/);
  assert.throws(() => decodeEnvelope(encodeEnvelope('g', samples[0]), 16), /exceeds the 16-byte limit/);
  assert.throws(() => decodeEnvelope(encodeEnvelope('', samples[0])), /group is missing/);
});

test('random and mutated frames never escape as anything but FrameError', () => {
  const rng = new Prng(2026);
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    let frame: Uint8Array;
    if (i % 3 === 0) {
      frame = rng.bytes(rng.int(0, 300));
    } else {
      frame = encodeEnvelope('g', samples[rng.int(0, samples.length - 1)]);
      const flips = rng.int(1, 4);
      for (let k = 0; k < flips; k++) frame[rng.int(0, frame.length - 1)] ^= 1 << rng.int(0, 7);
      if (i % 3 === 2) frame = frame.subarray(0, rng.int(0, frame.length));
    }
    try {
      decodeEnvelope(frame);
    } catch (err) {
      assert.ok(err instanceof FrameError, `frame ${i}: ${String(err)}`);
      refused++;
    }
  }
  assert.ok(refused > 1000, `${refused} of 3000 damaged frames were refused`);
});

/**
 * Damaged copies of `messages` must decode the same alone in their buffer and
 * amid other bytes (as an envelope sits in a frame): no byte vector may reach
 * outside the message.
 */
function decodesTheSameAnywhere(messages: Uint8Array[], decode: (bytes: Uint8Array) => unknown, refusal: new (...args: never[]) => Error): void {
  const rng = new Prng(77);
  const outcome = (bytes: Uint8Array): unknown => {
    try {
      return decode(bytes);
    } catch (err) {
      assert.ok(err instanceof refusal, String(err));
      return 'refused';
    }
  };
  for (let i = 0; i < 5000; i++) {
    const damaged = new Uint8Array(messages[rng.int(0, messages.length - 1)]);
    const flips = rng.int(1, 3);
    for (let k = 0; k < flips; k++) damaged[rng.int(0, damaged.length - 1)] ^= 1 << rng.int(0, 7);
    const shared = new Uint8Array(damaged.length + 8192).fill(0xab);
    shared.set(damaged, 4096);
    assert.deepEqual(outcome(shared.subarray(4096, 4096 + damaged.length)), outcome(damaged), `mutation ${i}`);
  }
}

/**
 * An InstallSnapshot envelope whose configuration's lists are the vectors
 * `lists` builds (of string offsets, shared however it likes), as a peer
 * holding the secret but not using encodeEnvelope could send.
 */
function craftedSnapshot(lists: (b: flatbuffers.Builder) => { voters: number; learners: number; outgoing?: number }): Uint8Array {
  const b = new flatbuffers.Builder(1 << 16);
  const { voters, learners, outgoing } = lists(b);
  const [group, from, to] = ['g', 'n1', 'n2'].map((s) => b.createString(s));
  WireConfiguration.startConfiguration(b);
  WireConfiguration.addVoters(b, voters);
  WireConfiguration.addLearners(b, learners);
  if (outgoing !== undefined) {
    WireConfiguration.addOutgoing(b, outgoing);
    WireConfiguration.addJoint(b, true);
  }
  const configuration = WireConfiguration.endConfiguration(b);
  WireSnapshotMeta.startSnapshotMeta(b);
  WireSnapshotMeta.addConfiguration(b, configuration);
  const meta = WireSnapshotMeta.endSnapshotMeta(b);
  WireEnvelope.startEnvelope(b);
  WireEnvelope.addGroup(b, group);
  WireEnvelope.addFrom(b, from);
  WireEnvelope.addTo(b, to);
  WireEnvelope.addType(b, MessageType.InstallSnapshot);
  WireEnvelope.addSnapshot(b, meta);
  b.finish(WireEnvelope.endEnvelope(b));
  return b.asUint8Array();
}

const ids = (n: number, prefix = 'm'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

function snapshotOf(configuration: Configuration): PeerMessage {
  return { ...base, type: 'snapshot', snapshot: { index: 500, term: 6, configuration } };
}

test('an envelope naming one long id 100,000 times is refused before any id is decoded', () => {
  const bytes = craftedSnapshot((b) => {
    const long = b.createString('x'.repeat(256));
    const voters = WireConfiguration.createVotersVector(b, Array.from({ length: 100_000 }, () => long));
    return { voters, learners: WireConfiguration.createLearnersVector(b, []) };
  });
  // The list alone fits the envelope, four bytes an element.
  assert.ok(100_000 * 4 <= bytes.byteLength);
  assert.throws(() => decodeEnvelope(bytes), (err: Error) => err instanceof FrameError && err.message.includes(`at most ${MAX_CONFIGURATION_MEMBERS} members`));
});

test('lists that each fit the envelope are refused when together they name more ids than it holds', () => {
  const bytes = craftedSnapshot((b) => {
    const shared = WireConfiguration.createVotersVector(b, ids(600).map((id) => b.createString(id)));
    return { voters: shared, learners: shared, outgoing: shared };
  });
  assert.ok(600 * 4 <= bytes.byteLength);
  assert.throws(() => decodeEnvelope(bytes), (err: Error) => err instanceof FrameError && /cannot fit in what is left of the envelope/.test(err.message));
});

test('an id listed twice in a configuration is refused', () => {
  assert.throws(() => decodeEnvelope(encodeEnvelope('g', snapshotOf({ voters: ['n1', 'n2', 'n1'], learners: [] }))), (err: Error) => err instanceof FrameError && /voter "n1" is listed twice/.test(err.message));
  assert.throws(() => decodeEnvelope(encodeEnvelope('g', snapshotOf({ voters: ['n1'], learners: ['n3', 'n3'] }))), (err: Error) => err instanceof FrameError && /learner "n3" is listed twice/.test(err.message));
});

test('a configuration of the most members the core makes crosses the wire; one more is refused by the core and by the codec', () => {
  const full: Configuration = { voters: ids(5, 'v'), learners: ids(MAX_CONFIGURATION_MEMBERS - 5) };
  const m = snapshotOf(full);
  assert.deepEqual(plain(decodeEnvelope(encodeEnvelope('g', m)).message), plain(m));
  const overTheCap = new RegExp(`at most ${MAX_CONFIGURATION_MEMBERS} members`);
  assert.match(String(applyConfChange(full, { type: 'addLearner', id: 'one-more' })), overTheCap);
  assert.match(String(applyConfChange(full, { type: 'changeVoters', voters: ['one-more'] })), overTheCap, 'a joint configuration counts the voters it leaves');
  assert.throws(() => decodeEnvelope(encodeEnvelope('g', snapshotOf({ ...full, learners: ids(MAX_CONFIGURATION_MEMBERS - 4) }))), (err: Error) => err instanceof FrameError && overTheCap.test(err.message));
});

test('a damaged envelope decodes the same wherever it sits in memory: no byte vector reaches outside it', () => {
  decodesTheSameAnywhere(samples.map((m) => encodeEnvelope('g', m)), decodeEnvelope, FrameError);
});

test('a damaged client request or response decodes the same wherever it sits in memory', () => {
  const kv = { key: Buffer.from('key'), value: Buffer.from('value-bytes'), createRevision: 3, modRevision: 9, version: 2 };
  const requests = [
    encodeRequest({ id: 1, command: Buffer.from('a command of some length') }),
    encodeRequest({ id: 2, read: { key: Buffer.from('k1'), rangeEnd: Buffer.from('k9'), limit: 10, keysOnly: false, countOnly: false, consistency: 'lease' } }),
  ];
  decodesTheSameAnywhere(requests, decodeRequest, ClientFrameError);
  const response = encodeResponse({
    id: 3, errorCode: '', error: '', leader: 'n1', revision: 9, succeeded: true, duplicate: false,
    results: [{ type: 'range', deleted: 0, count: 1, more: false, kvs: [kv], prevKvs: [kv] }],
    session: '#17',
  });
  assert.equal(decodeResponse(response).session, '#17');
  decodesTheSameAnywhere([response], decodeResponse, ClientFrameError);
});

test('a client response naming one large vector many times (shared tables) is refused, not decoded into millions of entries', () => {
  const b = new flatbuffers.Builder(1 << 16);
  const kv = WireKeyValue.createKeyValue(b, 0, 0, 1n, 1n, 1n);
  const kvs = WireResult.createKvsVector(b, Array.from({ length: 2000 }, () => kv));
  const result = WireResult.createResult(b, 2, 0n, 0n, false, kvs, kvs);
  const results = WireResponse.createResultsVector(b, Array.from({ length: 2000 }, () => result));
  b.finish(WireResponse.createResponse(b, 1n, 0, 0, 0, 1n, true, false, results, 0));
  const bytes = b.asUint8Array();
  // Each vector alone fits the message; together they would make 8 million key-values.
  assert.ok(2000 * 4 <= bytes.byteLength);
  assert.throws(() => decodeResponse(bytes), (err: Error) => err instanceof ClientFrameError && /cannot fit/.test(err.message));
});

test('client messages encoded one after another stay intact, whatever their sizes: each is copied out of the shared builder', () => {
  const read = (key: Uint8Array) => ({ key, limit: 0, keysOnly: false, countOnly: false, consistency: 'stale' as const });
  const big = encodeRequest({ id: 1, command: Buffer.alloc(300_000, 7) });
  const small = encodeRequest({ id: 2, read: read(Buffer.from('k')) });
  const after = encodeResponse({ id: 3, errorCode: 'busy', error: 'try again', leader: 'n2', revision: 9, succeeded: false, duplicate: false, results: [], session: '' });
  const again = encodeRequest({ id: 4, read: read(Buffer.from('other')) });
  const bigDecoded = decodeRequest(big);
  assert.equal(bigDecoded.id, 1);
  assert.ok(Buffer.from(bigDecoded.command!).equals(Buffer.alloc(300_000, 7)));
  const smallDecoded = decodeRequest(small);
  assert.equal(smallDecoded.id, 2);
  assert.equal(Buffer.from(smallDecoded.read!.key).toString(), 'k');
  assert.deepEqual(decodeResponse(after), { id: 3, errorCode: 'busy', error: 'try again', leader: 'n2', revision: 9, succeeded: false, duplicate: false, results: [], session: '' });
  assert.equal(Buffer.from(decodeRequest(again).read!.key).toString(), 'other');
  // A success carries no strings and still decodes them as empty.
  assert.deepEqual(decodeResponse(encodeResponse({ id: 5, errorCode: '', error: '', leader: null, revision: 1, succeeded: true, duplicate: false, results: [], session: '' })).errorCode, '');
});

test('a response encoded in turns is the bytes encodeResponse makes, whatever is encoded between its turns', async () => {
  const kv = (i: number) => ({ key: Buffer.from(`key-${i}`), value: Buffer.alloc(i % 50, i % 256), createRevision: i + 1, modRevision: i + 2, version: (i % 7) + 1 });
  for (const count of [0, 1, KVS_PER_TURN, KVS_PER_TURN + 1, 3 * KVS_PER_TURN + 5]) {
    const response = {
      id: 7,
      errorCode: '',
      error: '',
      leader: null,
      revision: 99,
      succeeded: true,
      duplicate: false,
      session: '',
      results: [{ type: 'range' as const, deleted: 0, count: count + 3, more: true, kvs: Array.from({ length: count }, (_, i) => kv(i)), prevKvs: [] }],
    };
    let between = 0;
    let encoding = true;
    // Other answers encoded meanwhile share the codec's builder.
    const other = () => {
      if (!encoding) return;
      between++;
      encodeResponse({ ...response, id: between, results: [{ ...response.results[0], kvs: [kv(between)] }] });
      setImmediate(other);
    };
    setImmediate(other);
    const inTurns = await encodeResponseInTurns(response);
    encoding = false;
    assert.ok(inTurns !== null && Buffer.from(inTurns).equals(Buffer.from(encodeResponse(response))), `${count} key-values: the same bytes`);
    assert.equal(decodeResponse(inTurns).results[0].kvs.length, count);
    if (count > 2 * KVS_PER_TURN) assert.ok(between >= 2, `other answers were encoded between its turns (${between})`);
    if (count > KVS_AT_ONCE) {
      // Within its first turn too: a builder past 1 GiB would throw where it should give up.
      assert.equal(await encodeResponseInTurns(response, Math.floor(inTurns.byteLength / 2)), null, `${count} key-values: given up past a limit of half its size`);
      assert.ok(await encodeResponseInTurns(response, inTurns.byteLength), `${count} key-values: within a limit of its size, the answer`);
    }
  }
});
