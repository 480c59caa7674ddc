// RaftNode end to end in one process: real segment logs and meta stores on
// disk, an in-memory network that encodes every message to its wire frame.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { MemoryNetwork, type PeerMessage } from '../src/transport/index.js';
import {
  NotLeaderError,
  OutcomeUnknownError,
  RaftError,
  RaftNode,
  TermMismatchError,
  TimeoutError,
  type ApplyIterator,
  type RaftNodeOptions,
  type SnapshotReader,
  type SnapshotWrite,
  type SnapshotWriter,
  type StateMachine,
} from '../src/node/index.js';
import { SnapshotStore } from '../src/node/snapshot-store.js';
import type { Configuration, SnapshotMeta } from '../src/core/index.js';
import { MetaStore, SegmentLog, type AppendOptions, type LogEntry } from '../src/log/index.js';
import { Prng } from './support/prng.js';
import { eventually } from './support/eventually.js';
import { tempDir } from './support/tmp.js';

class KvMachine implements StateMachine {
  readonly data = new Map<string, string>();
  /** Every command applied since the start, as `index@term key=value`. */
  readonly history: string[] = [];
  applied = 0;
  onApply(batch: ApplyIterator): void {
    for (const cmd of batch) {
      const command = Buffer.from(cmd.data).toString();
      const [key, value] = command.split('=');
      this.data.set(key, value);
      this.history.push(`${cmd.index}@${cmd.term} ${command}`);
      this.applied = cmd.index;
      cmd.respond(`${key} is ${value}`);
    }
  }

  async onSnapshotSave(writer: SnapshotWriter): Promise<void> {
    // Several writes, so the file spans many transfer chunks.
    for (const [key, value] of this.data) await writer.write(Buffer.from(`${key}=${value}\n`));
  }

  async onSnapshotLoad(reader: SnapshotReader): Promise<void> {
    this.data.clear();
    for (const line of (await reader.readAll()).toString().split('\n')) {
      if (!line) continue;
      const [key, value] = line.split('=');
      this.data.set(key, value);
    }
    this.applied = reader.index;
  }
}

/**
 * Captures its state for a snapshot (and still has onSnapshotSave, which the
 * node must not use): the writer writes half the captured keys, then waits
 * for `gate` if one is set.
 */
class CapturingMachine extends KvMachine {
  gate: Promise<void> | null = null;
  /** The state and applied index at the last capture. */
  captured: { applied: number; data: Map<string, string> } | null = null;
  writing = false;
  writeError: Error | null = null;

  onSnapshotCapture(): SnapshotWrite {
    const entries = [...this.data];
    this.captured = { applied: this.applied, data: new Map(entries) };
    const gate = this.gate;
    return async (writer) => {
      this.writing = true;
      try {
        for (const [i, [key, value]] of entries.entries()) {
          if (i === entries.length >> 1) await gate;
          await writer.write(Buffer.from(`${key}=${value}\n`));
        }
      } catch (err) {
        this.writeError = err as Error;
        throw err;
      }
    };
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

interface Member {
  node: RaftNode;
  fsm: KvMachine;
  dir: string;
}

class TestCluster {
  readonly net = new MemoryNetwork(() => this.rng.next());
  readonly members = new Map<string, Member>();
  private readonly rng = new Prng(7);
  makeFsm: () => KvMachine = () => new KvMachine();

  constructor(
    readonly root: string,
    readonly peers: string[],
    readonly options: Partial<RaftNodeOptions> = {},
  ) {}

  async start(id: string, peers: string[] = this.peers, extra: Partial<RaftNodeOptions> = {}): Promise<Member> {
    const fsm = this.makeFsm();
    const dir = path.join(this.root, id);
    const node = await RaftNode.start({
      groupId: 'g1',
      id,
      peers,
      dataDir: dir,
      fsm,
      transport: this.net.transport(),
      electionTimeoutMs: 300,
      heartbeatIntervalMs: 30,
      ...this.options,
      ...extra,
    });
    const m = { node, fsm, dir };
    this.members.set(id, m);
    return m;
  }

  async stop(id: string): Promise<void> {
    await this.members.get(id)!.node.shutdown();
    this.members.delete(id);
  }

  leader(): Member | undefined {
    return [...this.members.values()].find((m) => m.node.status().role === 'leader');
  }

  async awaitLeader(): Promise<Member> {
    await eventually('a leader is elected', () => this.leader() !== undefined);
    return this.leader()!;
  }

  async shutdown(): Promise<void> {
    for (const id of [...this.members.keys()]) await this.stop(id);
  }
}

describe('RaftNode', () => {
  const { dir: root, cleanup } = tempDir('raft-node');
  after(cleanup);

  /** Runs `body` against a started three-node group, shutting it down afterwards. */
  async function withCluster(
    name: string,
    body: (c: TestCluster) => Promise<void>,
    options: Partial<RaftNodeOptions> = {},
    makeFsm: () => KvMachine = () => new KvMachine(),
  ): Promise<void> {
    const c = new TestCluster(path.join(root, name), ['n1', 'n2', 'n3'], options);
    c.makeFsm = makeFsm;
    for (const id of c.peers) await c.start(id);
    try {
      await body(c);
    } finally {
      await c.shutdown();
    }
  }

  test('a peer list naming a node twice (it would count twice toward every quorum), an election timeout under two heartbeats or more than 1,024 peers, is refused at start', async () => {
    const c = new TestCluster(path.join(root, 'repeated-peers'), ['n1', 'n2', 'n1']);
    await assert.rejects(c.start('n1'), (err: RaftError) => err.code === 'ERR_RAFTLINE_CONFIG' && /peers lists n1 more than once/.test(err.message));
    await assert.rejects(
      c.start('n1', ['n1'], { electionTimeoutMs: 50, heartbeatIntervalMs: 100 }),
      (err: RaftError) => err.code === 'ERR_RAFTLINE_CONFIG' && /electionTimeoutMs \(50\) must be at least twice heartbeatIntervalMs \(100\)/.test(err.message),
    );
    const crowd = Array.from({ length: 1025 }, (_, i) => `n${i + 1}`);
    await assert.rejects(c.start('n1', crowd), (err: RaftError) => err.code === 'ERR_RAFTLINE_CONFIG' && /peers names 1025 nodes; a configuration may name at most 1024/.test(err.message));
    assert.equal(c.members.size, 0);
  });

  test('three nodes elect a leader, replicate, and answer with the state machine result', async () => {
    await withCluster('basic', async (c) => {
      const leader = await c.awaitLeader();
      assert.equal(await leader.node.apply(Buffer.from('x=1')), 'x is 1');
      await eventually('every node applied x=1', () => [...c.members.values()].every((m) => m.fsm.data.get('x') === '1'));
      const follower = [...c.members.values()].find((m) => m !== leader)!;
      await assert.rejects(follower.node.apply(Buffer.from('y=2')), (err: Error) => {
        assert.ok(err instanceof NotLeaderError);
        assert.equal(err.leaderHint, leader.node.id);
        return true;
      });
      const term = leader.node.status().term;
      await assert.rejects(leader.node.apply(Buffer.from('z=3'), { expectedTerm: term + 1 }), TermMismatchError);
    });
  });

  test('a log holding a newer term than the saved one (killed between the two writes) raises the saved term on start, with no vote', async () => {
    const c = new TestCluster(path.join(root, 'term-behind'), ['n1', 'n2', 'n3']);
    const dir = path.join(c.root, 'n1');
    const log = await SegmentLog.open(path.join(dir, 'log'));
    await log.append([1, 2, 3].map((index) => ({ index, term: index === 3 ? 3 : 1, type: 2, data: Buffer.from(`x=${index}`) })));
    await log.close();
    const meta = await MetaStore.open(dir);
    await meta.save({ term: 1, vote: 'n2', bootstrap: ['n1', 'n2', 'n3'] });
    const m = await c.start('n1');
    try {
      assert.ok(m.node.status().term >= 3, `term ${m.node.status().term}`);
    } finally {
      await c.shutdown();
    }
    const reopened = await MetaStore.open(dir);
    assert.ok(reopened.term >= 3);
    if (reopened.term === 3) assert.equal(reopened.vote, null, 'no vote was cast in term 3');
  });

  test('a leader whose event loop stalled past its lease serves no lease read from it: the core gets the ticks it missed first', async () => {
    await withCluster('stalled-lease', async (c) => {
      const leader = await c.awaitLeader();
      await leader.node.apply(Buffer.from('x=1'));
      await leader.node.readBarrier({ mode: 'lease' });
      // A synchronous stall of three election timeouts (300 ms each): no
      // timer fires and no message is read meanwhile. Timer callbacks alone
      // would have left the core's tick count where it was, and its lease
      // valid; meanwhile the other members could have elected a new leader.
      const until = performance.now() + 1000;
      while (performance.now() < until);
      const read = leader.node.readBarrier({ mode: 'lease' }).then(
        () => 'served',
        (err: Error) => err,
      );
      const outcome = await read;
      assert.ok(outcome instanceof NotLeaderError, `after the stall the leader has heard from no quorum for three election timeouts and steps down: got ${String(outcome)}`);
    });
  });

  test('a message read after a stall is stepped once the core has the ticks the stall missed: a heartbeat then restarts a whole election timeout', async () => {
    await withCluster('stalled-follower', async (c) => {
      const leader = await c.awaitLeader();
      await leader.node.apply(Buffer.from('x=1'));
      const follower = [...c.members.values()].find((m) => m !== leader)!;
      const internals = follower.node as unknown as {
        core: { step(m: PeerMessage): void };
        receive(m: PeerMessage): void;
        ticks: number;
        tickEpochMs: number;
        tickMs: number;
      };
      // How many ticks the core was short of the clock at each step.
      const ticksBehind: number[] = [];
      const step = internals.core.step.bind(internals.core);
      internals.core.step = (m) => {
        ticksBehind.push(Math.floor((performance.now() - internals.tickEpochMs) / internals.tickMs) - internals.ticks);
        step(m);
      };
      // The follower's loop stalls (a GC pause, a long synchronous apply)
      // for 700 ms just as a message reaches it, and reads it before its
      // tick timer runs again. Ticks counted after it would shorten the
      // election timeout the heartbeat resets, and the promise not to vote
      // that the leader's lease relies on.
      const receive = internals.receive.bind(follower.node);
      let stalled = false;
      internals.receive = (m) => {
        if (!stalled && (m.type === 'heartbeat' || m.type === 'append')) {
          stalled = true;
          const until = performance.now() + 700;
          while (performance.now() < until);
          ticksBehind.length = 0;
        }
        receive(m);
      };
      await eventually('the follower steps the message it read after its stall', () => stalled && ticksBehind.length > 0);
      assert.ok(ticksBehind[0] <= 1, `stepped ${ticksBehind[0]} ticks behind the clock`);
    });
  });

  test('a follower whose log append took longer than a heartbeat interval hands the next to the writer thread, and syncs on its own again once appends are fast', async () => {
    // Followers sync on their own thread when the writer is idle; on a disk
    // that slow they would answer no heartbeat meanwhile. The test slows one
    // follower's appends (resolving them late) and records how each was asked for.
    const original = SegmentLog.prototype.append;
    let slowDir: string | null = null;
    const calls: { dir: string; onCaller: boolean }[] = [];
    SegmentLog.prototype.append = function (this: SegmentLog, entries: readonly LogEntry[], options?: AppendOptions): Promise<void> {
      calls.push({ dir: this.dir, onCaller: options?.onCallerIfIdle === true });
      const done = original.call(this, entries, options);
      return this.dir === slowDir ? done.then(() => new Promise((r) => setTimeout(r, 600))) : done;
    };
    try {
      await withCluster(
        'slow-follower-disk',
        async (c) => {
          const leader = await c.awaitLeader();
          await leader.node.apply(Buffer.from('a=1'));
          const follower = [...c.members.values()].find((m) => m !== leader)!;
          const followerLog = path.join(follower.dir, 'log');
          await eventually('the follower applied a', () => follower.fsm.data.get('a') === '1');
          const asked = (from: number) => calls.slice(from).filter((call) => call.dir === followerLog).map((call) => call.onCaller);
          let from = calls.length;
          slowDir = followerLog;
          await leader.node.apply(Buffer.from('b=2'));
          await eventually('the follower applied b', () => follower.fsm.data.get('b') === '2');
          assert.deepEqual(asked(from), [true], 'the slow append ran on its own thread: the one before it was fast');
          slowDir = null;
          from = calls.length;
          await leader.node.apply(Buffer.from('c=3'));
          await eventually('the follower applied c', () => follower.fsm.data.get('c') === '3');
          assert.deepEqual(asked(from), [false], 'after a slow append, the writer thread takes the next');
          from = calls.length;
          await leader.node.apply(Buffer.from('d=4'));
          await eventually('the follower applied d', () => follower.fsm.data.get('d') === '4');
          assert.deepEqual(asked(from), [true], 'a fast append again: back on its own thread');
        },
        // Heartbeats far apart: an ordinary append, on a loaded machine too, takes much less.
        { electionTimeoutMs: 3000, heartbeatIntervalMs: 300 },
      );
    } finally {
      SegmentLog.prototype.append = original;
    }
  });

  test('a follower acknowledges an append before applying the entries its commit index released', async () => {
    // The leader waits for the acknowledgement to answer its client; nobody
    // waits for the follower's apply. Commit notices and heartbeats to the
    // follower are dropped, so each append is what tells it the one before
    // it committed, and both land in one Ready.
    const events: string[] = [];
    class RecordingMachine extends KvMachine {
      override onApply(batch: ApplyIterator): void {
        for (const cmd of batch) events.push(`${this === watched?.fsm ? 'follower' : 'other'} applies ${Buffer.from(cmd.data).toString()}`);
      }
    }
    let watched: Member | undefined;
    await withCluster(
      'ack-before-apply',
      async (c) => {
        const leader = await c.awaitLeader();
        await leader.node.apply(Buffer.from('warm=1'));
        watched = [...c.members.values()].find((m) => m !== leader)!;
        const follower = watched.node.id;
        await eventually('the follower applied warm', () => events.includes('follower applies warm=1'));
        const indexOf = new Map<number, string>();
        c.net.drop = (m) => {
          if (m.from === follower && m.type === 'appendResp' && indexOf.has(m.index)) events.push(`follower acknowledges ${indexOf.get(m.index)}`);
          return m.to === follower && (m.type === 'commit' || m.type === 'heartbeat');
        };
        for (const command of ['a=1', 'b=2', 'c=3']) {
          indexOf.set(leader.node.status().lastIndex + 1, command);
          await leader.node.apply(Buffer.from(command));
        }
        await eventually('the follower applied b', () => events.includes('follower applies b=2'));
        const order = events.filter((e) => e.startsWith('follower') && !e.includes('warm'));
        assert.ok(order.indexOf('follower acknowledges b=2') >= 0 && order.indexOf('follower acknowledges b=2') < order.indexOf('follower applies a=1'), order.join(', '));
        assert.ok(order.indexOf('follower acknowledges c=3') >= 0 && order.indexOf('follower acknowledges c=3') < order.indexOf('follower applies b=2'), order.join(', '));
      },
      { electionTimeoutMs: 3000, heartbeatIntervalMs: 300 },
      () => new RecordingMachine(),
    );
  });

  test('a command is awaited where it was proposed only: the state machines of the others may skip building its result', async () => {
    const awaited = new Map<KvMachine, boolean[]>();
    class AwaitRecordingMachine extends KvMachine {
      override onApply(batch: ApplyIterator): void {
        for (const cmd of batch) awaited.set(this, [...(awaited.get(this) ?? []), cmd.awaited]);
        super.onApply(batch);
      }
    }
    await withCluster(
      'awaited',
      async (c) => {
        const leader = await c.awaitLeader();
        await leader.node.apply(Buffer.from('x=1'));
        await eventually('every member applied x', () => [...c.members.values()].every((m) => m.fsm.data.get('x') === '1'));
        for (const m of c.members.values()) assert.deepEqual(awaited.get(m.fsm), [m === leader], m.node.id);
      },
      {},
      () => new AwaitRecordingMachine(),
    );
  });

  test('a forwarded write whose answer comes while the follower applies it asynchronously is of unknown outcome, not answered with a result built for nobody', async () => {
    let release: () => void = () => {};
    let applying = false;
    class GatedMachine extends KvMachine {
      gated = false;
      override async onApply(batch: ApplyIterator): Promise<void> {
        for (const cmd of batch) {
          if (this.gated && Buffer.from(cmd.data).toString() === 'slow=1') {
            applying = true;
            await new Promise<void>((resolve) => (release = resolve));
          }
          cmd.respond(cmd.awaited ? 'built' : 'skipped');
        }
      }
    }
    await withCluster(
      'forward-during-apply',
      async (c) => {
        const leader = await c.awaitLeader();
        await leader.node.apply(Buffer.from('warm=1'));
        const follower = [...c.members.values()].find((m) => m !== leader)!;
        (follower.fsm as GatedMachine).gated = true;
        await eventually('the follower knows its leader', () => follower.node.status().leader === leader.node.id);
        let held: PeerMessage | undefined;
        c.net.drop = (m) => m.type === 'forwardResp' && m.to === follower.node.id && (held = m) !== undefined;
        const outcome = follower.node.apply(Buffer.from('slow=1'), { forward: true }).then(
          (r) => r,
          (err: Error) => err,
        );
        await eventually('the follower applies the write, answer held back', () => applying && held !== undefined);
        c.net.drop = () => false;
        c.net.transport().send('g1', held!);
        await new Promise((r) => setTimeout(r, 50));
        release();
        const result = await outcome;
        assert.ok(result instanceof OutcomeUnknownError, `got ${String(result)}`);
      },
      {},
      () => new GatedMachine(),
    );
  });

  test('a follower forwards writes to the leader and answers once the write is applied locally', async () => {
    await withCluster('forward', async (c) => {
      const leader = await c.awaitLeader();
      await leader.node.apply(Buffer.from('warm=1'));
      const follower = [...c.members.values()].find((m) => m !== leader)!;
      await eventually('the follower knows its leader', () => follower.node.status().leader === leader.node.id);
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => follower.node.apply(Buffer.from(`f${i}=${i}`), { forward: true })));
      assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => `f${i} is ${i}`));
      for (let i = 0; i < 50; i++) assert.equal(follower.fsm.data.get(`f${i}`), String(i), 'applied on the follower when it answered');
      await eventually('the leader applied them too', () => leader.fsm.data.get('f49') === '49');
    });
  });

  test('a write forwarded to a leader that stops leading before it answers is of unknown outcome as soon as the follower learns it, not after its timeout', async () => {
    await withCluster(
      'forward-lost-leader',
      async (c) => {
        const leader = await c.awaitLeader();
        await leader.node.apply(Buffer.from('warm=1'));
        const follower = [...c.members.values()].find((m) => m !== leader)!;
        await eventually('the follower knows its leader', () => follower.node.status().leader === leader.node.id);
        // The leader is cut off (as if killed): the forward never reaches it, and the others elect another.
        c.net.isolate(leader.node.id, c.peers);
        const started = performance.now();
        const outcome = await follower.node.apply(Buffer.from('lost=1'), { forward: true }).then(
          () => 'applied',
          (err: Error) => err,
        );
        assert.ok(outcome instanceof OutcomeUnknownError, `got ${String(outcome)} after ${Math.round(performance.now() - started)} ms`);
        assert.match(outcome.message, new RegExp(`${leader.node.id}, the leader it was forwarded to, stopped leading`));
        assert.notEqual(follower.node.status().leader, leader.node.id);
      },
      { applyTimeoutMs: 20_000 },
    );
  });

  test('a follower read barrier sees every write acknowledged before it', async () => {
    await withCluster('read', async (c) => {
      const leader = await c.awaitLeader();
      const follower = [...c.members.values()].find((m) => m !== leader)!;
      for (let i = 0; i < 20; i++) await leader.node.apply(Buffer.from(`k=${i}`));
      await follower.node.readBarrier();
      assert.equal(follower.fsm.data.get('k'), '19');
    });
  });

  test('a follower read barrier whose entries never arrive fails with a timeout instead of waiting forever', async () => {
    await withCluster(
      'read-timeout',
      async (c) => {
        const leader = await c.awaitLeader();
        const follower = [...c.members.values()].find((m) => m !== leader)!;
        await eventually('the follower knows its leader', () => follower.node.status().leader === leader.node.id);
        // Heartbeats and the read index still flow; the entries the read must wait for never arrive.
        c.net.drop = (m) => m.type === 'append' && m.to === follower.node.id;
        await leader.node.apply(Buffer.from('x=1'));
        const outcome = await Promise.race([
          follower.node.readBarrier().then(() => 'resolved', (err: Error) => err),
          new Promise((r) => setTimeout(() => r('still waiting after 20 s'), 20_000)),
        ]);
        assert.ok(outcome instanceof TimeoutError, String(outcome));
      },
      { applyTimeoutMs: 2000 },
    );
  });

  test('a deposed leader applies exactly the committed entries after the new leader overwrote its uncommitted suffix', async () => {
    await withCluster(
      'overwrite',
      async (c) => {
        const deposed = await c.awaitLeader();
        await deposed.node.apply(Buffer.from('a=1'));
        const others = c.peers.filter((id) => id !== deposed.node.id);
        c.net.isolate(deposed.node.id, c.peers);
        // Written to the deposed leader's log, and so to its entry cache, but never committed.
        const lost = Array.from({ length: 5 }, (_, i) => deposed.node.apply(Buffer.from(`lost${i}=1`)).then(() => null, (err: Error) => err));
        await eventually('the others elect a new leader', () => others.some((id) => c.members.get(id)!.node.status().role === 'leader'));
        const leader = others.map((id) => c.members.get(id)!).find((m) => m.node.status().role === 'leader')!;
        for (let i = 0; i < 3; i++) await leader.node.apply(Buffer.from(`before${i}=${i}`));
        c.net.heal();
        await eventually('the deposed node caught up', () => deposed.fsm.history.length === leader.fsm.history.length);
        // From now on nothing commits before the deposed node has written it,
        // so it reads what it applies back from its log: through its cache.
        await c.stop(others.find((id) => id !== leader.node.id)!);
        for (let i = 0; i < 10; i++) await leader.node.apply(Buffer.from(`after${i}=${i}`));
        await eventually('the deposed node applied everything', () => deposed.fsm.history.length === leader.fsm.history.length);
        assert.deepEqual(deposed.fsm.history, leader.fsm.history);
        assert.ok(![...deposed.fsm.data.keys()].some((key) => key.startsWith('lost')), 'no lost write was applied');
        for (const outcome of await Promise.all(lost)) assert.ok(outcome instanceof NotLeaderError, `a lost write: ${String(outcome)}`);
      },
      { applyTimeoutMs: 60_000 },
    );
  });

  test('a restarted follower recovers from its log and catches up', async () => {
    await withCluster('restart', async (c) => {
      const leader = await c.awaitLeader();
      await leader.node.apply(Buffer.from('a=1'));
      const followerId = c.peers.find((id) => id !== leader.node.id)!;
      await c.stop(followerId);
      await leader.node.apply(Buffer.from('b=2'));
      const back = await c.start(followerId);
      await eventually('the restarted follower applied both writes', () => back.fsm.data.get('a') === '1' && back.fsm.data.get('b') === '2');
    });
  });

  test('when the leader stops, a new one is elected and no acknowledged write is lost', async () => {
    await withCluster('failover', async (c) => {
      const first = await c.awaitLeader();
      const acked: string[] = [];
      for (let i = 0; i < 30; i++) {
        await first.node.apply(Buffer.from(`key${i}=v${i}`));
        acked.push(`key${i}`);
      }
      await c.stop(first.node.id);
      const second = await c.awaitLeader();
      assert.notEqual(second.node.id, first.node.id);
      await second.node.apply(Buffer.from('after=1'));
      for (const key of acked) assert.ok(second.fsm.data.has(key), `${key} survived the failover`);
    });
  });

  test('a leader shut down with a write in its log answers it as of unknown outcome (the others may commit it), not as never applied', async () => {
    await withCluster('shutdown-in-flight', async (c) => {
      const leader = await c.awaitLeader();
      await leader.node.apply(Buffer.from('before=1'));
      c.net.isolate(leader.node.id, c.peers);
      const outcome = leader.node.apply(Buffer.from('inflight=1')).then(
        () => null,
        (err: unknown) => err,
      );
      await eventually('the write is in the leader\'s log', () => leader.node.status().lastIndex > leader.node.status().commit);
      await c.stop(leader.node.id);
      const err = await outcome;
      assert.ok(err instanceof OutcomeUnknownError, String(err));
      assert.match(err.message, /this node stopped \(the raft node is shutting down\) before it was applied here; another member may still commit it/);
    });
  });

  test('a follower shut down with a write forwarded to the leader answers it as of unknown outcome', async () => {
    await withCluster('shutdown-forwarded', async (c) => {
      const leader = await c.awaitLeader();
      await leader.node.apply(Buffer.from('before=1'));
      const follower = [...c.members.values()].find((m) => m !== leader)!;
      c.net.partition(follower.node.id, leader.node.id);
      const outcome = follower.node.apply(Buffer.from('forwarded=1'), { forward: true }).then(
        () => null,
        (err: unknown) => err,
      );
      await new Promise((r) => setTimeout(r, 50));
      await c.stop(follower.node.id);
      const err = await outcome;
      assert.ok(err instanceof OutcomeUnknownError, String(err));
      assert.equal(err.index, null);
      assert.match(err.message, /outcome of the forwarded command is unknown: this node stopped/);
    });
  });

  test('a command that is not bytes is refused at the call, and the node goes on', async () => {
    await withCluster('not-bytes', async (c) => {
      const leader = await c.awaitLeader();
      const untyped = leader.node.apply.bind(leader.node) as (data: unknown) => Promise<unknown>;
      for (const [data, name] of [['5', 'String'], [new Float32Array(2), 'Float32Array'], [new ArrayBuffer(4), 'ArrayBuffer']] as const) {
        await assert.rejects(untyped(data), (err: RaftError) => err.code === 'ERR_RAFTLINE_CONFIG' && err.message.endsWith(`must be a Uint8Array (a Buffer, say), not ${name}`));
      }
      assert.equal(await leader.node.apply(Buffer.from('after=1')), 'after is 1');
      assert.equal(leader.node.failure, null);
    });
  });

  test('a command too large for the transport is refused at the call, and the group goes on', async () => {
    const c = new TestCluster(path.join(root, 'too-large'), ['n1']);
    const transport = Object.assign(c.net.transport(), { maxMessageBytes: 1 << 20 });
    const node = (await c.start('n1', ['n1'], { transport })).node;
    try {
      await c.awaitLeader();
      await assert.rejects(
        node.apply(Buffer.alloc(1 << 20)),
        (err: RaftError) => err.code === 'ERR_RAFTLINE_TOO_LARGE' && /a command of 1048576 bytes cannot reach the followers \(the transport carries messages of 1048576 bytes at most\)/.test(err.message),
      );
      assert.equal(await node.apply(Buffer.from('fits=1')), 'fits is 1');
    } finally {
      await c.shutdown();
    }
  });

  test('a stopped leader reports neither role nor leader, and its state machine hears that leadership ended', async () => {
    class LeadershipMachine extends KvMachine {
      readonly events: string[] = [];
      onLeaderStart(term: number): void {
        this.events.push(`start ${term}`);
      }
      onLeaderStop(reason: Error): void {
        this.events.push(`stop: ${reason.message}`);
      }
    }
    await withCluster(
      'stopped-leader',
      async (c) => {
        const leader = await c.awaitLeader();
        await leader.node.apply(Buffer.from('k=1'));
        await leader.node.shutdown();
        const status = leader.node.status();
        assert.deepEqual([status.role, status.leader, status.stopped], ['follower', null, true]);
        const events = (leader.fsm as LeadershipMachine).events;
        assert.deepEqual(events.slice(-2), [`start ${status.term}`, 'stop: the raft node is shutting down'], events.join('; '));
        for (const [id, m] of c.members) if (m !== leader) assert.equal(m.node.status().stopped, false, id);
      },
      {},
      () => new LeadershipMachine(),
    );
  });

  test('a node started without peers joins when the leader adds it, and then counts as a voter', async () => {
    await withCluster('add', async (c) => {
      const leader = await c.awaitLeader();
      await leader.node.apply(Buffer.from('before=1'));
      const joiner = await c.start('n4', []);
      assert.deepEqual(joiner.node.status().configuration.voters, [], 'a joining node has no configuration of its own');
      await leader.node.addLearner('n4');
      await eventually('the learner caught up', () => joiner.fsm.data.get('before') === '1');
      await leader.node.promoteLearner('n4');
      await leader.node.apply(Buffer.from('after=1'));
      await eventually('n4 applied everything', () => joiner.fsm.data.get('before') === '1' && joiner.fsm.data.get('after') === '1');
      assert.deepEqual(
        Object.keys(leader.node.status().peers).sort(),
        ['n1', 'n2', 'n3', 'n4'].filter((id) => id !== leader.node.id),
        'the leader replicates to the new voter',
      );
    });
  });

  test('a configuration is committed between the commands around it, on every member and on replay', async () => {
    class OrderMachine extends KvMachine {
      readonly events: string[] = [];
      onApply(batch: ApplyIterator): void {
        for (const cmd of batch) this.events.push(Buffer.from(cmd.data).toString());
        super.onApply(batch);
      }
      onConfigurationCommitted(conf: Configuration): void {
        this.events.push(`conf ${conf.voters.join(',')}/${conf.learners.join(',')}`);
      }
    }
    await withCluster(
      'conf-order',
      async (c) => {
        const leader = await c.awaitLeader();
        await leader.node.apply(Buffer.from('warm=1'));
        // Proposed in one turn, so they commit (and apply) together; the
        // change is proposed at once, the commands when the turn's proposals are flushed.
        await Promise.all([leader.node.addLearner('n4'), leader.node.apply(Buffer.from('a=1')), leader.node.apply(Buffer.from('b=1'))]);
        const expected = ['warm=1', 'conf n1,n2,n3/n4', 'a=1', 'b=1'];
        for (const id of ['n1', 'n2', 'n3']) {
          const fsm = c.members.get(id)!.fsm as OrderMachine;
          await eventually(`${id} applied everything`, () => fsm.events.length >= expected.length);
          assert.deepEqual(fsm.events, expected, id);
        }
        const follower = [...c.members.keys()].find((id) => id !== leader.node.id)!;
        await c.stop(follower);
        const restarted = await c.start(follower);
        await eventually('the restarted member replayed its log', () => (restarted.fsm as OrderMachine).events.length >= expected.length);
        assert.deepEqual((restarted.fsm as OrderMachine).events, expected, 'replayed in the same order');
      },
      {},
      () => new OrderMachine(),
    );
  });

  test('a snapshot compacts the log, and a restart recovers from the snapshot plus the log after it', async () => {
    await withCluster(
      'snapshot-restart',
      async (c) => {
        const leader = await c.awaitLeader();
        for (let i = 0; i < 300; i++) await leader.node.apply(Buffer.from(`k${i % 50}=${i}`));
        const meta = await leader.node.snapshot();
        assert.ok(meta.index >= 300, `snapshot through ${meta.index}`);
        assert.deepEqual([...meta.configuration.voters].sort(), ['n1', 'n2', 'n3']);
        const status = leader.node.status();
        assert.equal(status.firstIndex, meta.index - 20 + 1, 'the log keeps snapshotKeepEntries below the snapshot');
        assert.equal(status.snapshot?.index, meta.index);
        await leader.node.apply(Buffer.from('after=1'));
        const id = leader.node.id;
        const expected = new Map(leader.fsm.data);
        await c.stop(id);
        const back = await c.start(id);
        assert.equal(back.fsm.applied, meta.index, 'the state machine was loaded from the snapshot before replay');
        await eventually('the restarted node replayed the log after the snapshot', () => back.fsm.data.get('after') === '1');
        assert.deepEqual(back.fsm.data, expected);

        // Without its snapshot the compacted log cannot rebuild the state: the node refuses to start and says why.
        await c.stop(id);
        const snapshots = path.join(back.dir, 'snapshots');
        const aside = path.join(c.root, `${id}-snapshots-aside`);
        await fs.rename(snapshots, aside);
        await assert.rejects(c.start(id), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ERR_RAFTLINE_STATE');
          assert.match(err.message, new RegExp(`starts at index ${status.firstIndex} but .* holds no snapshot`));
          return true;
        });
        await fs.rm(snapshots, { recursive: true, force: true });
        await fs.rename(aside, snapshots);
        const restored = await c.start(id);
        await eventually('with its snapshot back, the node replays the log after it', () => restored.fsm.data.get('after') === '1');
        assert.deepEqual(restored.fsm.data, expected);
      },
      { snapshotKeepEntries: 20, snapshotLogEntries: 0 },
    );
  });

  test('a node killed after a received snapshot was put in place but before its log was reset restarts from the snapshot, dropping log entries it does not match', async () => {
    // The snapshot comes from a one-node group restarted once, so its
    // entries carry a later term than those of a group that never restarted.
    const source = new TestCluster(path.join(root, 'align-source'), ['n1']);
    await source.start('n1');
    await source.awaitLeader();
    await source.stop('n1');
    const origin = await source.start('n1');
    await source.awaitLeader();
    for (let i = 0; i < 30; i++) await origin.node.apply(Buffer.from(`k${i}=source`));
    const snap = await origin.node.snapshot();
    const expected = new Map(origin.fsm.data);
    await source.shutdown();
    const snapshotDir = path.join(origin.dir, 'snapshots');
    const [snapName] = (await fs.readdir(snapshotDir)).filter((n) => n.endsWith('.snap'));

    // What the receiver holds when killed between the snapshot's rename and
    // the log reset: its old log, here entirely below the snapshot's index
    // ('behind') or past it with other terms ('diverged').
    for (const [name, writes] of [
      ['behind', 5],
      ['diverged', snap.index + 20],
    ] as const) {
      const target = new TestCluster(path.join(root, `align-${name}`), ['n1']);
      const receiver = await target.start('n1');
      await target.awaitLeader();
      for (let i = 0; i < writes; i++) await receiver.node.apply(Buffer.from(`t${i}=${name}`));
      const before = receiver.node.status();
      assert.ok(before.term < snap.term, `${name}: the receiver's entries are of term ${before.term}, the snapshot's ${snap.term}`);
      assert.equal(before.lastIndex > snap.index, name === 'diverged', `${name}: last index ${before.lastIndex}, snapshot ${snap.index}`);
      await target.stop('n1');
      await fs.copyFile(path.join(snapshotDir, snapName), path.join(receiver.dir, 'snapshots', snapName));

      const back = await target.start('n1');
      assert.equal(back.fsm.applied, snap.index, `${name}: the state machine was loaded from the snapshot`);
      assert.equal(back.node.status().firstIndex, snap.index + 1, `${name}: the log was reset past the snapshot`);
      await target.awaitLeader();
      assert.equal(await back.node.apply(Buffer.from('after=1')), 'after is 1');
      assert.deepEqual(back.fsm.data, new Map([...expected, ['after', '1']]), `${name}: nothing of the old log was applied over the snapshot`);
      await target.stop('n1');
      const again = await target.start('n1');
      await eventually(`${name}: a second restart replays the write after the snapshot`, () => again.fsm.data.get('after') === '1');
      assert.deepEqual(again.fsm.data, back.fsm.data);
      await target.shutdown();
    }
  });

  test('a snapshot message from the wire is ignored: only a complete, checked transfer installs one', async () => {
    await withCluster('wire-snapshot', async (c) => {
      const leader = await c.awaitLeader();
      await leader.node.apply(Buffer.from('a=1'));
      const follower = [...c.members.values()].find((m) => m !== leader)!;
      const term = leader.node.status().term;
      c.net.transport().send('g1', {
        type: 'snapshot',
        from: leader.node.id,
        to: follower.node.id,
        term,
        snapshot: { index: 1000, term, configuration: { voters: ['n1', 'n2', 'n3'], learners: [] } },
      });
      await new Promise((r) => setTimeout(r, 100));
      await leader.node.apply(Buffer.from('b=2'));
      await eventually('the follower applies the next write', () => follower.fsm.data.get('b') === '2');
      assert.ok(follower.fsm.applied < 1000, `applied ${follower.fsm.applied}`);
      assert.ok(follower.node.status().lastIndex < 1000);
    });
  });

  test('automatic snapshots fall after snapshotLogEntries entries plus up to half as many again, drawn apart on each member', async () => {
    const c = new TestCluster(path.join(root, 'snapshot-spread'), ['n1', 'n2', 'n3'], { snapshotLogEntries: 40, snapshotKeepEntries: 10 });
    // Each member's randomness: its snapshots fall every 40 + floor(r * 20) entries.
    const draws: Record<string, number> = { n1: 0, n2: 0.5, n3: 0.99 };
    const saved: Record<string, number[]> = { n1: [], n2: [], n3: [] };
    for (const id of c.peers) {
      await c.start(id, c.peers, { random: () => draws[id], onEvent: (e) => e.type === 'snapshotSaved' && saved[id].push(e.index) });
    }
    try {
      const leader = await c.awaitLeader();
      for (let i = 0; i < 150; i++) await leader.node.apply(Buffer.from(`k${i % 10}=${i}`));
      await eventually('every member took two snapshots', () => Object.values(saved).every((indexes) => indexes.length >= 2));
      for (const [id, r] of Object.entries(draws)) {
        const due = 40 + Math.floor(r * 20);
        const [first, second] = saved[id];
        // A member applies a few entries at a time at most here: one batch may carry it past the point.
        assert.ok(first >= due && first < due + 5, `${id}: first snapshot at ${first}, due at ${due}`);
        assert.ok(second - first >= due && second - first < due + 5, `${id}: second snapshot ${second - first} entries after the first`);
      }
    } finally {
      await c.shutdown();
    }
  });

  /** Stops a follower, writes 400 keys and snapshots the leader past them: the follower, restarted, needs the snapshot. */
  async function snapshotPastStoppedFollower(c: TestCluster): Promise<{ leader: Member; lagging: string; meta: SnapshotMeta }> {
    const leader = await c.awaitLeader();
    const lagging = c.peers.find((id) => id !== leader.node.id)!;
    await c.stop(lagging);
    for (let i = 0; i < 400; i++) await leader.node.apply(Buffer.from(`key${i}=${'v'.repeat(100)}${i}`));
    const meta = await leader.node.snapshot();
    return { leader, lagging, meta };
  }

  test('a follower that missed compacted entries catches up through a snapshot streamed in chunks over a lossy network', async () => {
    await withCluster(
      'snapshot-install',
      async (c) => {
        const { leader, lagging, meta } = await snapshotPastStoppedFollower(c);
        assert.ok(leader.node.status().firstIndex > 2, 'the leader compacted the entries the follower lacks');
        c.net.dropRate = 0.05;
        const back = await c.start(lagging);
        await eventually('the lagging follower holds the leader state', () => back.fsm.data.size === 400 && back.node.status().appliedIndex >= meta.index);
        c.net.dropRate = 0;
        assert.equal(back.node.status().snapshot?.index, meta.index, 'it installed the leader snapshot');
        assert.ok(back.node.status().firstIndex > meta.index, 'its log restarts after the snapshot');
        await leader.node.apply(Buffer.from('after=1'));
        await eventually('replication continues after the snapshot', () => back.fsm.data.get('after') === '1');
        assert.deepEqual(back.fsm.data, leader.fsm.data);
      },
      // Tiny chunks and window: the 40 KB snapshot takes dozens of round trips.
      { snapshotKeepEntries: 10, snapshotLogEntries: 0, snapshotChunkBytes: 1024, snapshotWindowBytes: 4096 },
    );
  });

  test('a follower closes the file of a snapshot transfer its leader stopped sending, and resumes from what it holds at the next offer', async () => {
    // Partial transfer files this process holds open, by path.
    const openPartials = async (dir: string) => {
      const links = await Promise.all((await fs.readdir('/proc/self/fd')).map((fd) => fs.readlink(`/proc/self/fd/${fd}`).catch(() => '')));
      return links.filter((l) => l.startsWith(dir) && /incoming-.*\.part$/.test(l));
    };
    await withCluster(
      'snapshot-quiet',
      async (c) => {
        const { lagging } = await snapshotPastStoppedFollower(c);
        // Eight chunks arrive, then nothing of the transfer at all, offers included.
        let delivered = 0;
        let cut = true;
        const heldAfterCut: number[] = [];
        c.net.drop = (m) => {
          if (m.type === 'snapshotChunkResp' && m.from === lagging && !cut) heldAfterCut.push(m.held);
          if (m.type !== 'snapshotChunk' || m.to !== lagging || !cut) return false;
          if (m.data.length === 0) return delivered >= 8;
          return ++delivered > 8;
        };
        const back = await c.start(lagging);
        const dir = path.resolve(back.dir);
        await eventually('the transfer started', async () => (await openPartials(dir)).length === 1);
        await eventually('the quiet transfer\'s file is closed', async () => (await openPartials(dir)).length === 0, 10_000);
        cut = false;
        await eventually('the lagging follower holds the leader state', () => back.fsm.data.size === 400);
        assert.ok(heldAfterCut.length > 0 && heldAfterCut[0] >= 8 * 1024, `the next offer resumed from the bytes held: ${heldAfterCut.slice(0, 3).join(', ')}`);
      },
      { snapshotKeepEntries: 10, snapshotLogEntries: 0, snapshotChunkBytes: 1024, snapshotWindowBytes: 4096, snapshotTimeoutMs: 600 },
    );
  });

  test('with onSnapshotCapture, commands keep applying while the snapshot is written, and the snapshot holds the captured state', async () => {
    await withCluster(
      'snapshot-capture',
      async (c) => {
        const leader = await c.awaitLeader();
        const fsm = leader.fsm as CapturingMachine;
        for (let i = 0; i < 100; i++) await leader.node.apply(Buffer.from(`k${i % 10}=${i}`));
        const expected = new Map(fsm.data);
        const gate = deferred();
        fsm.gate = gate.promise;
        let saved = false;
        const snapshot = leader.node.snapshot().finally(() => (saved = true));
        await eventually('the snapshot is being written', () => fsm.writing);
        const captured = fsm.captured!;
        assert.deepEqual(captured.data, expected);
        // Overwrites captured keys, and adds new ones, while the write is held.
        for (let i = 0; i < 30; i++) assert.equal(await leader.node.apply(Buffer.from(`k${i % 15}=late${i}`)), `k${i % 15} is late${i}`);
        assert.equal(saved, false, 'the snapshot is still being written');
        assert.equal(leader.node.status().snapshot, null, 'an unfinished snapshot is not the latest');
        assert.ok(leader.node.status().appliedIndex >= captured.applied + 30);
        gate.resolve();
        const meta = await snapshot;
        assert.equal(meta.index, captured.applied, 'the snapshot is at the captured index');
        assert.equal(leader.node.status().snapshot?.index, captured.applied);
        assert.equal(leader.node.status().firstIndex, meta.index - 20 + 1, 'the log was compacted below it');
        const live = new Map(fsm.data);
        const id = leader.node.id;
        await c.stop(id);
        const store = await SnapshotStore.open(path.join(leader.dir, 'snapshots'));
        const reader = await store.reader(store.latest!);
        const loaded = new KvMachine();
        await loaded.onSnapshotLoad(reader);
        await reader.close();
        assert.equal(loaded.applied, captured.applied);
        assert.deepEqual(loaded.data, expected, 'the file holds the captured state, not the later one');
        const back = await c.start(id);
        assert.equal(back.fsm.applied, meta.index, 'the restarted node loaded the snapshot');
        await eventually('the restarted node replayed the log after the snapshot', () => back.fsm.data.get('k14') === 'late29');
        assert.deepEqual(back.fsm.data, live);
      },
      { snapshotKeepEntries: 20, snapshotLogEntries: 0, applyTimeoutMs: 5000 },
      () => new CapturingMachine(),
    );
  });

  test('a node stopped while its snapshot is written in the background shuts down, and the partial snapshot is never used', async () => {
    await withCluster(
      'snapshot-capture-stop',
      async (c) => {
        const leader = await c.awaitLeader();
        const fsm = leader.fsm as CapturingMachine;
        for (let i = 0; i < 100; i++) await leader.node.apply(Buffer.from(`k${i}=${i}`));
        const gate = deferred();
        fsm.gate = gate.promise;
        const snapshot = leader.node.snapshot().then(
          () => null,
          (err: Error) => err,
        );
        await eventually('the snapshot is being written', () => fsm.writing);
        const id = leader.node.id;
        const stopped = await Promise.race([
          c.stop(id).then(() => 'stopped'),
          new Promise((r) => setTimeout(() => r('shutdown still waiting after 5 s'), 5000)),
        ]);
        assert.equal(stopped, 'stopped');
        assert.ok((await snapshot) instanceof Error, 'the snapshot was abandoned');
        assert.deepEqual(await fs.readdir(path.join(leader.dir, 'snapshots')), [], 'the partial file was removed');
        // The held writer resumes after the shutdown: its writes are refused.
        gate.resolve();
        await eventually('the abandoned writer was refused', () => fsm.writeError !== null);
        const back = await c.start(id);
        assert.equal(back.node.status().snapshot, null, 'no snapshot to start from');
        assert.equal(back.fsm.applied, 0);
        await eventually('the restarted node replayed its log', () => back.fsm.data.get('k99') === '99');
      },
      { snapshotLogEntries: 0 },
      () => new CapturingMachine(),
    );
  });

  test('resetPeers lets the last survivor of a group continue alone (unsafe recovery)', async () => {
    await withCluster('reset-peers', async (c) => {
      const leader = await c.awaitLeader();
      await leader.node.apply(Buffer.from('a=1'));
      const survivor = c.peers.find((id) => id !== leader.node.id)!;
      await eventually('the survivor applied a=1', () => c.members.get(survivor)!.fsm.data.get('a') === '1');
      for (const id of c.peers) if (id !== survivor) await c.stop(id);
      const node = c.members.get(survivor)!.node;
      await node.resetPeers([survivor]);
      await eventually('the survivor leads alone', () => node.status().role === 'leader');
      assert.equal(await node.apply(Buffer.from('b=2')), 'b is 2');
      assert.deepEqual(node.status().configuration.voters, [survivor]);
    });
  });
});
