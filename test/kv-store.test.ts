import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { ApplyIterator, Command, SnapshotWrite } from '../src/node/index.js';
import { SnapshotStore } from '../src/node/snapshot-store.js';
import { decodeCommand, encodeCommand, SESSION_REGISTRATION, type KvCommand, type Operation, type Txn } from '../src/server/kv-command.js';
import { KvStore, MAX_SESSIONS, SESSION_WINDOW, type TxnResult } from '../src/server/kv-store.js';
import { Prng } from './support/prng.js';
import { tempDir } from './support/tmp.js';

const { dir: root, cleanup } = tempDir('kv-store');
after(cleanup);

const b = (s: string) => Buffer.from(s);
let index = 0;

function apply(store: KvStore, txn: Txn, clientId = '', sequence = 0): TxnResult {
  return applyEntry(store, encodeCommand({ clientId, sequence, txn }));
}

function applyEntry(store: KvStore, data: Uint8Array, awaited = true): TxnResult {
  let result: unknown;
  const cmd: Command = { index: ++index, term: 1, data, awaited, respond: (r) => (result = r) };
  const batch: ApplyIterator = { length: 1, [Symbol.iterator]: () => [cmd][Symbol.iterator]() };
  store.onApply(batch);
  return result as TxnResult;
}

/** A new store loaded from a snapshot that `write` (a capture) saved at `index` in `dir`. */
async function restore(write: SnapshotWrite, dir: string, index: number): Promise<KvStore> {
  const store = await SnapshotStore.open(path.join(root, dir));
  const file = await store.save({ index, term: 1, configuration: { voters: ['n1'], learners: [] } }, write);
  const restored = new KvStore();
  const reader = await store.reader(file);
  await restored.onSnapshotLoad(reader);
  await reader.close();
  return restored;
}

const put = (key: string, value: string, prevKv = false): Operation => ({ type: 'put', key: b(key), value: b(value), prevKv });
const txn = (...success: Operation[]): Txn => ({ compare: [], success, failure: [] });

test('commands survive encoding, and damaged ones are refused with a reason', () => {
  const cmd: KvCommand = {
    clientId: 'c-1',
    sequence: 2 ** 40,
    txn: {
      compare: [
        { key: b('a'), target: 'mod', result: 'equal', number: 7 },
        { key: b('a'), rangeEnd: b('b'), target: 'value', result: 'less', value: b('x') },
      ],
      success: [put('a', 'v', true), { type: 'delete', key: b('p/'), rangeEnd: b('p0'), prevKv: false }],
      failure: [{ type: 'range', key: b('a'), rangeEnd: undefined, limit: 5, countOnly: false, keysOnly: true }],
    },
  };
  // Buffers reach the replacer through their toJSON, other byte arrays as they are.
  const text = (x: unknown) => (x instanceof Uint8Array ? Buffer.from(x).toString() : (x as { type?: string; data?: number[] })?.type === 'Buffer' ? Buffer.from((x as { data: number[] }).data).toString() : x);
  const plain = (v: unknown) => JSON.parse(JSON.stringify(v, (_k, x) => text(x)));
  const decoded = decodeCommand(encodeCommand(cmd));
  assert.deepEqual(plain(decoded), plain(cmd));
  const bytes = encodeCommand(cmd);
  const rng = new Prng(5);
  for (let i = 0; i < 2000; i++) {
    const damaged = Buffer.from(bytes.subarray(0, rng.int(0, bytes.length)));
    if (damaged.length > 0) damaged[rng.int(0, damaged.length - 1)] ^= 1 << rng.int(0, 7);
    try {
      decodeCommand(damaged);
    } catch (err) {
      assert.equal((err as Error).name, 'CommandDecodeError');
    }
  }
});

test('revisions, versions, create and mod revisions follow etcd', () => {
  const s = new KvStore();
  assert.equal(s.revision, 1);
  assert.equal(apply(s, txn(put('a', '1'))).revision, 2);
  assert.equal(apply(s, txn(put('b', '1'))).revision, 3);
  const r = apply(s, txn(put('a', '2', true)));
  assert.equal(r.revision, 4);
  assert.equal(r.responses[0].type === 'put' && r.responses[0].prevKv?.value.toString(), '1');
  const a = s.get(b('a'));
  assert.deepEqual(a && { key: a.key.toString(), value: a.value.toString(), createRevision: a.createRevision, modRevision: a.modRevision, version: a.version }, { key: 'a', value: '2', createRevision: 2, modRevision: 4, version: 2 });
  const del = apply(s, txn({ type: 'delete', key: b('zzz') }));
  assert.equal(del.revision, 4, 'deleting nothing does not move the revision');
  assert.equal(apply(s, txn({ type: 'delete', key: b('a') })).revision, 5);
  assert.equal(s.get(b('a')), undefined);
  assert.equal(apply(s, txn(put('a', '3'))).revision, 6);
  assert.equal(s.get(b('a'))?.version, 1, 'a key created again starts over');
  assert.equal(s.get(b('a'))?.createRevision, 6);
});

test('compare-and-set takes the success or the failure branch', () => {
  const s = new KvStore();
  apply(s, txn(put('k', 'old')));
  const mod = s.get(b('k'))!.modRevision;
  const cas = (expected: number, value: string) =>
    apply(s, { compare: [{ key: b('k'), target: 'mod', result: 'equal', number: expected }], success: [put('k', value)], failure: [{ type: 'range', key: b('k') }] });
  assert.equal(cas(mod, 'new').succeeded, true);
  const failed = cas(mod, 'newer');
  assert.equal(failed.succeeded, false);
  assert.equal(failed.responses[0].type === 'range' && failed.responses[0].kvs[0].value.toString(), 'new');
  const createOnly = { compare: [{ key: b('fresh'), target: 'create' as const, result: 'equal' as const, number: 0 }], success: [put('fresh', '1')], failure: [] };
  assert.equal(apply(s, createOnly).succeeded, true);
  assert.equal(apply(s, createOnly).succeeded, false);
  const missingValue = apply(s, { compare: [{ key: b('none'), target: 'value', result: 'notEqual', value: b('x') }], success: [put('none', '1')], failure: [] });
  assert.equal(missingValue.succeeded, false, 'a value comparison on a missing key fails, as in etcd');
});

test('a command nobody waits for changes the state alike, its ranges and previous key-values left out of its result', () => {
  const awaitedStore = new KvStore();
  const unawaitedStore = new KvStore();
  const everything: Operation = { type: 'range', key: b('k'), rangeEnd: b('l') };
  const commands = [
    txn(put('k1', 'a'), put('k2', 'b'), put('k3', 'c')),
    txn(everything, put('k4', 'd')),
    txn({ type: 'delete', key: b('k1'), rangeEnd: b('k3'), prevKv: true }, everything),
  ];
  for (const command of commands) {
    const data = encodeCommand({ clientId: '', sequence: 0, txn: command });
    const awaited = applyEntry(awaitedStore, data);
    const unawaited = applyEntry(unawaitedStore, data, false);
    assert.equal(unawaited.revision, awaited.revision);
    assert.equal(unawaited.succeeded, awaited.succeeded);
    for (const [i, r] of unawaited.responses.entries()) {
      if (r.type === 'range') assert.deepEqual(r.kvs, [], 'no range built');
      if (r.type === 'delete') {
        assert.equal(r.prevKvs, undefined, 'no previous key-values gathered');
        assert.equal(r.deleted, (awaited.responses[i] as typeof r).deleted, 'the count of deleted keys stays');
      }
    }
  }
  const state = (store: KvStore) => apply(store, txn(everything)).responses[0];
  assert.deepEqual(state(unawaitedStore), state(awaitedStore));
  assert.deepEqual((state(awaitedStore) as { kvs: { key: Buffer }[] }).kvs.map((kv) => kv.key.toString()), ['k3', 'k4']);
});

test('a write whose results would list more than maxResultBytes applies, its results dropped as they are built', () => {
  // 100 keys of 4 + 4 bytes: 100 × (8 + 32) = 4,000 bytes listed by a range over all.
  const s = new KvStore({ maxResultBytes: 10_000 });
  apply(s, txn(...Array.from({ length: 100 }, (_, i) => put(`k${String(i).padStart(3, '0')}`, 'vvvv'))));
  const everything: Operation = { type: 'range', key: b('k'), rangeEnd: b('l') };

  const twoRanges = apply(s, txn(everything, everything));
  assert.equal(twoRanges.resultsDropped, undefined, '8,000 bytes fit');
  assert.equal((twoRanges.responses[1] as { kvs: unknown[] }).kvs.length, 100);

  const before = s.revision;
  const tooMany = apply(s, txn(put('k000', 'new'), everything, everything, everything, { type: 'delete', key: b('k001'), prevKv: true }));
  assert.equal(tooMany.resultsDropped, true);
  assert.equal(tooMany.succeeded, true);
  assert.equal(tooMany.revision, before + 1, 'the write applied');
  for (const r of tooMany.responses) {
    if (r.type === 'range') assert.deepEqual(r.kvs, []);
    if (r.type === 'delete') {
      assert.equal(r.deleted, 1);
      assert.equal(r.prevKvs, undefined);
    }
  }
  assert.equal(s.get(b('k000'))?.value.toString(), 'new');
  assert.equal(s.get(b('k001')), undefined);

  // One range over more keys than the bound allows is refused before its keys are gathered.
  const small = new KvStore({ maxResultBytes: 99 * 32 });
  apply(small, txn(...Array.from({ length: 100 }, (_, i) => put(`k${i}`, ''))));
  const internals = small as unknown as { keysIn: (...args: unknown[]) => string[] };
  const keysIn = internals.keysIn.bind(small);
  const gathered: number[] = [];
  internals.keysIn = (...args) => {
    const keys = keysIn(...args);
    gathered.push(keys.length);
    return keys;
  };
  assert.equal(apply(small, txn(everything)).resultsDropped, true);
  assert.deepEqual(gathered, [], 'no key gathered');
  assert.equal(apply(small, txn({ ...everything, limit: 50 })).resultsDropped, undefined);
  assert.deepEqual(gathered, [50]);
  // A command nobody waits for lists nothing, so drops nothing.
  assert.equal(applyEntry(small, encodeCommand({ clientId: '', sequence: 0, txn: txn(everything) }), false).resultsDropped, undefined);
});

test('ranges by prefix are ordered by bytes and honour limits', () => {
  const s = new KvStore();
  for (const k of ['p/b', 'p/a', 'q', 'p/c', 'p', 'o']) apply(s, txn(put(k, k)));
  const r = s.range({ type: 'range', key: b('p/'), rangeEnd: b('p0'), limit: 2 });
  assert.deepEqual(r.kvs.map((kv) => kv.key.toString()), ['p/a', 'p/b']);
  assert.equal(r.count, 3);
  assert.equal(r.more, true);
  assert.deepEqual(s.range({ type: 'range', key: b('p'), rangeEnd: b('\0') }).kvs.map((kv) => kv.key.toString()), ['p', 'p/a', 'p/b', 'p/c', 'q']);
  assert.equal(s.range({ type: 'range', key: b('\0'), rangeEnd: b('\0'), countOnly: true }).count, 6);
  apply(s, txn({ type: 'delete', key: b('p/'), rangeEnd: b('p0') }));
  assert.deepEqual(s.range({ type: 'range', key: b('\0'), rangeEnd: b('\0') }).kvs.map((kv) => kv.key.toString()), ['o', 'p', 'q']);
});

test('a retried command applies once, in or out of order; one older than the session window is refused', () => {
  const s = new KvStore();
  const first = apply(s, txn(put('x', '1')), 'client-a', 1);
  const retry = apply(s, txn(put('x', '1')), 'client-a', 1);
  assert.equal(retry.duplicate, true);
  assert.equal(retry.revision, first.revision);
  assert.equal(s.revision, first.revision, 'the retry changed nothing');
  apply(s, txn(put('x', '3')), 'client-a', 3);
  assert.equal(apply(s, txn(put('y', '2')), 'client-a', 2).duplicate, undefined, 'a pipelined write applied after a later one still applies');
  assert.equal(apply(s, txn(put('x', '0')), 'client-a', 2).duplicate, true);
  for (let seq = 4; seq <= SESSION_WINDOW + 10; seq++) apply(s, txn(put('n', String(seq))), 'client-a', seq);
  assert.equal(apply(s, txn(put('x', 'late')), 'client-a', 1).error, 'staleSequence');
  assert.equal(apply(s, txn(put('x', 'again')), 'client-a', SESSION_WINDOW).duplicate, true);
  assert.equal(s.get(b('x'))?.value.toString(), '3');
});

test('beyond the session limit, the least recently active client is forgotten first', () => {
  const s = new KvStore();
  const write = (client: string, sequence: number) => apply(s, txn(put('k', client)), client, sequence);
  for (let i = 0; i < MAX_SESSIONS; i++) write(`c${i}`, 1);
  // c0 becomes the most recently active (twice in a row: still last), so c1 is now the oldest.
  write('c0', 2);
  write('c0', 3);
  write('newcomer', 1);
  assert.equal(write('c0', 1).duplicate, true, 'c0 is remembered');
  assert.equal(write('c2', 1).duplicate, true, 'c2 is remembered');
  assert.equal(write('c1', 1).duplicate, undefined, 'c1 was forgotten, so its retry applies again');
  // A forgotten session past the sequences a session can start at is refused, not applied: it may be a retry.
  assert.equal(write('c3', 600).error, undefined, 'c3 is remembered');
  for (let i = 0; i < MAX_SESSIONS; i++) write(`d${i}`, 1);
  const refused = write('c3', 601);
  assert.equal(refused.error, 'unknownSession');
  assert.equal(s.get(b('k'))?.value.toString(), `d${MAX_SESSIONS - 1}`, 'the refused write changed nothing');
  assert.equal(write('fresh', 512).error, undefined, 'a new session may start anywhere up to 512');
});

test('a registered session is named by its entry\'s index; once forgotten, none of its writes applies, not even its first', () => {
  const s = new KvStore();
  const registration = applyEntry(s, SESSION_REGISTRATION);
  assert.equal(registration.session, `#${index}`);
  assert.equal(registration.succeeded, true);
  const id = registration.session!;
  assert.equal(apply(s, txn(put('k', 'first')), id, 1).error, undefined);
  assert.equal(apply(s, txn(put('k', 'first')), id, 1).duplicate, true);
  assert.equal(apply(s, txn(put('k', 'x')), '#999999999', 1).error, 'unknownSession', 'a registered-form id is never started by a write');
  for (let i = 0; i < MAX_SESSIONS; i++) applyEntry(s, SESSION_REGISTRATION);
  const retry = apply(s, txn(put('k', 'first')), id, 1);
  assert.equal(retry.error, 'unknownSession', 'the retry of a write that applied is refused, not applied again');
  assert.equal(s.get(b('k'))?.version, 1);
  assert.equal(apply(s, txn(put('k', 'next')), id, 2).error, 'unknownSession');
  const fresh = applyEntry(s, SESSION_REGISTRATION).session!;
  assert.notEqual(fresh, id);
  assert.equal(apply(s, txn(put('k', 'new')), fresh, 1).error, undefined);
  assert.equal(s.get(b('k'))?.value.toString(), 'new');
});

test('an entry that does not decode is answered with why, and changes nothing', () => {
  const s = new KvStore();
  apply(s, txn(put('k', 'v')));
  const r = applyEntry(s, Uint8Array.of(9, 1, 2));
  assert.match(r.undecodable ?? '', /unknown version 9/);
  assert.equal(r.succeeded, false);
  assert.equal(s.revision, 2);
});

test('a snapshot restores keys, revisions and client sessions exactly', async () => {
  const s = new KvStore();
  const rng = new Prng(9);
  for (let i = 0; i < 3000; i++) apply(s, txn(put(`key-${rng.int(0, 999)}`, 'v'.repeat(rng.int(0, 2000)))), `c${i % 7}`, i);
  // Larger than a snapshot chunk, between keys that share chunks.
  apply(s, txn(put('key-500x', 'w'.repeat(3 << 19))), 'c8', 1);
  const registered = applyEntry(s, SESSION_REGISTRATION).session!;
  apply(s, txn(put('r', '1')), registered, 1);
  const idle = applyEntry(s, SESSION_REGISTRATION).session!;
  const restored = await restore(s.onSnapshotCapture(), 'snap', 3000);
  assert.equal(restored.revision, s.revision);
  assert.equal(restored.size, s.size);
  const all = { type: 'range' as const, key: b('\0'), rangeEnd: b('\0') };
  assert.deepEqual(restored.range(all), s.range(all));
  assert.equal(apply(restored, txn(put('k', 'v')), 'c3', 2999).duplicate, true, 'sessions came along');
  assert.equal(apply(restored, txn(put('r', '1')), registered, 1).duplicate, true, 'registered sessions came along');
  assert.equal(apply(restored, txn(put('r', '2')), idle, 1).error, undefined, 'so did one registered with no write yet');
});

test('keys and values of any bytes survive puts, ranges, value comparisons and snapshots, in byte order', async () => {
  const s = new KvStore();
  const rng = new Prng(17);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => rng.int(0, 255)));
  const written = new Map<string, Buffer>();
  for (let i = 0; i < 500; i++) {
    const key = Buffer.concat([bytes(rng.int(1, 12)), Buffer.from([0xff, 0x00, 0x80])]);
    const value = bytes(rng.int(0, 600));
    apply(s, txn({ type: 'put', key, value }));
    written.set(key.toString('hex'), value);
  }
  const all = { type: 'range' as const, key: b('\0'), rangeEnd: b('\0') };
  const expected = [...written.keys()].map((hex) => Buffer.from(hex, 'hex')).sort(Buffer.compare);
  const check = (store: KvStore) => {
    const kvs = store.range(all).kvs;
    assert.deepEqual(kvs.map((kv) => kv.key.toString('hex')), expected.map((k) => k.toString('hex')));
    for (const kv of kvs) assert.ok(kv.value.equals(written.get(kv.key.toString('hex'))!));
  };
  check(s);
  const [key, value] = [...written][0];
  const cas = (v: Buffer, result: 'equal' | 'less' | 'greater') =>
    apply(s, { compare: [{ key: Buffer.from(key, 'hex'), target: 'value', result, value: v }], success: [], failure: [] }).succeeded;
  assert.equal(cas(value, 'equal'), true);
  assert.equal(cas(Buffer.concat([value, Buffer.from([0])]), 'less'), true, 'a prefix sorts first');
  const high = Buffer.from([0xff, 0xff]);
  assert.equal(cas(high, 'less'), Buffer.compare(value, high) < 0);
  assert.equal(cas(high, 'greater'), Buffer.compare(value, high) > 0);
  check(await restore(s.onSnapshotCapture(), 'snap-binary', 500));
});

test('a snapshot holds the state as captured, not the changes applied while it is written', async () => {
  const s = new KvStore();
  const rng = new Prng(11);
  for (let i = 0; i < 2000; i++) apply(s, txn(put(`key-${rng.int(0, 499)}`, 'v'.repeat(rng.int(0, 3000)))), `c${i % 5}`, i);
  const all = { type: 'range' as const, key: b('\0'), rangeEnd: b('\0') };
  const captured = { revision: s.revision, range: s.range(all) };
  const write = s.onSnapshotCapture();
  // After the capture: overwrite captured keys, delete some, add new ones, with the same and new sessions.
  for (let i = 0; i < 200; i++) apply(s, txn(put(`key-${i}`, `later-${i}`)), 'c1', 5000 + i);
  apply(s, txn({ type: 'delete', key: b('key-3'), rangeEnd: b('key-4') }), 'c9', 1);
  apply(s, txn(put('brand-new', 'x')), 'c2', 9000);
  assert.notDeepEqual(s.range(all), captured.range, 'the live state moved on');
  const restored = await restore(write, 'snap-capture', 2000);
  assert.equal(restored.revision, captured.revision);
  assert.deepEqual(restored.range(all), captured.range);
  assert.equal(apply(restored, txn(put('k', 'v')), 'c3', 1998).duplicate, true, 'sessions as captured came along');
  assert.equal(apply(restored, txn(put('k', 'v')), 'c1', 5000).duplicate, undefined, 'a command applied after the capture is not in the snapshot');
  assert.equal(apply(restored, txn(put('k', 'v')), 'c9', 1).duplicate, undefined, 'nor is a session that started after it');
});

test('ranges stay right as keys come and go after the first range, and after a snapshot load', async () => {
  const store = new KvStore();
  const model = new Map<string, string>();
  const rng = new Prng(11);
  const key = () => `r/${String(rng.int(0, 4999)).padStart(4, '0')}`;
  const check = (from: string, to: string, limit: number) => {
    const r = store.range({ type: 'range', key: b(from), rangeEnd: b(to), limit, countOnly: false, keysOnly: false });
    const expected = [...model.keys()].filter((k) => k >= from && k < to).sort();
    assert.equal(r.count, expected.length, `count of [${from}, ${to})`);
    assert.deepEqual(r.kvs.map((kv) => kv.key.toString()), expected.slice(0, limit || undefined), `keys of [${from}, ${to}) limit ${limit}`);
    assert.equal(r.more, limit > 0 && expected.length > limit);
  };
  // Keys before any range: the order is built by the first one.
  for (let i = 0; i < 3000; i++) {
    const k = key();
    model.set(k, 'v');
    apply(store, txn(put(k, 'v')));
  }
  check('r/', 'r0', 10);
  for (let round = 0; round < 300; round++) {
    for (let i = 0; i < 10; i++) {
      const k = key();
      if (rng.chance(0.6)) {
        model.set(k, 'w');
        apply(store, txn(put(k, 'w')));
      } else {
        model.delete(k);
        apply(store, txn({ type: 'delete', key: b(k), rangeEnd: undefined, prevKv: false }));
      }
    }
    if (round % 50 === 0) {
      // A range delete, through the order.
      const from = key();
      const to = `${from}5`;
      for (const k of [...model.keys()]) if (k >= from && k < to) model.delete(k);
      apply(store, txn({ type: 'delete', key: b(from), rangeEnd: b(to), prevKv: false }));
    }
    const from = key();
    check(from, `r/${String(Number(from.slice(2)) + rng.int(0, 800)).padStart(4, '0')}`, rng.int(0, 30));
  }
  check('r/', 'r0', 0);
  const restored = await restore(store.onSnapshotCapture(), 'ranges', index);
  const before = store.range({ type: 'range', key: b('r/'), rangeEnd: b('r0'), limit: 0, countOnly: false, keysOnly: true });
  const after = restored.range({ type: 'range', key: b('r/'), rangeEnd: b('r0'), limit: 0, countOnly: false, keysOnly: true });
  assert.deepEqual(after.kvs.map((kv) => kv.key.toString()), before.kvs.map((kv) => kv.key.toString()), 'a loaded store lists the same keys in the same order');
});

/** Every byte a capture of `store` writes. */
async function captureBytes(store: KvStore): Promise<Buffer> {
  const parts: Buffer[] = [];
  await store.onSnapshotCapture()({ write: async (c: Uint8Array) => void parts.push(Buffer.from(c)) } as never);
  return Buffer.concat(parts);
}

/** A snapshot reader over `bytes` in chunks of `chunkBytes`. */
const chunked = (bytes: Buffer, chunkBytes: number) =>
  ({
    async *chunks() {
      for (let at = 0; at < bytes.length; at += chunkBytes) yield bytes.subarray(at, at + chunkBytes);
    },
  }) as never;

test('client sessions survive a snapshot read in any chunking: every remembered write, floor and the order of activity', async () => {
  const s = new KvStore();
  const rng = new Prng(23);
  const clients = ['a', 'ünïcode-客户', 'c'.repeat(300), 'd'];
  const sequences = new Map(clients.map((c) => [c, 0]));
  for (let i = 0; i < 6 * SESSION_WINDOW; i++) {
    const client = clients[rng.int(0, clients.length - 1)];
    const sequence = sequences.get(client)! + 1;
    sequences.set(client, sequence);
    // Some comparisons fail, so both outcomes are remembered.
    const compare = rng.chance(0.3) ? [{ key: b('missing'), target: 'version' as const, result: 'greater' as const, number: 0 }] : [];
    apply(s, { compare, success: [put(`k${rng.int(0, 50)}`, 'v')], failure: [] }, client, sequence);
  }
  const bytes = await captureBytes(s);
  for (const chunkBytes of [1, 7, 4096, bytes.length]) {
    const restored = new KvStore();
    await restored.onSnapshotLoad(chunked(bytes, chunkBytes));
    assert.ok((await captureBytes(restored)).equals(bytes), `chunks of ${chunkBytes} bytes: the restored store captures to the same bytes`);
  }
  const restored = new KvStore();
  await restored.onSnapshotLoad(chunked(bytes, 7));
  for (const client of clients) {
    const last = sequences.get(client)!;
    assert.ok(last > SESSION_WINDOW, 'every session has a floor');
    assert.equal(apply(restored, txn(put('k', 'v')), client, last).duplicate, true, `${client}: its last write is remembered`);
    assert.equal(apply(restored, txn(put('k', 'v')), client, last - SESSION_WINDOW).error, 'staleSequence', `${client}: its floor came along`);
  }
  const sessionsEnd = bytes.indexOf('k0') - 1;
  await assert.rejects(new KvStore().onSnapshotLoad(chunked(bytes.subarray(0, sessionsEnd - 3), 100)), /truncated/, 'a snapshot cut inside the sessions is refused');
});

test('a snapshot written with the sessions in its JSON header (before they were binary records) still loads', async () => {
  const json = Buffer.from(JSON.stringify({ revision: 7, sessions: [['old-client', 2, [[3, 5, true], [4, 6, false]]]], members: [['n1', '127.0.0.1:7101']] }));
  const header = Buffer.alloc(4);
  header.writeUInt32LE(json.length);
  const key = Buffer.alloc(32);
  key.writeUInt32LE(1, 0);
  key.writeUInt32LE(2, 4);
  key.writeDoubleLE(3, 8);
  key.writeDoubleLE(6, 16);
  key.writeDoubleLE(2, 24);
  const store = new KvStore();
  await store.onSnapshotLoad(chunked(Buffer.concat([header, json, key, b('kvv')]), 5));
  assert.equal(store.revision, 7);
  assert.deepEqual(store.addresses, { n1: '127.0.0.1:7101' });
  assert.equal(store.get(b('k'))?.value.toString(), 'vv');
  assert.equal(store.get(b('k'))?.modRevision, 6);
  assert.deepEqual(apply(store, txn(put('x', 'y')), 'old-client', 4), { revision: 6, succeeded: false, responses: [], duplicate: true });
  assert.equal(apply(store, txn(put('x', 'y')), 'old-client', 2).error, 'staleSequence');
});

test('a snapshot loads out of sight: reads between its chunks see the state before it, and a truncated one changes nothing', async () => {
  const source = new KvStore();
  for (let i = 0; i < 2000; i++) apply(source, txn(put(`k${String(i).padStart(5, '0')}`, 'x'.repeat(500))));
  const parts: Buffer[] = [];
  await source.onSnapshotCapture()({ write: async (c: Uint8Array) => void parts.push(Buffer.from(c)) } as never);
  const bytes = Buffer.concat(parts);
  // Yields to the event loop between chunks, as a file read does.
  const reader = (upTo: number) => ({
    async *chunks() {
      for (let at = 0; at < upTo; at += 64 * 1024) {
        await new Promise((r) => setImmediate(r));
        yield bytes.subarray(at, Math.min(upTo, at + 64 * 1024));
      }
    },
  });
  const countAll = (s: KvStore) => s.range({ type: 'range', key: b('k'), rangeEnd: b('l'), limit: 0, countOnly: true, keysOnly: false }).count;
  const target = new KvStore();
  apply(target, txn(put('k00000', 'old')));
  const revisionBefore = target.revision;
  assert.equal(countAll(target), 1, 'the order is built before the load');

  const truncated = target.onSnapshotLoad(reader(bytes.length - 100) as never);
  await assert.rejects(truncated, /truncated/);
  assert.equal(countAll(target), 1, 'a truncated snapshot leaves the keys as they were');
  assert.equal(target.revision, revisionBefore);

  const loading = target.onSnapshotLoad(reader(bytes.length) as never);
  let midLoadReads = 0;
  let done = false;
  void loading.finally(() => (done = true));
  while (!done) {
    assert.equal(countAll(target), 1, 'a read during the load sees the state before it');
    assert.equal(target.get(b('k00000'))?.value.toString(), 'old');
    midLoadReads++;
    await new Promise((r) => setImmediate(r));
  }
  await loading;
  assert.ok(midLoadReads > 1, 'reads ran between chunks');
  assert.equal(countAll(target), 2000, 'after the load every key is in the order');
  assert.equal(target.revision, source.revision);
  assert.equal(target.get(b('k00000'))?.value.toString(), 'x'.repeat(500));
});
