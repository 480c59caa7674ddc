import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, readdirSync, writeFileSync, unlinkSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  crc32c,
  decodeRecords,
  frameEntries,
  InvalidLogOperationError,
  LogClosedError,
  LogIOError,
  SegmentLog,
  type LogEntry,
} from '../src/log/index.js';
import { tempDir } from './support/tmp.js';

function entry(index: number, term: number, text = `entry ${index}`): LogEntry {
  return { index, term, type: index % 3, data: Buffer.from(text) };
}

function range(from: number, toInclusive: number, term: (i: number) => number): LogEntry[] {
  const out: LogEntry[] = [];
  for (let i = from; i <= toInclusive; i++) out.push(entry(i, term(i)));
  return out;
}

/** Framing from scratch, bypassing every cache: fresh entry objects each time. */
function freshlyFramed(entries: LogEntry[]): Buffer {
  return frameEntries(entries.map((e) => ({ ...e })));
}

function assertEntries(actual: LogEntry[], expected: LogEntry[]): void {
  assert.deepEqual(
    actual.map((e) => [e.index, e.term, e.type, Buffer.from(e.data).toString()]),
    expected.map((e) => [e.index, e.term, e.type, Buffer.from(e.data).toString()]),
  );
}

async function withLog(
  name: string,
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const { dir, cleanup } = tempDir(name);
  try {
    await body(dir);
  } finally {
    cleanup();
  }
}

function segmentFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.seg') || n.endsWith('.open'));
}

describe('SegmentLog', () => {
  test('appends, reads and reopens with index and term bookkeeping across segment rolls', async () => {
    await withLog('roll', async (dir) => {
      const term = (i: number): number => 1 + Math.floor(i / 100);
      const expected = range(1, 1000, term);
      let log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(log.firstIndex, 1);
      assert.equal(log.lastIndex, 0);
      for (let i = 0; i < expected.length; i += 50) await log.append(expected.slice(i, i + 50));
      assert.equal(log.lastIndex, 1000);
      assert.equal(log.durableIndex, 1000);
      assert.equal(log.termAt(1), 1);
      assert.equal(log.termAt(250), 3);
      assert.equal(log.termAt(1000), 11);
      assert.equal(log.termAt(1001), undefined);
      assertEntries(await log.read(1, 1001), expected);
      assert.ok(log.stats().segmentCount > 5, 'small segments roll');
      await log.close();

      log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(log.recovery.truncatedBytes, 0);
      assert.equal(log.lastIndex, 1000);
      assert.equal(log.termAt(999), 10);
      assertEntries(log.readSync(1, 1001), expected);
      const files = segmentFiles(dir);
      assert.equal(files.filter((n) => n.endsWith('.open')).length, 1);
      // Closed segment names carry their exact index ranges, contiguous.
      const closed = files.filter((n) => n.endsWith('.seg')).map((n) => n.slice(0, -4).split('-').map(Number));
      for (let i = 1; i < closed.length; i++) assert.equal(closed[i][0], closed[i - 1][1] + 1);
      await log.close();
    });
  });

  test('segments that roll faster than the next one is preallocated keep the log writing', async () => {
    // Appends of several segments each: the preallocator is often mid-file
    // when the writer rolls twice. A preallocation request left over from one
    // roll woke it while the next roll was taking the file, so it reported
    // ready a file that had become a segment, and the roll after that failed
    // ("rename ... next-segment.prealloc: No such file or directory") and
    // stopped the log; this reproduced in every run of 3,000 such appends.
    await withLog('fast-roll', async (dir) => {
      const log = await SegmentLog.open(dir, { segmentBytes: 4096, sync: 'none' });
      const payload = Buffer.alloc(900, 7);
      let index = 0;
      for (let i = 0; i < 3000; i++) {
        const batch = Array.from({ length: 1 + (i % 7) }, () => ({ index: ++index, term: 1, type: 1, data: payload }));
        await log.append(batch);
      }
      assert.equal(log.lastIndex, index);
      assert.equal((await log.read(index, index + 1))[0]?.index, index);
      await log.close();
    });
  });

  test('durableIndex never falls below the first index after a reset, while an append from before it finishes', async () => {
    await withLog('reset-durable', async (dir) => {
      const log = await SegmentLog.open(dir);
      const payload = Buffer.alloc(128 << 10, 3);
      for (let round = 0; round < 30; round++) {
        const base = log.lastIndex + 1;
        const before = log.append(Array.from({ length: 8 }, (_, i) => ({ index: base + i, term: 1, type: 0, data: payload })));
        const next = base + 1000;
        const reset = log.reset(next);
        const after = log.append([{ index: next, term: 1, type: 0, data: Buffer.from('x') }]);
        await before;
        // Everything before the new first index is gone, so vacuously durable; the old append's completion must not pull it back.
        assert.ok(log.durableIndex >= log.firstIndex - 1, `round ${round}: durableIndex ${log.durableIndex}, firstIndex ${log.firstIndex}`);
        await Promise.all([reset, after]);
        assert.equal(log.durableIndex, next);
      }
      await log.close();
    });
  });

  test('rejects non-contiguous appends and decreasing terms without writing anything', async () => {
    await withLog('validate', async (dir) => {
      const log = await SegmentLog.open(dir);
      await log.append(range(1, 3, () => 2));
      await assert.rejects(log.append([entry(5, 2)]), (err: Error) => {
        assert.ok(err instanceof InvalidLogOperationError);
        assert.match(err.message, /non-contiguous append.*index 5, expected 4/);
        return true;
      });
      await assert.rejects(log.append([entry(4, 1)]), /term went backwards/);
      // A bad entry late in a batch rejects the whole batch.
      await assert.rejects(log.append([entry(4, 2), entry(5, 2), entry(7, 2)]), InvalidLogOperationError);
      await assert.rejects(log.append([{ index: 4, term: 2, type: 300, data: new Uint8Array() }]), /type must be/);
      assert.equal(log.lastIndex, 3);
      await log.append([entry(4, 3)]);
      await log.close();
      const reopened = await SegmentLog.open(dir);
      assert.equal(reopened.lastIndex, 4);
      assert.equal(reopened.termAt(4), 3);
      await reopened.close();
    });
  });

  test('frameEntries frames a batch once: a run of the same entries is a view of its bytes, other entries are framed anew', () => {
    const batch = range(1, 6, () => 2);
    const framed = frameEntries(batch);
    const run = frameEntries(batch.slice(2, 5));
    const skipped = 2 * 32 + Buffer.byteLength('entry 1') + Buffer.byteLength('entry 2');
    assert.ok(run.buffer === framed.buffer && run.byteOffset === framed.byteOffset + skipped, 'the run is a view of the batch bytes');
    assert.deepEqual(Buffer.from(run), Buffer.from(frameEntries(range(3, 5, () => 2))), 'and they are what framing the run alone gives');
    const lookalike = batch.slice(2, 5).map((e) => ({ ...e, data: Buffer.from('changed') }));
    const reframed = frameEntries(lookalike);
    assert.equal(reframed.subarray(32, 39).toString(), 'changed', 'equal indexes but other objects are framed again');
    assert.equal(frameEntries([]).length, 0, 'an empty batch frames to nothing');
    assert.deepEqual(Buffer.from(frameEntries(range(7, 8, () => 2))), Buffer.from(freshlyFramed(range(7, 8, () => 2))), 'and framing goes on after it');
  });

  test('a batch that mixes decoded entries with new ones is framed as the same bytes', () => {
    const decoded = decodeRecords(frameEntries(range(1, 3, () => 1)));
    const mixed = [...decoded, ...range(4, 5, () => 1)];
    assert.deepEqual(Buffer.from(frameEntries(mixed)), Buffer.from(freshlyFramed(range(1, 5, () => 1))));
  });

  test('appendFramed verifies checksums before queueing', async () => {
    await withLog('framed', async (dir) => {
      const log = await SegmentLog.open(dir);
      const framed = frameEntries(range(1, 10, () => 1));
      await log.appendFramed(framed);
      assert.equal(log.lastIndex, 10);
      const bad = frameEntries(range(11, 12, () => 1));
      bad[bad.length - 1] ^= 0x01;
      await assert.rejects(log.appendFramed(bad), (err: Error) => {
        assert.ok(err instanceof InvalidLogOperationError);
        assert.match(err.message, /record 1 of the batch.*payload checksum mismatch/);
        return true;
      });
      assert.equal(log.lastIndex, 10);
      const read = await log.readFramed(1, 11);
      assert.equal(read.count, 10);
      assert.deepEqual(Buffer.from(read.records), Buffer.from(framed), 'records read back byte for byte as framed');
      await log.close();
    });
  });

  test('concurrent appends resolve in order and all become durable', async () => {
    await withLog('concurrent', async (dir) => {
      const log = await SegmentLog.open(dir, { segmentBytes: 8192 });
      const order: number[] = [];
      const pending: Promise<void>[] = [];
      for (let i = 1; i <= 500; i++) {
        pending.push(log.append([entry(i, 1, 'x'.repeat(i % 97))]).then(() => void order.push(i)));
      }
      assert.equal(log.lastIndex, 500, 'lastIndex counts accepted appends at once');
      await Promise.all(pending);
      assert.deepEqual(order, Array.from({ length: 500 }, (_, k) => k + 1));
      assert.equal(log.durableIndex, 500);
      await log.close();
      const reopened = await SegmentLog.open(dir, { segmentBytes: 8192 });
      assert.equal(reopened.lastIndex, 500);
      assert.equal((await reopened.read(1, 501)).length, 500);
      await reopened.close();
    });
  });

  test('onCallerIfIdle: with the writer idle an append is durable when the call returns; behind queued work it queues, in order', async () => {
    await withLog('on-caller', async (dir) => {
      const log = await SegmentLog.open(dir, { segmentBytes: 8192 });
      // The first append creates the first segment: like a roll, more than one sync, so the writer does it.
      const creating = log.append([entry(1, 1)], { onCallerIfIdle: true });
      assert.equal(log.durableIndex, 0, 'creating a segment is not done on the calling thread');
      await creating;
      assertEntries(log.readSync(1, 2), [entry(1, 1)]);
      const first = log.append([entry(2, 1)], { onCallerIfIdle: true });
      assert.equal(log.durableIndex, 2, 'synced before append returned');
      assertEntries(log.readSync(2, 3), [entry(2, 1)]);
      await first;
      const framed = freshlyFramed(range(3, 3, () => 1));
      const second = log.appendFramed(framed, { onCallerIfIdle: true });
      assert.equal(log.durableIndex, 3, 'framed records too');
      await second;
      // An append that rolls to a new segment costs more than one sync: it goes to the writer.
      const big = Buffer.alloc(9000, 1);
      const rolling = log.append([{ index: 4, term: 1, type: 0, data: big }], { onCallerIfIdle: true });
      assert.equal(log.durableIndex, 3, 'a roll is not done on the calling thread');
      await rolling;
      assert.equal(log.durableIndex, 4);
      await log.truncateSuffix(3);
      // Mixed with plain appends that keep the writer busy: call order is kept
      // (segments of 8 KiB roll several times on the way).
      const order: number[] = [];
      const pending: Promise<void>[] = [];
      for (let i = 4; i <= 400; i++) {
        const e = entry(i, 2, 'y'.repeat(i % 89));
        pending.push(log.append([e], { onCallerIfIdle: i % 2 === 0 }).then(() => void order.push(i)));
      }
      await Promise.all(pending);
      assert.deepEqual(order, range(4, 400, () => 2).map((e) => e.index));
      assert.equal(log.durableIndex, 400);
      await log.close();
      const reopened = await SegmentLog.open(dir, { segmentBytes: 8192 });
      const expected = [...range(1, 3, () => 1), ...range(4, 400, () => 2).map((e) => entry(e.index, 2, 'y'.repeat(e.index % 89)))];
      assertEntries(await reopened.read(1, 401), expected);
      await reopened.close();
    });
  });

  test('large batches round-trip intact, including through recycled framing buffers', async () => {
    await withLog('large', async (dir) => {
      const log = await SegmentLog.open(dir, { segmentBytes: 1 << 20 });
      const expected: LogEntry[] = [];
      const batch = (first: number, fill: number): LogEntry[] =>
        Array.from({ length: 4 }, (_, k) => ({ index: first + k, term: 1, type: 0, data: Buffer.alloc(70_000 + k, fill) }));
      // Serial appends reuse buffers released by earlier ones; concurrent ones need fresh ones.
      for (let round = 0; round < 6; round++) {
        const entries = batch(log.lastIndex + 1, round);
        expected.push(...entries);
        await log.append(entries);
      }
      const concurrent: Promise<void>[] = [];
      for (let round = 6; round < 12; round++) {
        const entries = batch(log.lastIndex + 1, round);
        expected.push(...entries);
        concurrent.push(log.append(entries));
      }
      await Promise.all(concurrent);
      const read = await log.read(1, log.lastIndex + 1);
      assert.equal(read.length, expected.length);
      for (let i = 0; i < read.length; i++) {
        assert.deepEqual(Buffer.from(read[i].data), Buffer.from(expected[i].data), `entry ${i + 1}`);
      }
      await log.close();
    });
  });

  test('read bounds: maxBytes, at least one entry, compacted and missing ranges', async () => {
    await withLog('read', async (dir) => {
      const log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      await log.append(range(1, 100, () => 1).map((e) => ({ ...e, data: Buffer.alloc(68, e.index) })));
      // Each record is 32 + 68 = 100 bytes.
      assert.equal((await log.read(1, 101, { maxBytes: 1000 })).length, 10);
      assert.equal((await log.read(1, 101, { maxBytes: 999 })).length, 9);
      assert.equal((await log.read(5, 101, { maxBytes: 1 })).length, 1, 'always at least one entry');
      assert.deepEqual(await log.read(7, 7), []);
      await assert.rejects(log.read(1, 102), /beyond the last index 100/);
      await log.truncatePrefix(50);
      await assert.rejects(log.read(10, 20), /below the first index 50/);
      assert.throws(() => log.readSync(-1, 3), InvalidLogOperationError);
      await log.close();
    });
  });

  test('readSync needs durable entries; read waits for them', async () => {
    await withLog('durable', async (dir) => {
      const log = await SegmentLog.open(dir);
      await log.append([entry(1, 1)]);
      const appending = log.append([entry(2, 1)]);
      if (log.durableIndex < 2) {
        assert.throws(() => log.readSync(1, 3), /not durable yet/);
      }
      assertEntries(await log.read(1, 3), [entry(1, 1), entry(2, 1)]);
      await appending;
      await log.close();
    });
  });

  test('truncateSuffix inside the open segment and back into closed segments', async () => {
    await withLog('suffix', async (dir) => {
      let log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      await log.append(range(1, 600, () => 1));
      await log.truncateSuffix(590);
      assert.equal(log.lastIndex, 590);
      await log.truncateSuffix(123);
      assert.equal(log.lastIndex, 123);
      assert.equal(log.termAt(124), undefined);
      // A new leader's entries replace the dropped ones.
      await log.append(range(124, 200, () => 2));
      await log.close();
      log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(log.lastIndex, 200);
      assert.equal(log.termAt(123), 1);
      assert.equal(log.termAt(124), 2);
      assertEntries(await log.read(120, 201), [...range(120, 123, () => 1), ...range(124, 200, () => 2)]);
      await assert.rejects(log.truncateSuffix(201), /beyond the last index 200/);
      await log.truncateSuffix(0);
      assert.equal(log.lastIndex, 0);
      await log.append(range(1, 3, () => 5));
      await log.close();
      log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(log.lastIndex, 3);
      assert.equal(log.termAt(1), 5);
      await log.close();
    });
  });

  test('truncatePrefix removes whole segments and persists the first index', async () => {
    await withLog('prefix', async (dir) => {
      let log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      await log.append(range(1, 1000, () => 1));
      const before = segmentFiles(dir).length;
      await log.truncatePrefix(600);
      // Later saves of the first index rewrite the one-block state file in
      // place: held open, it stays linked (a replaced file would not).
      const stateFile = path.join(dir, 'log-state');
      const held = openSync(stateFile, 'r');
      try {
        await log.truncatePrefix(650);
        await log.truncatePrefix(700);
        assert.equal(fstatSync(held).nlink, 1, 'log-state rewritten in place, not replaced');
        assert.equal(fstatSync(held).size, 512);
      } finally {
        closeSync(held);
      }
      assert.equal(log.firstIndex, 700);
      assert.equal(log.termAt(699), undefined);
      assert.ok(segmentFiles(dir).length < before, 'segments below the first index are deleted');
      await assert.rejects(log.truncatePrefix(1002), /beyond the last index \+ 1/);
      await assert.rejects(log.truncateSuffix(600), /below the first index/);
      await log.close();
      log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(log.firstIndex, 700);
      assert.equal(log.lastIndex, 1000);
      assertEntries(await log.read(700, 1001), range(700, 1000, () => 1));
      // Compacting everything leaves an empty log that continues at 1001.
      await log.truncatePrefix(1001);
      assert.equal(log.lastIndex, 1000);
      await log.append([entry(1001, 1)]);
      await log.close();
      log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(log.firstIndex, 1001);
      assert.equal(log.lastIndex, 1001);
      await log.close();
    });
  });

  test('reset discards everything and restarts at the given index', async () => {
    await withLog('reset', async (dir) => {
      let log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      await log.append(range(1, 300, () => 4));
      await log.reset(5000);
      assert.equal(log.firstIndex, 5000);
      assert.equal(log.lastIndex, 4999);
      await assert.rejects(log.append([entry(301, 4)]), /expected 5000/);
      await log.append([entry(5000, 1)]);
      await log.close();
      log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(log.firstIndex, 5000);
      assert.equal(log.lastIndex, 5000);
      assert.deepEqual(segmentFiles(dir), ['00000000000000005000.open']);
      // Reset backwards (a snapshot older than the log's tail) also works.
      await log.reset(10);
      await log.append([entry(10, 1)]);
      await log.close();
      log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(log.firstIndex, 10);
      assert.equal(log.lastIndex, 10);
      await log.close();
    });
  });

  test('operations queued behind appends apply in call order', async () => {
    await withLog('ordering', async (dir) => {
      const log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      const ops = [
        log.append(range(1, 100, () => 1)),
        log.truncateSuffix(50),
        log.append(range(51, 80, () => 2)),
        log.truncatePrefix(20),
        log.append(range(81, 90, () => 2)),
      ];
      await Promise.all(ops);
      assert.equal(log.firstIndex, 20);
      assert.equal(log.lastIndex, 90);
      assertEntries(await log.read(20, 91), [...range(20, 50, () => 1), ...range(51, 90, () => 2)]);
      await log.close();
      const reopened = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assertEntries(await reopened.read(20, 91), [...range(20, 50, () => 1), ...range(51, 90, () => 2)]);
      await reopened.close();
    });
  });

  test('a closed log rejects every operation with LogClosedError', async () => {
    await withLog('closed', async (dir) => {
      const log = await SegmentLog.open(dir);
      await log.append([entry(1, 1)]);
      await log.close();
      await assert.rejects(log.append([entry(2, 1)]), LogClosedError);
      await assert.rejects(log.truncateSuffix(0), LogClosedError);
      await log.close();
    });
  });

  test('closing while reads are in flight neither crashes nor hangs them', async () => {
    await withLog('close-read', async (dir) => {
      const log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      await log.append(range(1, 2000, () => 1));
      const reads = Promise.allSettled(Array.from({ length: 8 }, () => log.read(1, 2001)));
      await log.close();
      for (const outcome of await reads) {
        if (outcome.status === 'fulfilled') assert.equal(outcome.value.length, 2000);
        else assert.ok(outcome.reason instanceof LogClosedError, String(outcome.reason));
      }
    });
  });

  test('one log at a time per directory: a second open, here or in another process, is refused until the first closes', async () => {
    await withLog('locked', async (dir) => {
      const log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      await log.append(range(1, 50, () => 1));
      const inUse = (err: unknown): boolean => {
        assert.ok(err instanceof LogIOError, String(err));
        assert.equal(err.errno, osConstants.errno.EWOULDBLOCK);
        assert.match(err.message, /is in use/);
        assert.ok(err.message.includes(dir), err.message);
        return true;
      };
      await assert.rejects(SegmentLog.open(dir, { segmentBytes: 4096 }), inUse);

      const logIndex = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'log', 'index.js');
      const script = `
        const { SegmentLog } = await import(${JSON.stringify(logIndex)});
        try {
          await SegmentLog.open(${JSON.stringify(dir)});
          console.log(JSON.stringify({ opened: true }));
        } catch (err) {
          console.log(JSON.stringify({ name: err.name, errno: err.errno, message: err.message }));
        }`;
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(child.status, 0, child.stderr);
      const outcome = JSON.parse(child.stdout) as { opened?: boolean; name?: string; errno?: number; message?: string };
      assert.equal(outcome.name, 'LogIOError', child.stdout);
      assert.equal(outcome.errno, osConstants.errno.EWOULDBLOCK);
      assert.match(outcome.message ?? '', /is in use/);

      // The refused opens touched nothing: the first log goes on, and all of it reopens.
      await log.append(range(51, 60, () => 1));
      await log.close();
      const reopened = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assertEntries(await reopened.read(1, 61), range(1, 60, () => 1));
      await reopened.close();
    });
  });

  test('rejects bad options with a clear error', async () => {
    await withLog('options', async (dir) => {
      await assert.rejects(SegmentLog.open(dir, { segmentBytes: 100 }), /segmentBytes must be between 4096/);
      await assert.rejects(
        SegmentLog.open(dir, { sync: 'always' as unknown as 'batch' }),
        /sync must be 'batch' or 'none'/,
      );
      writeFileSync(path.join(dir, 'a-file'), 'x');
      await assert.rejects(SegmentLog.open(path.join(dir, 'a-file')), /Not a directory/);
    });
  });

  test('the index costs about 4 bytes per entry', async () => {
    await withLog('memory', async (dir) => {
      const log = await SegmentLog.open(dir, { segmentBytes: 1 << 20, sync: 'none' });
      const count = 200_000;
      const batch: LogEntry[] = [];
      for (let i = 1; i <= count; i++) {
        batch.push({ index: i, term: 1, type: 0, data: new Uint8Array(8) });
        if (batch.length === 10_000) await log.append(batch.splice(0));
      }
      const perEntry = log.stats().indexMemoryBytes / count;
      assert.ok(perEntry >= 4 && perEntry < 5, `index bytes per entry: ${perEntry}`);
      await log.close();
    });
  });
});

describe('crash-safe truncation', () => {
  // log-state layout (docs/log-format.md): u32 magic "RLST", u32 version 1,
  // u32 payload bytes, u32 CRC32C(payload), then u64 first index, u32 pending
  // op (1 suffix, 2 reset), u32 reserved, u64 argument.
  function writeLogState(dir: string, firstIndex: number, pending: number, arg: number): void {
    const payload = Buffer.alloc(24);
    payload.writeBigUInt64LE(BigInt(firstIndex), 0);
    payload.writeUInt32LE(pending, 8);
    payload.writeBigUInt64LE(BigInt(arg), 16);
    const header = Buffer.alloc(16);
    header.writeUInt32LE(0x54534c52, 0);
    header.writeUInt32LE(1, 4);
    header.writeUInt32LE(payload.length, 8);
    header.writeUInt32LE(crc32c(payload), 12);
    writeFileSync(path.join(dir, 'log-state'), Buffer.concat([header, payload]));
  }

  async function build(dir: string): Promise<void> {
    const log = await SegmentLog.open(dir, { segmentBytes: 4096 });
    await log.append(range(1, 400, () => 1));
    await log.close();
  }

  test('a suffix truncation interrupted after its intent was written completes on open', async () => {
    await withLog('intent-suffix', async (dir) => {
      await build(dir);
      writeLogState(dir, 1, 1, 150);
      // The crash happened after the newest segment was already unlinked.
      unlinkSync(path.join(dir, segmentFiles(dir).find((n) => n.endsWith('.open'))!));
      const log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(log.recovery.replayedTruncation, true);
      assert.equal(log.lastIndex, 150);
      assertEntries(await log.read(1, 151), range(1, 150, () => 1));
      await log.append([entry(151, 2)]);
      await log.close();
      const again = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(again.recovery.replayedTruncation, false, 'the intent was cleared');
      assert.equal(again.lastIndex, 151);
      assert.equal(again.termAt(151), 2);
      await again.close();
    });
  });

  test('an interrupted reset completes on open', async () => {
    await withLog('intent-reset', async (dir) => {
      await build(dir);
      writeLogState(dir, 77, 2, 0);
      const log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.equal(log.recovery.replayedTruncation, true);
      assert.equal(log.firstIndex, 77);
      assert.equal(log.lastIndex, 76);
      assert.deepEqual(segmentFiles(dir), []);
      await log.close();
    });
  });

  test('an interrupted prefix truncation finishes deleting segments on open', async () => {
    await withLog('intent-prefix', async (dir) => {
      await build(dir);
      const before = segmentFiles(dir).length;
      writeLogState(dir, 300, 0, 0);
      const log = await SegmentLog.open(dir, { segmentBytes: 4096 });
      assert.ok(log.recovery.removedSegments > 0);
      assert.ok(segmentFiles(dir).length < before);
      assert.equal(log.firstIndex, 300);
      assertEntries(await log.read(300, 401), range(300, 400, () => 1));
      await log.close();
    });
  });
});
