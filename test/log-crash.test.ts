// Crash safety of SegmentLog: a child process appends (and truncates) with
// many operations in flight and is SIGKILLed at a random moment, several
// times over the same directory. After every kill the log must reopen with
// every acknowledged entry intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, renameSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RECORD_HEADER_BYTES, SegmentLog } from '../src/log/index.js';
import { Prng } from './support/prng.js';
import { CRASH_SEGMENT_BYTES, crashEntry } from './fixtures/crash-content.js';

const APPENDER = fileURLToPath(new URL('./fixtures/crash-appender.js', import.meta.url));
const ROUNDS = 12;
const MIN_KILL_DELAY_MS = 50;
const MAX_KILL_DELAY_MS = 400;

interface ChildRun {
  lines: string[];
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/** Runs the appender until `delayMs` after its first acknowledgement, then SIGKILLs it. */
function runUntilKilled(
  dir: string,
  seed: number,
  round: number,
  delayMs: number,
  signal: AbortSignal,
): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    // `signal` fires if the test times out, e.g. a child that hangs before
    // its first acknowledgement; the child must not outlive the test.
    const child = spawn(process.execPath, [APPENDER, dir, String(seed), String(round)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      signal,
      killSignal: 'SIGKILL',
    });
    const lines: string[] = [];
    let partial = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (timer === undefined && line.startsWith('A ')) {
          timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    // 'close' waits for stdout to drain, so every line written before the
    // kill is in `lines`. A trailing fragment without its newline was never
    // fully reported, so it acknowledges nothing and is dropped.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ lines, signal, code, stderr });
    });
  });
}

interface Ack {
  /** Issue order across rounds: round * 2^32 + sequence number. */
  key: number;
  term: number;
}

interface Cut {
  key: number;
  kind: 'suffix' | 'prefix';
  /** lastKept for a suffix cut, firstKept for a prefix cut. */
  at: number;
}

/**
 * What the acknowledgements promise about the log. An acknowledged entry must
 * be present unless a truncation issued after its append covers it (that
 * truncation may or may not have reached the disk before the kill).
 */
class CrashModel {
  private acked = new Map<number, Ack>();
  private cuts: Cut[] = [];
  /** Acknowledged suffix cuts: no entry above lastKept may carry a term <= termBefore again. */
  private readonly floors: { lastKept: number; termBefore: number }[] = [];
  private minFirstIndex = 1;

  apply(round: number, lines: readonly string[]): void {
    for (const line of lines) {
      const [kind, ...rest] = line.split(' ');
      if (kind === 'E') assert.fail(`the appender failed: ${rest.join(' ')}`);
      const [seq, a, b, c] = rest.map(Number);
      const key = round * 2 ** 32 + seq;
      switch (kind) {
        case 'A':
          for (let i = a; i <= b; i++) {
            const prev = this.acked.get(i);
            if (prev === undefined || prev.key < key) this.acked.set(i, { key, term: c });
          }
          break;
        case 'T':
          this.cuts.push({ key, kind: 'suffix', at: a });
          break;
        case 't':
          this.floors.push({ lastKept: a, termBefore: b });
          break;
        case 'P':
          this.cuts.push({ key, kind: 'prefix', at: a });
          break;
        case 'p':
          this.minFirstIndex = Math.max(this.minFirstIndex, a);
          break;
        default:
          assert.fail(`unexpected line from the appender: ${JSON.stringify(line)}`);
      }
    }
  }

  /** Reopens the log and checks it against everything acknowledged so far. */
  async verify(dir: string): Promise<void> {
    const required = new Map<number, Ack>();
    for (const [index, ack] of this.acked) {
      const covered = this.cuts.some(
        (c) => c.key > ack.key && (c.kind === 'suffix' ? index > c.at : index < c.at),
      );
      if (!covered) required.set(index, ack);
    }
    // Later rounds issue only keys above every cut seen so far, so the cuts
    // have done their work and only still-required acknowledgements matter.
    this.acked = required;
    this.cuts = [];

    const log = await SegmentLog.open(dir, { segmentBytes: CRASH_SEGMENT_BYTES });
    try {
      const first = log.firstIndex;
      const last = log.lastIndex;
      assert.ok(
        first >= this.minFirstIndex,
        `firstIndex ${first} is below ${this.minFirstIndex}, set by an acknowledged truncatePrefix`,
      );
      for (const [index, ack] of required) {
        assert.ok(
          index >= first && index <= last,
          `acknowledged index ${index} (term ${ack.term}) is missing: the log holds ${first}..${last}`,
        );
        assert.equal(log.termAt(index), ack.term, `term of acknowledged index ${index}`);
      }
      const entries = last >= first ? await log.read(first, last + 1) : [];
      assert.equal(entries.length, last - first + 1, `entries read from ${first}..${last}`);
      let prevTerm = 0;
      entries.forEach((e, k) => {
        assert.equal(e.index, first + k, 'entries are contiguous from firstIndex');
        assert.equal(log.termAt(e.index), e.term, `termAt(${e.index}) agrees with the stored entry`);
        assert.ok(e.term >= prevTerm, `term goes backwards at index ${e.index}`);
        prevTerm = e.term;
        const want = crashEntry(e.index, e.term);
        assert.equal(e.type, want.type, `type of index ${e.index} (term ${e.term})`);
        assert.ok(
          Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).equals(want.data),
          `payload of index ${e.index} (term ${e.term}) is damaged: ` +
            `${e.data.byteLength} bytes, want ${want.data.byteLength}`,
        );
        for (const f of this.floors) {
          assert.ok(
            e.index <= f.lastKept || e.term > f.termBefore,
            `index ${e.index} (term ${e.term}) was cut by an acknowledged truncateSuffix(${f.lastKept}) but is back`,
          );
        }
      });
    } finally {
      await log.close();
    }
  }
}

test('acknowledged appends and truncations survive SIGKILL at random moments', { timeout: 120_000 }, async (t) => {
  const seed = Number(process.env.RAFTLINE_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.diagnostic(`seed ${seed} (replay the same choices with RAFTLINE_CRASH_SEED=${seed})`);
  const rng = new Prng(seed);
  const dir = mkdtempSync(path.join(tmpdir(), 'raftline-crash-'));
  const model = new CrashModel();
  let round = 0;
  try {
    for (; round < ROUNDS; round++) {
      const delayMs = rng.int(MIN_KILL_DELAY_MS, MAX_KILL_DELAY_MS);
      const run = await runUntilKilled(dir, seed, round, delayMs, t.signal);
      model.apply(round, run.lines);
      assert.equal(run.signal, 'SIGKILL', `the appender exited by itself (code ${run.code}): ${run.stderr}`);
      assert.ok(run.lines.some((l) => l.startsWith('A ')), 'the appender acknowledged nothing');
      await model.verify(dir);
    }
  } catch (err) {
    throw new Error(`crash test failed in round ${round} with seed ${seed}: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The random kills above land in the window between sealing a full segment
// (renamed to <first>-<last>.seg) and creating the next <first>.open only by
// chance; this reproduces that state exactly: the log's last file is a closed
// segment with room left, and appending must still work and survive a reopen.
test('a crash after sealing a segment but before creating the next one', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'raftline-crash-seal-'));
  try {
    const term = 1;
    let log = await SegmentLog.open(dir, { segmentBytes: CRASH_SEGMENT_BYTES });
    // Three small entries, far from filling a segment, so the next one fits in the sealed segment.
    const entries = [1, 2, 3].map((i) => ({ index: i, term, type: 0, data: Buffer.alloc(100, i) }));
    await log.append(entries);
    await log.close();

    // What FinishOpenSegment leaves on disk: the open segment cut to its
    // records and renamed, before the writer creates the next open segment.
    const open = readdirSync(dir).filter((n) => n.endsWith('.open'));
    assert.deepEqual(open, ['00000000000000000001.open']);
    const recordsEnd = entries.length * (RECORD_HEADER_BYTES + 100);
    assert.ok(statSync(path.join(dir, open[0])).size >= recordsEnd);
    truncateSync(path.join(dir, open[0]), recordsEnd);
    renameSync(path.join(dir, open[0]), path.join(dir, '00000000000000000001-00000000000000000003.seg'));

    log = await SegmentLog.open(dir, { segmentBytes: CRASH_SEGMENT_BYTES });
    try {
      assert.equal(log.lastIndex, 3);
      await log.append([{ index: 4, term, type: 0, data: Buffer.alloc(100, 4) }]);
    } finally {
      await log.close();
    }

    log = await SegmentLog.open(dir, { segmentBytes: CRASH_SEGMENT_BYTES });
    try {
      const got = await log.read(1, log.lastIndex + 1);
      assert.deepEqual(
        got.map((e) => [e.index, Buffer.from(e.data).equals(Buffer.alloc(100, e.index))]),
        [[1, true], [2, true], [3, true], [4, true]],
      );
    } finally {
      await log.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
