// Recently appended log entries kept in memory, so a node applies and
// replicates what it just wrote without reading it back from disk.
import type { Entry } from '../core/index.js';
import { RECORD_HEADER_BYTES } from '../log/index.js';

/** Bytes an entry takes in the log, the unit `SegmentLog` reads are bounded in. */
function recordBytes(e: Entry): number {
  return RECORD_HEADER_BYTES + e.data.byteLength;
}

/**
 * The newest consecutive entries of a log, [firstIndex, endIndex), holding
 * exactly what the log holds at those indexes as long as it is told about
 * every change to the log, in the order the log receives them.
 *
 * The entries are the objects appended, not copies: they keep the sealed
 * records `frameEntries` and `SegmentLog.append` reuse.
 */
export class EntryCache {
  /** entries[head] has index `firstIndex`; the slots before it are emptied, awaiting compaction of the array. */
  private entries: (Entry | undefined)[] = [];
  private head = 0;
  private first: number;
  private bytes = 0;

  /**
   * @param nextIndex the index the log appends at next.
   * @param maxCacheBytes record bytes (headers included) held at most; the oldest entries go first.
   */
  constructor(
    nextIndex: number,
    private readonly maxCacheBytes: number,
  ) {
    this.first = nextIndex;
  }

  get firstIndex(): number {
    return this.first;
  }

  /** One past the last cached index: the log's next index. */
  get endIndex(): number {
    return this.first + this.entries.length - this.head;
  }

  /** Record bytes (headers included) of the cached entries. */
  get cachedBytes(): number {
    return this.bytes;
  }

  /** The log appended consecutive `entries`, replacing whatever it held from entries[0].index on. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const from = entries[0].index;
    if (entries[entries.length - 1].index !== from + entries.length - 1) {
      throw new Error(`entry cache: appended indexes ${from}..${entries[entries.length - 1].index} are not consecutive`);
    }
    if (from < this.first || from > this.endIndex) this.reset(from);
    else this.dropFrom(from);
    for (const e of entries) {
      this.entries.push(e);
      this.bytes += recordBytes(e);
    }
    this.dropOldest(() => this.bytes > this.maxCacheBytes);
  }

  /** Forgets entries below `index`: applied ones, or ones compaction removed from the log. */
  dropBelow(index: number): void {
    this.dropOldest(() => this.first < index);
  }

  /** The log restarted empty at `nextIndex` (after installing a snapshot). */
  reset(nextIndex: number): void {
    this.entries = [];
    this.head = 0;
    this.first = nextIndex;
    this.bytes = 0;
  }

  /**
   * Entries [from, toExclusive) bounded as `SegmentLog.readSync` bounds them:
   * at least one, then only while the records (headers included) stay within
   * maxBytes. Undefined unless every index in the range is cached.
   */
  read(from: number, toExclusive: number, maxBytes: number): Entry[] | undefined {
    if (from < this.first || toExclusive > this.endIndex || from >= toExclusive) return undefined;
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = from - this.first + this.head, end = toExclusive - this.first + this.head; i < end; i++) {
      const e = this.entries[i]!;
      const size = recordBytes(e);
      if (out.length > 0 && bytes + size > maxBytes) break;
      bytes += size;
      out.push(e);
    }
    return out;
  }

  /** Drops cached entries at `index` and after (the log overwrites them). */
  private dropFrom(index: number): void {
    const keep = this.head + index - this.first;
    for (let i = keep; i < this.entries.length; i++) this.bytes -= recordBytes(this.entries[i]!);
    this.entries.length = keep;
  }

  private dropOldest(more: () => boolean): void {
    while (this.head < this.entries.length && more()) {
      this.bytes -= recordBytes(this.entries[this.head]!);
      this.entries[this.head] = undefined;
      this.head++;
      this.first++;
    }
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
  }
}
