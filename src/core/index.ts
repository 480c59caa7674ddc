/** The pure Raft core: no timers, clocks, I/O or ambient randomness. */
export { RaftCore, DEFAULT_CORE_OPTIONS, applyConfChange } from './raft.js';
export type { ConfChange, CoreOptions, CoreState, CoreStatus, PeerStatus, ProposeResult } from './raft.js';
export type { Ready, SoftState } from './ready.js';
export { MAX_CONFIGURATION_MEMBERS } from './quorum.js';
export type { Configuration } from './quorum.js';
export { EntryType } from './types.js';
export type { Entry, HardState, LogReader, Message, NodeId, ReadFailure, ReadState, Role, SnapshotMeta } from './types.js';
