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
  /** The value `apply()` resolves with on the node that proposed this command. */
  respond(result: unknown): void;
}

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
   * waits meanwhile, so the state cannot move under it. Without it the node
   * never snapshots and its log grows without bound.
   */
  onSnapshotSave?(writer: SnapshotWriter): Promise<void>;
  /** Replaces the whole state with a snapshot's (on restart, and when the leader sends one). */
  onSnapshotLoad?(reader: SnapshotReader): Promise<void>;
  onLeaderStart?(term: number): void;
  onLeaderStop?(reason: Error): void;
  onStartFollowing?(change: LeaderChange): void;
  onStopFollowing?(change: LeaderChange): void;
  onConfigurationCommitted?(conf: Configuration): void;
  /** A fatal error stopped the node (a log write failed); it must be restarted. */
  onError?(err: RaftError): void;
  onShutdown?(): void;
}
