// The core's view of its log: durable entries through a LogReader, plus the
// entries it has accepted but the runtime has not yet confirmed durable.
import type { Entry, LogReader } from './types.js';

export class RaftLog {
  /** Highest index known committed. */
  committed: number;
  /** Highest index handed to the application for applying. */
  applied: number;
  /** Entries not yet confirmed durable; unstable[0] has index unstableOffset. */
  private unstable: Entry[] = [];
  private unstableOffset: number;
  /** Lowest unstable index not yet handed to the runtime for persisting. */
  private persistFrom: number;
  /** The last snapshot installed from a leader: storage below it is stale until the runtime resets it. */
  private snapshot: { index: number; term: number } | null = null;

  constructor(
    private readonly storage: LogReader,
    committed: number,
    applied: number,
  ) {
    this.unstableOffset = storage.lastIndex() + 1;
    this.persistFrom = this.unstableOffset;
    this.committed = committed;
    this.applied = applied;
  }

  firstIndex(): number {
    return Math.max(this.storage.firstIndex(), this.snapshot ? this.snapshot.index + 1 : 0);
  }

  lastIndex(): number {
    // Every entry the core handed out has been confirmed durable once
    // unstable is empty, so the log ends just before the unstable offset.
    return this.unstableOffset + this.unstable.length - 1;
  }

  /** Highest index confirmed durable locally (the leader's own vote counts only up to here). */
  stableIndex(): number {
    return this.unstableOffset - 1;
  }

  term(index: number): number | undefined {
    if (index >= this.unstableOffset) {
      const e = this.unstable[index - this.unstableOffset];
      return e?.term;
    }
    if (index === 0) return 0;
    if (this.snapshot) {
      if (index === this.snapshot.index) return this.snapshot.term;
      if (index < this.snapshot.index) return undefined;
    }
    return this.storage.term(index);
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Whether a candidate with this last entry is at least as up to date as us (Raft §5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Appends entries that follow the last index. */
  append(entries: readonly Entry[]): void {
    for (const e of entries) this.unstable.push(e);
  }

  /**
   * Appends entries received from a leader after prevIndex, dropping any
   * conflicting suffix (Raft §5.3). Returns the index of the last new entry.
   */
  appendFromLeader(prevIndex: number, entries: readonly Entry[]): number {
    let k = 0;
    // Skip entries already present with the same term: a duplicate or reordered
    // append must not truncate entries that a later append added.
    while (k < entries.length && this.matchTerm(entries[k].index, entries[k].term)) k++;
    if (k === entries.length) return prevIndex + entries.length;
    const from = entries[k].index;
    if (from <= this.committed) {
      throw new Error(`raft invariant: entry ${from} conflicts with committed index ${this.committed}`);
    }
    this.truncateAndAppend(from, entries.slice(k));
    return prevIndex + entries.length;
  }

  private truncateAndAppend(from: number, entries: readonly Entry[]): void {
    if (from >= this.unstableOffset) {
      this.unstable.length = from - this.unstableOffset;
    } else {
      // The conflict is in durable storage: the rewritten suffix is unstable
      // again, and the runtime truncates storage when it persists it.
      this.unstable = [];
      this.unstableOffset = from;
    }
    for (const e of entries) this.unstable.push(e);
    this.persistFrom = Math.min(this.persistFrom, from);
  }

  hasUnpersisted(): boolean {
    return this.unstable.length > 0 && this.persistFrom < this.unstableOffset + this.unstable.length;
  }

  /** Entries to persist that were not yet handed out; the first may overwrite existing ones. */
  takeUnpersisted(): Entry[] {
    if (this.persistFrom > this.lastIndex() || this.unstable.length === 0) return [];
    const out = this.unstable.slice(this.persistFrom - this.unstableOffset);
    this.persistFrom = this.lastIndex() + 1;
    return out;
  }

  /** The runtime made entries up to `index` durable, the last of them with `term`. */
  persisted(index: number, term: number): void {
    if (index < this.unstableOffset || !this.matchTerm(index, term)) return;
    this.unstable = this.unstable.slice(index - this.unstableOffset + 1);
    this.unstableOffset = index + 1;
  }

  /** Replaces the whole log by a snapshot through `index` (a follower that fell behind compaction). */
  restore(index: number, term: number): void {
    this.snapshot = { index, term };
    this.unstable = [];
    this.unstableOffset = index + 1;
    this.persistFrom = index + 1;
    this.committed = index;
    this.applied = index;
  }

  commitTo(index: number): void {
    if (index > this.committed) {
      if (index > this.lastIndex()) {
        throw new Error(`raft invariant: commit ${index} beyond last index ${this.lastIndex()}`);
      }
      this.committed = index;
    }
  }

  /** Entries [from, toExclusive) up to maxBytes of payload (at least one). */
  entries(from: number, toExclusive: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    const stableEnd = Math.min(toExclusive, this.unstableOffset);
    if (from < stableEnd) {
      for (const e of this.storage.entries(from, stableEnd, maxBytes)) {
        out.push(e);
        bytes += e.data.byteLength;
      }
      if (out.length < stableEnd - from) return out;
    }
    for (let i = Math.max(from, this.unstableOffset); i < toExclusive; i++) {
      const e = this.unstable[i - this.unstableOffset];
      if (out.length > 0 && bytes + e.data.byteLength > maxBytes) break;
      out.push(e);
      bytes += e.data.byteLength;
    }
    return out;
  }

  /** Committed entries up to `upTo` not yet handed out for applying, up to maxBytes. */
  takeCommitted(maxBytes: number, upTo: number): Entry[] {
    const last = Math.min(upTo, this.committed);
    if (this.applied >= last) return [];
    const out = this.entries(this.applied + 1, last + 1, maxBytes);
    if (out.length > 0) this.applied = out[out.length - 1].index;
    return out;
  }

  /**
   * The largest index <= `index` whose term is <= `term` (etcd's
   * findConflictByTerm): where a leader should probe next after a rejection.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    const floor = this.firstIndex() - 1;
    while (i > floor) {
      const t = this.term(i);
      if (t === undefined || t <= term) return i;
      i--;
    }
    return floor;
  }
}
