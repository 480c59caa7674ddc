import type { NodeId } from '../core/index.js';
import type { Configuration } from '../core/quorum.js';
import type { RaftError } from './errors.js';

/** One committed command, handed to the state machine in log order. */
export interface Command {
  readonly index: number;
  readonly term: number;
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
  onLeaderStart?(term: number): void;
  onLeaderStop?(reason: Error): void;
  onStartFollowing?(change: LeaderChange): void;
  onStopFollowing?(change: LeaderChange): void;
  onConfigurationCommitted?(conf: Configuration): void;
  /** A fatal error stopped the node (a log write failed); it must be restarted. */
  onError?(err: RaftError): void;
  onShutdown?(): void;
}
