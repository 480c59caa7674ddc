import { constants as osConstants } from 'node:os';
import type { NativeError } from './native.js';

/** Base class of every error the log raises; `code` is stable for programs. */
export class LogError extends Error {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * On-disk data failed validation, and it is not a torn write at the end of
 * the open segment (docs/log-format.md). Nothing was skipped or repaired:
 * inspect `file` at byte `offset`, restore it from a replica or backup (or
 * rebuild the node from its peers), then open again.
 */
export class CorruptLogError extends LogError {
  readonly file: string;
  readonly offset: number;
  constructor(message: string, file: string, offset: number) {
    super(message, 'ERR_RAFTLINE_CORRUPT');
    this.file = file;
    this.offset = offset;
  }
}

/**
 * A system call failed; `errno` is the OS error number. `syncFailed`: it was
 * an fsync or fdatasync of a file the log keeps, after which the kernel's page
 * cache may disagree with the disk; only a new process can trust what it reads.
 */
export class LogIOError extends LogError {
  readonly file: string | undefined;
  readonly errno: number | undefined;
  readonly syncFailed: boolean;
  constructor(message: string, file?: string, errno?: number, syncFailed = false) {
    super(message, 'ERR_RAFTLINE_IO');
    this.file = file;
    this.errno = errno;
    this.syncFailed = syncFailed;
  }
}

/** The caller broke a contract: a non-contiguous append, a term going backwards, a range outside the log. */
export class InvalidLogOperationError extends LogError {
  constructor(message: string) {
    super(message, 'ERR_RAFTLINE_INVALID');
  }
}

/** The log was closed, or stopped after a write failure (the `cause`) and must be reopened. */
export class LogClosedError extends LogError {
  constructor(message: string, cause?: LogIOError) {
    super(message, 'ERR_RAFTLINE_CLOSED');
    if (cause) this.cause = cause;
  }
}

export const RETRY_CODE = 'ERR_RAFTLINE_RETRY';

/** Turns an error thrown by the addon into the matching typed error. */
export function fromNative(err: unknown): Error {
  const e = err as NativeError;
  if (!e || typeof e.code !== 'string') return err as Error;
  switch (e.code) {
    case 'ERR_RAFTLINE_CORRUPT':
      return new CorruptLogError(e.message, e.file ?? '', e.offset ?? -1);
    case 'ERR_RAFTLINE_IO':
      return new LogIOError(e.message, e.file, e.errno, e.syncFailed === true);
    case 'ERR_RAFTLINE_INVALID':
      return new InvalidLogOperationError(e.message);
    case 'ERR_RAFTLINE_CLOSED':
      // A log stopped by a failed write carries that write's errno.
      return new LogClosedError(e.message, e.errno === undefined ? undefined : new LogIOError(e.message, e.file, e.errno, e.syncFailed === true));
    default:
      return e;
  }
}

const OUT_OF_SPACE_ERRNOS = new Set([osConstants.errno.ENOSPC, osConstants.errno.EDQUOT]);

/**
 * The write failure behind `err` (following `cause`) if it ran out of space
 * (ENOSPC) or quota (EDQUOT) without leaving anything untrusted behind:
 * freeing space and reopening the log in the same process is then safe.
 * Null otherwise, and for a failed fsync/fdatasync whatever its errno (see
 * `LogIOError.syncFailed`).
 */
export function outOfSpaceError(err: unknown): LogIOError | null {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof LogIOError) return !e.syncFailed && e.errno !== undefined && OUT_OF_SPACE_ERRNOS.has(e.errno) ? e : null;
  }
  return null;
}
