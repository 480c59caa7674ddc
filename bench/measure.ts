// The measurements themselves; log-bench.ts sequences them and reports.
import { execFile } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Bench } from 'tinybench';
import {
  RECORD_HEADER_BYTES,
  SegmentLog,
  crc32cHardware,
  crc32cHardwareName,
  crc32cPortable,
  type LogEntry,
} from '../src/log/index.js';
import type { OpenChildResult } from './open-child.js';
import type { StoreKind } from './stores.js';

const execFileAsync = promisify(execFile);

export interface Timing {
  warmupMs: number;
  measureMs: number;
}

export interface LatencySummary {
  p50Ms: number;
  p99Ms: number;
}

export interface LoadPoint extends LatencySummary {
  store: string;
  appenders: number;
  /** Puts that completed inside the measurement window. */
  ops: number;
  opsPerSec: number;
}

/** p50 and p99 (nearest rank) of unsorted samples. */
export function percentiles(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
  return { p50Ms: at(0.5), p99Ms: at(0.99) };
}

/**
 * Rejects if `work` has not settled after `ms`, so that a store (or the log)
 * that stops completing writes fails the run instead of hanging it.
 */
async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export interface FdatasyncProbe {
  /** After appending 4 KiB to a plain file: a WAL that grows its file pays this (block allocation, size). */
  append: LatencySummary;
  /** After rewriting the same 4 KiB block: the device's flush alone. */
  overwrite: LatencySummary;
  samples: number;
}

/** Times fdatasync calls alone, `samples` of each kind, on a plain file in `dir`. */
export function measureFdatasync(dir: string, samples: number): FdatasyncProbe {
  const probe = (overwrite: boolean): LatencySummary => {
    const fd = openSync(path.join(dir, overwrite ? 'overwrite-probe' : 'append-probe'), 'w');
    const block = Buffer.alloc(4096, 0x5a);
    const times: number[] = [];
    try {
      if (overwrite) {
        writeSync(fd, block, 0, block.length, 0);
        fdatasyncSync(fd);
      }
      for (let i = 0; i < samples; i++) {
        writeSync(fd, block, 0, block.length, overwrite ? 0 : i * block.length);
        const t0 = performance.now();
        fdatasyncSync(fd);
        times.push(performance.now() - t0);
      }
    } finally {
      closeSync(fd);
    }
    return percentiles(times);
  };
  return { append: probe(false), overwrite: probe(true), samples };
}

/**
 * `appenders` async loops, each putting one value and awaiting it before the
 * next, against a freshly opened store. Puts completing during the warm-up
 * are not counted; loops stop starting puts when the window closes.
 */
export async function runClosedLoop(
  kind: StoreKind,
  dir: string,
  appenders: number,
  timing: Timing,
  value: Uint8Array,
): Promise<LoadPoint> {
  const store = await kind.open(dir);
  const start = performance.now();
  const windowStart = start + timing.warmupMs;
  const windowEnd = windowStart + timing.measureMs;
  const latencies: number[] = [];
  let nextSeq = 1;
  // The time check is inside the loop, not on a timer: better-sqlite3's
  // puts never yield to the event loop, so a timer would never fire.
  const appender = async (): Promise<void> => {
    for (let t0 = performance.now(); t0 < windowEnd; t0 = performance.now()) {
      await store.put(nextSeq++, value);
      const t1 = performance.now();
      if (t1 >= windowStart && t1 < windowEnd) latencies.push(t1 - t0);
    }
  };
  const what = `${kind.name} with ${appenders} appenders`;
  await withDeadline(Promise.all(Array.from({ length: appenders }, appender)), timing.warmupMs + timing.measureMs + 30_000, what);
  await withDeadline(store.close(), 30_000, `closing ${what}`);
  return {
    store: kind.name,
    appenders,
    ops: latencies.length,
    opsPerSec: latencies.length / (timing.measureMs / 1000),
    ...percentiles(latencies),
  };
}

export interface SequentialResult {
  calls: number;
  bytes: number;
  mbPerSec: number;
}

export interface SequentialResults {
  bytesPerCall: number;
  /** write + fdatasync of the same bytes per call on a plain file. */
  raw: SequentialResult;
  /** One append of `entriesPerCall` entries at a time, each awaited. */
  raftline: SequentialResult;
  /** `inFlight` appenders doing the same concurrently, so group commit can overlap framing with I/O. */
  raftlinePipelined: SequentialResult;
}

interface Tally {
  calls: number;
  bytes: number;
  ms: number;
}

function sequentialResult(t: Tally): SequentialResult {
  return { calls: t.calls, bytes: t.bytes, mbPerSec: t.bytes / 1e6 / (t.ms / 1000) };
}

/**
 * Durable appends of about 1 MiB per call, three ways. The writers take
 * turns in `rounds` slices of `sliceMs` each, so that the disk's drift over a
 * few seconds (and anything else running on the machine) lands on all three
 * alike.
 */
export async function measureSequential(
  dir: string,
  entriesPerCall: number,
  payload: Uint8Array,
  inFlight: number,
  rounds: number,
  sliceMs: number,
): Promise<SequentialResults> {
  const bytesPerCall = entriesPerCall * (payload.byteLength + RECORD_HEADER_BYTES);
  const raw = { calls: 0, bytes: 0, ms: 0 };
  const serial = { calls: 0, bytes: 0, ms: 0 };
  const pipelined = { calls: 0, bytes: 0, ms: 0 };
  const fd = openSync(path.join(dir, 'raw'), 'w');
  const chunk = Buffer.alloc(bytesPerCall, 0xa5);
  const serialLog = await SegmentLog.open(path.join(dir, 'serial'));
  const pipelinedLog = await SegmentLog.open(path.join(dir, 'pipelined'));

  const appendLoop = async (log: SegmentLog, tally: Tally, until: number): Promise<void> => {
    while (performance.now() < until) {
      const first = log.lastIndex + 1;
      const entries: LogEntry[] = Array.from({ length: entriesPerCall }, (_, i) => ({
        index: first + i,
        term: 1,
        type: 0,
        data: payload,
      }));
      await log.append(entries);
      tally.calls++;
      tally.bytes += bytesPerCall;
    }
  };
  const slice = async (tally: Tally, run: (until: number) => Promise<unknown>): Promise<void> => {
    const start = performance.now();
    await withDeadline(run(start + sliceMs), sliceMs + 30_000, 'a sequential append');
    tally.ms += performance.now() - start;
  };

  try {
    for (let round = 0; round < rounds; round++) {
      await slice(raw, async (until) => {
        while (performance.now() < until) {
          writeSync(fd, chunk, 0, chunk.length, raw.bytes);
          fdatasyncSync(fd);
          raw.calls++;
          raw.bytes += bytesPerCall;
        }
      });
      await slice(serial, (until) => appendLoop(serialLog, serial, until));
      await slice(pipelined, (until) =>
        Promise.all(Array.from({ length: inFlight }, () => appendLoop(pipelinedLog, pipelined, until))),
      );
    }
  } finally {
    closeSync(fd);
    await serialLog.close();
    await pipelinedLog.close();
  }
  return {
    bytesPerCall,
    raw: sequentialResult(raw),
    raftline: sequentialResult(serial),
    raftlinePipelined: sequentialResult(pipelined),
  };
}

export interface CrcResult {
  /** `crc32cHardwareName()`: the instruction the hardware path uses, or "none". */
  hardwareName: string;
  /** null where the CPU has no CRC32C instruction. */
  hardwareGBps: number | null;
  portableGBps: number;
}

/** CRC32C throughput over one 1 MiB buffer, median of tinybench samples. */
export async function measureCrc(buffer: Uint8Array): Promise<CrcResult> {
  const hardwareName = crc32cHardwareName();
  const bench = new Bench({ time: 1000, warmupTime: 200, throws: true });
  if (hardwareName !== 'none') bench.add('hardware', () => crc32cHardware(buffer));
  bench.add('portable', () => crc32cPortable(buffer));
  await bench.run();
  const gbps = (name: string): number | null => {
    const task = bench.getTask(name);
    if (!task) return null;
    const result = task.result;
    if (result.state !== 'completed') throw new Error(`crc32c ${name} benchmark ended ${result.state}`);
    return buffer.byteLength / 1e9 / (result.latency.p50 / 1000);
  };
  const portable = gbps('portable');
  if (portable === null) throw new Error('crc32c portable benchmark is missing');
  return { hardwareName, hardwareGBps: gbps('hardware'), portableGBps: portable };
}

/**
 * Writes `targetBytes` of records (entries of `payload`, 4096 per append)
 * with sync 'none': only the opening of the result is being measured.
 */
export async function buildLog(dir: string, targetBytes: number, payload: Uint8Array): Promise<number> {
  const log = await SegmentLog.open(dir, { sync: 'none' });
  const total = Math.ceil(targetBytes / (payload.byteLength + RECORD_HEADER_BYTES));
  for (let written = 0; written < total; ) {
    const n = Math.min(4096, total - written);
    const first = written + 1;
    await log.append(Array.from({ length: n }, (_, i) => ({ index: first + i, term: 1, type: 0, data: payload })));
    written += n;
  }
  await log.close();
  return total;
}

/** Times SegmentLog.open of `dir` in a fresh Node process (open-child.ts). */
export async function openInChild(dir: string): Promise<OpenChildResult> {
  const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'open-child.js');
  const { stdout } = await execFileAsync(process.execPath, [child, dir], { timeout: 120_000 });
  return JSON.parse(stdout) as OpenChildResult;
}
