import type { Entry, HardState, Message, NodeId, ReadFailure, ReadState, Role, SnapshotMeta } from './types.js';

/**
 * Everything the core asks of its runtime since the previous `ready()`.
 *
 * The ordering contract (what makes the core's decisions durable before
 * others rely on them):
 * 1. `messages` may be sent at once, in parallel with persisting: they are the
 *    leader's AppendEntries, heartbeats and commit notices, which depend on
 *    nothing this Ready changes (the leader writes its log in parallel with
 *    replication), and a candidate's vote requests (it counts its own vote
 *    only once its term and vote are durable: see 3).
 * 2. If `snapshot` is set, install it first: restore the state machine from
 *    the snapshot just received and reset the log to start after its index.
 *    Then persist `entries` (the first may overwrite existing ones: truncate the
 *    log after `entries[0].index - 1` first) and `hardState`, then report
 *    `persisted(lastEntry.index, lastEntry.term)`.
 * 3. Only once this Ready's writes and every earlier Ready's writes are
 *    durable, send `messagesAfterPersist`: votes and acknowledgements that
 *    promise the persisted state (an acknowledgement may cover entries
 *    handed out by an earlier Ready that are still being written). A
 *    candidate's vote for itself is among them, addressed to itself: step it
 *    into this node's core rather than sending it anywhere.
 * 4. Apply `committed` in order (it may include entries not yet durable here:
 *    they are durable on a quorum) and report `applied(index)`.
 * 5. Serve each `readStates` read once the applied index reaches its index.
 */
export interface Ready {
  hardState?: HardState;
  entries: Entry[];
  messages: Message[];
  messagesAfterPersist: Message[];
  committed: Entry[];
  readStates: ReadState[];
  readFailures: ReadFailure[];
  /** A snapshot received from the leader, to install before anything else in this Ready. */
  snapshot?: SnapshotMeta;
  /**
   * Followers that need entries this log no longer has: send each the latest
   * snapshot, then report `snapshotSent(to, index, ok)`.
   */
  sendSnapshots: NodeId[];
  /** Present when role, term or leader changed. */
  softState?: SoftState;
}

export interface SoftState {
  role: Role;
  term: number;
  leader: NodeId | null;
}

export function emptyReady(): Ready {
  return { entries: [], messages: [], messagesAfterPersist: [], committed: [], readStates: [], readFailures: [], sendSnapshots: [] };
}
