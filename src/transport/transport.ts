import type { Message, NodeId, SnapshotMeta } from '../core/index.js';

/**
 * Identifies one snapshot file: a transfer of it can resume after a break
 * because the same identity always means the same bytes.
 */
export interface SnapshotFileId {
  meta: SnapshotMeta;
  /** Length of the snapshot file in bytes. */
  bytes: number;
  /** CRC32C of the whole file, as its trailer records it. */
  crc: number;
}

/** A piece of a snapshot file streamed by the leader; `data` empty with offset 0 offers the snapshot. */
export interface SnapshotChunk {
  type: 'snapshotChunk';
  from: NodeId;
  to: NodeId;
  term: number;
  file: SnapshotFileId;
  offset: number;
  data: Uint8Array;
}

/** How many bytes of the offered file the receiver now holds (`reject`: the chunk did not start there). */
export interface SnapshotChunkResponse {
  type: 'snapshotChunkResp';
  from: NodeId;
  to: NodeId;
  term: number;
  index: number;
  crc: number;
  held: number;
  reject: boolean;
}

/** A command a follower passes to its leader to propose (any node accepts writes). */
export interface ForwardProposal {
  type: 'forward';
  from: NodeId;
  to: NodeId;
  term: number;
  requestId: number;
  data: Uint8Array;
}

/**
 * The leader's answer: the index the command got in the leader's term (`term`),
 * or why it was refused (a RaftError code, '' on success).
 */
export interface ForwardProposalResponse {
  type: 'forwardResp';
  from: NodeId;
  to: NodeId;
  term: number;
  requestId: number;
  index: number;
  error: string;
  leaderHint: NodeId | null;
}

/** Everything peers send each other: the core's messages, the runtime's snapshot stream and forwarded proposals. */
export type PeerMessage = Message | SnapshotChunk | SnapshotChunkResponse | ForwardProposal | ForwardProposalResponse;

/**
 * How RaftNodes reach each other. One transport serves every Raft group of a
 * process; messages are routed by group id. Delivery is best effort: Raft
 * tolerates loss, duplication and reordering.
 */
export interface Transport {
  send(group: string, message: PeerMessage): void;
  /**
   * Hands what `send` queued to the network now rather than at the end of the
   * event-loop turn; for a caller about to block the thread (a synchronous
   * disk write) while its messages should already be on their way.
   */
  flush?(): void;
  /**
   * The largest message it can carry, envelope included, if it has a limit:
   * a node refuses a command that could not reach its followers in one.
   */
  readonly maxMessageBytes?: number;
  /** Delivers messages for `group` addressed to `id` to `receive`; returns the unregister function. */
  register(group: string, id: NodeId, receive: (message: PeerMessage) => void): () => void;
}
