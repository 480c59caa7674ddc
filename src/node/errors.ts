import type { NodeId } from '../core/index.js';

/** Base class of the errors `RaftNode` operations reject with; `code` is stable for programs. */
export class RaftError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** This node is not the leader; retry on `leaderHint` when it is known. */
export class NotLeaderError extends RaftError {
  constructor(readonly leaderHint: NodeId | null) {
    super(leaderHint ? `not the leader; try ${leaderHint}` : 'not the leader, and no leader is known', 'ERR_RAFTLINE_NOT_LEADER');
  }
}

/** The leader's term is not the one the caller expected (`expectedTerm`). */
export class TermMismatchError extends RaftError {
  constructor(
    readonly expectedTerm: number,
    readonly currentTerm: number,
  ) {
    super(`expected term ${expectedTerm}, but the term is ${currentTerm}`, 'ERR_RAFTLINE_TERM_MISMATCH');
  }
}

/** The node is shutting down or has shut down. */
export class ShutdownError extends RaftError {
  constructor() {
    super('the raft node is shutting down', 'ERR_RAFTLINE_SHUTDOWN');
  }
}

/** No outcome within the time allowed; the command may still be applied later. */
export class TimeoutError extends RaftError {
  constructor(what: string, ms: number) {
    super(`${what} did not complete within ${ms} ms`, 'ERR_RAFTLINE_TIMEOUT');
  }
}

/** A membership change or leadership transfer that can never succeed as asked (a non-member, a learner promoted twice): retrying will not help. */
export class InvalidChangeError extends RaftError {
  constructor(reason: string) {
    super(reason, 'ERR_RAFTLINE_INVALID_CHANGE');
  }
}

/** The leader refused the request for now (transferring leadership, overloaded, a membership change pending). */
export class BusyError extends RaftError {
  constructor(reason: string) {
    super(reason, 'ERR_RAFTLINE_BUSY');
  }
}

/**
 * The command may or may not have been applied, and this node cannot find
 * out (a snapshot replaced the entry, or the node left the group); check
 * before retrying.
 */
export class OutcomeUnknownError extends RaftError {
  constructor(
    /** The command's index, or null for one forwarded to the leader that never said where it put it. */
    readonly index: number | null,
    reason: string,
  ) {
    super(`the outcome of the ${index === null ? 'forwarded command' : `command at index ${index}`} is unknown: ${reason}`, 'ERR_RAFTLINE_OUTCOME_UNKNOWN');
  }
}
