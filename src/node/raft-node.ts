// The runtime around the pure core (braft's NodeImpl): it owns the timers,
// persists what the core asks (SegmentLog for entries, MetaStore for term and
// vote) before acting on it, sends through a Transport, and feeds committed
// entries to the StateMachine in order, one batch at a time (braft's FSMCaller).
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  DEFAULT_CORE_OPTIONS,
  EntryType,
  MAX_CONFIGURATION_MEMBERS,
  RaftCore,
  type ConfChange,
  type CoreOptions,
  type CoreStatus,
  type Entry,
  type LogReader,
  type NodeId,
  type PeerStatus,
  type ProposeResult,
  type Ready,
  type SnapshotMeta,
} from '../core/index.js';
import { members, type Configuration } from '../core/quorum.js';
import { MetaStore, SegmentLog, type AppendOptions, type RecoveryReport } from '../log/index.js';
import type { ForwardProposal, ForwardProposalResponse, PeerMessage, SnapshotChunk, Transport } from '../transport/transport.js';
import { BusyError, InvalidChangeError, NotLeaderError, OutcomeUnknownError, RaftError, ShutdownError, TermMismatchError, TimeoutError } from './errors.js';
import { EntryCache } from './entry-cache.js';
import { SnapshotSender } from './snapshot-sender.js';
import { SnapshotStore, type SnapshotFile } from './snapshot-store.js';
import type { ApplyIterator, Command, SnapshotWrite, StateMachine } from './state-machine.js';

export interface RaftNodeOptions {
  groupId: string;
  id: NodeId;
  /**
   * The initial voters (this node included), recorded on first start; later
   * starts use the snapshot's and the log's configuration. Omit (or pass [])
   * for a node joining an existing group: it waits, without campaigning,
   * until the leader adds it (`addLearner`/`addPeer`) and replicates to it.
   */
  peers?: NodeId[];
  dataDir: string;
  fsm: StateMachine;
  transport: Transport;
  /** Followers wait this long (to twice as long, randomized) without a leader before campaigning. Default 1000. */
  electionTimeoutMs?: number;
  /** Leader heartbeat period and the core's tick. Default 100. */
  heartbeatIntervalMs?: number;
  /** `apply()` rejects with TimeoutError after this long. Default 10000. */
  applyTimeoutMs?: number;
  /** Take a snapshot this often (when anything was applied since the last one); 0: not on a timer. Default 3600000. */
  snapshotIntervalMs?: number;
  /**
   * Take a snapshot once this many entries were applied since the last one,
   * plus a random part of up to half as many again, so the members of a
   * group do not all take theirs at once; 0: not by log size. Default 100000.
   */
  snapshotLogEntries?: number;
  /** Entries kept in the log below a snapshot, so slightly lagging followers catch up without one. Default 10000. */
  snapshotKeepEntries?: number;
  /** Snapshot streaming: bytes per chunk (default 256 KiB) and unacknowledged bytes per follower (default 1 MiB). */
  snapshotChunkBytes?: number;
  snapshotWindowBytes?: number;
  /** A snapshot transfer without progress for this long is abandoned (and retried later). Default 30000. */
  snapshotTimeoutMs?: number;
  segmentBytes?: number;
  /**
   * Entries appended last are kept in memory until applied, so applying and
   * replicating them does not read them back from disk: at most this many
   * bytes of them (as records, headers included), the oldest dropped first.
   * The buffers they keep alive can be larger (a follower's entries are views
   * into the messages they arrived in). Default 32 MiB; 0 turns the cache off.
   */
  maxEntryCacheBytes?: number;
  /** 'none' skips fdatasync: for tests only. */
  sync?: 'batch' | 'none';
  /** Observes what the node does, for metrics and logs; must not throw. */
  onEvent?: (event: NodeEvent) => void;
  /** Uniform in [0, 1): where election timeouts and snapshot points fall. Default Math.random; tests pass their own. */
  random?: () => number;
}

/** What a node reports to `onEvent`. */
export type NodeEvent =
  | { type: 'roleChanged'; role: string; leader: NodeId | null; term: number }
  /** A log append (write + fdatasync) of `entries` became durable after `durationMs`. */
  | { type: 'appended'; entries: number; durationMs: number }
  | { type: 'applied'; entries: number }
  | { type: 'snapshotSaved'; index: number; bytes: number; durationMs: number }
  | { type: 'snapshotInstalled'; index: number; from: NodeId | null; durationMs: number }
  /** Opening the log repaired it (a torn tail cut off, an interrupted truncation finished). */
  | { type: 'logRepaired'; recovery: RecoveryReport };

export interface FollowerStatus extends PeerStatus {
  /** Entries the follower is behind the leader's last index. */
  lag: number;
  /** Present while a snapshot is being streamed to it. */
  snapshot?: { index: number; sentBytes: number; ackedBytes: number; totalBytes: number };
}

export interface NodeStatus extends Omit<CoreStatus, 'peers'> {
  groupId: string;
  /** Index the state machine has applied. */
  appliedIndex: number;
  /** First index still in the log (entries below it live in the snapshot). */
  firstIndex: number;
  configuration: Configuration;
  /** The latest snapshot on this node. */
  snapshot: SnapshotMeta | null;
  /** On the leader: each follower's replication state. */
  peers: Record<NodeId, FollowerStatus>;
  /** After shutdown() or a fatal error (see `failure`): the node neither leads nor follows (role follower, leader null). */
  stopped: boolean;
}

interface Waiter {
  term: number;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  /** Date.now() after which the call rejects with TimeoutError. */
  deadlineMs: number;
}

/** An apply() waiting for the next pass, where all of a turn's proposals go to the core together. */
interface QueuedProposal {
  data: Uint8Array;
  expectedTerm: number | undefined;
  /** On a follower: pass the command to the leader instead of refusing it. */
  forward: boolean;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  /** A follower's forwarded command: report the index it got instead of waiting here. */
  proposed?: (index: number, term: number) => void;
}

/** A forwarded command waiting for the leader to say which index it got. */
interface ForwardWaiter {
  /** The leader it went to, and the term it led. */
  leader: NodeId;
  term: number;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  deadlineMs: number;
}

/**
 * The node's SegmentLog, with the entries it appended last kept in memory:
 * the core reads the durable part of the log through it, and the node writes
 * the log only through it, so the cache and `base` always agree with the log.
 * Without the cache, every committed entry would be read back from disk
 * (pread, CRC check, decode) to be applied, since the core lets go of entries
 * once they are durable and they usually commit after that.
 */
class CachedLog implements LogReader {
  private readonly cache: EntryCache;

  /**
   * @param base the index and term of the entry just below the log's first
   * index (the snapshot's last entry, or the last one compacted away), which
   * the core needs to send the first entries that remain.
   */
  constructor(
    private readonly log: SegmentLog,
    private base: { index: number; term: number },
    maxCacheBytes: number,
  ) {
    this.cache = new EntryCache(log.lastIndex + 1, maxCacheBytes);
  }

  firstIndex(): number {
    return this.log.firstIndex;
  }

  lastIndex(): number {
    return this.log.durableIndex;
  }

  term(index: number): number | undefined {
    return index === this.base.index ? this.base.term : this.log.termAt(index);
  }

  entries(from: number, toExclusive: number, maxBytes: number): Entry[] {
    // The cache also holds entries still being written: those are left to
    // the log, which refuses to read them, as the core must never ask it to.
    const cached = toExclusive - 1 <= this.log.durableIndex ? this.cache.read(from, toExclusive, maxBytes) : undefined;
    return cached ?? this.log.readSync(from, toExclusive, { maxBytes });
  }

  /** Appends entries after the last index, or over the log from entries[0].index on (a conflicting suffix); resolves once durable. */
  append(entries: readonly Entry[], options?: AppendOptions): Promise<void> {
    const first = entries[0].index;
    // The log queues operations in call order, so the truncation lands first.
    const truncated = first <= this.log.lastIndex ? this.log.truncateSuffix(first - 1) : null;
    const appended = this.log.append(entries, options);
    this.cache.append(entries);
    return truncated ? Promise.all([truncated, appended]).then(() => undefined) : appended;
  }

  /** The state machine applied entries through `index`: if they are ever needed again, they are read from disk. */
  applied(index: number): void {
    this.cache.dropBelow(index + 1);
  }

  /** Compaction: drops entries below `firstKept`; the entry before it has `baseTerm`. */
  truncatePrefix(firstKept: number, baseTerm: number): Promise<void> {
    // Valid before and after the truncation, so the core never sees a gap.
    this.base = { index: firstKept - 1, term: baseTerm };
    this.cache.dropBelow(firstKept);
    return this.log.truncatePrefix(firstKept);
  }

  /** Empties the log, to continue after a snapshot through `snap`. */
  reset(snap: { index: number; term: number }): Promise<void> {
    this.base = { index: snap.index, term: snap.term };
    this.cache.reset(snap.index + 1);
    return this.log.reset(snap.index + 1);
  }
}

/** Room left in a transport message for the rest of an append carrying one entry (its header, ids, the entry's index, term and framing). */
const APPEND_ENVELOPE_BYTES = 4 << 10;

/** A command being applied; its result waits here (no closure per command) for the proposer. */
class AppliedCommand implements Command {
  result: unknown = undefined;
  constructor(
    readonly index: number,
    readonly term: number,
    readonly data: Uint8Array,
    readonly awaited: boolean,
  ) {}

  respond(result: unknown): void {
    this.result = result;
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

const SNAPSHOT_RETRY_MS = 10_000;
/** How early, per performance.now(), a timer may fire and still count (libuv's clock is in whole milliseconds). */
const TIMER_SLACK_MS = 2;
/** Ticks given at most after a stall; past a few election timeouts, more change nothing. */
const MAX_CATCH_UP_TICKS = 1000;

/** What a node recovers from its data directory before the core starts. */
interface Recovered {
  log: SegmentLog;
  meta: MetaStore;
  store: SnapshotStore;
  configuration: Configuration;
  applied: { index: number; term: number };
}

/** A voter listed twice would count twice toward every quorum. */
function refuseRepeats(ids: readonly NodeId[], what: string): void {
  const repeated = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (repeated.length > 0) throw new RaftError(`${what} lists ${[...new Set(repeated)].join(', ')} more than once`, 'ERR_RAFTLINE_CONFIG');
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
  private core: RaftCore;
  private readonly log: SegmentLog;
  private readonly meta: MetaStore;
  private readonly store: SnapshotStore;
  private readonly cachedLog: CachedLog;
  private readonly waiters = new Map<number, Waiter>();
  private readonly readWaiters = new Map<number, { resolve: () => void; reject: (e: Error) => void; index: number; deadlineMs: number }>();
  private readonly senders = new Map<NodeId, SnapshotSender>();
  private proposals: QueuedProposal[] = [];
  private readonly forwarded = new Map<number, ForwardWaiter>();
  private readonly unregister: () => void;
  private readonly ticker: NodeJS.Timeout;
  private readonly tickMs: number;
  /** How long the last log append took to become durable: a follower syncs on its own thread only while this is short. */
  private lastAppendMs = 0;
  private readonly applyTimeoutMs: number;
  private persistTail: Promise<void> = Promise.resolve();
  private applyTail: Promise<void> = Promise.resolve();
  private receiveTail: Promise<void> = Promise.resolve();
  /** The snapshot being taken, from waiting for the apply chain until it is saved and the log compacted (its write may run in the background). */
  private snapshotting: Promise<SnapshotMeta> | null = null;
  /** Aborted when the node stops: abandons a snapshot still being written. */
  private readonly stopping = new AbortController();
  private lastSnapshotMs = Date.now();
  /** Applied entries past the latest snapshot that make the next one due (see drawSnapshotDue). */
  private snapshotDueEntries: number;
  /** After a failed snapshot (a full disk, say), automatic ones wait until then instead of trying every tick. */
  private snapshotRetryAtMs = 0;
  private scheduled = false;
  private stopped: Error | null = null;
  private closing: Promise<void> | null = null;
  private appliedIndex: number;
  /**
   * The last index of the batch the state machine is applying (it may take
   * turns, `onApply` being async), or of the last one applied: results
   * in it were built before a waiter registered now could be told of.
   */
  private applyingIndex = 0;
  private appliedTerm: number;
  private ticks = 0;
  /** The tick of the last snapshot chunk received. */
  private lastChunkTick = 0;
  /**
   * Ticks are counted from here, not from timer callbacks. Set a little in
   * the past, so a timer that fires a hair before its time per
   * performance.now() still brings its tick.
   */
  private readonly tickEpochMs = performance.now() - TIMER_SLACK_MS;
  /**
   * Ids of reads and forwarded proposals. They start at a random point, so
   * a late answer to a request of an earlier RaftNode for this member (one
   * restarted in this process) cannot match a new request.
   */
  private requestIds = Math.floor(Math.random() * 2 ** 40);
  private leader: NodeId | null = null;
  private role = 'follower';

  private constructor(
    private readonly opts: RaftNodeOptions,
    recovered: Recovered,
  ) {
    this.groupId = opts.groupId;
    this.id = opts.id;
    this.log = recovered.log;
    this.meta = recovered.meta;
    this.store = recovered.store;
    this.applyTimeoutMs = opts.applyTimeoutMs ?? 10_000;
    this.tickMs = opts.heartbeatIntervalMs ?? 100;
    this.snapshotDueEntries = this.drawSnapshotDue();
    this.appliedIndex = recovered.applied.index;
    this.appliedTerm = recovered.applied.term;
    const snap = this.store.latest?.meta;
    const base = snap && this.log.firstIndex === snap.index + 1 ? { index: snap.index, term: snap.term } : { index: 0, term: 0 };
    this.cachedLog = new CachedLog(this.log, base, opts.maxEntryCacheBytes ?? 32 * 1024 * 1024);
    this.core = this.createCore(recovered.configuration);
    this.unregister = opts.transport.register(opts.groupId, opts.id, (m) => this.receive(m));
    this.ticker = setInterval(() => this.tick(), this.tickMs);
    const { recovery } = this.log;
    if (recovery.truncatedBytes > 0 || recovery.removedSegments > 0 || recovery.replayedTruncation) opts.onEvent?.({ type: 'logRepaired', recovery });
  }

  /** Opens (or recovers) the node's log, state and latest snapshot, and joins the group. */
  static async start(opts: RaftNodeOptions): Promise<RaftNode> {
    const peers = opts.peers ?? [];
    const heartbeatMs = opts.heartbeatIntervalMs ?? 100;
    const electionMs = opts.electionTimeoutMs ?? 1000;
    // Ticks are heartbeats; an election timeout shorter than two would be quietly stretched to two.
    if (!(heartbeatMs > 0 && electionMs >= 2 * heartbeatMs)) {
      throw new RaftError(`electionTimeoutMs (${electionMs}) must be at least twice heartbeatIntervalMs (${heartbeatMs}), and both positive`, 'ERR_RAFTLINE_CONFIG');
    }
    if (peers.length > 0 && !peers.includes(opts.id)) throw new RaftError(`peers must include this node (${opts.id})`, 'ERR_RAFTLINE_CONFIG');
    refuseRepeats(peers, 'peers');
    if (peers.length > MAX_CONFIGURATION_MEMBERS) throw new RaftError(`peers names ${peers.length} nodes; a configuration may name at most ${MAX_CONFIGURATION_MEMBERS}`, 'ERR_RAFTLINE_CONFIG');
    const log = await SegmentLog.open(path.join(opts.dataDir, 'log'), { segmentBytes: opts.segmentBytes, sync: opts.sync });
    try {
      const meta = await MetaStore.open(opts.dataDir);
      if (!Array.isArray(meta.state.bootstrap)) await meta.save({ bootstrap: peers });
      const store = await SnapshotStore.open(path.join(opts.dataDir, 'snapshots'));
      let configuration: Configuration = { voters: meta.state.bootstrap as NodeId[], learners: [] };
      let applied = { index: 0, term: 0 };
      const snap = store.latest;
      if (snap) {
        if (!opts.fsm.onSnapshotLoad) {
          throw new RaftError(`${store.dir} holds a snapshot but the state machine has no onSnapshotLoad`, 'ERR_RAFTLINE_CONFIG');
        }
        const reader = await store.reader(snap);
        try {
          await opts.fsm.onSnapshotLoad(reader);
        } finally {
          await reader.close();
        }
        configuration = snap.meta.configuration;
        applied = { index: snap.meta.index, term: snap.meta.term };
        await alignLog(log, snap.meta);
      } else if (log.firstIndex > 1) {
        throw new RaftError(
          `the log in ${opts.dataDir} starts at index ${log.firstIndex} but ${store.dir} holds no snapshot: entries 1-${log.firstIndex - 1} ` +
            'were compacted into a snapshot that is gone; put that snapshot file back, or rebuild this member (remove it from the group, empty its data directory, add it back)',
          'ERR_RAFTLINE_STATE',
        );
      }
      // A follower may sync entries of a new term before its save of that
      // term lands (the two writes go to different files), and a received
      // snapshot likewise. A term on disk must never be newer than the saved
      // one; no vote in it can have been cast without that save.
      const newestTerm = Math.max(log.termAt(log.lastIndex) ?? 0, snap?.meta.term ?? 0);
      if (newestTerm > meta.term) await meta.save({ term: newestTerm, vote: null });
      return new RaftNode(opts, { log, meta, store, configuration, applied });
    } catch (err) {
      await log.close();
      throw err;
    }
  }

  /**
   * Replicates `data` and resolves with what the state machine's `respond`
   * gave it once applied here. Rejects with NotLeaderError (with a leader
   * hint), TermMismatchError, BusyError, ShutdownError (stopped before the
   * command reached the log), TimeoutError, or OutcomeUnknownError (the
   * entry's fate is unknown: a snapshot replaced it, or the node stopped
   * with the command in its log or with the leader).
   *
   * The node keeps `data` without copying it, and the state machine may be
   * handed this very buffer: do not modify it after the call.
   *
   * With `forward`, a follower passes the command to its leader and resolves
   * once the entry is applied here (the state machine is deterministic, so
   * the result is the leader's); `expectedTerm` is then not allowed.
   */
  apply(data: Uint8Array, options: { expectedTerm?: number; forward?: boolean } = {}): Promise<unknown> {
    if (this.stopped) return Promise.reject(this.stopped);
    // Refused here, not by the log after it was proposed, where it would stop the node.
    if (Object.prototype.toString.call(data) !== '[object Uint8Array]') {
      return Promise.reject(new RaftError(`apply: the command must be a Uint8Array (a Buffer, say), not ${Object.prototype.toString.call(data).slice(8, -1)}`, 'ERR_RAFTLINE_CONFIG'));
    }
    // Sent to a follower alone, a larger entry would be dropped by the
    // transport every time, and no other entry could ever commit after it.
    const maxCommandBytes = (this.opts.transport.maxMessageBytes ?? Infinity) - APPEND_ENVELOPE_BYTES;
    if (data.byteLength > maxCommandBytes) {
      return Promise.reject(new RaftError(`apply: a command of ${data.byteLength} bytes cannot reach the followers (the transport carries messages of ${this.opts.transport.maxMessageBytes} bytes at most)`, 'ERR_RAFTLINE_TOO_LARGE'));
    }
    if (options.forward && options.expectedTerm !== undefined) {
      return Promise.reject(new RaftError('expectedTerm cannot be combined with forward', 'ERR_RAFTLINE_CONFIG'));
    }
    return new Promise((resolve, reject) => {
      this.proposals.push({ data, expectedTerm: options.expectedTerm, forward: options.forward === true, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once local state reflects every write acknowledged before the call (linearizable read). */
  readBarrier(options: { mode?: 'readIndex' | 'lease' } = {}): Promise<void> {
    if (this.stopped) return Promise.reject(this.stopped);
    const requestId = ++this.requestIds;
    // A lease is judged by the core's tick count: it must be current.
    if (options.mode === 'lease') this.catchUpTicks();
    return new Promise<void>((resolve, reject) => {
      this.readWaiters.set(requestId, { resolve, reject, index: Number.MAX_SAFE_INTEGER, deadlineMs: Date.now() + this.applyTimeoutMs });
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

  removeLearner(id: NodeId): Promise<unknown> {
    return this.changeConfiguration({ type: 'removeLearner', id });
  }

  promoteLearner(id: NodeId): Promise<unknown> {
    return this.changeConfiguration({ type: 'promoteLearner', id });
  }

  /** Moves to exactly these voters, through a joint configuration when more than one changes. */
  changePeers(voters: NodeId[]): Promise<unknown> {
    return this.changeConfiguration({ type: 'changeVoters', voters });
  }

  /** Hands leadership to `to` once it has caught up; throws NotLeaderError, or InvalidChangeError when `to` cannot lead. */
  transferLeadership(to: NodeId): void {
    const r = this.core.transferLeadership(to);
    this.schedule();
    if (!r.ok) throw r.reason === 'notLeader' ? new NotLeaderError(this.core.currentLeader) : new InvalidChangeError(r.reason);
  }

  /**
   * Snapshots the state machine at its applied index and compacts the log
   * below it. With `onSnapshotCapture`, applying pauses only for the capture
   * and the state is written in the background; with `onSnapshotSave`,
   * applying pauses while the state machine writes. Concurrent calls share
   * one snapshot; resolves with its metadata.
   */
  snapshot(): Promise<SnapshotMeta> {
    if (this.stopped) return Promise.reject(this.stopped);
    const fsm = this.opts.fsm;
    if (!fsm.onSnapshotCapture && !fsm.onSnapshotSave) {
      return Promise.reject(new RaftError('the state machine has neither onSnapshotCapture nor onSnapshotSave', 'ERR_RAFTLINE_CONFIG'));
    }
    if (this.snapshotting) return this.snapshotting;
    let run: Promise<SnapshotMeta>;
    if (fsm.onSnapshotCapture) {
      // The capture takes the apply chain's turn; the write and the compaction
      // run beside it, tracked by `snapshotting` (which shutdown awaits).
      const captured = this.applyTail.then(() => this.captureSnapshot());
      this.applyTail = captured.then(
        () => undefined,
        () => undefined,
      );
      run = captured.then((c) => ('write' in c ? this.saveSnapshot(c.meta, c.write) : c));
    } else {
      run = this.applyTail.then(() => this.captureSnapshot()).then((c) => ('write' in c ? this.saveSnapshot(c.meta, c.write) : c));
    }
    const settled = run.then(
      () => undefined,
      (err: Error) => {
        // Abandoned by a stopping node: nothing to report.
        if (this.stopped) return;
        // A failed snapshot costs nothing but log space: report it, keep going.
        this.snapshotRetryAtMs = Date.now() + SNAPSHOT_RETRY_MS;
        this.opts.fsm.onError?.(new RaftError(`snapshot failed: ${err.message}`, 'ERR_RAFTLINE_SNAPSHOT'));
      },
    );
    if (!fsm.onSnapshotCapture) this.applyTail = settled;
    const shared = run.finally(() => {
      this.snapshotting = null;
    });
    this.snapshotting = shared;
    return shared;
  }

  /**
   * UNSAFE recovery after a majority is lost for good (braft's reset_peers,
   * etcd's --force-new-cluster): makes `voters` this node's configuration
   * without consensus, by appending a configuration entry in a new term to the
   * local log. Call it on every surviving member with the same voters; one of
   * them is then elected by the survivors alone. Entries that were committed
   * only on the lost members are lost, and uncommitted entries of the
   * survivors may become committed. Never use it while a majority can still
   * come back.
   */
  async resetPeers(voters: NodeId[]): Promise<void> {
    if (this.stopped) throw this.stopped;
    if (voters.length === 0) throw new RaftError('resetPeers needs at least one voter', 'ERR_RAFTLINE_CONFIG');
    refuseRepeats(voters, 'resetPeers');
    if (voters.length > MAX_CONFIGURATION_MEMBERS) throw new RaftError(`resetPeers names ${voters.length} nodes; a configuration may name at most ${MAX_CONFIGURATION_MEMBERS}`, 'ERR_RAFTLINE_CONFIG');
    // Let every queued write land, so the new entry follows the durable log,
    // and every handed-out entry be applied, so the new core starts where the state machine is.
    await this.persistTail;
    await this.applyTail;
    if (this.stopped) throw this.stopped;
    this.abandonRequests(new NotLeaderError(null), 'the configuration was reset (resetPeers)');
    const term = this.core.currentTerm + 1;
    const configuration: Configuration = { voters: [...new Set(voters)], learners: [] };
    const entry = { index: this.log.lastIndex + 1, term, type: EntryType.Config, data: new TextEncoder().encode(JSON.stringify(configuration)) };
    await this.meta.save({ term, vote: null });
    await this.cachedLog.append([entry]);
    this.core = this.createCore(this.core.configurationAt(this.appliedIndex));
    this.leaderChanged('follower', null, term);
    this.schedule();
  }

  /** Role, term, leader, commit and applied index, configuration, snapshot, and on the leader each follower's progress. */
  /** The current term, without the rest of `status()` (every etcd-API answer carries it). */
  get term(): number {
    return this.core.currentTerm;
  }

  status(): NodeStatus {
    const core = this.core.status();
    const peers: Record<NodeId, FollowerStatus> = {};
    for (const [id, p] of Object.entries(core.peers)) {
      const sender = this.senders.get(id);
      peers[id] = { ...p, lag: Math.max(0, core.lastIndex - p.match), ...(sender ? { snapshot: { index: sender.index, ...sender.progress } } : {}) };
    }
    return {
      ...core,
      // The core stopped where it was: a stopped leader must not look like one.
      ...(this.stopped ? { role: 'follower' as const, leader: null } : {}),
      stopped: this.stopped !== null,
      peers,
      groupId: this.groupId,
      appliedIndex: this.appliedIndex,
      firstIndex: this.log.firstIndex,
      configuration: this.core.configuration,
      snapshot: this.store.latest?.meta ?? null,
    };
  }

  /**
   * The fatal error that stopped this node (a failed log or state write,
   * say), or null while it runs or after a plain shutdown. A stopped node
   * stays stopped: `shutdown()` it, then start a new one from the data
   * directory, as a restarted process would.
   */
  get failure(): RaftError | null {
    return this.stopped instanceof RaftError && !(this.stopped instanceof ShutdownError) ? this.stopped : null;
  }

  /**
   * Stops the node: pending requests reject with ShutdownError, queued writes
   * finish, the log closes. After a failure it releases the files, so the
   * data directory can be opened again.
   */
  shutdown(): Promise<void> {
    if (!this.stopped) this.stop(new ShutdownError());
    this.closing ??= this.close();
    return this.closing;
  }

  private async close(): Promise<void> {
    await this.persistTail.catch(() => undefined);
    // persistTail rejects with a Ready's first failed write, maybe while its term and vote still save.
    await this.meta.idle();
    await this.applyTail.catch(() => undefined);
    // A snapshot write in the background was abandoned by stop(): its partial file is gone once this settles.
    await this.snapshotting?.catch(() => undefined);
    await this.receiveTail.catch(() => undefined);
    await this.store.close();
    await this.log.close();
    this.opts.fsm.onShutdown?.();
  }

  // --------------------------------------------------------------- internals

  private createCore(configuration: Configuration): RaftCore {
    const options: CoreOptions = {
      ...DEFAULT_CORE_OPTIONS,
      id: this.id,
      electionTicks: Math.max(2, Math.round((this.opts.electionTimeoutMs ?? 1000) / this.tickMs)),
      heartbeatTicks: 1,
      random: this.opts.random ?? Math.random,
    };
    return new RaftCore(options, this.cachedLog, {
      hardState: { term: this.meta.term, vote: this.meta.vote },
      configuration,
      applied: this.appliedIndex,
    });
  }

  private tick(): void {
    this.catchUpTicks();
    this.checkSenders();
    this.closeQuietTransfer();
    this.expireWaiters();
    this.maybeSnapshot();
    this.schedule();
  }

  /**
   * Gives the core one tick for every tickMs that has passed. Timers fire
   * late, and a stalled event loop (a long GC pause, SIGSTOP, a slow
   * synchronous apply) misses them altogether; the core counts time only in
   * ticks, for election timeouts and for the lease of lease reads, so a
   * leader stalled past its lease would otherwise resume believing it holds it.
   */
  /** Whether it gave the core any tick. */
  private catchUpTicks(): boolean {
    const due = Math.floor((performance.now() - this.tickEpochMs) / this.tickMs);
    if (this.ticks >= due) return false;
    // After a very long stall every timeout has run out many times over: more ticks change nothing.
    this.ticks = Math.max(this.ticks, due - MAX_CATCH_UP_TICKS);
    while (this.ticks < due) {
      this.ticks++;
      this.core.tick();
    }
    return true;
  }

  private changeConfiguration(change: ConfChange): Promise<unknown> {
    return this.propose(() => this.core.proposeConfChange(change));
  }

  private propose(run: () => ProposeResult): Promise<unknown> {
    if (this.stopped) return Promise.reject(this.stopped);
    const r = run();
    if (!r.ok) return Promise.reject(this.refusal(r, undefined));
    this.schedule();
    return new Promise((resolve, reject) => this.wait(r.index, r.term, resolve, reject));
  }

  /**
   * Hands the turn's queued apply() calls to the core in as few proposals as
   * possible, so a burst of commands becomes one append and one message per
   * follower instead of one each.
   */
  private flushProposals(): void {
    let queued = this.proposals;
    this.proposals = [];
    const leader = this.core.currentLeader;
    if (this.core.currentRole !== 'leader' && leader !== null && leader !== this.id) {
      for (const p of queued) if (p.forward) this.forward(leader, p);
      queued = queued.filter((p) => !p.forward);
    }
    for (let from = 0; from < queued.length; ) {
      const expectedTerm = queued[from].expectedTerm;
      let to = from + 1;
      while (to < queued.length && queued[to].expectedTerm === expectedTerm) to++;
      const group = queued.slice(from, to);
      const r = this.core.propose(
        group.map((p) => p.data),
        { expectedTerm },
      );
      if (r.ok) {
        const first = r.index - group.length + 1;
        group.forEach((p, i) => (p.proposed ? p.proposed(first + i, r.term) : this.wait(first + i, r.term, p.resolve, p.reject)));
      } else {
        const err = this.refusal(r, expectedTerm);
        for (const p of group) p.reject(err);
      }
      from = to;
    }
  }

  private forward(leader: NodeId, p: QueuedProposal): void {
    const requestId = ++this.requestIds;
    this.forwarded.set(requestId, { leader, term: this.core.currentTerm, resolve: p.resolve, reject: p.reject, deadlineMs: Date.now() + this.applyTimeoutMs });
    this.opts.transport.send(this.groupId, { type: 'forward', from: this.id, to: leader, term: this.core.currentTerm, requestId, data: p.data });
  }

  /** The leader's side: propose a follower's command with this turn's, and tell it the index. */
  private acceptForwarded(m: ForwardProposal): void {
    const answer = (index: number, error: RaftError | null) =>
      this.opts.transport.send(this.groupId, {
        type: 'forwardResp',
        from: this.id,
        to: m.from,
        term: this.core.currentTerm,
        requestId: m.requestId,
        index,
        error: error?.code ?? '',
        leaderHint: error instanceof NotLeaderError ? error.leaderHint : null,
      });
    this.proposals.push({
      data: m.data,
      expectedTerm: undefined,
      forward: false,
      resolve: () => undefined,
      reject: (err) => answer(0, err instanceof RaftError ? err : new RaftError(err.message, 'ERR_RAFTLINE_FATAL')),
      proposed: (index) => answer(index, null),
    });
    this.schedule();
  }

  private forwardAnswered(m: ForwardProposalResponse): void {
    const w = this.forwarded.get(m.requestId);
    if (!w) return;
    this.forwarded.delete(m.requestId);
    if (m.error === 'ERR_RAFTLINE_NOT_LEADER') w.reject(new NotLeaderError(m.leaderHint));
    else if (m.error) w.reject(new BusyError(`the leader refused the command (${m.error})`));
    // Applied here (or being applied) before the answer came: the entry is known, its result is not.
    else if (m.index <= Math.max(this.appliedIndex, this.applyingIndex)) w.reject(new OutcomeUnknownError(m.index, 'it was applied before the leader answered'));
    else this.wait(m.index, m.term, w.resolve, w.reject);
  }

  private wait(index: number, term: number, resolve: (value: unknown) => void, reject: (err: Error) => void): void {
    // An earlier proposal at this index (an older term) was overwritten in
    // this node's log; another member may still hold it and commit it.
    this.waiters.get(index)?.reject(new OutcomeUnknownError(index, 'a later proposal took its place in this member\'s log, but another member may still commit it'));
    this.waiters.set(index, { term, resolve, reject, deadlineMs: Date.now() + this.applyTimeoutMs });
  }

  private refusal(r: Exclude<ProposeResult, { ok: true }>, expectedTerm: number | undefined): RaftError {
    switch (r.reason) {
      case 'notLeader':
        return new NotLeaderError(r.leaderHint);
      case 'termMismatch':
        return new TermMismatchError(expectedTerm ?? 0, r.term);
      case 'confChangeRefused':
        return new BusyError(r.detail);
      case 'confChangeInvalid':
        return new InvalidChangeError(r.detail);
      default:
        return new BusyError(r.reason === 'transferring' ? 'leadership is being transferred' : 'too many uncommitted entries');
    }
  }

  /** Rejects apply() and readBarrier() calls past their deadline (checked every tick). */
  private expireWaiters(): void {
    const now = Date.now();
    for (const [requestId, w] of this.forwarded) {
      if (w.deadlineMs > now) continue;
      this.forwarded.delete(requestId);
      w.reject(new TimeoutError(`forwarded command ${requestId}`, this.applyTimeoutMs));
    }
    for (const [index, w] of this.waiters) {
      if (w.deadlineMs > now) continue;
      this.waiters.delete(index);
      w.reject(new TimeoutError(`command at index ${index}`, this.applyTimeoutMs));
    }
    // A follower that cannot catch up to the read index must not hold readers forever.
    for (const [requestId, w] of this.readWaiters) {
      if (w.deadlineMs > now) continue;
      this.readWaiters.delete(requestId);
      w.reject(new TimeoutError(`read barrier ${requestId}${w.index === Number.MAX_SAFE_INTEGER ? '' : ` waiting for index ${w.index}`}`, this.applyTimeoutMs));
    }
  }

  private receive(m: PeerMessage): void {
    if (this.stopped) return;
    // Ticks a stalled loop missed came before this message: counted after
    // it, they would cut short the election timeout a heartbeat just reset,
    // and with it this node's promise to the leader's lease. What they
    // produce (heartbeats, a campaign) goes out in this turn's pass, not at the next tick.
    if (this.catchUpTicks()) this.schedule();
    switch (m.type) {
      case 'snapshotChunk':
        this.lastChunkTick = this.ticks;
        this.receiveTail = this.receiveTail.then(() => this.receiveChunk(m)).catch((err: Error) => this.fail(err));
        return;
      case 'snapshotChunkResp':
        this.senders.get(m.from)?.onResponse(m, this.ticks);
        return;
      case 'forward':
        this.acceptForwarded(m);
        return;
      case 'forwardResp':
        this.forwardAnswered(m);
        return;
      case 'snapshot':
        // Only receiveChunk steps a snapshot, once its file is complete and
        // checked: one from the wire would restore the core with no file behind it.
        return;
      default:
        this.core.step(m);
        this.schedule();
    }
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    // One pass per event-loop turn: everything that arrived in the turn
    // shares one Ready, one write and one round of messages.
    setImmediate(() => {
      this.scheduled = false;
      if (this.stopped) return;
      if (this.proposals.length > 0) this.flushProposals();
      this.drain();
      // The pass produced every message this turn will: waiting for the
      // transport's own end-of-turn flush would cost another loop iteration.
      this.opts.transport.flush?.();
    });
  }

  private drain(): void {
    while (!this.stopped && this.core.hasReady()) this.handle(this.core.ready());
  }

  private handle(r: Ready): void {
    for (const m of r.messages) this.opts.transport.send(this.groupId, m);
    const writes: Promise<unknown>[] = [];
    if (r.snapshot) writes.push(this.installSnapshot(r.snapshot));
    if (r.hardState) writes.push(this.meta.save({ term: r.hardState.term, vote: r.hardState.vote }));
    const last = r.entries[r.entries.length - 1];
    if (last) {
      const onEvent = this.opts.onEvent;
      const started = performance.now();
      const count = r.entries.length;
      // A follower whose log writer is idle writes on this thread
      // (AppendOptions.onCallerIfIdle), blocking it, so the messages of this
      // Ready go out first. The leader keeps its thread for clients and
      // answers while its own write syncs: blocking it cost JSON puts at 64
      // concurrent a tenth of their throughput (bench/README.md). Nor does a
      // follower whose last append took longer than a heartbeat interval: on
      // a disk that slow, this thread would miss heartbeats while it synced,
      // and the leader, hearing from no quorum, would step down.
      const onCallerIfIdle = this.core.currentRole !== 'leader' && this.lastAppendMs <= this.tickMs;
      if (onCallerIfIdle && r.messages.length > 0) this.opts.transport.flush?.();
      const append = this.cachedLog.append(r.entries, { onCallerIfIdle });
      void append.then(() => {
        this.lastAppendMs = performance.now() - started;
        onEvent?.({ type: 'appended', entries: count, durationMs: this.lastAppendMs });
      }, () => undefined);
      writes.push(append);
    }
    const after = r.messagesAfterPersist;
    // Acknowledgements wait for this Ready's writes and every earlier one's.
    this.persistTail = Promise.all([this.persistTail, ...writes]).then(
      () => {
        if (this.stopped) return;
        if (last) this.core.persisted(last.index, last.term);
        for (const m of after) {
          if (m.to === this.opts.id) this.core.step(m);
          else this.opts.transport.send(this.groupId, m);
        }
        // These answers waited for the disk; the leader is waiting for them.
        if (after.length > 0) this.opts.transport.flush?.();
        this.schedule();
      },
      (err: Error) => this.fail(err),
    );
    if (r.softState) this.leaderChanged(r.softState.role, r.softState.leader, r.softState.term);
    for (const to of r.sendSnapshots) this.sendSnapshot(to);
    if (r.committed.length > 0) {
      const entries = r.committed;
      // A follower's acknowledgement is on a client's path and its apply is
      // not, so it applies once this Ready's answers are out; the leader
      // answers clients from its apply and starts at once.
      const ready = this.core.currentRole === 'leader' ? this.applyTail : Promise.all([this.applyTail, this.persistTail]);
      this.applyTail = ready.then(() => this.applyEntries(entries)).catch((err: Error) => this.fail(err));
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
    // Entries a snapshot installed in the meantime already covers.
    const fresh = entries.filter((e) => e.index > this.appliedIndex);
    if (fresh.length === 0) return;
    const commands: AppliedCommand[] = [];
    for (const e of fresh) if (e.type === EntryType.Command) commands.push(new AppliedCommand(e.index, e.term, e.data, this.waiters.has(e.index)));
    this.applyingIndex = fresh[fresh.length - 1].index;
    // A configuration takes effect between the commands around it, on every
    // member alike, so a state machine may change its state on it.
    let appliedCommands = 0;
    let next = 0;
    for (const e of fresh) {
      if (e.type === EntryType.Command) next++;
      if (e.type !== EntryType.Config) continue;
      if (next > appliedCommands) await this.opts.fsm.onApply(new Batch(commands.slice(appliedCommands, next)));
      appliedCommands = next;
      this.opts.fsm.onConfigurationCommitted?.(this.core.configurationAt(e.index));
    }
    if (commands.length > appliedCommands) await this.opts.fsm.onApply(new Batch(appliedCommands === 0 ? commands : commands.slice(appliedCommands)));
    this.opts.onEvent?.({ type: 'applied', entries: fresh.length });
    next = 0;
    for (const e of fresh) {
      const command = e.type === EntryType.Command ? commands[next++] : undefined;
      const w = this.waiters.get(e.index);
      if (!w) continue;
      this.waiters.delete(e.index);
      // Another entry took the index: ours was lost with a leadership change.
      if (w.term === e.term) w.resolve(command?.result);
      else w.reject(new NotLeaderError(this.core.currentLeader));
    }
    const lastEntry = fresh[fresh.length - 1];
    this.appliedIndex = lastEntry.index;
    this.appliedTerm = lastEntry.term;
    this.cachedLog.applied(lastEntry.index);
    if (!this.stopped) {
      this.core.applied(lastEntry.index);
      this.releaseReads();
      this.maybeSnapshot();
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
    if (this.role === 'leader' && role !== 'leader') {
      for (const sender of this.senders.values()) sender.cancel();
      this.senders.clear();
      // A member learns the fate of its proposals from the log it keeps
      // receiving; a node that removed itself never will.
      // Committed ones are applied here all the same.
      if (!members(this.core.configuration).includes(this.id)) {
        const commit = this.core.commitIndex;
        this.settleWaiters((index) => index > commit, (index) => new OutcomeUnknownError(index, 'this node left the group before it was committed'));
      }
      fsm.onLeaderStop?.(new NotLeaderError(leader));
    } else if (this.leader !== null && this.leader !== this.id && leader !== this.leader) {
      fsm.onStopFollowing?.({ leader: this.leader, term });
    }
    if (role === 'leader' && this.role !== 'leader') fsm.onLeaderStart?.(term);
    else if (leader !== null && leader !== this.id && leader !== this.leader) fsm.onStartFollowing?.({ leader, term });
    if (leader !== this.leader) this.abandonForwarded(leader, term);
    if (role !== this.role || leader !== this.leader) this.opts.onEvent?.({ type: 'roleChanged', role, leader, term });
    this.role = role;
    this.leader = leader;
  }

  /**
   * Settles the commands forwarded to a leader whose term is over (another
   * term began, or another leader is known): it will not say which index
   * they got, and they waited for applyTimeoutMs. It may have appended them,
   * and the next leader commit them, so their outcome is unknown; a client
   * with a session can send them again at once. Losing sight of the leader
   * within its term (a pre-vote) is not enough: it may still answer.
   */
  private abandonForwarded(leader: NodeId | null, term: number): void {
    for (const [requestId, w] of this.forwarded) {
      if (term === w.term && (leader === null || leader === w.leader)) continue;
      this.forwarded.delete(requestId);
      w.reject(new OutcomeUnknownError(null, `${w.leader}, the leader it was forwarded to, stopped leading before it said which index the command got; it may still be committed`));
    }
  }

  // -------------------------------------------------------------- snapshots

  private maybeSnapshot(): void {
    const fsm = this.opts.fsm;
    if (this.snapshotting || !(fsm.onSnapshotCapture || fsm.onSnapshotSave) || Date.now() < this.snapshotRetryAtMs) return;
    const since = this.store.latest?.meta.index ?? 0;
    if (this.appliedIndex <= since) return;
    const intervalMs = this.opts.snapshotIntervalMs ?? 3_600_000;
    if ((this.snapshotDueEntries > 0 && this.appliedIndex - since >= this.snapshotDueEntries) || (intervalMs > 0 && Date.now() - this.lastSnapshotMs >= intervalMs)) {
      this.snapshot().catch(() => undefined);
    }
  }

  /**
   * `snapshotLogEntries` plus a random part of up to half as many again, drawn
   * anew after each snapshot. The members of a group apply the same entries,
   * so with one fixed count they would all write their snapshots at once,
   * each writing the whole state while the others do: the group's commits
   * then wait on every member's disk and CPU together. Apart, a member busy
   * with its snapshot is one a quorum can do without.
   */
  private drawSnapshotDue(): number {
    const byEntries = this.opts.snapshotLogEntries ?? 100_000;
    return byEntries > 0 ? byEntries + Math.floor((this.opts.random ?? Math.random)() * (byEntries / 2)) : 0;
  }

  /**
   * Runs in the apply chain, so nothing is applied meanwhile: the snapshot's
   * metadata at the applied index and what writes its data (the state
   * machine's capture, or `onSnapshotSave`, which must then run in the chain
   * too). The latest snapshot's metadata when it already covers the index.
   */
  private captureSnapshot(): { meta: SnapshotMeta; write: SnapshotWrite } | SnapshotMeta {
    if (this.stopped) throw this.stopped;
    const latest = this.store.latest;
    if (latest && latest.meta.index >= this.appliedIndex) return latest.meta;
    if (this.appliedIndex === 0) throw new BusyError('nothing to snapshot: no entry has been applied yet');
    const meta: SnapshotMeta = { index: this.appliedIndex, term: this.appliedTerm, configuration: this.core.configurationAt(this.appliedIndex) };
    const fsm = this.opts.fsm;
    const write = fsm.onSnapshotCapture ? fsm.onSnapshotCapture() : fsm.onSnapshotSave!.bind(fsm);
    return { meta, write };
  }

  private async saveSnapshot(meta: SnapshotMeta, write: SnapshotWrite): Promise<SnapshotMeta> {
    const started = performance.now();
    const file = await this.store.save(meta, write, this.stopping.signal);
    this.opts.onEvent?.({ type: 'snapshotSaved', index: file.meta.index, bytes: file.bytes, durationMs: performance.now() - started });
    this.lastSnapshotMs = Date.now();
    this.snapshotDueEntries = this.drawSnapshotDue();
    // The store keeps a newer snapshot that arrived from the leader meanwhile
    // instead of this one: the log is being reset to that one, leave it alone.
    if (file.meta.index === meta.index && file.meta.term === meta.term) await this.compact(meta);
    return meta;
  }

  /** Drops log entries the snapshot covers, but keeps `snapshotKeepEntries` of them, and never anything not yet durable. */
  private async compact(meta: SnapshotMeta): Promise<void> {
    const keep = this.opts.snapshotKeepEntries ?? 10_000;
    const firstKept = Math.min(meta.index, this.log.durableIndex) - keep + 1;
    if (this.stopped || firstKept <= this.log.firstIndex) return;
    const baseTerm = this.log.termAt(firstKept - 1);
    if (baseTerm === undefined) return;
    await this.cachedLog.truncatePrefix(firstKept, baseTerm);
  }

  /** The core accepted a snapshot received from the leader: reset the log (persisted with this Ready) and load it. */
  private installSnapshot(meta: SnapshotMeta): Promise<void> {
    const file = this.store.latest;
    if (!file || file.meta.index !== meta.index || file.meta.term !== meta.term) {
      return Promise.reject(new RaftError(`snapshot ${meta.index}@${meta.term} to install is not on disk`, 'ERR_RAFTLINE_SNAPSHOT'));
    }
    // Opened now: a newer snapshot may replace the file before the apply chain gets to it.
    const reader = this.store.reader(file);
    const reset = this.cachedLog.reset(meta);
    this.applyTail = this.applyTail.then(() => this.loadSnapshot(file, reader)).catch((err: Error) => this.fail(err));
    return Promise.all([reset, reader]).then(() => undefined);
  }

  private async loadSnapshot(file: SnapshotFile, opening: ReturnType<SnapshotStore['reader']>): Promise<void> {
    const reader = await opening;
    try {
      if (this.stopped) return;
      const load = this.opts.fsm.onSnapshotLoad;
      if (!load) throw new RaftError('received a snapshot but the state machine has no onSnapshotLoad', 'ERR_RAFTLINE_CONFIG');
      const started = performance.now();
      await load.call(this.opts.fsm, reader);
      this.opts.onEvent?.({ type: 'snapshotInstalled', index: file.meta.index, from: this.leader, durationMs: performance.now() - started });
    } finally {
      await reader.close();
    }
    this.appliedIndex = file.meta.index;
    this.appliedTerm = file.meta.term;
    // Commands proposed here that the snapshot replaced: whether they made it is unknown.
    const upTo = file.meta.index;
    this.settleWaiters((index) => index <= upTo, (index) => new OutcomeUnknownError(index, 'a snapshot from the leader replaced it'));
    this.opts.fsm.onConfigurationCommitted?.(file.meta.configuration);
    this.releaseReads();
  }

  private sendSnapshot(to: NodeId): void {
    if (this.senders.has(to)) return;
    const file = this.store.latest;
    if (!file) {
      this.fail(new RaftError(`follower ${to} needs a snapshot but this node has none`, 'ERR_RAFTLINE_SNAPSHOT'));
      return;
    }
    const sender = new SnapshotSender(
      {
        from: this.id,
        to,
        term: this.core.currentTerm,
        file,
        chunkBytes: this.opts.snapshotChunkBytes ?? 256 * 1024,
        windowBytes: this.opts.snapshotWindowBytes ?? 1024 * 1024,
        send: (chunk) => this.opts.transport.send(this.groupId, chunk),
        done: (ok) => {
          if (this.senders.get(to) === sender) this.senders.delete(to);
          if (this.stopped) return;
          this.core.snapshotSent(to, file.meta.index, ok);
          this.schedule();
        },
      },
      this.ticks,
    );
    this.senders.set(to, sender);
    void sender.start();
  }

  /** Resends the offer of a transfer that went quiet (lost chunks); abandons one stalled for snapshotTimeoutMs. */
  private checkSenders(): void {
    const retransmitTicks = this.retransmitTicks();
    const abandonTicks = this.abandonTicks();
    for (const sender of this.senders.values()) {
      if (this.ticks - sender.lastProgressTick >= abandonTicks) sender.abandon();
      else if (this.ticks - Math.max(sender.lastProgressTick, sender.lastOfferTick) >= retransmitTicks) sender.retransmit(this.ticks);
    }
  }

  private retransmitTicks(): number {
    return Math.max(2, Math.round((this.opts.electionTimeoutMs ?? 1000) / this.tickMs));
  }

  private abandonTicks(): number {
    return Math.max(this.retransmitTicks(), Math.round((this.opts.snapshotTimeoutMs ?? 30_000) / this.tickMs));
  }

  /**
   * Closes the file of an incoming transfer that had no chunk for as long as
   * its sender waits before abandoning it: it would stay open until the next
   * transfer or snapshot. What it holds stays, for the same snapshot's next
   * offer to resume from.
   */
  private closeQuietTransfer(): void {
    if (!this.store.receiving || this.ticks - this.lastChunkTick < this.abandonTicks()) return;
    this.lastChunkTick = this.ticks;
    this.receiveTail = this.receiveTail.then(() => this.store.closeIncoming()).catch((err: Error) => this.fail(err));
  }

  /** Follower side of a snapshot transfer; chunks are handled one at a time, in arrival order. */
  private async receiveChunk(m: SnapshotChunk): Promise<void> {
    if (this.stopped || m.term < this.core.currentTerm) return;
    const id = m.file;
    let held: number;
    let complete: SnapshotMeta | null = null;
    try {
      held = m.data.length === 0 ? await this.store.offer(id) : await this.store.receive(id, m.offset, m.data);
      // The store may keep a newer snapshot it already has: that one, committed too, is what to install.
      if (held === id.bytes) complete = (await this.store.completeIncoming(id)).meta;
    } catch (err) {
      this.opts.fsm.onError?.(new RaftError(`receiving snapshot ${id.meta.index}@${id.meta.term} from ${m.from}: ${(err as Error).message}`, 'ERR_RAFTLINE_SNAPSHOT'));
      // Start over from nothing, so what we report is what we hold.
      await this.store.discardIncoming().catch(() => undefined);
      held = 0;
    }
    if (this.stopped) return;
    if (complete) {
      this.catchUpTicks();
      this.core.step({ type: 'snapshot', from: m.from, to: this.id, term: m.term, snapshot: complete });
      this.schedule();
    }
    const reject = m.data.length > 0 && held !== m.offset + m.data.length;
    this.opts.transport.send(this.groupId, {
      type: 'snapshotChunkResp',
      from: this.id,
      to: m.from,
      term: this.core.currentTerm,
      index: id.meta.index,
      crc: id.crc,
      held,
      reject,
    });
  }

  // ------------------------------------------------------------- stopping

  /** Rejects the pending `apply()` calls whose index matches. */
  private settleWaiters(matches: (index: number) => boolean, error: (index: number) => Error): void {
    for (const [index, w] of this.waiters) {
      if (!matches(index)) continue;
      this.waiters.delete(index);
      w.reject(error(index));
    }
  }

  /** Settles every request: `reason` for those not in the log, of unknown outcome (because of `why`) for the rest. */
  private abandonRequests(reason: Error, why: string): void {
    // Entries in the log, or handed to the leader, may still be committed by the others.
    const unknown = `${why} before it was applied here; another member may still commit it`;
    this.settleWaiters(() => true, (index) => new OutcomeUnknownError(index, unknown));
    for (const p of this.proposals) p.reject(reason);
    this.proposals = [];
    for (const w of this.forwarded.values()) w.reject(new OutcomeUnknownError(null, unknown));
    this.forwarded.clear();
    for (const w of this.readWaiters.values()) w.reject(reason);
    this.readWaiters.clear();
    for (const sender of this.senders.values()) sender.cancel();
    this.senders.clear();
  }

  private fail(err: Error): void {
    if (this.stopped) return;
    const wrapped = err instanceof RaftError ? err : new RaftError(`raft node stopped: ${err.message}`, 'ERR_RAFTLINE_FATAL', { cause: err });
    this.stop(wrapped);
    this.opts.fsm.onError?.(wrapped);
  }

  private stop(reason: Error): void {
    this.stopped = reason;
    this.stopping.abort(reason);
    clearInterval(this.ticker);
    this.unregister();
    this.abandonRequests(reason, `this node stopped (${reason.message})`);
    const [role, leader] = [this.role, this.leader];
    this.role = 'follower';
    this.leader = null;
    // An application acting on leadership must hear that it ended. The node
    // is stopped whatever the hook does: a throw must not keep shutdown()
    // from closing the log, nor fail() from reporting.
    try {
      if (role === 'leader') this.opts.fsm.onLeaderStop?.(reason);
      else if (leader !== null && leader !== this.id) this.opts.fsm.onStopFollowing?.({ leader, term: this.core.currentTerm });
    } catch {
      // Nothing left to stop.
    }
  }
}

/**
 * Makes the log continue the snapshot: keep it when it holds the snapshot's
 * last entry (Log Matching makes the rest agree), otherwise start it afresh
 * after the snapshot (a crash between receiving a snapshot and resetting the
 * log, or a log that conflicts with what the snapshot says is committed).
 */
async function alignLog(log: SegmentLog, snap: SnapshotMeta): Promise<void> {
  if (log.firstIndex > snap.index + 1) {
    throw new RaftError(`the log starts at ${log.firstIndex} but the snapshot ends at ${snap.index}: entries are missing`, 'ERR_RAFTLINE_STATE');
  }
  if (log.firstIndex === snap.index + 1) return;
  if (snap.index <= log.lastIndex && log.termAt(snap.index) === snap.term) return;
  await log.reset(snap.index + 1);
}
