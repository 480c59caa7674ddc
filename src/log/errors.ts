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
 * On-disk data failed validation somewhere other than the torn tail of the
 * open segment. Nothing was skipped or repaired: inspect `file` at byte
 * `offset`, restore it from a replica or backup, then open again.
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

/** A system call failed; `errno` is the OS error number. */
export class LogIOError extends LogError {
  readonly file: string | undefined;
  readonly errno: number | undefined;
  constructor(message: string, file?: string, errno?: number) {
    super(message, 'ERR_RAFTLINE_IO');
    this.file = file;
    this.errno = errno;
  }
}

/** The caller broke a contract: a non-contiguous append, a term going backwards, a range outside the log. */
export class InvalidLogOperationError extends LogError {
  constructor(message: string) {
    super(message, 'ERR_RAFTLINE_INVALID');
  }
}

/** The log was closed, or stopped after a write failure and must be reopened. */
export class LogClosedError extends LogError {
  constructor(message: string) {
    super(message, 'ERR_RAFTLINE_CLOSED');
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
      return new LogIOError(e.message, e.file, e.errno);
    case 'ERR_RAFTLINE_INVALID':
      return new InvalidLogOperationError(e.message);
    case 'ERR_RAFTLINE_CLOSED':
      return new LogClosedError(e.message);
    default:
      return e;
  }
}
