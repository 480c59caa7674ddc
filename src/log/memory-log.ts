import { InvalidLogOperationError, LogClosedError } from './errors.js';
import { decodeRecords, RECORD_HEADER_BYTES, type LogEntry } from './framing.js';
import type { AppendOptions, ReadOptions } from './segment-log.js';

/**
 * What the Raft runtime needs from a log. `SegmentLog` implements it on disk,
 * `MemoryLog` in memory for tests and the simulator.
 */
export interface LogStorage {
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly durableIndex: number;
  termAt(index: number): number | undefined;
  append(entries: readonly LogEntry[], options?: AppendOptions): Promise<void>;
  read(from: number, toExclusive: number, options?: ReadOptions): Promise<LogEntry[]>;
  readSync(from: number, toExclusive: number, options?: ReadOptions): LogEntry[];
  truncateSuffix(lastKept: number): Promise<void>;
  truncatePrefix(firstKept: number): Promise<void>;
  reset(nextIndex: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * An in-memory log with the same contract as `SegmentLog`: the same
 * validation, the same errors, the same read bounds. Appends are durable at
 * once. Entries are copied in, so callers may reuse their buffers.
 */
export class MemoryLog implements LogStorage {
  private entries: LogEntry[] = [];
  private first = 1;
  private closed = false;

  get firstIndex(): number {
    return this.first;
  }

  get lastIndex(): number {
    return this.first + this.entries.length - 1;
  }

  get durableIndex(): number {
    return this.lastIndex;
  }

  termAt(index: number): number | undefined {
    if (index < this.first || index > this.lastIndex) return undefined;
    return this.entries[index - this.first].term;
  }

  append(entries: readonly LogEntry[]): Promise<void> {
    return this.mutate(() => {
      let expect = this.lastIndex + 1;
      let term = this.entries.length > 0 ? this.entries[this.entries.length - 1].term : 0;
      for (const e of entries) {
        if (e.index !== expect) {
          throw new InvalidLogOperationError(`non-contiguous append: index ${e.index}, expected ${expect}`);
        }
        if (e.term < term) throw new InvalidLogOperationError(`term went backwards: ${e.term} after ${term}`);
        term = e.term;
        expect++;
      }
      for (const e of entries) this.entries.push({ ...e, data: Uint8Array.from(e.data) });
    });
  }

  /** Appends framed records; checksums are not verified here. */
  appendFramed(records: Buffer): Promise<void> {
    return this.append(decodeRecords(records));
  }

  async read(from: number, toExclusive: number, options: ReadOptions = {}): Promise<LogEntry[]> {
    return this.readSync(from, toExclusive, options);
  }

  readSync(from: number, toExclusive: number, options: ReadOptions = {}): LogEntry[] {
    if (this.closed) throw new LogClosedError('the log is closed');
    if (toExclusive < from) throw new InvalidLogOperationError('read range is reversed');
    if (from < this.first) throw new InvalidLogOperationError(`index ${from} is below the first index ${this.first}`);
    if (toExclusive - 1 > this.lastIndex && toExclusive > from) {
      throw new InvalidLogOperationError(`index ${toExclusive - 1} is beyond the last index ${this.lastIndex}`);
    }
    const maxBytes = options.maxBytes ?? Number.MAX_SAFE_INTEGER;
    const out: LogEntry[] = [];
    let bytes = 0;
    for (let i = from; i < toExclusive; i++) {
      const e = this.entries[i - this.first];
      const size = RECORD_HEADER_BYTES + e.data.byteLength;
      if (out.length > 0 && bytes + size > maxBytes) break;
      bytes += size;
      out.push(e);
    }
    return out;
  }

  truncateSuffix(lastKept: number): Promise<void> {
    return this.mutate(() => {
      if (lastKept + 1 < this.first || lastKept > this.lastIndex) {
        throw new InvalidLogOperationError(`truncateSuffix(${lastKept}) is outside ${this.first - 1}..${this.lastIndex}`);
      }
      this.entries.length = lastKept - this.first + 1;
    });
  }

  truncatePrefix(firstKept: number): Promise<void> {
    return this.mutate(() => {
      if (firstKept > this.lastIndex + 1) {
        throw new InvalidLogOperationError(`truncatePrefix(${firstKept}) is beyond the last index + 1`);
      }
      if (firstKept <= this.first) return;
      this.entries.splice(0, firstKept - this.first);
      this.first = firstKept;
    });
  }

  reset(nextIndex: number): Promise<void> {
    return this.mutate(() => {
      if (!Number.isSafeInteger(nextIndex) || nextIndex < 1) {
        throw new InvalidLogOperationError(`reset(${nextIndex}): the next index must be a positive integer`);
      }
      this.entries = [];
      this.first = nextIndex;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private mutate(change: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new LogClosedError('the log is closed'));
    try {
      change();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
