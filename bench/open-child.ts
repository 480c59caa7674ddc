// Run by log-bench.ts as `node dist/bench/open-child.js <dir>`: opens the log
// in a process that has done nothing else, so the time is a restart's and the
// RSS delta is the open's own (addon already loaded by the import), then
// prints one JSON line.
import { performance } from 'node:perf_hooks';
import { SegmentLog } from '../src/log/index.js';

export interface OpenChildResult {
  openMs: number;
  rssDeltaBytes: number;
  entries: number;
  indexMemoryBytes: number;
  segmentCount: number;
  truncatedBytes: number;
}

const dir = process.argv[2];
if (!dir) throw new Error('usage: open-child.js <log dir>');

const rssBefore = process.memoryUsage().rss;
const start = performance.now();
const log = await SegmentLog.open(dir);
const openMs = performance.now() - start;
const rssDeltaBytes = process.memoryUsage().rss - rssBefore;
const stats = log.stats();
const result: OpenChildResult = {
  openMs,
  rssDeltaBytes,
  entries: log.lastIndex - log.firstIndex + 1,
  indexMemoryBytes: stats.indexMemoryBytes,
  segmentCount: stats.segmentCount,
  truncatedBytes: log.recovery.truncatedBytes,
};
await log.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
