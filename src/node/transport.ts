import type { Message, NodeId } from '../core/index.js';

/**
 * How RaftNodes reach each other. One transport serves every Raft group of a
 * process; messages are routed by group id. Delivery is best effort: Raft
 * tolerates loss, duplication and reordering.
 */
export interface Transport {
  send(group: string, message: Message): void;
  /** Delivers messages for `group` addressed to `id` to `receive`; returns the unregister function. */
  register(group: string, id: NodeId, receive: (message: Message) => void): () => void;
}
