import type { Entry, HardState, LogReader } from '../../src/core/index.js';

interface Log {
  /** Index of the entry before entries[0] (the last compacted one); its term is `baseTerm`. */
  base: number;
  baseTerm: number;
  entries: Entry[];
}

/**
 * A simulated disk for one node. Writes land in a volatile view at once and
 * become durable only when a later sync covers them; a crash throws away
 * everything not yet synced, as a power loss would. Compaction and snapshot
 * installation are durable at once (the runtime writes the snapshot first).
 */
export class SimStorage implements LogReader {
  private volatile: Log = { base: 0, baseTerm: 0, entries: [] };
  private durable: Log = { base: 0, baseTerm: 0, entries: [] };
  private volatileHard: HardState = { term: 0, vote: null };
  private durableHard: HardState = { term: 0, vote: null };
  /** Writes not yet covered by a sync, in order. */
  private unsynced: { entries: Entry[]; hard?: HardState }[] = [];

  firstIndex(): number {
    return this.volatile.base + 1;
  }

  lastIndex(): number {
    return this.volatile.base + this.volatile.entries.length;
  }

  term(index: number): number | undefined {
    if (index === this.volatile.base) return this.volatile.baseTerm;
    return this.volatile.entries[index - this.volatile.base - 1]?.term;
  }

  entries(from: number, toExclusive: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = Math.max(from, this.firstIndex()); i < toExclusive && i <= this.lastIndex(); i++) {
      const e = this.volatile.entries[i - this.volatile.base - 1];
      if (out.length > 0 && bytes + e.data.byteLength > maxBytes) break;
      out.push(e);
      bytes += e.data.byteLength;
    }
    return out;
  }

  /** Writes entries (truncating any existing ones from entries[0].index) and hard state, not yet durably. */
  write(entries: Entry[], hard?: HardState): void {
    applyEntries(this.volatile, entries);
    if (hard) this.volatileHard = hard;
    this.unsynced.push({ entries, hard });
  }

  /** Makes the oldest unsynced write durable (the disk completes writes in order). */
  syncOne(): void {
    const w = this.unsynced.shift();
    if (!w) return;
    applyEntries(this.durable, w.entries);
    if (w.hard) this.durableHard = w.hard;
  }

  /**
   * Last index whose entry is durable and final: entries an unsynced write is
   * about to overwrite are on disk now but are not the log's.
   */
  durableLastIndex(): number {
    let last = this.durable.base + this.durable.entries.length;
    for (const w of this.unsynced) if (w.entries.length > 0) last = Math.min(last, w.entries[0].index - 1);
    return last;
  }

  /** Drops entries through `index` (covered by a snapshot); `index` must be durable. */
  compact(index: number): void {
    for (const log of [this.volatile, this.durable]) {
      if (index <= log.base) continue;
      const term = log.entries[index - log.base - 1]?.term;
      if (term === undefined) throw new Error(`simulated storage: cannot compact through ${index}, not in the log`);
      log.entries = log.entries.slice(index - log.base);
      log.base = index;
      log.baseTerm = term;
    }
  }

  /** Replaces the whole log by a snapshot through `index`. */
  reset(index: number, term: number): void {
    this.volatile = { base: index, baseTerm: term, entries: [] };
    this.durable = { base: index, baseTerm: term, entries: [] };
    // Writes still in flight were for the log the snapshot replaced.
    this.unsynced = this.unsynced.map((w) => ({ entries: [], hard: w.hard }));
  }

  /** Loses everything not synced. */
  crash(): void {
    this.unsynced = [];
    this.volatile = { ...this.durable, entries: this.durable.entries.slice() };
    this.volatileHard = this.durableHard;
  }

  /** Loses the last `count` entries, synced or not: a damaged tail cut off when the node restarts. */
  loseTail(count: number): void {
    this.crash();
    this.durable.entries.length = Math.max(0, this.durable.entries.length - count);
    this.volatile = { ...this.durable, entries: this.durable.entries.slice() };
  }

  get hardState(): HardState {
    return this.volatileHard;
  }

  /** The node's current log entries (after its compaction point), for the checks. */
  get log(): readonly Entry[] {
    return this.volatile.entries;
  }
}

function applyEntries(log: Log, entries: Entry[]): void {
  if (entries.length === 0) return;
  const from = entries[0].index;
  if (from <= log.base) throw new Error(`simulated storage: write at ${from} below the compaction point ${log.base}`);
  if (from > log.base + log.entries.length + 1) {
    throw new Error(`simulated storage: gap before index ${from} (last ${log.base + log.entries.length})`);
  }
  log.entries.length = from - log.base - 1;
  for (const e of entries) log.entries.push(e);
}
