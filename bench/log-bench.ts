// `npm run bench:log`: raftline's segment log against the embedded stores a
// Node user would otherwise pick, plus the disk's own limits, all measured in
// this one run. Writes bench/results/log-<date>.json, prints a markdown
// report and puts it into bench/README.md. Progress goes to stderr.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { RECORD_HEADER_BYTES } from '../src/log/index.js';
import {
  buildLog,
  measureCrc,
  measureFdatasync,
  measureSequential,
  openInChild,
  runClosedLoop,
  type LoadPoint,
  type Timing,
} from './measure.js';
import { loadPeers } from './peers.js';
import { updateReadmeSection } from './readme.js';
import { evaluateTargets, renderMarkdown, type BenchResults } from './report.js';
import { fsStore, peerStores, raftlineStore, type StoreKind } from './stores.js';

const COMMAND = 'npm run bench:log';
const TIMING: Timing = { warmupMs: 500, measureMs: 3000 };
const APPENDERS = [1, 16, 64, 256];
const PAYLOAD_BYTES = 256;
const FDATASYNC_SAMPLES = 200;
const SEQ_ENTRIES = 16;
const SEQ_PAYLOAD_BYTES = 64 * 1024;
const SEQ_IN_FLIGHT = 4;
// 4 rounds of 0.5 s: about 2 s per writer.
const SEQ_ROUNDS = 4;
const SEQ_SLICE_MS = 500;
const OPEN_LOG_BYTES = 2 ** 30;

// Compiled to dist/bench/log-bench.js; the sources and outputs live in bench/.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const benchDir = path.join(root, 'bench');

const progress = (message: string): void => console.error(`[bench:log] ${message}`);

function filesystemOf(dir: string): string {
  try {
    const [source, fstype, options] = execFileSync('findmnt', ['-n', '-o', 'SOURCE,FSTYPE,OPTIONS', '-T', dir], {
      encoding: 'utf8',
    })
      .trim()
      .split(/\s+/);
    return `${fstype} (${source}, ${options})`;
  } catch {
    return 'unknown (findmnt failed)';
  }
}

/**
 * Writes back dirty pages, then drops the (machine-wide) page cache so that
 * the next open reads from the disk. Needs root; returns why not where it
 * cannot.
 */
function dropPageCache(): string | undefined {
  execFileSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '1');
    return undefined;
  } catch (err) {
    return `cannot drop the page cache (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
}

async function main(): Promise<void> {
  const date = new Date().toISOString();
  // The machine may be shared: the load before the run is part of its context.
  const loadAverage = os.loadavg()[0];
  const dataRoot = path.join(benchDir, '.data', `log-${date.replace(/[:.]/g, '-')}`);
  const fresh = (name: string): string => {
    const dir = path.join(dataRoot, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  };

  const peers = loadPeers(path.join(benchDir, 'peers'));
  const kinds: StoreKind[] = [raftlineStore, ...peerStores(peers), fsStore];
  const payload = randomBytes(PAYLOAD_BYTES);

  try {
    // Every store opens, takes one durable put and closes before anything is
    // timed, so a broken install fails in seconds.
    for (const kind of kinds) {
      const store = await kind.open(fresh(`smoke-${kind.name}`));
      await store.put(1, payload);
      await store.close();
    }

    progress('fdatasync probe');
    const fdatasync = measureFdatasync(fresh('fdatasync'), FDATASYNC_SAMPLES);

    progress('crc32c');
    const crcBuffer = randomBytes(2 ** 20);
    const crc32c = { ...(await measureCrc(crcBuffer)), bufferBytes: crcBuffer.byteLength };

    // Appender count is the outer loop so that drift over the run (the
    // disk's, or other work on the machine) spreads over all stores rather
    // than landing on whichever store runs last.
    const load: LoadPoint[] = [];
    for (const appenders of APPENDERS) {
      for (const kind of kinds) {
        const result = await runClosedLoop(kind, fresh(`${kind.name}-${appenders}`), appenders, TIMING, payload);
        progress(
          `${kind.name} × ${appenders}: ${Math.round(result.opsPerSec)}/s, ` +
            `p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms`,
        );
        load.push(result);
      }
    }

    progress('sequential 1 MiB appends');
    const sequential = {
      entriesPerCall: SEQ_ENTRIES,
      payloadBytes: SEQ_PAYLOAD_BYTES,
      inFlight: SEQ_IN_FLIGHT,
      ...(await measureSequential(
        fresh('sequential'),
        SEQ_ENTRIES,
        randomBytes(SEQ_PAYLOAD_BYTES),
        SEQ_IN_FLIGHT,
        SEQ_ROUNDS,
        SEQ_SLICE_MS,
      )),
    };

    progress('building a 1 GiB log');
    const openDir = fresh('open-1gib');
    const buildStart = performance.now();
    const entries = await buildLog(openDir, OPEN_LOG_BYTES, payload);
    const buildMs = performance.now() - buildStart;
    progress('opening it, cold then warm');
    const coldSkipped = dropPageCache();
    const cold = coldSkipped === undefined ? await openInChild(openDir) : null;
    const warm = await openInChild(openDir);
    for (const opened of [cold, warm]) {
      if (opened && (opened.entries !== entries || opened.truncatedBytes !== 0)) {
        throw new Error(
          `reopening the 1 GiB log found ${opened.entries} entries (wrote ${entries}) ` +
            `and truncated ${opened.truncatedBytes} bytes after a clean close`,
        );
      }
    }

    const partial: Omit<BenchResults, 'targets'> = {
      date,
      command: COMMAND,
      machine: {
        cpu: os.cpus()[0]?.model ?? 'unknown',
        nproc: os.availableParallelism(),
        node: process.version,
        kernel: os.release(),
        dataDir: path.relative(root, path.dirname(dataRoot)),
        filesystem: filesystemOf(dataRoot),
        loadAverage,
      },
      timing: TIMING,
      stores: kinds.map(({ name, version, mode }) => ({ name, version, mode })),
      fdatasync,
      crc32c,
      payloadBytes: PAYLOAD_BYTES,
      load,
      sequential,
      open: {
        logBytes: entries * (PAYLOAD_BYTES + RECORD_HEADER_BYTES),
        entries,
        buildMs,
        cold,
        ...(coldSkipped === undefined ? {} : { coldSkipped }),
        warm,
      },
    };
    const results: BenchResults = { ...partial, targets: evaluateTargets(partial) };

    const resultsDir = path.join(benchDir, 'results');
    mkdirSync(resultsDir, { recursive: true });
    const resultsFile = path.join(resultsDir, `log-${date.slice(0, 10)}.json`);
    writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);

    const markdown = renderMarkdown(results);
    updateReadmeSection('log', markdown);
    console.log(markdown);
    progress(`wrote ${path.relative(root, resultsFile)} and bench/README.md`);
  } finally {
    rmSync(dataRoot, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (err) {
  console.error(err);
  // A hung write leaves native threads behind that would keep the process alive.
  process.exit(1);
}
