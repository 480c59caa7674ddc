// The runtime around the pure core (braft's NodeImpl): it owns the timers,
// persists what the core asks (SegmentLog for entries, MetaStore for term and
// vote) before acting on it, sends through a Transport, and feeds committed
// entries to the StateMachine in order, one batch at a time (braft's FSMCaller).
import path from 'node:path';
import {
  DEFAULT_CORE_OPTIONS,
  EntryType,
  RaftCore,
  type ConfChange,
  type CoreStatus,
  type Entry,
  type LogReader,
  type NodeId,
  type ProposeResult,
  type Ready,
} from '../core/index.js';
import type { Configuration } from '../core/quorum.js';
import { MetaStore, SegmentLog } from '../log/index.js';
import { BusyError, NotLeaderError, RaftError, ShutdownError, TermMismatchError, TimeoutError } from './errors.js';
import type { ApplyIterator, Command, StateMachine } from './state-machine.js';
import type { PeerMessage, Transport } from '../transport/transport.js';

export interface RaftNodeOptions {
  groupId: string;
  id: NodeId;
  /** The initial voters (this node included). Recorded on first start; later starts use the log's configuration. */
  peers: NodeId[];
  dataDir: string;
  fsm: StateMachine;
  transport: Transport;
  /** Followers wait this long (to twice as long, randomized) without a leader before campaigning. Default 1000. */
  electionTimeoutMs?: number;
  /** Leader heartbeat period and the core's tick. Default 100. */
  heartbeatIntervalMs?: number;
  /** `apply()` rejects with TimeoutError after this long. Default 10000. */
  applyTimeoutMs?: number;
  segmentBytes?: number;
  /** 'none' skips fdatasync: for tests only. */
  sync?: 'batch' | 'none';
}

export interface NodeStatus extends CoreStatus {
  groupId: string;
  /** Index the state machine has applied. */
  appliedIndex: number;
}

interface Waiter {
  term: number;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Reads the durable part of a SegmentLog for the core. */
class SegmentLogReader implements LogReader {
  constructor(private readonly log: SegmentLog) {}

  firstIndex(): number {
    return this.log.firstIndex;
  }

  lastIndex(): number {
    return this.log.durableIndex;
  }

  term(index: number): number | undefined {
    return index === 0 ? 0 : this.log.termAt(index);
  }

  entries(from: number, toExclusive: number, maxBytes: number): Entry[] {
    return this.log.readSync(from, toExclusive, { maxBytes });
  }
}

class Batch implements ApplyIterator {
  constructor(private readonly commands: Command[]) {}
  get length(): number {
    return this.commands.length;
  }
  [Symbol.iterator](): Iterator<Command> {
    return this.commands[Symbol.iterator]();
  }
}

/**
 * A Raft group member: the braft programming model in TypeScript.
 *
 * ```ts
 * const node = await RaftNode.start({ groupId: 'kv', id: 'n1', peers: ['n1', 'n2', 'n3'],
 *   dataDir: './data/n1', fsm, transport });
 * const result = await node.apply(Buffer.from('set x 1'));
 * ```
 */
export class RaftNode {
  readonly groupId: string;
  readonly id: NodeId;
  private readonly core: RaftCore;
  private readonly waiters = new Map<number, Waiter>();
  private readonly readWaiters = new Map<number, { resolve: () => void; reject: (e: Error) => void; index: number }>();
  private readonly unregister: () => void;
  private readonly ticker: NodeJS.Timeout;
  private readonly applyTimeoutMs: number;
  private persistTail: Promise<void> = Promise.resolve();
  private applyTail: Promise<void> = Promise.resolve();
  private scheduled = false;
  private stopped: Error | null = null;
  private appliedIndex = 0;
  private requestIds = 0;
  private leader: NodeId | null = null;
  private role = 'follower';

  private constructor(
    private readonly opts: RaftNodeOptions,
    private readonly log: SegmentLog,
    private readonly meta: MetaStore,
    configuration: Configuration,
  ) {
    this.groupId = opts.groupId;
    this.id = opts.id;
    this.applyTimeoutMs = opts.applyTimeoutMs ?? 10_000;
    const tickMs = opts.heartbeatIntervalMs ?? 100;
    this.core = new RaftCore(
      {
        ...DEFAULT_CORE_OPTIONS,
        id: opts.id,
        electionTicks: Math.max(2, Math.round((opts.electionTimeoutMs ?? 1000) / tickMs)),
        heartbeatTicks: 1,
        random: Math.random,
      },
      new SegmentLogReader(log),
      { hardState: { term: meta.term, vote: meta.vote }, configuration, applied: 0 },
    );
    this.unregister = opts.transport.register(opts.groupId, opts.id, (m) => this.receive(m));
    this.ticker = setInterval(() => {
      this.core.tick();
      this.schedule();
    }, tickMs);
  }

  /** Opens (or recovers) the node's log and state and joins the group. */
  static async start(opts: RaftNodeOptions): Promise<RaftNode> {
    if (!opts.peers.includes(opts.id)) throw new RaftError(`peers must include this node (${opts.id})`, 'ERR_RAFTLINE_CONFIG');
    const log = await SegmentLog.open(path.join(opts.dataDir, 'log'), { segmentBytes: opts.segmentBytes, sync: opts.sync });
    const meta = await MetaStore.open(opts.dataDir);
    if (!Array.isArray(meta.state.bootstrap)) await meta.save({ bootstrap: opts.peers });
    const voters = meta.state.bootstrap as string[];
    return new RaftNode(opts, log, meta, { voters, learners: [] });
  }

  /**
   * Replicates `data` and resolves with what the state machine's `respond`
   * gave it once applied here. Rejects with NotLeaderError (with a leader
   * hint), TermMismatchError, BusyError, ShutdownError or TimeoutError.
   */
  apply(data: Uint8Array, options: { expectedTerm?: number } = {}): Promise<unknown> {
    return this.propose(() => this.core.propose([data], options), options.expectedTerm);
  }

  /** Resolves once local state reflects every write acknowledged before the call (linearizable read). */
  readBarrier(options: { mode?: 'readIndex' | 'lease' } = {}): Promise<void> {
    if (this.stopped) return Promise.reject(new ShutdownError());
    const requestId = ++this.requestIds;
    return new Promise<void>((resolve, reject) => {
      this.readWaiters.set(requestId, { resolve, reject, index: Number.MAX_SAFE_INTEGER });
      this.core.readIndex(requestId, options.mode ?? 'readIndex');
      this.schedule();
    });
  }

  addPeer(id: NodeId): Promise<unknown> {
    return this.changeConfiguration({ type: 'addVoter', id });
  }

  removePeer(id: NodeId): Promise<unknown> {
    return this.changeConfiguration({ type: 'removeVoter', id });
  }

  addLearner(id: NodeId): Promise<unknown> {
    return this.changeConfiguration({ type: 'addLearner', id });
  }

  promoteLearner(id: NodeId): Promise<unknown> {
    return this.changeConfiguration({ type: 'promoteLearner', id });
  }

  /** Moves to exactly these voters, through a joint configuration when more than one changes. */
  changePeers(voters: NodeId[]): Promise<unknown> {
    return this.changeConfiguration({ type: 'changeVoters', voters });
  }

  transferLeadership(to: NodeId): void {
    const r = this.core.transferLeadership(to);
    this.schedule();
    if (!r.ok) throw r.reason === 'notLeader' ? new NotLeaderError(this.core.currentLeader) : new BusyError(r.reason);
  }

  status(): NodeStatus {
    return { ...this.core.status(), groupId: this.groupId, appliedIndex: this.appliedIndex };
  }

  /** Stops the node: pending requests reject with ShutdownError, queued writes finish, the log closes. */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    this.stop(new ShutdownError());
    await this.persistTail.catch(() => undefined);
    await this.applyTail.catch(() => undefined);
    await this.log.close();
    this.opts.fsm.onShutdown?.();
  }

  // --------------------------------------------------------------- internals

  private changeConfiguration(change: ConfChange): Promise<unknown> {
    return this.propose(() => this.core.proposeConfChange(change));
  }

  private propose(run: () => ProposeResult, expectedTerm?: number): Promise<unknown> {
    if (this.stopped) return Promise.reject(new ShutdownError());
    const r = run();
    if (!r.ok) {
      switch (r.reason) {
        case 'notLeader':
          return Promise.reject(new NotLeaderError(r.leaderHint));
        case 'termMismatch':
          return Promise.reject(new TermMismatchError(expectedTerm ?? 0, r.term));
        case 'confChangeRefused':
          return Promise.reject(new BusyError(r.detail));
        default:
          return Promise.reject(new BusyError(r.reason === 'transferring' ? 'leadership is being transferred' : 'too many uncommitted entries'));
      }
    }
    this.schedule();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(r.index);
        reject(new TimeoutError(`command at index ${r.index}`, this.applyTimeoutMs));
      }, this.applyTimeoutMs);
      this.waiters.set(r.index, { term: r.term, resolve, reject, timer });
    });
  }

  private receive(m: PeerMessage): void {
    if (this.stopped || m.type === 'snapshotChunk' || m.type === 'snapshotChunkResp') return;
    this.core.step(m);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    // One pass per event-loop turn: everything that arrived in the turn
    // shares one Ready, one write and one round of messages.
    setImmediate(() => {
      this.scheduled = false;
      if (!this.stopped) this.drain();
    });
  }

  private drain(): void {
    while (!this.stopped && this.core.hasReady()) this.handle(this.core.ready());
  }

  private handle(r: Ready): void {
    for (const m of r.messages) this.opts.transport.send(this.groupId, m);
    const writes: Promise<unknown>[] = [];
    if (r.hardState) writes.push(this.meta.save({ term: r.hardState.term, vote: r.hardState.vote }));
    const last = r.entries[r.entries.length - 1];
    if (last) {
      const first = r.entries[0].index;
      // The log queues operations in call order, so the truncation lands first.
      if (first <= this.log.lastIndex) writes.push(this.log.truncateSuffix(first - 1));
      writes.push(this.log.append(r.entries));
    }
    const after = r.messagesAfterPersist;
    // Acknowledgements wait for this Ready's writes and every earlier one's.
    this.persistTail = Promise.all([this.persistTail, ...writes]).then(
      () => {
        if (this.stopped) return;
        if (last) this.core.persisted(last.index, last.term);
        for (const m of after) this.opts.transport.send(this.groupId, m);
        this.schedule();
      },
      (err: Error) => this.fail(err),
    );
    if (r.softState) this.leaderChanged(r.softState.role, r.softState.leader, r.softState.term);
    if (r.committed.length > 0) {
      const entries = r.committed;
      this.applyTail = this.applyTail.then(() => this.applyEntries(entries)).catch((err: Error) => this.fail(err));
    }
    for (const rs of r.readStates) {
      const w = this.readWaiters.get(rs.requestId);
      if (w) w.index = rs.index;
    }
    for (const f of r.readFailures) {
      const w = this.readWaiters.get(f.requestId);
      if (!w) continue;
      this.readWaiters.delete(f.requestId);
      w.reject(new NotLeaderError(f.leaderHint));
    }
    this.releaseReads();
  }

  private async applyEntries(entries: Entry[]): Promise<void> {
    if (this.stopped) return;
    const commands: Command[] = [];
    const responded = new Map<number, unknown>();
    for (const e of entries) {
      if (e.type === EntryType.Command) {
        commands.push({ index: e.index, term: e.term, data: e.data, respond: (value) => responded.set(e.index, value) });
      }
    }
    if (commands.length > 0) await this.opts.fsm.onApply(new Batch(commands));
    for (const e of entries) {
      if (e.type === EntryType.Config) this.opts.fsm.onConfigurationCommitted?.(this.core.configurationAt(e.index));
      const w = this.waiters.get(e.index);
      if (!w) continue;
      this.waiters.delete(e.index);
      clearTimeout(w.timer);
      // Another entry took the index: ours was lost with a leadership change.
      if (w.term === e.term) w.resolve(responded.get(e.index));
      else w.reject(new NotLeaderError(this.core.currentLeader));
    }
    const lastIndex = entries[entries.length - 1].index;
    this.appliedIndex = lastIndex;
    if (!this.stopped) {
      this.core.applied(lastIndex);
      this.releaseReads();
      this.schedule();
    }
  }

  private releaseReads(): void {
    for (const [id, w] of this.readWaiters) {
      if (w.index <= this.appliedIndex) {
        this.readWaiters.delete(id);
        w.resolve();
      }
    }
  }

  private leaderChanged(role: string, leader: NodeId | null, term: number): void {
    const fsm = this.opts.fsm;
    if (this.role === 'leader' && role !== 'leader') fsm.onLeaderStop?.(new NotLeaderError(leader));
    else if (this.leader !== null && this.leader !== this.id && leader !== this.leader) fsm.onStopFollowing?.({ leader: this.leader, term });
    if (role === 'leader' && this.role !== 'leader') fsm.onLeaderStart?.(term);
    else if (leader !== null && leader !== this.id && leader !== this.leader) fsm.onStartFollowing?.({ leader, term });
    this.role = role;
    this.leader = leader;
  }

  private fail(err: Error): void {
    if (this.stopped) return;
    const wrapped = err instanceof RaftError ? err : new RaftError(`raft node stopped: ${err.message}`, 'ERR_RAFTLINE_FATAL');
    this.stop(wrapped);
    this.opts.fsm.onError?.(wrapped);
  }

  private stop(reason: Error): void {
    this.stopped = reason;
    clearInterval(this.ticker);
    this.unregister();
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(reason);
    }
    this.waiters.clear();
    for (const w of this.readWaiters.values()) w.reject(reason);
    this.readWaiters.clear();
  }
}
