// Randomized operation sequences against SegmentLog, checked step by step
// against MemoryLog as the model, with reopens in between. Every failure
// names its seed; RAFTLINE_LOG_SEED=<seed> replays just that one and
// RAFTLINE_LOG_SEEDS=<count> runs more than the default 40.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidLogOperationError, MemoryLog, SegmentLog, type LogEntry } from '../src/log/index.js';
import { Prng } from './support/prng.js';
import { tempDir } from './support/tmp.js';

const SEEDS = process.env.RAFTLINE_LOG_SEED
  ? [Number(process.env.RAFTLINE_LOG_SEED)]
  : range(1, Number(process.env.RAFTLINE_LOG_SEEDS ?? 40));
const STEPS = 150;
const SEGMENT_BYTES = 4096;

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, k) => from + k);
}

function summary(entries: LogEntry[]): string[] {
  return entries.map((e) => `${e.index}/${e.term}/${e.type}/${Buffer.from(e.data).toString('hex')}`);
}

/** Settles both promises and requires the same outcome: both fulfilled, or both rejected as invalid. */
async function same(what: string, real: Promise<unknown>, model: Promise<unknown>): Promise<void> {
  const [r, m] = await Promise.allSettled([real, model]);
  if (r.status === 'rejected' || m.status === 'rejected') {
    assert.equal(r.status, m.status, `${what}: log ${r.status} (${String((r as PromiseRejectedResult).reason)}), model ${m.status} (${String((m as PromiseRejectedResult).reason)})`);
    assert.ok((r as PromiseRejectedResult).reason instanceof InvalidLogOperationError, `${what}: ${String((r as PromiseRejectedResult).reason)}`);
  }
}

async function runSeed(seed: number): Promise<void> {
  const rng = new Prng(seed);
  const { dir, cleanup } = tempDir(`model-${seed}`);
  const model = new MemoryLog();
  let log = await SegmentLog.open(dir, { segmentBytes: SEGMENT_BYTES, sync: rng.chance(0.5) ? 'batch' : 'none' });
  const trace: string[] = [];
  try {
    for (let step = 0; step < STEPS; step++) {
      // Several operations are issued before any is awaited, to exercise the queue.
      const burst = rng.int(1, 4);
      const settles: Promise<void>[] = [];
      for (let k = 0; k < burst; k++) {
        const op = rng.next();
        const last = model.lastIndex;
        const first = model.firstIndex;
        const lastTerm = last >= first ? model.termAt(last)! : 0;
        if (op < 0.55) {
          const count = rng.int(1, 6);
          let start = last + 1;
          let term = lastTerm + (rng.chance(0.15) ? 1 : 0);
          const invalid = rng.chance(0.08);
          if (invalid) {
            if (rng.chance(0.5) || lastTerm === 0) start += rng.chance(0.5) ? 1 : -1;
            else term = lastTerm - 1;
          }
          const entries: LogEntry[] = [];
          for (let i = 0; i < count; i++) {
            entries.push({ index: start + i, term, type: rng.int(0, 255), data: rng.bytes(rng.int(0, 700)) });
          }
          trace.push(`append ${start}..${start + count - 1} term ${term}`);
          settles.push(same(trace.at(-1)!, log.append(entries), model.append(entries)));
        } else if (op < 0.67) {
          const lastKept = rng.int(Math.max(first - 2, 0), last + 1);
          trace.push(`truncateSuffix ${lastKept}`);
          settles.push(same(trace.at(-1)!, log.truncateSuffix(lastKept), model.truncateSuffix(lastKept)));
        } else if (op < 0.77) {
          const firstKept = rng.int(first, last + 2);
          trace.push(`truncatePrefix ${firstKept}`);
          settles.push(same(trace.at(-1)!, log.truncatePrefix(firstKept), model.truncatePrefix(firstKept)));
        } else if (op < 0.8) {
          const next = rng.int(Math.max(1, last - 20), last + 20);
          trace.push(`reset ${next}`);
          settles.push(same(trace.at(-1)!, log.reset(next), model.reset(next)));
        } else {
          // A read sees the log as of when it runs, so it closes the burst:
          // nothing queued after it may change what it should return.
          k = burst;
          const from = rng.int(Math.max(1, first - 1), last + 1);
          const to = rng.int(from, last + 2);
          const maxBytes = rng.chance(0.5) ? rng.int(1, 4000) : undefined;
          trace.push(`read ${from}..${to} max ${maxBytes}`);
          const what = trace.at(-1)!;
          settles.push(
            Promise.allSettled([log.read(from, to, { maxBytes }), model.read(from, to, { maxBytes })]).then(([r, m]) => {
              assert.equal(r.status, m.status, `${what}: ${r.status === 'rejected' ? String(r.reason) : ''}`);
              if (r.status === 'fulfilled' && m.status === 'fulfilled') assert.deepEqual(summary(r.value), summary(m.value), what);
            }),
          );
        }
        assert.equal(log.lastIndex, model.lastIndex, `lastIndex after ${trace.at(-1)}`);
        assert.equal(log.firstIndex, model.firstIndex, `firstIndex after ${trace.at(-1)}`);
      }
      await Promise.all(settles);
      if (rng.chance(0.1)) {
        trace.push('reopen');
        await log.close();
        log = await SegmentLog.open(dir, { segmentBytes: SEGMENT_BYTES });
        assert.equal(log.recovery.truncatedBytes, 0, 'a clean close leaves nothing to repair');
      }
      assert.equal(log.firstIndex, model.firstIndex, 'firstIndex');
      assert.equal(log.lastIndex, model.lastIndex, 'lastIndex');
      assert.equal(log.durableIndex, model.lastIndex, 'everything awaited is durable');
      for (let i = model.firstIndex; i <= model.lastIndex; i += rng.int(1, 5)) {
        assert.equal(log.termAt(i), model.termAt(i), `termAt(${i})`);
      }
      if (model.lastIndex >= model.firstIndex) {
        const all = log.readSync(model.firstIndex, model.lastIndex + 1);
        assert.deepEqual(summary(all), summary(model.readSync(model.firstIndex, model.lastIndex + 1)), 'full contents');
      }
    }
  } catch (err) {
    (err as Error).message +=
      `\n  seed ${seed}; last operations: ${trace.slice(-8).join('; ')}` +
      `\n  reproduce: RAFTLINE_LOG_SEED=${seed} node --test dist/test/log-model.test.js`;
    throw err;
  } finally {
    await log.close();
    cleanup();
  }
}

test(`random operation sequences match the in-memory model (${SEEDS.length} seeds x ${STEPS} steps)`, async () => {
  for (const seed of SEEDS) await runSeed(seed);
});
