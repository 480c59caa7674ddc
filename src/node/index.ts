export { RaftNode } from './raft-node.js';
export type { RaftNodeOptions, NodeStatus, FollowerStatus, NodeEvent } from './raft-node.js';
export type { SnapshotReader, SnapshotWriter } from './snapshot-store.js';
export { SnapshotCorruptError } from './snapshot-store.js';
export type { StateMachine, Command, ApplyIterator, LeaderChange, SnapshotWrite } from './state-machine.js';
export { RaftError, NotLeaderError, TermMismatchError, ShutdownError, TimeoutError, BusyError, InvalidChangeError, OutcomeUnknownError } from './errors.js';
