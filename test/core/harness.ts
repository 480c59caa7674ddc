// A small in-process cluster of cores for scenario tests: messages are
// delivered by hand or until quiet, persistence is immediate unless held.
import { DEFAULT_CORE_OPTIONS, EntryType, RaftCore, type CoreOptions, type Entry, type Message, type NodeId } from '../../src/core/index.js';
import { Prng } from '../support/prng.js';
import { SimStorage } from '../sim/storage.js';

export interface TestNode {
  id: NodeId;
  core: RaftCore;
  storage: SimStorage;
  applied: Entry[];
  readStates: { requestId: number; index: number }[];
  readFailures: { requestId: number; reason: string }[];
  /** Followers this node (as leader) asked to be sent a snapshot. */
  snapshotRequests: NodeId[];
  /** Snapshots this node installed, by index. */
  installed: number[];
  /** While set, this node's writes stay unsynced and its acknowledgements wait. */
  holdPersist: boolean;
  held: { last?: Entry; after: Message[] }[];
}

export class Cluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered. */
  inbox: Message[] = [];
  /** Links that drop messages: "a>b". */
  readonly cut = new Set<string>();
  readonly rng = new Prng(42);
  private readonly coreOptions: Partial<CoreOptions>;
  private readonly voters: NodeId[];

  /** Creates nodes `ids`; the initial configuration has `voters` (default: all of them). */
  constructor(ids: NodeId[], overrides: Partial<CoreOptions> = {}, voters: NodeId[] = ids) {
    this.coreOptions = overrides;
    this.voters = voters;
    for (const id of ids) this.boot(id, new SimStorage());
  }

  private boot(id: NodeId, storage: SimStorage): void {
    const core = new RaftCore(
      { ...DEFAULT_CORE_OPTIONS, id, random: () => this.rng.next(), ...this.coreOptions },
      storage,
      { hardState: storage.hardState, configuration: { voters: this.voters, learners: [] }, applied: 0 },
    );
    this.nodes.set(id, { id, core, storage, applied: [], readStates: [], readFailures: [], snapshotRequests: [], installed: [], holdPersist: false, held: [] });
  }

  /** Restarts `id` from its disk after `damage` (default: a crash, losing what was not synced). */
  restart(id: NodeId, damage: (storage: SimStorage) => void = (s) => s.crash()): void {
    const { storage } = this.node(id);
    damage(storage);
    this.inbox = this.inbox.filter((m) => m.to !== id);
    this.boot(id, storage);
  }

  node(id: NodeId): TestNode {
    return this.nodes.get(id)!;
  }

  /** Collects every node's Ready, performing its writes and queueing its messages. */
  flush(): void {
    let again = true;
    while (again) {
      again = false;
      for (const n of this.nodes.values()) {
        while (n.core.hasReady()) {
          again = true;
          const r = n.core.ready();
          if (r.snapshot) {
            n.storage.reset(r.snapshot.index, r.snapshot.term);
            n.installed.push(r.snapshot.index);
          }
          n.snapshotRequests.push(...r.sendSnapshots);
          this.inbox.push(...r.messages);
          if (r.entries.length > 0 || r.hardState) n.storage.write(r.entries, r.hardState);
          const last = r.entries[r.entries.length - 1];
          if (n.holdPersist) {
            n.held.push({ last, after: r.messagesAfterPersist });
          } else {
            n.storage.syncOne();
            if (last) n.core.persisted(last.index, last.term);
            this.inbox.push(...r.messagesAfterPersist);
          }
          n.applied.push(...r.committed);
          if (r.committed.length > 0) n.core.applied(r.committed[r.committed.length - 1].index);
          n.readStates.push(...r.readStates);
          n.readFailures.push(...r.readFailures);
        }
      }
    }
  }

  /** Lets a node's held writes reach the disk. */
  release(id: NodeId): void {
    const n = this.node(id);
    n.holdPersist = false;
    for (const h of n.held.splice(0)) {
      n.storage.syncOne();
      if (h.last) n.core.persisted(h.last.index, h.last.term);
      this.inbox.push(...h.after);
    }
    this.flush();
  }

  /** Delivers queued messages (those matching `filter`, default all) until none are left. */
  stabilize(filter: (m: Message) => boolean = () => true, maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      this.flush();
      const deliver = this.inbox.filter(filter);
      if (deliver.length === 0) return;
      this.inbox = this.inbox.filter((m) => !filter(m));
      for (const m of deliver) {
        if (this.cut.has(`${m.from}>${m.to}`)) continue;
        this.node(m.to).core.step(m);
      }
    }
    throw new Error('cluster did not stabilize');
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).core.tick();
    this.flush();
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) for (const n of this.nodes.values()) n.core.tick();
    this.flush();
  }

  /** Cuts every link between `id` and the others, both ways. */
  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /**
   * Makes `id` leader: it campaigns at once, as a transfer target does (so
   * other nodes' leader leases do not stand in the way), and every message
   * is delivered.
   */
  elect(id: NodeId): void {
    this.campaign(id);
    this.stabilize();
    if (this.node(id).core.currentRole !== 'leader') throw new Error(`${id} could not win an election`);
  }

  /** Makes `id` campaign at once, as a transfer target does, and queues what it sends; delivers nothing. */
  campaign(id: NodeId): void {
    const n = this.node(id);
    n.core.step({ type: 'timeoutNow', from: id, to: id, term: n.core.currentTerm });
    this.flush();
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.core.currentRole === 'leader').map((n) => n.id);
  }

  propose(id: NodeId, text: string): ReturnType<RaftCore['propose']> {
    const r = this.node(id).core.propose([Buffer.from(text)]);
    this.flush();
    return r;
  }
}

/** The application commands among `entries`, as text. */
export function texts(entries: readonly Entry[]): string[] {
  return entries.filter((e) => e.type === EntryType.Command).map((e) => Buffer.from(e.data).toString());
}
