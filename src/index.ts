/**
 * raftline: Raft consensus for Node.js with a native segment log.
 *
 * `RaftNode` runs a group member over a `Transport` (`UwsTransport` between
 * processes, `MemoryNetwork` in tests); the durable log is also available on
 * its own as `raftline/log`.
 */
export * from './log/index.js';
export * from './node/index.js';
export * from './transport/index.js';
export { UwsUnavailableError } from './transport/uws.js';
export { EntryType } from './core/index.js';
export type { Configuration } from './core/quorum.js';
export type { Entry, NodeId, Role, SnapshotMeta } from './core/index.js';
