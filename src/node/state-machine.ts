import type { NodeId } from '../core/index.js';
import type { Configuration } from '../core/quorum.js';
import type { RaftError } from './errors.js';
import type { SnapshotReader, SnapshotWriter } from './snapshot-store.js';

/** One committed command, handed to the state machine in log order. */
export interface Command {
  readonly index: number;
  readonly term: number;
  /** Read-only: the same buffer may still be written to the log or sent to followers. */
  readonly data: Uint8Array;
  /**
   * Whether a caller on this node waits for the result (`apply()` was called
   * here, or forwarded the command from here). Without one, a state machine
   * may leave out work that only builds the result, never work on the state.
   */
  readonly awaited: boolean;
  /** The value `apply()` resolves with on the node that proposed this command. */
  respond(result: unknown): void;
}

/** Writes a captured state into a snapshot (returned by `StateMachine.onSnapshotCapture`). */
export type SnapshotWrite = (writer: SnapshotWriter) => Promise<void>;

/** Committed commands in log order; a batch is never applied concurrently with another. */
export interface ApplyIterator extends Iterable<Command> {
  readonly length: number;
}

export interface LeaderChange {
  leader: NodeId | null;
  term: number;
}

/**
 * The application's replicated state (braft's StateMachine). raftline calls
 * these one at a time, in order, on the node's event loop.
 */
export interface StateMachine {
  onApply(batch: ApplyIterator): Promise<void> | void;
  /**
   * Writes the state as of the last applied command into `writer`. Applying
   * waits meanwhile, so the state cannot move under it. Implement this or
   * `onSnapshotCapture`; without either the node never snapshots and its log
   * grows without bound.
   */
  onSnapshotSave?(writer: SnapshotWriter): Promise<void>;
  /**
   * Two-phase snapshot, for a state machine that can freeze its state cheaply
   * (immutable values, copy-on-write): preferred over `onSnapshotSave` when
   * both exist. Called between apply batches, at the applied index
   * (`writer.index`), with applying paused only for the duration of the call:
   * return quickly, without awaiting anything. The returned function is then
   * called once, while applying continues, and must write exactly the state as
   * it was at the capture into `writer`.
   *
   * While that function runs, `onApply` and `onSnapshotLoad` may run any
   * number of times, so it must not read live state: capture what changes in
   * place (counters, mutable maps) into the closure during the call, and keep
   * only references to objects nothing ever modifies afterwards. The node may
   * abandon the write (on shutdown or a fatal error): `writer.write` then
   * rejects, the partial file is deleted and never used.
   *
   * ```ts
   * onSnapshotCapture() {
   *   const entries = [...this.map]; // values are never modified in place
   *   return async (w) => { for (const [k, v] of entries) await w.write(Buffer.from(`${k}=${v}\n`)); };
   * }
   * ```
   */
  onSnapshotCapture?(): SnapshotWrite;
  /** Replaces the whole state with a snapshot's (on restart, and when the leader sends one). */
  onSnapshotLoad?(reader: SnapshotReader): Promise<void>;
  onLeaderStart?(term: number): void;
  onLeaderStop?(reason: Error): void;
  onStartFollowing?(change: LeaderChange): void;
  onStopFollowing?(change: LeaderChange): void;
  /** A configuration was committed: called between the commands before and after it in the log, and after a snapshot load. */
  onConfigurationCommitted?(conf: Configuration): void;
  /**
   * A fatal error stopped the node (a log or state write failed, or a
   * method of this state machine threw); it must be restarted.
   */
  onError?(err: RaftError): void;
  onShutdown?(): void;
}
