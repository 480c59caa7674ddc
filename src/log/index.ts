/**
 * raftline/log: the native segment log on its own, usable as a write-ahead
 * log by any Node program, and Raft's hard-state store.
 */
export { SegmentLog } from './segment-log.js';
export type { SegmentLogOptions, AppendOptions, ReadOptions, RecoveryReport, FramedRecords } from './segment-log.js';
export { MemoryLog } from './memory-log.js';
export type { LogStorage } from './memory-log.js';
export { MetaStore } from './meta-store.js';
export type { MetaState, MetaValue } from './meta-store.js';
export { frameEntries, decodeRecords, verifyRecords, RECORD_HEADER_BYTES, MAX_PAYLOAD_BYTES } from './framing.js';
export type { LogEntry } from './framing.js';
export { crc32c, crc32cPortable, crc32cHardware, crc32cHardwareName } from './crc32c.js';
export {
  LogError,
  CorruptLogError,
  LogIOError,
  InvalidLogOperationError,
  LogClosedError,
  outOfSpaceError,
} from './errors.js';
