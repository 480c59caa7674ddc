// A deterministic simulation of a whole Raft cluster driven by the pure core:
// virtual time, a faulty network, disks that lose unsynced writes on a crash,
// a key-value state machine and clients whose history is checked for
// linearizability. Raft's safety properties are checked as it runs.
import {
  DEFAULT_CORE_OPTIONS,
  EntryType,
  RaftCore,
  type ConfChange,
  type Configuration,
  type Entry,
  type Message,
  type NodeId,
  type Ready,
} from '../../src/core/index.js';
import { Prng } from '../support/prng.js';
import { EventQueue } from './event-queue.js';
import { checkLinearizable, type HistoryOp, type KvOp } from './linearizability.js';
import { SimStorage } from './storage.js';

export interface SimOptions {
  seed: number;
  nodes: number;
  /** Virtual milliseconds of faults before everything heals. */
  chaosMs: number;
  /** Virtual milliseconds allowed after healing for a leader to emerge and pending operations to finish. */
  settleMs: number;
  clients: number;
  keys: number;
  preVote: boolean;
  tickMs: number;
  maxDelayMs: number;
  /** Upper bound of one disk write's latency: the window in which a crash loses acknowledged-looking state. */
  diskDelayMs: number;
  /** Bytes per AppendEntries: small values split replication into many messages. */
  maxMsgBytes: number;
  dropRate: number;
  duplicateRate: number;
  partitions: boolean;
  crashes: boolean;
  transfers: boolean;
  leaseReads: boolean;
  /** Voters at the start; the other nodes join only through membership changes. */
  initialVoters: number;
  membershipChanges: boolean;
  /** Each node snapshots its state machine and compacts its log every this many applied entries; 0: never. */
  snapshotEvery: number;
}

/** A seed's options, varied by the seed itself so that many seeds cover many shapes of cluster and fault. */
export function optionsForSeed(seed: number): SimOptions {
  const rng = new Prng(seed ^ 0x5bd1e995);
  const nodes = [1, 3, 3, 3, 5, 5, 7][rng.int(0, 6)];
  const membershipChanges = nodes > 1 && rng.chance(0.4);
  return {
    seed,
    nodes,
    initialVoters: membershipChanges ? rng.int(1, nodes) : nodes,
    membershipChanges,
    snapshotEvery: rng.chance(0.5) ? 0 : rng.int(5, 60),
    chaosMs: rng.int(1500, 3000),
    settleMs: 4000,
    clients: rng.int(1, 4),
    keys: rng.int(1, 3),
    preVote: rng.chance(0.75),
    tickMs: 10,
    maxDelayMs: rng.int(1, 30),
    diskDelayMs: rng.int(1, 15),
    maxMsgBytes: rng.chance(0.5) ? 256 : 4096,
    dropRate: rng.chance(0.5) ? 0 : rng.next() * 0.1,
    duplicateRate: rng.chance(0.5) ? 0 : rng.next() * 0.05,
    partitions: rng.chance(0.6),
    crashes: rng.chance(0.6),
    transfers: rng.chance(0.3),
    leaseReads: rng.chance(0.5),
  };
}

export interface SimResult {
  ok: boolean;
  error?: string;
  virtualMs: number;
  committed: number;
  operations: number;
  elections: number;
}

class SafetyError extends Error {}

interface PendingWrite {
  client: Client;
  index: number;
  term: number;
  history: HistoryOp;
}

interface PendingRead {
  client: Client;
  index: number;
  history: HistoryOp;
}

interface Client {
  id: number;
  seq: number;
  busy: boolean;
  /** The operation in progress, for its timeout to recognize it. */
  current: HistoryOp | null;
  started: number;
  target: NodeId;
  /** Completed operations after the cluster healed (liveness). */
  doneAfterHeal: number;
}

const ELECTION_TICKS = 10;
const MAX_EVENTS = 2_000_000;
/** A client gives up on an operation after this long; a write's outcome is then unknown. */
const CLIENT_TIMEOUT_MS = 1000;
const MAX_OPS_BEFORE_HEAL = 150;

function entryKey(e: Entry): string {
  return `${e.term}:${e.type}:${Buffer.from(e.data).toString('base64')}`;
}

interface SimSnapshot {
  index: number;
  term: number;
  configuration: Configuration;
  kv: Map<string, string>;
}

class SimNode {
  core!: RaftCore;
  /** The latest snapshot, durable; restarts begin from it. */
  snapshot: SimSnapshot | null = null;
  /** A snapshot that arrived from the leader and awaits the core's go-ahead to install. */
  received: SimSnapshot | null = null;
  up = true;
  /** Bumped on every crash, so events scheduled before it are ignored. */
  epoch = 0;
  diskFreeAt = 0;
  kv = new Map<string, string>();
  applied = 0;
  pendingWrites = new Map<number, PendingWrite>();
  pendingReads = new Map<number, PendingRead>();
  readyToServe: PendingRead[] = [];
  lastCommit = 0;

  constructor(
    readonly id: NodeId,
    readonly storage: SimStorage,
  ) {}
}

export class Simulation {
  private readonly rng: Prng;
  private readonly queue = new EventQueue();
  private now = 0;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly conf: Configuration;
  private readonly blocked = new Set<string>();
  private readonly clients: Client[] = [];
  private readonly history: HistoryOp[] = [];
  /** Index -> the one entry any node applied there. */
  private readonly appliedAt = new Map<number, string>();
  /**
   * Index -> the lowest term a node was in when it applied it: the entry was
   * committed in that term or an earlier one, so every leader of a later
   * term holds it (a leader of that term or before may have been elected
   * before the commit, from votes that were delayed).
   */
  private readonly appliedInTerm = new Map<number, number>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private healed = false;
  private requestIds = 0;
  private elections = 0;

  constructor(private readonly opts: SimOptions) {
    this.rng = new Prng(opts.seed);
    const ids = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
    this.conf = { voters: ids.slice(0, opts.initialVoters), learners: [] };
    for (const id of ids) {
      const node = new SimNode(id, new SimStorage());
      this.nodes.set(id, node);
      this.boot(node);
    }
    for (let c = 0; c < opts.clients; c++) {
      this.clients.push({ id: c, seq: 0, busy: false, current: null, started: 0, target: ids[this.rng.int(0, ids.length - 1)], doneAfterHeal: 0 });
    }
  }

  run(): SimResult {
    try {
      for (const node of this.nodes.values()) this.scheduleTick(node, this.rng.int(0, this.opts.tickMs - 1));
      for (const c of this.clients) this.at(this.rng.int(0, 50), () => this.clientNext(c));
      this.scheduleFaults();
      this.at(this.opts.chaosMs, () => this.heal());
      const end = this.opts.chaosMs + this.opts.settleMs;
      let events = 0;
      while (this.queue.size > 0) {
        const ev = this.queue.pop()!;
        if (ev.at > end) break;
        if (++events > MAX_EVENTS) throw new SafetyError(`liveness: more than ${MAX_EVENTS} events (a message storm?)`);
        this.now = ev.at;
        ev.run();
        if (this.healed && this.clients.every((c) => c.doneAfterHeal >= 3)) break;
      }
      this.checkLogMatching();
      const stuck = this.clients.filter((c) => c.doneAfterHeal < 3);
      if (stuck.length > 0) {
        throw new SafetyError(
          `liveness: ${this.opts.settleMs} ms after healing, clients ${stuck.map((c) => c.id).join(',')} ` +
            `completed fewer than 3 operations (leaders: ${this.leaders().join(',') || 'none'}); ${stuck.map((c) => this.describeClient(c)).join('; ')}`,
        );
      }
      const lin = checkLinearizable(this.history);
      if (!lin.ok) throw new SafetyError(`linearizability: the history of key ${lin.key} has no valid order`);
      return { ok: true, virtualMs: this.now, committed: this.appliedAt.size, operations: this.history.length, elections: this.elections };
    } catch (err) {
      return {
        ok: false,
        error: `${(err as Error).message} (virtual time ${this.now} ms)`,
        virtualMs: this.now,
        committed: this.appliedAt.size,
        operations: this.history.length,
        elections: this.elections,
      };
    }
  }

  // ------------------------------------------------------------ node life

  private boot(node: SimNode): void {
    node.core = new RaftCore(
      {
        ...DEFAULT_CORE_OPTIONS,
        id: node.id,
        electionTicks: ELECTION_TICKS,
        preVote: this.opts.preVote,
        random: () => this.rng.next(),
        maxMsgBytes: this.opts.maxMsgBytes,
        maxInflightMsgs: 8,
      },
      node.storage,
      {
        hardState: node.storage.hardState,
        configuration: node.snapshot?.configuration ?? this.conf,
        applied: node.snapshot?.index ?? 0,
      },
    );
    node.kv = new Map(node.snapshot?.kv ?? []);
    node.applied = node.snapshot?.index ?? 0;
    node.lastCommit = node.applied;
  }

  private crash(node: SimNode): void {
    if (!node.up) return;
    node.up = false;
    node.epoch++;
    node.storage.crash();
    // Clients waiting on this node learn nothing about their operations.
    for (const w of node.pendingWrites.values()) this.finishUnknown(w.client);
    for (const r of node.pendingReads.values()) this.abandonRead(r);
    for (const r of node.readyToServe) this.abandonRead(r);
    node.pendingWrites.clear();
    node.pendingReads.clear();
    node.readyToServe = [];
  }

  private restart(node: SimNode): void {
    if (node.up) return;
    node.up = true;
    node.diskFreeAt = this.now;
    this.boot(node);
    this.scheduleTick(node, this.rng.int(1, this.opts.tickMs));
  }

  private scheduleTick(node: SimNode, delay: number): void {
    const epoch = node.epoch;
    this.at(this.now + delay, () => {
      if (!node.up || node.epoch !== epoch) return;
      node.core.tick();
      this.process(node);
      this.scheduleTick(node, this.opts.tickMs);
    });
  }

  /** Drains the core's Ready, playing the runtime's part of the ordering contract. */
  private process(node: SimNode): void {
    while (node.up && node.core.hasReady()) {
      const r = node.core.ready();
      if (r.snapshot) this.install(node, r.snapshot.index, r.snapshot.term);
      for (const m of r.messages) this.send(m);
      for (const to of r.sendSnapshots) this.sendSnapshot(node, to);
      const epoch = node.epoch;
      const last = r.entries[r.entries.length - 1];
      const writes = r.entries.length > 0 || r.hardState !== undefined;
      if (writes) node.storage.write(r.entries, r.hardState);
      this.observe(node, r);
      if (writes || node.diskFreeAt > this.now) {
        // Acknowledgements wait for this Ready's write and every earlier one:
        // a duplicate append answered from entries still in flight to the
        // disk must not be acknowledged before they are durable.
        const at = Math.max(this.now, node.diskFreeAt) + (writes ? this.rng.next() * this.opts.diskDelayMs : 0);
        node.diskFreeAt = at;
        this.at(at, () => {
          if (!node.up || node.epoch !== epoch) return;
          if (writes) node.storage.syncOne();
          if (last) node.core.persisted(last.index, last.term);
          for (const m of r.messagesAfterPersist) this.send(m);
          this.process(node);
        });
      } else {
        for (const m of r.messagesAfterPersist) this.send(m);
      }
      this.apply(node, r);
    }
  }

  private observe(node: SimNode, r: Ready): void {
    if (r.softState?.role === 'leader') {
      this.elections++;
      const other = this.leaderOfTerm.get(r.softState.term);
      if (other !== undefined && other !== node.id) {
        throw new SafetyError(`election safety: ${other} and ${node.id} both lead term ${r.softState.term}`);
      }
      this.leaderOfTerm.set(r.softState.term, node.id);
      this.checkLeaderCompleteness(node);
    }
    const commit = node.core.commitIndex;
    if (commit < node.lastCommit) {
      throw new SafetyError(`commit index of ${node.id} went back from ${node.lastCommit} to ${commit}`);
    }
    node.lastCommit = commit;
  }

  private apply(node: SimNode, r: Ready): void {
    for (const e of r.committed) {
      if (e.index !== node.applied + 1) throw new SafetyError(`${node.id} applied ${e.index} after ${node.applied}`);
      const key = entryKey(e);
      const seen = this.appliedAt.get(e.index);
      if (seen === undefined) this.appliedAt.set(e.index, key);
      else if (seen !== key) throw new SafetyError(`state machine safety: ${node.id} applied a different entry at index ${e.index}`);
      const term = node.core.currentTerm;
      const lowest = this.appliedInTerm.get(e.index);
      if (lowest === undefined || term < lowest) this.appliedInTerm.set(e.index, term);
      node.applied = e.index;
      const result = e.type === EntryType.Command ? this.applyCommand(node, e) : undefined;
      const w = node.pendingWrites.get(e.index);
      if (w) {
        node.pendingWrites.delete(e.index);
        if (w.term === e.term && result !== undefined) {
          if (w.history.op.kind === 'cas') w.history.op.result = result;
          this.finish(w.client, w.history);
        } else {
          // Our entry lost its slot: it never took effect.
          this.abandonWrite(w);
        }
      }
    }
    if (r.committed.length > 0) node.core.applied(node.applied);
    if (this.opts.snapshotEvery > 0 && node.applied - (node.snapshot?.index ?? 0) >= this.opts.snapshotEvery) {
      this.takeSnapshot(node, r.committed[r.committed.length - 1]);
    }
    for (const rs of r.readStates) {
      const read = node.pendingReads.get(rs.requestId);
      if (!read) continue;
      node.pendingReads.delete(rs.requestId);
      read.index = rs.index;
      node.readyToServe.push(read);
    }
    for (const f of r.readFailures) {
      const read = node.pendingReads.get(f.requestId);
      if (!read) continue;
      node.pendingReads.delete(f.requestId);
      this.abandonRead(read);
    }
    const waiting: PendingRead[] = [];
    for (const read of node.readyToServe) {
      if (read.index > node.applied) {
        waiting.push(read);
        continue;
      }
      const value = node.kv.get(read.history.key) ?? null;
      if (read.history.op.kind === 'get') read.history.op.result = value;
      this.finish(read.client, read.history);
    }
    node.readyToServe = waiting;
  }

  private takeSnapshot(node: SimNode, last: Entry): void {
    node.snapshot = {
      index: last.index,
      term: last.term,
      configuration: node.core.configurationAt(last.index),
      kv: new Map(node.kv),
    };
    // Only what is durable may be compacted: the rest may still be lost in a crash.
    node.storage.compact(Math.min(last.index, node.storage.durableLastIndex()));
  }

  private sendSnapshot(from: SimNode, to: NodeId): void {
    const snap = from.snapshot;
    if (!snap) throw new SafetyError(`${from.id} was asked to send a snapshot but has none`);
    const target = this.nodes.get(to)!;
    const term = from.core.currentTerm;
    const [fromEpoch, toEpoch] = [from.epoch, target.epoch];
    const delivered = !this.blocked.has(`${from.id}>${to}`) && !this.rng.chance(this.opts.dropRate);
    this.at(this.now + 0.1 + this.rng.next() * this.opts.maxDelayMs * 3, () => {
      if (delivered && target.up && target.epoch === toEpoch) {
        target.received = { ...snap, kv: new Map(snap.kv) };
        target.core.step({
          type: 'snapshot',
          from: from.id,
          to,
          term,
          snapshot: { index: snap.index, term: snap.term, configuration: snap.configuration },
        });
        this.process(target);
      }
      if (from.up && from.epoch === fromEpoch) {
        from.core.snapshotSent(to, snap.index, delivered);
        this.process(from);
      }
    });
  }

  private install(node: SimNode, index: number, term: number): void {
    const snap = node.received;
    if (!snap || snap.index !== index || snap.term !== term) {
      throw new SafetyError(`${node.id} was told to install snapshot ${index}@${term} it does not have`);
    }
    node.snapshot = snap;
    node.received = null;
    node.kv = new Map(snap.kv);
    node.applied = index;
    node.storage.reset(index, term);
    // Writes waiting on entries the snapshot covers cannot tell whether theirs made it.
    for (const [i, w] of node.pendingWrites) {
      if (i <= index) {
        node.pendingWrites.delete(i);
        this.finishUnknown(w.client);
      }
    }
  }

  private applyCommand(node: SimNode, e: Entry): boolean {
    const cmd = JSON.parse(Buffer.from(e.data).toString()) as { key: string; op: KvOp };
    const current = node.kv.get(cmd.key) ?? null;
    if (cmd.op.kind === 'put') {
      node.kv.set(cmd.key, cmd.op.value);
      return true;
    }
    if (cmd.op.kind === 'cas') {
      if (current !== cmd.op.expected) return false;
      node.kv.set(cmd.key, cmd.op.value);
      return true;
    }
    throw new SafetyError(`unexpected command ${cmd.op.kind}`);
  }

  // --------------------------------------------------------------- network

  private send(m: Message): void {
    // A candidate's vote for itself never crosses the network.
    if (m.to === m.from) {
      this.nodes.get(m.to)!.core.step(m);
      return;
    }
    if (this.blocked.has(`${m.from}>${m.to}`) || this.rng.chance(this.opts.dropRate)) return;
    const copies = this.rng.chance(this.opts.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const to = this.nodes.get(m.to)!;
      const epoch = to.epoch;
      this.at(this.now + 0.1 + this.rng.next() * this.opts.maxDelayMs, () => {
        if (!to.up || to.epoch !== epoch || this.blocked.has(`${m.from}>${m.to}`)) return;
        to.core.step(m);
        this.process(to);
      });
    }
  }

  // ---------------------------------------------------------------- faults

  private scheduleFaults(): void {
    const ids = [...this.nodes.keys()];
    let t = this.rng.int(100, 400);
    while (t < this.opts.chaosMs) {
      const kind = this.rng.int(0, 4);
      const duration = this.rng.int(20, 600);
      if (kind === 0 && this.opts.partitions && ids.length > 1) {
        const cut = this.randomCut(ids);
        this.at(t, () => cut.forEach((k) => this.blocked.add(k)));
        this.at(t + duration, () => cut.forEach((k) => this.blocked.delete(k)));
      } else if (kind === 1 && this.opts.crashes) {
        const node = this.nodes.get(ids[this.rng.int(0, ids.length - 1)])!;
        this.at(t, () => this.crash(node));
        this.at(t + duration, () => this.restart(node));
      } else if (kind === 3 && this.opts.crashes) {
        // Leaders hold the most in-flight state: crash whichever leads then.
        this.at(t, () => {
          const leader = [...this.nodes.values()].find((n) => n.up && n.core.currentRole === 'leader');
          if (!leader) return;
          this.crash(leader);
          this.at(this.now + duration, () => this.restart(leader));
        });
      } else if (kind === 4 && this.opts.membershipChanges) {
        this.at(t, () => this.changeMembership(ids));
      } else if (kind === 2 && this.opts.transfers && ids.length > 1) {
        const to = ids[this.rng.int(0, ids.length - 1)];
        this.at(t, () => {
          for (const node of this.nodes.values()) {
            if (node.up && node.core.currentRole === 'leader') {
              node.core.transferLeadership(to);
              this.process(node);
            }
          }
        });
      }
      t += this.rng.int(20, 300);
    }
  }

  /** Asks the current leader, if any, for a random membership change (it may refuse). */
  private changeMembership(ids: NodeId[]): void {
    const leader = [...this.nodes.values()].find((n) => n.up && n.core.currentRole === 'leader');
    if (!leader) return;
    const conf = leader.core.configuration;
    const pick = (from: readonly NodeId[]): NodeId | undefined => from[this.rng.int(0, from.length - 1)];
    const outsiders = ids.filter((id) => !conf.voters.includes(id) && !conf.learners.includes(id));
    const roll = this.rng.int(0, 4);
    let change: ConfChange | undefined;
    if (roll === 0 && outsiders.length > 0) change = { type: 'addVoter', id: pick(outsiders)! };
    else if (roll === 1 && conf.voters.length > 1) change = { type: 'removeVoter', id: pick(conf.voters)! };
    else if (roll === 2 && outsiders.length > 0) change = { type: 'addLearner', id: pick(outsiders)! };
    else if (roll === 3 && conf.learners.length > 0) change = { type: 'promoteLearner', id: pick(conf.learners)! };
    else if (roll === 4) {
      const voters = ids.filter(() => this.rng.chance(0.5));
      change = { type: 'changeVoters', voters: voters.length > 0 ? voters : [pick(ids)!] };
    }
    if (!change) return;
    leader.core.proposeConfChange(change);
    this.process(leader);
  }

  /** Directed links to block: a node isolated, two groups split, or one direction only. */
  private randomCut(ids: NodeId[]): string[] {
    const shuffled = ids.slice().sort(() => this.rng.next() - 0.5);
    const side = shuffled.slice(0, this.rng.int(1, Math.max(1, Math.floor(ids.length / 2))));
    const rest = ids.filter((id) => !side.includes(id));
    const oneWay = this.rng.chance(0.3);
    const cut: string[] = [];
    for (const a of side) {
      for (const b of rest) {
        cut.push(`${a}>${b}`);
        if (!oneWay) cut.push(`${b}>${a}`);
      }
    }
    return cut;
  }

  private heal(): void {
    this.blocked.clear();
    for (const node of this.nodes.values()) this.restart(node);
    this.opts.dropRate = 0;
    this.opts.duplicateRate = 0;
    this.healed = true;
  }

  // --------------------------------------------------------------- clients

  private clientNext(c: Client): void {
    if (c.busy) return;
    if (!this.healed && c.started >= MAX_OPS_BEFORE_HEAL) {
      // Keeps each key's history within what the checker searches quickly.
      this.at(this.opts.chaosMs + 1, () => this.clientNext(c));
      return;
    }
    const node = this.nodes.get(c.target)!;
    if (!node.up) {
      this.retarget(c, null);
      return;
    }
    const key = `k${this.rng.int(1, this.opts.keys)}`;
    const roll = this.rng.next();
    if (roll < 0.4) {
      this.clientRead(c, node, key);
      return;
    }
    const value = `c${c.id}-${c.seq++}`;
    let op: KvOp;
    if (roll < 0.75) {
      op = { kind: 'put', value };
    } else {
      const expected = node.kv.get(key) ?? null;
      op = { kind: 'cas', expected, value, result: false };
    }
    const result = node.core.propose([Buffer.from(JSON.stringify({ key, op }))]);
    if (!result.ok) {
      this.retarget(c, 'leaderHint' in result ? result.leaderHint : null);
      return;
    }
    c.busy = true;
    const history: HistoryOp = { client: c.id, key, op, call: this.now, ret: Infinity };
    // A new entry at this index here means an earlier proposal's entry was
    // truncated from this log; another node may still commit it, so its
    // outcome is unknown.
    const replaced = node.pendingWrites.get(result.index);
    if (replaced) this.finishUnknown(replaced.client);
    node.pendingWrites.set(result.index, { client: c, index: result.index, term: result.term, history });
    this.history.push(history);
    this.startTimeout(c, history);
    this.process(node);
  }

  private clientRead(c: Client, node: SimNode, key: string): void {
    const requestId = ++this.requestIds;
    c.busy = true;
    const history: HistoryOp = { client: c.id, key, op: { kind: 'get', result: null }, call: this.now, ret: Infinity };
    node.pendingReads.set(requestId, { client: c, index: 0, history });
    this.startTimeout(c, history);
    node.core.readIndex(requestId, this.opts.leaseReads && this.rng.chance(0.5) ? 'lease' : 'readIndex');
    this.process(node);
  }

  private startTimeout(c: Client, h: HistoryOp): void {
    c.current = h;
    c.started++;
    this.at(this.now + CLIENT_TIMEOUT_MS, () => {
      if (c.current !== h) return;
      for (const node of this.nodes.values()) {
        for (const [index, w] of node.pendingWrites) if (w.history === h) node.pendingWrites.delete(index);
        for (const [id, r] of node.pendingReads) if (r.history === h) node.pendingReads.delete(id);
        node.readyToServe = node.readyToServe.filter((r) => r.history !== h);
      }
      this.finishUnknown(c);
    });
  }

  private finish(c: Client, h: HistoryOp): void {
    h.ret = this.now;
    if (h.op.kind === 'get') this.history.push(h);
    if (this.healed) c.doneAfterHeal++;
    c.busy = false;
    c.current = null;
    this.at(this.now + this.rng.int(1, 20), () => this.clientNext(c));
  }

  /** The client gave up waiting; the write stays in the history with an unknown outcome. */
  private finishUnknown(c: Client): void {
    c.busy = false;
    c.current = null;
    this.retarget(c, null);
  }

  private abandonWrite(w: PendingWrite): void {
    const i = this.history.indexOf(w.history);
    if (i >= 0) this.history.splice(i, 1);
    w.client.busy = false;
    w.client.current = null;
    this.retarget(w.client, null);
  }

  private abandonRead(r: PendingRead): void {
    r.client.busy = false;
    r.client.current = null;
    this.retarget(r.client, null);
  }

  private retarget(c: Client, hint: NodeId | null): void {
    const ids = [...this.nodes.keys()];
    c.target = hint ?? ids[this.rng.int(0, ids.length - 1)];
    this.at(this.now + this.rng.int(5, 30), () => this.clientNext(c));
  }

  // ---------------------------------------------------------------- checks

  private describeClient(c: Client): string {
    for (const node of this.nodes.values()) {
      for (const w of node.pendingWrites.values()) {
        if (w.client === c) {
          const st = node.core.status();
          return `client ${c.id} waits for write ${w.index}@${w.term} on ${node.id} (${st.role}, term ${st.term}, commit ${st.commit}, applied ${node.applied}, last ${st.lastIndex})`;
        }
      }
      for (const r of [...node.pendingReads.values(), ...node.readyToServe]) {
        if (r.client === c) return `client ${c.id} waits for read at ${r.index} on ${node.id} (applied ${node.applied})`;
      }
    }
    return `client ${c.id} busy=${c.busy} target ${c.target}`;
  }

  private leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.up && n.core.currentRole === 'leader').map((n) => n.id);
  }

  /** A new leader's log holds every entry committed before its term (§5.4). */
  private checkLeaderCompleteness(leader: SimNode): void {
    const first = leader.storage.firstIndex();
    const leaderTerm = leader.core.currentTerm;
    for (const [index, key] of this.appliedAt) {
      // Entries below the compaction point live on in the leader's snapshot.
      if (index < first || this.appliedInTerm.get(index)! >= leaderTerm) continue;
      const e = leader.storage.entries(index, index + 1, Number.MAX_SAFE_INTEGER)[0];
      if (e === undefined || entryKey(e) !== key) {
        throw new SafetyError(`leader completeness: new leader ${leader.id} lacks committed entry ${index}`);
      }
    }
  }

  /**
   * Two logs with an entry of the same index and term hold the same entry
   * there (§5.3). Agreement of everything before it follows for the applied
   * prefix from state machine safety; compaction leaves nodes' logs starting
   * at different points, so the prefix is not compared here.
   */
  private checkLogMatching(): void {
    const seen = new Map<string, string>();
    for (const node of this.nodes.values()) {
      for (const e of node.storage.log) {
        const id = `${e.index}:${e.term}`;
        const key = entryKey(e);
        const other = seen.get(id);
        if (other === undefined) seen.set(id, key);
        else if (other !== key) throw new SafetyError(`log matching: two different entries at ${id}`);
      }
    }
  }

  private at(time: number, run: () => void): void {
    this.queue.schedule(time, run);
  }
}

/** Runs one seed with its own options. */
export function runSeed(seed: number): SimResult & { options: SimOptions } {
  const options = optionsForSeed(seed);
  return { ...new Simulation({ ...options }).run(), options };
}
