// `npm run bench:raft`: a 3-process raftline cluster on loopback, over the
// uWebSockets transport, with durable logs (fdatasync on). The leader's process
// proposes 256-byte entries with 1, 64 and 1024 outstanding; we report entries/s
// committed (applied at the leader), commit latency p50/p99, and what the
// transport carried to each follower. Baselines measured in the same run: a
// 1-process group doing the same work (Raft and the log without replication),
// and this disk's fdatasync time.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessCluster } from '../test/support/process-cluster.js';
import { measureFdatasync } from './measure.js';
import { updateReadmeSection } from './readme.js';

const ENTRY_BYTES = 256;
const OUTSTANDING = [1, 64, 1024];
const WARMUP_MS = 1000;
const MEASURE_MS = 5000;
const TARGET_ENTRIES_PER_S = 100_000;
const TARGET_P50_MS = 1;

interface LoadResult {
  committed: number;
  failed: number;
  elapsedMs: number;
  p50Ms: number;
  p99Ms: number;
}

interface PeerCounters {
  messagesSent: number;
  bytesSent: number;
  framesSent: number;
}

interface Point extends LoadResult {
  outstanding: number;
  entriesPerS: number;
  /** Per follower: what the leader's transport sent it during the measured window. */
  followers: Record<string, { messagesPerS: number; bytesPerS: number; framesPerS: number }>;
}

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench');

async function measureGroup(root: string, ids: string[]): Promise<Point[]> {
  const cluster = new ProcessCluster({
    root,
    ids,
    groups: ['bench'],
    node: { electionTimeoutMs: 1000, heartbeatIntervalMs: 100 },
  });
  await cluster.startAll();
  try {
    const leader = await cluster.leader('bench');
    const points: Point[] = [];
    for (const outstanding of OUTSTANDING) {
      await cluster.request(leader, { op: 'load', group: 'bench', durationMs: WARMUP_MS, outstanding, entryBytes: ENTRY_BYTES });
      const before = await cluster.request<{ peers: Record<string, PeerCounters> }>(leader, { op: 'transportStats' });
      const r = await cluster.request<LoadResult>(leader, { op: 'load', group: 'bench', durationMs: MEASURE_MS, outstanding, entryBytes: ENTRY_BYTES });
      const after = await cluster.request<{ peers: Record<string, PeerCounters> }>(leader, { op: 'transportStats' });
      const seconds = r.elapsedMs / 1000;
      const followers: Point['followers'] = {};
      for (const [id, a] of Object.entries(after.peers)) {
        const b = before.peers[id] ?? { messagesSent: 0, bytesSent: 0, framesSent: 0 };
        followers[id] = {
          messagesPerS: (a.messagesSent - b.messagesSent) / seconds,
          bytesPerS: (a.bytesSent - b.bytesSent) / seconds,
          framesPerS: (a.framesSent - b.framesSent) / seconds,
        };
      }
      points.push({ ...r, outstanding, entriesPerS: r.committed / seconds, followers });
      process.stderr.write(`${ids.length} node(s), ${outstanding} outstanding: ${Math.round(r.committed / seconds)} entries/s, p50 ${r.p50Ms.toFixed(3)} ms\n`);
    }
    return points;
  } finally {
    await cluster.stopAll();
  }
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

async function main(): Promise<void> {
  const dataRoot = path.join(benchDir, '.data', 'cluster');
  rmSync(dataRoot, { recursive: true, force: true });
  mkdirSync(dataRoot, { recursive: true });
  try {
    const fsync = measureFdatasync(dataRoot, 200);
    const single = await measureGroup(path.join(dataRoot, 'single'), ['n1']);
    const triple = await measureGroup(path.join(dataRoot, 'triple'), ['n1', 'n2', 'n3']);
    const date = new Date().toISOString();
    mkdirSync(path.join(benchDir, 'results'), { recursive: true });
    writeFileSync(path.join(benchDir, 'results', `raft-${date.slice(0, 10)}.json`), `${JSON.stringify({ date, fsync, single, triple }, null, 2)}\n`);

    const at1024 = triple.find((p) => p.outstanding === 1024)!;
    const at1 = triple.find((p) => p.outstanding === 1)!;
    const lines = [
      `Run ${date} with \`npm run bench:raft\` on ${os.cpus()[0]?.model ?? 'unknown CPU'}, nproc ${os.availableParallelism()}, Node ${process.version}. ` +
        `Each point: ${WARMUP_MS / 1000} s warm-up, ${MEASURE_MS / 1000} s measured; ${ENTRY_BYTES}-byte entries proposed at the leader; fdatasync on. ` +
        `fdatasync on this disk: p50 ${fsync.append.p50Ms.toFixed(3)} ms after a 4 KiB append.`,
      '',
      '| outstanding | 3 processes: entries/s | p50 ms | p99 ms | 1 process: entries/s | 3 ÷ 1 | p50 ÷ fdatasync p50 |',
      '|---|---|---|---|---|---|---|',
      ...triple.map((p, i) => {
        const s = single[i];
        return `| ${p.outstanding} | ${fmt(p.entriesPerS)} | ${p.p50Ms.toFixed(3)} | ${p.p99Ms.toFixed(3)} | ${fmt(s.entriesPerS)} | ${(p.entriesPerS / s.entriesPerS).toFixed(2)}× | ${(p.p50Ms / fsync.append.p50Ms).toFixed(1)}× |`;
      }),
      '',
      'Leader → each follower, during the measured window:',
      '',
      '| outstanding | follower | messages/s | frames/s | MB/s |',
      '|---|---|---|---|---|',
      ...triple.flatMap((p) =>
        Object.entries(p.followers).map(([id, f]) => `| ${p.outstanding} | ${id} | ${fmt(f.messagesPerS)} | ${fmt(f.framesPerS)} | ${(f.bytesPerS / 1e6).toFixed(1)} |`),
      ),
      '',
      '| target | result | met? |',
      '|---|---|---|',
      `| ≥ ${fmt(TARGET_ENTRIES_PER_S)} entries/s at 1024 outstanding | ${fmt(at1024.entriesPerS)} | ${at1024.entriesPerS >= TARGET_ENTRIES_PER_S ? 'yes' : 'no'} |`,
      `| p50 commit latency < ${TARGET_P50_MS} ms at 1 outstanding | ${at1.p50Ms.toFixed(3)} ms | ${at1.p50Ms < TARGET_P50_MS ? 'yes' : 'no'} |`,
    ];
    const report = lines.join('\n');
    process.stdout.write(`${report}\n`);
    updateReadmeSection('raft', report);
  } finally {
    rmSync(dataRoot, { recursive: true, force: true });
  }
}

await main();
