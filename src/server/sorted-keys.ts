// The key-value store's keys in order, for ranges. Kept as a list of sorted
// blocks of at most MAX_BLOCK_KEYS keys: placing or removing one key moves at
// most a block's worth of references, where one sorted array of a million
// keys moves half a million. A full sort after every new key (what the store
// did) stalled the event loop for 45 ms at 100,000 keys, 600 ms at a million:
// long enough, on a leader, to cost heartbeats. Keys added wait in `pending`
// until a read or until MAX_PENDING_KEYS of them, so that a read never has
// more than that many to place, and a burst of writes places them together.
//
// Keys are binary strings (one char per byte, as KvStore keeps them), so
// JavaScript's string order is byte order.

const MAX_BLOCK_KEYS = 1024;
const MAX_PENDING_KEYS = 1024;
/** Rebuilt blocks start half full, so that the next inserts rarely split them. */
const REBUILD_BLOCK_KEYS = MAX_BLOCK_KEYS / 2;

export class SortedKeys {
  private blocks: string[][] = [];
  private pending: string[] = [];
  private placed = 0;

  /** Records a key not already present. */
  add(key: string): void {
    this.pending.push(key);
    if (this.pending.length >= MAX_PENDING_KEYS) this.settle();
  }

  /** Replaces every key: one sort, where adding many keys one by one would place each. */
  reset(keys: Iterable<string>): void {
    this.clear();
    this.pending = [...keys];
    this.rebuild();
    this.pending = [];
  }

  /** Forgets a key that is present. */
  remove(key: string): void {
    this.settle();
    const { block, index } = this.lowerBound(key);
    const keys = this.blocks[block];
    if (keys === undefined || keys[index] !== key) throw new Error(`SortedKeys: removing a key that is not present`);
    keys.splice(index, 1);
    this.placed--;
    if (keys.length === 0) this.blocks.splice(block, 1);
  }

  /**
   * Removes every key in [from, to) (`to` null: to the end) and returns them
   * in order. Whole blocks go at once: removing 300,000 keys one by one, each
   * shifting its block, took most of 340 ms on the apply path.
   */
  removeRange(from: string, to: string | null): string[] {
    this.settle();
    const start = this.lowerBound(from);
    const end = to === null ? { block: this.blocks.length, index: 0 } : this.lowerBound(to);
    if (end.block < start.block || (end.block === start.block && end.index <= start.index)) return [];
    const first = this.blocks[start.block];
    let removed: string[];
    if (start.block === end.block) {
      removed = first.splice(start.index, end.index - start.index);
      if (first.length === 0) this.blocks.splice(start.block, 1);
    } else {
      removed = first.splice(start.index);
      for (let b = start.block + 1; b < end.block; b++) for (const key of this.blocks[b]) removed.push(key);
      const last = this.blocks[end.block] as string[] | undefined;
      if (last) for (const key of last.splice(0, end.index)) removed.push(key);
      // The blocks in between go, and the first and the last if nothing is left of them.
      const keepFirst = first.length > 0 ? 1 : 0;
      const dropLast = last !== undefined && last.length === 0 ? 1 : 0;
      this.blocks.splice(start.block + keepFirst, end.block - start.block - keepFirst + dropLast);
    }
    this.placed -= removed.length;
    return removed;
  }

  clear(): void {
    this.blocks = [];
    this.pending = [];
    this.placed = 0;
  }

  get size(): number {
    return this.placed + this.pending.length;
  }

  /** How many keys lie in [from, to); `to` null: from `from` to the end. */
  count(from: string, to: string | null): number {
    this.settle();
    const start = this.lowerBound(from);
    const end = to === null ? { block: this.blocks.length, index: 0 } : this.lowerBound(to);
    if (end.block < start.block || (end.block === start.block && end.index <= start.index)) return 0;
    let n = -start.index + end.index;
    for (let b = start.block; b < end.block; b++) n += this.blocks[b].length;
    return n;
  }

  /** The first `limit` keys in [from, to), in order; `to` null: to the end. */
  keys(from: string, to: string | null, limit = Infinity): string[] {
    this.settle();
    const out: string[] = [];
    let { block, index } = this.lowerBound(from);
    for (; block < this.blocks.length && out.length < limit; block++, index = 0) {
      const keys = this.blocks[block];
      for (; index < keys.length && out.length < limit; index++) {
        const key = keys[index];
        if (to !== null && key >= to) return out;
        out.push(key);
      }
    }
    return out;
  }

  /** Places the pending keys. */
  private settle(): void {
    if (this.pending.length === 0) return;
    // Each placement costs a binary search and a block splice; many at once
    // (a snapshot just loaded, say) are cheaper merged in one pass.
    if (this.pending.length * 16 > this.placed) this.rebuild();
    else for (const key of this.pending) this.place(key);
    this.pending = [];
  }

  private rebuild(): void {
    const all = this.blocks.flat();
    for (const key of this.pending) all.push(key);
    all.sort();
    this.blocks = [];
    for (let at = 0; at < all.length; at += REBUILD_BLOCK_KEYS) this.blocks.push(all.slice(at, at + REBUILD_BLOCK_KEYS));
    this.placed = all.length;
  }

  private place(key: string): void {
    this.placed++;
    if (this.blocks.length === 0) {
      this.blocks.push([key]);
      return;
    }
    let { block, index } = this.lowerBound(key);
    // Past every key: it goes at the end of the last block.
    if (block === this.blocks.length) {
      block--;
      index = this.blocks[block].length;
    }
    const keys = this.blocks[block];
    keys.splice(index, 0, key);
    if (keys.length > MAX_BLOCK_KEYS) this.blocks.splice(block + 1, 0, keys.splice(MAX_BLOCK_KEYS / 2));
  }

  /** Where `key` is or would go: the first block whose last key is ≥ key (blocks.length if none), and the index in it. */
  private lowerBound(key: string): { block: number; index: number } {
    let lo = 0;
    let hi = this.blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const keys = this.blocks[mid];
      if (keys[keys.length - 1] < key) lo = mid + 1;
      else hi = mid;
    }
    if (lo === this.blocks.length) return { block: lo, index: 0 };
    const keys = this.blocks[lo];
    let i = 0;
    let j = keys.length;
    while (i < j) {
      const mid = (i + j) >>> 1;
      if (keys[mid] < key) i = mid + 1;
      else j = mid;
    }
    return { block: lo, index: i };
  }
}
