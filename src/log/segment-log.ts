import { BufferPool } from './buffer-pool.js';
import { fromNative, InvalidLogOperationError, LogClosedError, RETRY_CODE } from './errors.js';
import { decodeRecords, frameUnsealed, knownRecords, type LogEntry } from './framing.js';
import type { LogStorage } from './memory-log.js';
import { native, type NativeError, type NativeLogHandle } from './native.js';

export interface SegmentLogOptions {
  /** Roll to a new segment file once this many bytes are written. Default 64 MiB; 4 KiB..1 GiB. */
  segmentBytes?: number;
  /**
   * `'batch'` (default): every append resolves only after an fdatasync that
   * covers it, shared with whatever else was queued (group commit).
   * `'none'`: no fdatasync; appends survive a process crash but not a power
   * loss. For tests and benchmarks.
   */
  sync?: 'batch' | 'none';
}

export interface ReadOptions {
  /** Stop before the returned records exceed this many bytes (headers included); at least one record is always returned. */
  maxBytes?: number;
}

/** What `open` had to repair. A clean shutdown or a crash between writes repairs nothing. */
export interface RecoveryReport {
  /** Bytes of a torn write zeroed out at the end of the open segment, up to its last non-zero byte (zero-filled space is not counted). */
  truncatedBytes: number;
  truncatedFile: string;
  truncatedOffset: number;
  /** Segment files removed to finish a truncation interrupted by a crash. */
  removedSegments: number;
  /** A suffix truncation or reset was interrupted by a crash and has been completed. */
  replayedTruncation: boolean;
}

export interface AppendOptions {
  /**
   * If the writer thread is idle with nothing queued, write and fdatasync on
   * the calling thread, blocking it until the entries are durable, and settle
   * the promise before returning (its callbacks still run as microtasks).
   * That saves the hand-off to the writer thread and back (two thread
   * wake-ups) at the price of blocking the caller for one sync. Under load
   * the writer is busy and the append is queued as usual; so is an append
   * that starts a new segment (several syncs). Default false.
   */
  onCallerIfIdle?: boolean;
}

/** Framed records as stored on disk and sent in AppendEntries (docs/log-format.md). */
export interface FramedRecords {
  records: Buffer;
  count: number;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (err: Error) => void;
  // Bytes the writer thread reads until this settles, and whether they are
  // our own framing buffer to recycle then.
  bytes?: Uint8Array;
  recycle?: boolean;
}

const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
const READ_ATTEMPTS = 3;
const POOLED_MIN_BYTES = 64 * 1024;
const POOLED_MAX_BYTES = 32 * 1024 * 1024;

function checkIndex(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidLogOperationError(`${name} must be a non-negative safe integer, got ${value}`);
  }
}

/**
 * A durable, append-only log of entries indexed 1, 2, 3, … in segment files,
 * written by a native writer thread with group commit and CRC32C on every
 * record. Usable on its own as a write-ahead log.
 *
 * ```ts
 * import { SegmentLog } from 'raftline/log';
 * const log = await SegmentLog.open('./wal');
 * await log.append([{ index: log.lastIndex + 1, term: 1, type: 0, data: Buffer.from('hello') }]);
 * const [entry] = await log.read(log.lastIndex, log.lastIndex + 1);
 * await log.close();
 * ```
 *
 * Many appends may be in flight at once; they are written in call order and
 * each resolves once it is on disk. `lastIndex` counts accepted appends,
 * `durableIndex` the ones already synced; reads see durable entries.
 */
export class SegmentLog implements LogStorage {
  /** What opening this log had to repair. */
  readonly recovery: RecoveryReport;
  readonly dir: string;
  private readonly handle: NativeLogHandle;
  private readonly waiters: Waiter[] = [];
  private readonly framingPool = new BufferPool(POOLED_MIN_BYTES, POOLED_MAX_BYTES);
  private waiterHead = 0;
  private lastSeq = 0;
  private closed = false;

  private constructor(dir: string, handle: NativeLogHandle, recovery: RecoveryReport, waiters: Waiter[]) {
    this.dir = dir;
    this.handle = handle;
    this.recovery = recovery;
    this.waiters = waiters;
  }

  /**
   * Opens (creating if needed) the log in `dir`, scanning every segment and
   * verifying every checksum. A torn write at the end of the open segment (a
   * last record cut short by the end of the file, or with a zero-filled
   * 512-byte sector) is cut off and reported in `recovery`; any other damage,
   * a bad last record written in full included, throws `CorruptLogError`.
   * One log at a time may have `dir` open, in any process: the directory is
   * locked (flock) until `close()`, and opening it again meanwhile throws
   * `LogIOError` with `errno` EWOULDBLOCK, before anything is read or written.
   */
  static async open(dir: string, options: SegmentLogOptions = {}): Promise<SegmentLog> {
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isSafeInteger(segmentBytes)) {
      throw new InvalidLogOperationError(`segmentBytes must be an integer, got ${segmentBytes}`);
    }
    const sync = options.sync ?? 'batch';
    if (sync !== 'batch' && sync !== 'none') {
      throw new InvalidLogOperationError(`sync must be 'batch' or 'none', got ${String(sync)}`);
    }
    // The completion callback exists before the log object does; both share
    // the waiter list.
    const waiters: Waiter[] = [];
    let log: SegmentLog | undefined;
    const onComplete = (seq: number, err?: NativeError): void => log?.settle(seq, err);
    try {
      const opened = await native.openLog(dir, segmentBytes, sync === 'batch', onComplete);
      log = new SegmentLog(dir, opened.handle, opened.recovery, waiters);
      return log;
    } catch (err) {
      throw fromNative(err);
    }
  }

  get firstIndex(): number {
    return this.handle.firstIndex();
  }

  /** Index of the last accepted entry (durable or not); firstIndex - 1 when empty. */
  get lastIndex(): number {
    return this.handle.lastIndex();
  }

  /** Index up to which entries are on disk and readable. */
  get durableIndex(): number {
    return this.handle.durableIndex();
  }

  /** Term of the entry at `index`, or undefined outside [firstIndex, lastIndex]. */
  termAt(index: number): number | undefined {
    checkIndex('index', index);
    if (index < this.handle.firstIndex() || index > this.handle.lastIndex()) return undefined;
    return this.handle.termAt(index);
  }

  /**
   * Appends entries; the first must have index lastIndex + 1, the rest follow
   * on by one, and terms never decrease. Validation happens now (a violation
   * throws `InvalidLogOperationError` and nothing is written); the promise
   * resolves once the entries are durable.
   */
  append(entries: readonly LogEntry[], options: AppendOptions = {}): Promise<void> {
    if (entries.length === 0) return this.barrier();
    // Entries that came off the wire or out of a log keep their records: written as they are (checksums verified natively).
    const known = knownRecords(entries);
    if (known) return this.appendFramed(known, options);
    let framed: Buffer;
    try {
      framed = frameUnsealed(entries, (bytes) => this.framingPool.acquire(bytes));
    } catch (err) {
      return Promise.reject(err);
    }
    const onCaller = options.onCallerIfIdle === true;
    return this.queue(() => this.handle.append(framed, true, onCaller), framed, true);
  }

  /**
   * Appends records already framed with checksums (from `frameEntries`, a
   * read, or AppendEntries off the wire). Checksums are verified before
   * anything is queued. `records` must not be modified until the promise settles.
   */
  appendFramed(records: Uint8Array, options: AppendOptions = {}): Promise<void> {
    const onCaller = options.onCallerIfIdle === true;
    return this.queue(() => this.handle.append(records, false, onCaller), records, false);
  }

  /** Entries [from, toExclusive), waiting for them to become durable if they are not yet (as `decodeRecords` returns them). */
  async read(from: number, toExclusive: number, options: ReadOptions = {}): Promise<LogEntry[]> {
    const framed = await this.readFramed(from, toExclusive, options);
    return decodeRecords(framed.records, framed.count);
  }

  /** Like `read`, without waiting: every entry in the range must already be durable. */
  readSync(from: number, toExclusive: number, options: ReadOptions = {}): LogEntry[] {
    const framed = this.readFramedSync(from, toExclusive, options);
    return decodeRecords(framed.records, framed.count);
  }

  /** Records [from, toExclusive) in their on-disk framing, checksums verified. */
  async readFramed(from: number, toExclusive: number, options: ReadOptions = {}): Promise<FramedRecords> {
    const maxBytes = this.checkRange(from, toExclusive, options);
    if (toExclusive - 1 > this.handle.durableIndex() && toExclusive - 1 <= this.handle.lastIndex()) {
      await this.barrier();
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.handle.read(from, toExclusive, maxBytes);
      } catch (err) {
        if ((err as NativeError).code !== RETRY_CODE || attempt === READ_ATTEMPTS) throw fromNative(err);
      }
    }
  }

  readFramedSync(from: number, toExclusive: number, options: ReadOptions = {}): FramedRecords {
    const maxBytes = this.checkRange(from, toExclusive, options);
    try {
      return this.handle.readSync(from, toExclusive, maxBytes);
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Drops entries after `lastKept` (Raft conflict resolution). Later appends continue at lastKept + 1. */
  truncateSuffix(lastKept: number): Promise<void> {
    return this.queue(() => this.handle.truncateSuffix(lastKept));
  }

  /** Drops entries before `firstKept` (compaction after a snapshot); firstKept may be at most lastIndex + 1. */
  truncatePrefix(firstKept: number): Promise<void> {
    return this.queue(() => this.handle.truncatePrefix(firstKept));
  }

  /** Discards every entry; the log restarts empty at `nextIndex` (after installing a snapshot). */
  reset(nextIndex: number): Promise<void> {
    return this.queue(() => this.handle.reset(nextIndex));
  }

  /** Memory held by the in-memory index, and the number of segment files. */
  stats(): { indexMemoryBytes: number; segmentCount: number } {
    return this.handle.stats();
  }

  /** Waits for queued work, then closes files and stops the writer thread. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.waitFor(this.lastSeq).catch(() => undefined);
    await this.handle.close();
  }

  private checkRange(from: number, toExclusive: number, options: ReadOptions): number {
    checkIndex('from', from);
    checkIndex('toExclusive', toExclusive);
    const maxBytes = options.maxBytes ?? Number.MAX_SAFE_INTEGER;
    checkIndex('maxBytes', maxBytes);
    return maxBytes;
  }

  private queue(start: () => number, bytes?: Uint8Array, recycle?: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new LogClosedError('the log is closed'));
    let seq: number;
    try {
      seq = start();
    } catch (err) {
      if (bytes && recycle) this.framingPool.release(bytes);
      return Promise.reject(fromNative(err));
    }
    if (seq < 0) {
      // Completed on this thread: everything queued before it is durable too.
      this.lastSeq = -seq;
      this.settle(-seq);
      if (bytes && recycle) this.framingPool.release(bytes);
      return Promise.resolve();
    }
    this.lastSeq = seq;
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ seq, resolve, reject, bytes, recycle });
    });
  }

  /** Resolves once everything queued so far has completed. */
  private barrier(): Promise<void> {
    if (this.closed) return Promise.reject(new LogClosedError('the log is closed'));
    return this.waitFor(this.lastSeq);
  }

  private waitFor(seq: number): Promise<void> {
    if (this.waiterHead === this.waiters.length) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
  }

  private settle(seq: number, err?: NativeError): void {
    const error = err ? fromNative(err) : undefined;
    while (this.waiterHead < this.waiters.length && this.waiters[this.waiterHead].seq <= seq) {
      const w = this.waiters[this.waiterHead++];
      if (w.bytes && w.recycle) this.framingPool.release(w.bytes);
      if (error) w.reject(error);
      else w.resolve();
    }
    if (this.waiterHead > 1024 && this.waiterHead * 2 > this.waiters.length) {
      this.waiters.splice(0, this.waiterHead);
      this.waiterHead = 0;
    }
  }
}
