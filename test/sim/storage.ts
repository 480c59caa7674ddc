import type { Entry, HardState, LogReader } from '../../src/core/index.js';

/**
 * A simulated disk for one node. Writes land in a volatile view at once and
 * become durable only when a later sync covers them; a crash throws away
 * everything not yet synced, as a power loss would.
 */
export class SimStorage implements LogReader {
  private volatile: Entry[] = [];
  private durable: Entry[] = [];
  private volatileHard: HardState = { term: 0, vote: null };
  private durableHard: HardState = { term: 0, vote: null };
  /** Writes not yet covered by a sync, in order. */
  private unsynced: { entries: Entry[]; hard?: HardState }[] = [];

  firstIndex(): number {
    return 1;
  }

  lastIndex(): number {
    return this.volatile.length;
  }

  term(index: number): number | undefined {
    if (index === 0) return 0;
    return this.volatile[index - 1]?.term;
  }

  entries(from: number, toExclusive: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = from; i < toExclusive && i <= this.volatile.length; i++) {
      const e = this.volatile[i - 1];
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

  /** Loses everything not synced. */
  crash(): void {
    this.unsynced = [];
    this.volatile = this.durable.slice();
    this.volatileHard = this.durableHard;
  }

  get hardState(): HardState {
    return this.volatileHard;
  }

  /** The node's current log, for the log-matching check. */
  get log(): readonly Entry[] {
    return this.volatile;
  }
}

function applyEntries(log: Entry[], entries: Entry[]): void {
  if (entries.length === 0) return;
  const from = entries[0].index;
  if (from > log.length + 1) throw new Error(`simulated storage: gap before index ${from} (last ${log.length})`);
  log.length = from - 1;
  for (const e of entries) log.push(e);
}
