// Three raftline processes on loopback, talking over the real uWebSockets
// transport with the cluster secret; each test drives them over IPC.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ProcessCluster, RemoteError } from './support/process-cluster.js';
import { eventually } from './support/eventually.js';
import { tempDir } from './support/tmp.js';

const IDS = ['n1', 'n2', 'n3'];
const FAST = { electionTimeoutMs: 500, heartbeatIntervalMs: 50 };

/**
 * Writes keys through whichever process leads, following leader hints and
 * retrying writes whose outcome is unknown under a new key, and records the
 * keys whose write was acknowledged.
 */
class Writer {
  /** Every writer started by a test, stopped when its cluster is (even when the test fails). */
  static readonly running = new Set<Writer>();
  readonly acked = new Set<string>();
  private next = 0;
  private stopped = false;
  private leader: string;
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly group: string,
    leader: string,
    private readonly prefix: string,
  ) {
    this.leader = leader;
  }

  start(concurrency: number): void {
    Writer.running.add(this);
    for (let i = 0; i < concurrency; i++) this.loops.push(this.loop());
  }

  async stop(): Promise<void> {
    Writer.running.delete(this);
    this.stopped = true;
    await Promise.all(this.loops);
  }

  async until(count: number): Promise<void> {
    await eventually(`${count} acknowledged writes`, async () => this.acked.size >= count, 60_000);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const key = `${this.prefix}${this.next++}`;
      try {
        await this.cluster.request(this.leader, { op: 'apply', group: this.group, key, value: `v-${key}` });
        this.acked.add(key);
      } catch (err) {
        const hint = err instanceof RemoteError ? err.leaderHint : null;
        if (hint && this.cluster.ids.includes(hint)) this.leader = hint;
        else await this.findLeader();
      }
    }
  }

  private async findLeader(): Promise<void> {
    await new Promise((r) => setTimeout(r, 50));
    for (const id of this.cluster.ids) {
      const s = await this.cluster.request<{ role: string }>(id, { op: 'status', group: this.group }).catch(() => null);
      if (s?.role === 'leader') {
        this.leader = id;
        return;
      }
    }
  }
}

async function dump(cluster: ProcessCluster, id: string, group = 'g'): Promise<Record<string, string>> {
  return cluster.request<Record<string, string>>(id, { op: 'dump', group });
}

/** Every acknowledged key is on `id` (after a linearizable barrier there) with its value. */
async function assertHolds(cluster: ProcessCluster, id: string, keys: Iterable<string>, group = 'g'): Promise<void> {
  // The barrier needs a leader; on a loaded machine an election may be under way.
  await eventually(`${id} passed a read barrier`, () =>
    cluster.request(id, { op: 'get', group, key: '-', consistency: 'readIndex' }).then(
      () => true,
      (err: RemoteError) => {
        if (err.code !== 'ERR_RAFTLINE_NOT_LEADER') throw err;
        return false;
      },
    ),
  );
  const data = await dump(cluster, id, group);
  const missing = [...keys].filter((k) => data[k] !== `v-${k}`);
  assert.deepEqual(missing, [], `${id} lost acknowledged writes`);
}

describe('three processes over the uWebSockets transport', () => {
  const { dir: root, cleanup } = tempDir('cluster-process');
  after(cleanup);

  async function withCluster(name: string, body: (c: ProcessCluster) => Promise<void>, extra: Partial<ConstructorParameters<typeof ProcessCluster>[0]> = {}) {
    const cluster = new ProcessCluster({ root: path.join(root, name), ids: IDS, groups: ['g'], node: { ...FAST, segmentBytes: 4 << 20 }, ...extra });
    await cluster.startAll();
    try {
      await body(cluster);
    } finally {
      for (const w of Writer.running) await w.stop();
      await cluster.stopAll();
    }
  }

  test('elect a leader, replicate, and survive a restart of each node in turn', async () => {
    await withCluster('restarts', async (c) => {
      let leader = await c.leader('g');
      const writer = new Writer(c, 'g', leader, 'k');
      writer.start(4);
      await writer.until(100);
      for (const id of IDS) {
        await c.stop(id);
        const before = writer.acked.size;
        await writer.until(before + 50);
        await c.start(id);
        leader = await c.leader('g');
      }
      await writer.stop();
      for (const id of IDS) await assertHolds(c, id, writer.acked);
    });
  });

  test('kill -9 of the leader under load loses no acknowledged write', async () => {
    await withCluster('kill-leader', async (c) => {
      const first = await c.leader('g');
      const writer = new Writer(c, 'g', first, 'k');
      writer.start(16);
      await writer.until(300);
      await c.kill(first);
      const killedAt = writer.acked.size;
      const second = await c.leader('g');
      assert.notEqual(second, first);
      await writer.until(killedAt + 300);
      await writer.stop();
      for (const id of c.ids) await assertHolds(c, id, writer.acked);
      await c.start(first);
      await eventually(`${first} caught up after its restart`, async () => {
        const data = await dump(c, first);
        return [...writer.acked].every((k) => data[k] === `v-${k}`);
      });
    });
  });

  test('membership changes under load: a fourth process joins as learner, is promoted, and the old leader is removed', async () => {
    await withCluster('membership', async (c) => {
      const leader = await c.leader('g');
      const writer = new Writer(c, 'g', leader, 'k');
      writer.start(8);
      await writer.until(100);
      await c.start('n4', []);
      await c.request(leader, { op: 'member', group: 'g', change: 'addLearner', peer: 'n4' });
      await c.request(leader, { op: 'member', group: 'g', change: 'promoteLearner', peer: 'n4' });
      await c.request(leader, { op: 'member', group: 'g', change: 'removePeer', peer: leader });
      const next = await c.leader('g');
      assert.notEqual(next, leader, 'the removed leader stepped down');
      const status = await c.request<{ configuration: { voters: string[] } }>(next, { op: 'status', group: 'g' });
      assert.deepEqual([...status.configuration.voters].sort(), ['n1', 'n2', 'n3', 'n4'].filter((id) => id !== leader));
      const before = writer.acked.size;
      await writer.until(before + 100);
      await writer.stop();
      await assertHolds(c, 'n4', writer.acked);
    });
  });

  test('leadership moves to the chosen follower', async () => {
    await withCluster('transfer', async (c) => {
      const leader = await c.leader('g');
      const target = IDS.find((id) => id !== leader)!;
      await c.request(leader, { op: 'apply', group: 'g', key: 'a', value: 'v-a' });
      await c.request(leader, { op: 'transfer', group: 'g', to: target });
      await eventually(`${target} leads`, async () => (await c.leader('g')) === target);
      await c.request(target, { op: 'apply', group: 'g', key: 'b', value: 'v-b' });
      for (const id of IDS) await assertHolds(c, id, ['a', 'b']);
    });
  });

  test('a node that was down for 50k entries is brought back by a snapshot', async () => {
    await withCluster(
      'snapshot',
      async (c) => {
        const leader = await c.leader('g');
        const down = IDS.find((id) => id !== leader)!;
        await c.stop(down);
        const load = await c.request<{ committed: number; failed: number }>(leader, { op: 'load', group: 'g', entries: 50_000, outstanding: 256, entryBytes: 64 });
        assert.equal(load.committed, 50_000);
        const leaderStatus = await c.request<{ firstIndex: number; snapshot: { index: number } | null }>(leader, { op: 'status', group: 'g' });
        assert.ok(leaderStatus.snapshot && leaderStatus.firstIndex > 1, 'the leader compacted its log');
        await c.start(down);
        await eventually(`${down} installed a snapshot and caught up`, async () => {
          const s = await c.request<{ appliedIndex: number; snapshot: { index: number } | null }>(down, { op: 'status', group: 'g' });
          return s.snapshot !== null && s.appliedIndex >= 50_000;
        });
        const [expected, actual] = await Promise.all([dump(c, leader), dump(c, down)]);
        assert.equal(Object.keys(actual).length, 50_000);
        assert.deepEqual(actual, expected);
      },
      { node: { ...FAST, segmentBytes: 4 << 20, snapshotLogEntries: 10_000, snapshotKeepEntries: 1000 } },
    );
  });

  test('100 groups share one port per process, each electing a leader and replicating', async () => {
    const groups = Array.from({ length: 100 }, (_, i) => `group-${i}`);
    await withCluster(
      'multi-raft',
      async (c) => {
        const leaders = new Map<string, string>();
        await eventually('every group has a leader', async () => {
          const claimed = await Promise.all(IDS.map((id) => c.request<string[]>(id, { op: 'leaders' })));
          leaders.clear();
          claimed.forEach((gs, i) => gs.forEach((g) => leaders.set(g, IDS[i])));
          return leaders.size === groups.length;
        });
        for (const g of groups) {
          const leader = await c.leader(g);
          await c.request(leader, { op: 'apply', group: g, key: g, value: `v-${g}` });
        }
        for (const id of IDS) {
          await eventually(`${id} applied a write in every group`, async () => {
            const values = await Promise.all(groups.map((g) => c.request<string | null>(id, { op: 'get', group: g, key: g, consistency: 'stale' })));
            return values.every((v, i) => v === `v-${groups[i]}`);
          });
        }
        const stats = await c.request<{ peers: Record<string, { messagesSent: number }> }>('n1', { op: 'transportStats' });
        assert.deepEqual(Object.keys(stats.peers).sort(), ['n2', 'n3'], 'one outbound connection per peer process carries all 100 groups');
      },
      { groups, node: { electionTimeoutMs: 1500, heartbeatIntervalMs: 150, segmentBytes: 256 << 10 } },
    );
  });
});
