/**
 * raftline: Raft consensus for Node.js with a native segment log.
 *
 * The durable log is available today (also as `raftline/log`); the Raft core,
 * runtime, transport and server build on it.
 */
export * from './log/index.js';
export { loadUws, UwsUnavailableError } from './transport/uws.js';
