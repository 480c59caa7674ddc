// The leader's view of one follower's replication (etcd's tracker, braft's
// Replicator state): where it is, how it is being fed, and what is in flight.

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/**
 * A bounded window of AppendEntries in flight to one follower, by count and
 * by bytes, released as acknowledgements arrive.
 */
export class Inflights {
  // A ring, oldest at `head`: messages are released oldest first, and arrays
  // that splice or shift allocate on every acknowledgement.
  private lastIndexes = new Float64Array(16);
  private sizes = new Float64Array(16);
  private head = 0;
  private length = 0;
  private bytes = 0;

  constructor(
    private readonly maxCount: number,
    private readonly maxBytes: number,
  ) {}

  add(lastIndex: number, bytes: number): void {
    if (this.length === this.lastIndexes.length) this.grow();
    const at = (this.head + this.length) % this.lastIndexes.length;
    this.lastIndexes[at] = lastIndex;
    this.sizes[at] = bytes;
    this.length++;
    this.bytes += bytes;
  }

  /** Frees every message whose last index is at or below `index`. */
  freeTo(index: number): void {
    while (this.length > 0 && this.lastIndexes[this.head] <= index) this.freeFirst();
  }

  /** Frees the oldest message, whatever became of it. */
  freeFirst(): void {
    if (this.length === 0) return;
    this.bytes -= this.sizes[this.head];
    this.head = (this.head + 1) % this.lastIndexes.length;
    this.length--;
  }

  reset(): void {
    this.head = 0;
    this.length = 0;
    this.bytes = 0;
  }

  private grow(): void {
    const capacity = this.lastIndexes.length;
    const lastIndexes = new Float64Array(capacity * 2);
    const sizes = new Float64Array(capacity * 2);
    for (let i = 0; i < this.length; i++) {
      lastIndexes[i] = this.lastIndexes[(this.head + i) % capacity];
      sizes[i] = this.sizes[(this.head + i) % capacity];
    }
    this.lastIndexes = lastIndexes;
    this.sizes = sizes;
    this.head = 0;
  }

  get full(): boolean {
    return this.length >= this.maxCount || this.bytes >= this.maxBytes;
  }

  get count(): number {
    return this.length;
  }

  get inflightBytes(): number {
    return this.bytes;
  }
}

export class Progress {
  /** Highest index known to be replicated on the follower. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: one probe is outstanding, wait for its answer (or a heartbeat response). */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** The leader's tick when it last heard from the follower. */
  heardTick = -Infinity;
  /** Highest heartbeat round the follower acknowledged in the current term. */
  ackedRound = 0;
  /** In snapshot state: the snapshot index being sent. */
  pendingSnapshot = 0;
  /**
   * Highest commit index sent to the follower (in an append, heartbeat or
   * commit notice) that covers only entries the message leaves it holding:
   * a commit notice at or below it would tell the follower nothing new. If
   * that message is lost, the next heartbeat tells it again.
   */
  commitSent = 0;
  readonly inflights: Inflights;

  constructor(next: number, maxInflightMsgs: number, maxInflightBytes: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it; otherwise from what is known to match.
    this.next = this.state === 'snapshot' ? Math.max(this.match, this.pendingSnapshot) + 1 : this.match + 1;
    this.state = 'probe';
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  /**
   * The follower reports holding entries only up to `lastIndex`, below what
   * it acknowledged: it lost some (see maybeDecrease). Start again from what
   * it holds. A snapshot being sent settles the matter by itself.
   */
  followerHolds(lastIndex: number): void {
    if (lastIndex >= this.match || this.state === 'snapshot') return;
    this.match = lastIndex;
    this.becomeProbe();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = snapshotIndex;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** Records a successful acknowledgement up to `index`; false if it told nothing new. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * Handles a rejection of an append whose prevIndex was `rejected`; `hint` is
   * where to probe next. Returns false for a stale rejection.
   */
  maybeDecrease(rejected: number, hint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), 1);
    // Rejected at or below match: either the follower lost entries it had
    // acknowledged (its disk lied about a flush, and the tail was cut on
    // restart), or this is a late rejection that an acknowledgement overtook.
    // Lowering match is safe in both cases (the commit index never moves
    // back; a lower match only delays commits), and in the first it is the
    // only way forward: probing at match would be refused forever.
    if (this.next <= this.match) this.match = this.next - 1;
    this.probeSent = false;
    return true;
  }

  /** Whether the leader should hold back appends to this follower now. */
  get paused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full;
      case 'snapshot':
        return true;
    }
  }
}
