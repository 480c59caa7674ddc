export { RaftNode } from './raft-node.js';
export type { RaftNodeOptions, NodeStatus } from './raft-node.js';
export type { StateMachine, Command, ApplyIterator, LeaderChange } from './state-machine.js';
export { RaftError, NotLeaderError, TermMismatchError, ShutdownError, TimeoutError, BusyError } from './errors.js';
