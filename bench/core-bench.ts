// `npm run bench:core`: the pure Raft core alone. A 3-node cluster in one
// process on a zero-latency network with instant storage, so every cost
// measured is the core's own: entries/s committed through the leader, and
// CPU microseconds per entry spent in the leader's and a follower's core.
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Bench } from 'tinybench';
import { updateReadmeSection } from './readme.js';
import { DEFAULT_CORE_OPTIONS, RaftCore, type Message, type NodeId } from '../src/core/index.js';
import { SimStorage } from '../test/sim/storage.js';
import { Prng } from '../test/support/prng.js';

const IDS = ['n1', 'n2', 'n3'];
const PAYLOAD_BYTES = 256;
const TARGET_ENTRIES_PER_S = 1_000_000;

interface BenchNode {
  core: RaftCore;
  storage: SimStorage;
  cpuMs: number;
}

class InProcessCluster {
  readonly nodes = new Map<NodeId, BenchNode>();
  private inbox: Message[] = [];
  applied = 0;

  constructor() {
    const rng = new Prng(1);
    for (const id of IDS) {
      const storage = new SimStorage();
      const core = new RaftCore(
        { ...DEFAULT_CORE_OPTIONS, id, random: () => rng.next() },
        storage,
        { hardState: storage.hardState, configuration: { voters: IDS, learners: [] }, applied: 0 },
      );
      this.nodes.set(id, { core, storage, cpuMs: 0 });
    }
    const leader = this.nodes.get('n1')!;
    leader.core.step({ type: 'timeoutNow', from: 'n1', to: 'n1', term: 0 });
    this.run();
  }

  /** Processes every node's Ready and delivers messages until quiet, timing each node's core. */
  run(): void {
    for (;;) {
      for (const n of this.nodes.values()) this.drain(n);
      if (this.inbox.length === 0) return;
      const batch = this.inbox;
      this.inbox = [];
      for (const m of batch) {
        const n = this.nodes.get(m.to)!;
        const t0 = performance.now();
        n.core.step(m);
        n.cpuMs += performance.now() - t0;
      }
    }
  }

  private drain(n: BenchNode): void {
    const t0 = performance.now();
    while (n.core.hasReady()) {
      const r = n.core.ready();
      this.inbox.push(...r.messages);
      if (r.entries.length > 0 || r.hardState) {
        n.storage.write(r.entries, r.hardState);
        n.storage.syncOne();
      }
      const last = r.entries[r.entries.length - 1];
      if (last) n.core.persisted(last.index, last.term);
      this.inbox.push(...r.messagesAfterPersist);
      if (r.committed.length > 0) n.core.applied(r.committed[r.committed.length - 1].index);
      if (n === this.nodes.get('n1')) this.applied += r.committed.length;
    }
    n.cpuMs += performance.now() - t0;
  }

  propose(batch: Uint8Array[]): void {
    const leader = this.nodes.get('n1')!;
    const t0 = performance.now();
    const r = leader.core.propose(batch);
    leader.cpuMs += performance.now() - t0;
    if (!r.ok) throw new Error(`proposal refused: ${r.reason}`);
    this.run();
  }
}

async function main(): Promise<void> {
  const lines: string[] = [];
  lines.push(`Run ${new Date().toISOString()} with \`npm run bench:core\` on ${os.cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}.`);
  lines.push('');
  lines.push('| batch (entries per propose) | entries/s committed | ÷ 1M target | leader µs/entry | follower µs/entry |');
  lines.push('| --- | --- | --- | --- | --- |');
  for (const batchSize of [1, 16, 256]) {
    const cluster = new InProcessCluster();
    const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);
    const batch = Array.from({ length: batchSize }, () => payload);
    const bench = new Bench({ time: 1500, warmupTime: 300 });
    bench.add(`batch ${batchSize}`, () => cluster.propose(batch));
    for (const n of cluster.nodes.values()) n.cpuMs = 0;
    const appliedBefore = cluster.applied;
    await bench.run();
    const task = bench.tasks[0];
    const entries = cluster.applied - appliedBefore;
    const hz = task.result && 'throughput' in task.result ? task.result.throughput.mean : 0;
    const perSecond = hz * batchSize;
    const leaderUs = (cluster.nodes.get('n1')!.cpuMs * 1000) / entries;
    const followerUs = (cluster.nodes.get('n2')!.cpuMs * 1000) / entries;
    lines.push(
      `| ${batchSize} | ${Math.round(perSecond).toLocaleString('en-US')} | ${(perSecond / TARGET_ENTRIES_PER_S).toFixed(2)}× | ${leaderUs.toFixed(2)} | ${followerUs.toFixed(2)} |`,
    );
  }
  lines.push('');
  lines.push(`Entries carry ${PAYLOAD_BYTES}-byte payloads; storage is in memory and instant; CPU is wall time inside each node's core calls (single-threaded).`);
  const report = lines.join('\n');
  process.stdout.write(`${report}\n`);
  updateReadmeSection('core', report);
}

await main();
