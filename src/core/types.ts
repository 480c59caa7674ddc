// Shared vocabulary of the pure Raft core. Nothing here touches time, I/O or
// randomness; see raft.ts for the state machine and ready.ts for its outputs.

export type NodeId = string;

/** Entry types the core interprets; applications' own tags start at USER_ENTRY_TYPE. */
export const EntryType = {
  /** A leader's empty entry at the start of its term (lets it commit earlier entries). */
  Noop: 0,
  /** A membership change; `data` is a JSON `Configuration`. */
  Config: 1,
  /** An application command. */
  Command: 2,
} as const;

export interface Entry {
  index: number;
  term: number;
  type: number;
  data: Uint8Array;
}

/**
 * Durable state that must be persisted before acting on it. The commit index
 * is deliberately not part of it: it is recovered from the leader, and
 * persisting it apart from the entries it covers could claim entries a crash
 * lost locally.
 */
export interface HardState {
  term: number;
  vote: NodeId | null;
}

/** The synchronous, read-only view of durable log entries the core needs. */
export interface LogReader {
  /** First index present (after compaction). */
  firstIndex(): number;
  /** Last durable index. */
  lastIndex(): number;
  /** Term at `index` for index in [firstIndex - 1, lastIndex]; firstIndex - 1 is the snapshot's last index. */
  term(index: number): number | undefined;
  /** Entries [from, toExclusive), stopping before maxBytes of payload (at least one entry). */
  entries(from: number, toExclusive: number, maxBytes: number): Entry[];
}

interface Base {
  from: NodeId;
  to: NodeId;
  term: number;
}

export interface VoteRequest extends Base {
  type: 'preVote' | 'vote';
  lastLogIndex: number;
  lastLogTerm: number;
  /** Set when campaigning because of a leadership transfer: voters ignore their leader lease. */
  transfer: boolean;
}

export interface VoteResponse extends Base {
  type: 'preVoteResp' | 'voteResp';
  reject: boolean;
}

export interface AppendRequest extends Base {
  type: 'append';
  prevIndex: number;
  prevTerm: number;
  entries: Entry[];
  commit: number;
}

export interface AppendResponse extends Base {
  type: 'appendResp';
  /** On success the follower's last index matching the leader; on rejection the rejected prevIndex. */
  index: number;
  reject: boolean;
  /** Rejection hints (etcd's findConflictByTerm): the follower's last index with term <= hintTerm. */
  hintIndex: number;
  hintTerm: number;
}

export interface Heartbeat extends Base {
  type: 'heartbeat';
  commit: number;
  /** Heartbeat round; acknowledgements of a round confirm leadership as of its sending. */
  round: number;
}

/**
 * The leader's commit index for a follower that has every entry sent to it,
 * instead of an empty append: the follower does not answer it.
 */
export interface CommitNotice extends Base {
  type: 'commit';
  /** At most the follower's match: the notice carries no (index, term) for it to check its log against. */
  commit: number;
}

export interface HeartbeatResponse extends Base {
  type: 'heartbeatResp';
  round: number;
  /** The follower's last log index; below what it acknowledged, it lost entries and must be sent them again. */
  lastIndex: number;
}

/** What a snapshot covers: the state machine through `index`, whose entry had `term`. */
export interface SnapshotMeta {
  index: number;
  term: number;
  /** The configuration in effect at `index`. */
  configuration: import('./quorum.js').Configuration;
}

/**
 * A snapshot has arrived in full from the leader (the runtime streams the
 * data; the core sees only this once it is complete and checked).
 */
export interface InstallSnapshot extends Base {
  type: 'snapshot';
  snapshot: SnapshotMeta;
}

export interface TimeoutNow extends Base {
  type: 'timeoutNow';
}

/** A follower forwarding a linearizable read to its leader. */
export interface ReadIndexRequest extends Base {
  type: 'readIndex';
  requestId: number;
}

export interface ReadIndexResponse extends Base {
  type: 'readIndexResp';
  requestId: number;
  /** The commit index the read must wait for; 0 with reject when the leader could not serve it. */
  index: number;
  reject: boolean;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | Heartbeat
  | CommitNotice
  | HeartbeatResponse
  | TimeoutNow
  | InstallSnapshot
  | ReadIndexRequest
  | ReadIndexResponse;

export type MessageType = Message['type'];

/** A released read: once the state machine has applied `index`, the read with `requestId` may be served. */
export interface ReadState {
  requestId: number;
  index: number;
}

/** A read the core could not serve: no leader, leadership lost before confirmation, or no answer from the leader. */
export interface ReadFailure {
  requestId: number;
  reason: 'notLeader' | 'leadershipLost' | 'timeout';
  leaderHint: NodeId | null;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';
