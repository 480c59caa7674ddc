// EntryCache against the real SegmentLog: the cache is told every change made
// to the log, in the same order, and whatever range it serves must be what the
// log reads back at those indexes, bounded the same way, framing to the same
// records. A failing seed prints its reproduction.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { decodeRecords, frameEntries, RECORD_HEADER_BYTES, SegmentLog, type LogEntry } from '../src/log/index.js';
import { EntryCache } from '../src/node/entry-cache.js';
import { Prng } from './support/prng.js';
import { tempDir } from './support/tmp.js';

const SEEDS = process.env.RAFTLINE_CACHE_SEED ? [Number(process.env.RAFTLINE_CACHE_SEED)] : Array.from({ length: 30 }, (_, k) => k + 1);
const STEPS = 120;
const NO_LIMIT = Number.MAX_SAFE_INTEGER;

function summary(entries: readonly LogEntry[]): string[] {
  return entries.map((e) => `${e.index}/${e.term}/${e.type}/${Buffer.from(e.data).toString('hex')}`);
}

function entries(from: number, term: number, payloadBytes: readonly number[]): LogEntry[] {
  return payloadBytes.map((bytes, k) => ({ index: from + k, term, type: 2, data: Buffer.alloc(bytes, from + k) }));
}

describe('EntryCache', () => {
  const { dir: root, cleanup } = tempDir('entry-cache');
  after(cleanup);

  async function withLog(name: string, body: (log: SegmentLog) => Promise<void>): Promise<void> {
    const log = await SegmentLog.open(path.join(root, name), { segmentBytes: 4096, sync: 'none' });
    try {
      await body(log);
    } finally {
      await log.close();
    }
  }

  test('a read stops before its records exceed maxBytes, headers included, but returns at least one entry, as the log does', async () => {
    await withLog('max-bytes', async (log) => {
      const cache = new EntryCache(1, NO_LIMIT);
      const appended = entries(1, 1, [10, 20, 30]);
      const written = log.append(appended);
      cache.append(appended);
      await written;
      const record = (payloadBytes: number) => RECORD_HEADER_BYTES + payloadBytes;
      const cases: [maxBytes: number, indexes: number[]][] = [
        [0, [1]],
        [record(10), [1]],
        [record(10) + record(20) - 1, [1]],
        [record(10) + record(20), [1, 2]],
        [record(10) + record(20) + record(30), [1, 2, 3]],
        [NO_LIMIT, [1, 2, 3]],
      ];
      for (const [maxBytes, indexes] of cases) {
        const got = cache.read(1, 4, maxBytes)!;
        assert.deepEqual(got.map((e) => e.index), indexes, `maxBytes ${maxBytes}`);
        assert.deepEqual(summary(got), summary(log.readSync(1, 4, { maxBytes })), `maxBytes ${maxBytes}: as the log reads`);
      }
      assert.deepEqual(cache.read(2, 3, 0)?.map((e) => e.index), [2], 'a range shorter than the window');
    });
  });

  test('an append over cached entries replaces them and everything after them', () => {
    const cache = new EntryCache(1, NO_LIMIT);
    cache.append(entries(1, 1, [1, 1, 1, 1, 1]));
    cache.append(entries(3, 2, [4]));
    assert.equal(cache.endIndex, 4);
    assert.deepEqual(cache.read(1, 4, NO_LIMIT)?.map((e) => `${e.index}@${e.term}`), ['1@1', '2@1', '3@2']);
    assert.equal(cache.read(1, 5, NO_LIMIT), undefined, 'the overwritten entries after 3 are gone');
    assert.equal(cache.cachedBytes, 3 * RECORD_HEADER_BYTES + 1 + 1 + 4);
  });

  test('past its byte cap the cache drops its oldest entries, down to none for an entry larger than the cap', () => {
    const cache = new EntryCache(1, 2 * (RECORD_HEADER_BYTES + 10));
    cache.append(entries(1, 1, [10, 10]));
    cache.append(entries(3, 1, [10]));
    assert.equal(cache.firstIndex, 2);
    assert.equal(cache.cachedBytes, 2 * (RECORD_HEADER_BYTES + 10));
    assert.equal(cache.read(1, 3, NO_LIMIT), undefined, 'entry 1 is left to the log');
    assert.deepEqual(cache.read(2, 4, NO_LIMIT)?.map((e) => e.index), [2, 3]);
    cache.append(entries(4, 1, [100]));
    assert.equal(cache.firstIndex, 5);
    assert.equal(cache.endIndex, 5, 'an empty window still ends where the log does');
    assert.equal(cache.cachedBytes, 0);
    cache.append(entries(5, 1, [10]));
    assert.deepEqual(cache.read(5, 6, NO_LIMIT)?.map((e) => e.index), [5], 'appends continue after it');
  });

  test('dropping applied entries, a prefix truncation and a reset leave only what the log still holds', () => {
    const cache = new EntryCache(1, NO_LIMIT);
    cache.append(entries(1, 1, [1, 1, 1, 1, 1]));
    cache.dropBelow(3);
    assert.equal(cache.read(2, 4, NO_LIMIT), undefined);
    assert.deepEqual(cache.read(3, 6, NO_LIMIT)?.map((e) => e.index), [3, 4, 5]);
    cache.dropBelow(9);
    assert.equal(cache.firstIndex, 6);
    assert.equal(cache.endIndex, 6, 'dropping past the end keeps the next index');
    cache.append(entries(6, 1, [1]));
    assert.deepEqual(cache.read(6, 7, NO_LIMIT)?.map((e) => e.index), [6]);
    cache.reset(20);
    assert.equal(cache.read(6, 7, NO_LIMIT), undefined);
    assert.equal(cache.cachedBytes, 0);
    cache.append(entries(20, 2, [1]));
    assert.deepEqual(cache.read(20, 21, NO_LIMIT)?.map((e) => e.index), [20]);
  });

  test('entries it did not see the log append before are not served', () => {
    const cache = new EntryCache(10, NO_LIMIT);
    cache.append(entries(10, 1, [1, 1]));
    // A node restarted: the log already holds 1..9, the cache starts after them.
    assert.equal(cache.read(9, 11, NO_LIMIT), undefined);
    // An append below the window (the log truncated entries the cap had dropped) starts it afresh.
    cache.append(entries(8, 2, [1]));
    assert.equal(cache.firstIndex, 8);
    assert.deepEqual(cache.read(8, 9, NO_LIMIT)?.map((e) => `${e.index}@${e.term}`), ['8@2']);
    assert.throws(() => cache.append([...entries(9, 2, [1]), ...entries(11, 2, [1])]), /not consecutive/);
  });

  async function runSeed(seed: number): Promise<void> {
    const rng = new Prng(seed);
    const trace: string[] = [];
    await withLog(`model-${seed}`, async (log) => {
      // A small cap in some seeds, so the oldest entries keep being dropped.
      const maxCacheBytes = rng.chance(0.4) ? rng.int(0, 3000) : NO_LIMIT;
      const cache = new EntryCache(log.lastIndex + 1, maxCacheBytes);
      let term = 1;
      try {
        for (let step = 0; step < STEPS; step++) {
          // Like the node, several writes are queued before any completes.
          const writes: Promise<void>[] = [];
          for (let k = rng.int(1, 3); k > 0; k--) {
            const op = rng.next();
            const first = log.firstIndex;
            const last = log.lastIndex;
            if (op < 0.6) {
              const overwrite = last >= first && rng.chance(0.3);
              const from = overwrite ? rng.int(first, last) : last + 1;
              if (overwrite) term++;
              const fresh = entries(from, term, Array.from({ length: rng.int(1, 6) }, () => rng.int(0, 300)));
              // Entries as a leader makes them, or as a follower decodes them off the wire (sealed records known).
              const appended = rng.chance(0.5) ? fresh : decodeRecords(frameEntries(fresh));
              trace.push(`append ${from}..${from + appended.length - 1} term ${term}`);
              if (overwrite) writes.push(log.truncateSuffix(from - 1));
              writes.push(log.append(appended));
              cache.append(appended);
            } else if (op < 0.75) {
              const applied = rng.int(cache.firstIndex - 1, last);
              trace.push(`applied ${applied}`);
              cache.dropBelow(applied + 1);
            } else if (op < 0.9) {
              const firstKept = rng.int(first, last + 1);
              trace.push(`truncatePrefix ${firstKept}`);
              writes.push(log.truncatePrefix(firstKept));
              cache.dropBelow(firstKept);
            } else {
              const next = rng.int(Math.max(1, last - 5), last + 20);
              trace.push(`reset ${next}`);
              writes.push(log.reset(next));
              cache.reset(next);
            }
          }
          await Promise.all(writes);
          check(rng, log, cache, maxCacheBytes);
        }
      } catch (err) {
        (err as Error).message +=
          `\n  seed ${seed}, cap ${maxCacheBytes}; last operations: ${trace.slice(-8).join('; ')}` +
          `\n  reproduce: RAFTLINE_CACHE_SEED=${seed} node --test dist/test/entry-cache.test.js`;
        throw err;
      }
    });
  }

  function check(rng: Prng, log: SegmentLog, cache: EntryCache, maxCacheBytes: number): void {
    assert.equal(cache.endIndex, log.lastIndex + 1, 'the window ends where the log does');
    assert.ok(cache.firstIndex >= log.firstIndex, `window starts at ${cache.firstIndex}, below the log's first index ${log.firstIndex}`);
    assert.ok(cache.cachedBytes <= maxCacheBytes, `${cache.cachedBytes} bytes cached, over the ${maxCacheBytes}-byte cap`);
    if (cache.firstIndex > log.firstIndex) {
      assert.equal(cache.read(cache.firstIndex - 1, cache.endIndex, NO_LIMIT), undefined, 'a range starting below the window');
    }
    if (cache.firstIndex === cache.endIndex) {
      assert.equal(cache.cachedBytes, 0);
      return;
    }
    const whole = cache.read(cache.firstIndex, cache.endIndex, NO_LIMIT)!;
    assert.equal(whole.reduce((sum, e) => sum + RECORD_HEADER_BYTES + e.data.byteLength, 0), cache.cachedBytes, 'cachedBytes counts the cached records');
    assert.deepEqual(summary(whole), summary(log.readSync(cache.firstIndex, cache.endIndex)), 'the whole window');
    for (let k = 0; k < 4; k++) {
      const from = rng.int(cache.firstIndex, cache.endIndex - 1);
      const to = rng.int(from + 1, cache.endIndex);
      const maxBytes = rng.chance(0.6) ? rng.int(0, 1500) : NO_LIMIT;
      const what = `read ${from}..${to} max ${maxBytes}`;
      const got = cache.read(from, to, maxBytes);
      assert.ok(got, `${what}: inside the window, served from it`);
      assert.deepEqual(summary(got), summary(log.readSync(from, to, { maxBytes })), what);
      // What a leader sends and a follower writes: the records the log holds, byte for byte.
      assert.deepEqual(frameEntries(got), log.readFramedSync(from, to, { maxBytes }).records, `${what}: framing`);
    }
  }

  test(`random appends, overwrites, compactions, resets and applies agree with the log (${SEEDS.length} seeds x ${STEPS} steps)`, async () => {
    for (const seed of SEEDS) await runSeed(seed);
  });
});
