// The Raft state machine: pure and deterministic. Inputs are tick(), step(),
// propose(), readIndex(), transferLeadership(), persisted(); outputs are
// collected into a Ready (ready.ts). Time is ticks, randomness comes from the
// injected PRNG, and storage is read through a synchronous LogReader.
import { Progress } from './progress.js';
import { hasQuorum, isJoint, isVoter, MAX_CONFIGURATION_MEMBERS, members, quorumValue, voteOutcome, type Configuration } from './quorum.js';
import { RaftLog } from './raft-log.js';
import { emptyReady, type Ready, type SoftState } from './ready.js';
import {
  EntryType,
  type AppendRequest,
  type AppendResponse,
  type CommitNotice,
  type Entry,
  type HardState,
  type Heartbeat,
  type HeartbeatResponse,
  type InstallSnapshot,
  type LogReader,
  type Message,
  type NodeId,
  type ReadIndexResponse,
  type Role,
  type VoteRequest,
  type VoteResponse,
} from './types.js';

export interface CoreOptions {
  id: NodeId;
  /** Followers wait between electionTicks and 2 * electionTicks - 1 without a leader before campaigning. */
  electionTicks: number;
  heartbeatTicks: number;
  preVote: boolean;
  /** Leaders step down when a quorum has not been heard from for electionTicks; required for lease reads. */
  checkQuorum: boolean;
  /** Uniform in [0, 1); injected so elections are reproducible. */
  random: () => number;
  maxMsgBytes: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  /** Proposals are refused while this many bytes of this leader's entries are uncommitted. */
  maxUncommittedBytes: number;
  /** Committed entries handed out per Ready, by payload bytes (at least one entry). */
  maxApplyBytes: number;
  /** Committed entries handed out but not yet reported applied, at most (back-pressure from a slow state machine). */
  maxUnappliedEntries: number;
  /**
   * Ticks a lease leaves for clocks that run at different rates: it lasts
   * electionTicks − 1 − leaseMarginTicks ticks (8 of a follower's at least
   * 9 tick intervals of promise with the defaults, about 12 %).
   */
  leaseMarginTicks: number;
}

export const DEFAULT_CORE_OPTIONS: Omit<CoreOptions, 'id' | 'random'> = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  maxMsgBytes: 1 << 20,
  maxInflightMsgs: 256,
  maxInflightBytes: 32 << 20,
  maxUncommittedBytes: 64 << 20,
  maxApplyBytes: 4 << 20,
  maxUnappliedEntries: 8192,
  leaseMarginTicks: 1,
};

export interface CoreState {
  hardState: HardState;
  configuration: Configuration;
  /** Index up to which the state machine already holds the effects (from a snapshot or its own store). */
  applied: number;
}

export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; reason: 'notLeader'; leaderHint: NodeId | null }
  | { ok: false; reason: 'termMismatch'; term: number }
  | { ok: false; reason: 'transferring' | 'overloaded'; leaderHint: NodeId | null }
  | { ok: false; reason: 'confChangeRefused'; detail: string }
  /** The change can never apply to this configuration (removing a non-member, promoting a voter, ...). */
  | { ok: false; reason: 'confChangeInvalid'; detail: string };

export type ConfChange =
  | { type: 'addVoter' | 'removeVoter' | 'addLearner' | 'promoteLearner' | 'removeLearner'; id: NodeId }
  | { type: 'changeVoters'; voters: NodeId[] };

/** The configuration after `change`, or why it is refused. */
export function applyConfChange(conf: Configuration, change: ConfChange): Configuration | string {
  const next = changedConfiguration(conf, change);
  if (typeof next !== 'string' && members(next).length > MAX_CONFIGURATION_MEMBERS) {
    return `a configuration may name at most ${MAX_CONFIGURATION_MEMBERS} members (voters and learners)`;
  }
  return next;
}

function changedConfiguration(conf: Configuration, change: ConfChange): Configuration | string {
  const voters = new Set(conf.voters);
  const learners = new Set(conf.learners);
  switch (change.type) {
    case 'addVoter':
    case 'promoteLearner':
      if (voters.has(change.id)) return `${change.id} is already a voter`;
      if (change.type === 'promoteLearner' && !learners.has(change.id)) return `${change.id} is not a learner`;
      learners.delete(change.id);
      voters.add(change.id);
      break;
    case 'removeVoter':
      if (!voters.has(change.id)) return `${change.id} is not a voter`;
      if (voters.size === 1) return 'cannot remove the last voter';
      voters.delete(change.id);
      break;
    case 'addLearner':
      if (voters.has(change.id) || learners.has(change.id)) return `${change.id} is already a member`;
      learners.add(change.id);
      break;
    case 'removeLearner':
      if (!learners.has(change.id)) return `${change.id} is not a learner`;
      learners.delete(change.id);
      break;
    case 'changeVoters': {
      const target = new Set(change.voters);
      if (target.size === 0) return 'a configuration needs at least one voter';
      for (const id of target) learners.delete(id);
      const added = [...target].filter((id) => !voters.has(id));
      const removed = [...voters].filter((id) => !target.has(id));
      if (added.length + removed.length === 0) return 'the voters are unchanged';
      if (added.length + removed.length === 1) return { voters: [...target], learners: [...learners] };
      return { voters: [...target], learners: [...learners], outgoing: [...voters] };
    }
  }
  return { voters: [...voters], learners: [...learners] };
}

export interface PeerStatus {
  match: number;
  next: number;
  state: string;
  inflight: number;
}

export interface CoreStatus {
  id: NodeId;
  role: Role;
  term: number;
  leader: NodeId | null;
  commit: number;
  applied: number;
  lastIndex: number;
  peers: Record<NodeId, PeerStatus>;
}

interface PendingRead {
  requestId: number;
  /** The node that asked: this one, or a follower that forwarded it. */
  from: NodeId;
  index: number;
  /** Heartbeat round that confirms it; 0 until the round is sent. */
  round: number;
}

export class RaftCore {
  readonly id: NodeId;
  private readonly opts: CoreOptions;
  private readonly log: RaftLog;
  /** The configuration in effect: the newest configuration entry in the log (§4.1: on append, not on commit). */
  private conf: Configuration;
  /** The configuration below every configuration entry in the log (from the bootstrap or the last snapshot). */
  private baseConf: Configuration;
  /** Configuration entries in the log, oldest first. */
  private confEntries: { index: number; term: number; conf: Configuration }[] = [];

  private term: number;
  private vote: NodeId | null;
  private role: Role = 'follower';
  private leader: NodeId | null = null;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTicks = 0;
  private ticks = 0;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();

  private round = 0;
  private roundSentTick = new Map<number, number>();
  private pendingReads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its term. */
  private readsAwaitingCommit: Omit<PendingRead, 'index' | 'round'>[] = [];
  /** Reads this follower forwarded to its leader: request id -> tick sent. */
  private forwardedReads = new Map<number, number>();

  /** Highest index the runtime reported applied to the state machine. */
  private appliedIndex: number;
  /** The index of this leader's first entry (its no-op). */
  private termStartIndex = 0;
  private transferee: NodeId | null = null;
  /** A TimeoutNow went out in this term of leadership: lease reads are off until the next. */
  private timeoutNowSent = false;
  private transferElapsed = 0;
  private uncommitted: { index: number; bytes: number }[] = [];
  private uncommittedBytes = 0;

  private ready_ = emptyReady();
  private lastHardState: HardState;
  private lastSoft: SoftState;

  constructor(opts: CoreOptions, storage: LogReader, state: CoreState) {
    this.id = opts.id;
    this.opts = opts;
    this.baseConf = state.configuration;
    this.conf = state.configuration;
    this.term = state.hardState.term;
    this.vote = state.hardState.vote;
    this.log = new RaftLog(storage, state.applied, state.applied);
    this.appliedIndex = state.applied;
    const last = storage.lastIndex();
    if (last >= storage.firstIndex()) this.trackConfEntries(storage.entries(storage.firstIndex(), last + 1, Number.MAX_SAFE_INTEGER));
    this.lastHardState = { ...state.hardState };
    this.lastSoft = { role: this.role, term: this.term, leader: this.leader };
    this.resetElectionTimer();
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    this.ticks++;
    if (this.role === 'leader') {
      this.tickLeader();
      return;
    }
    this.electionElapsed++;
    if (this.forwardedReads.size > 0) this.expireForwardedReads();
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTicks) {
      this.campaign(this.opts.preVote ? 'preVote' : 'vote', false);
    }
  }

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.term) {
      if ((m.type === 'vote' || m.type === 'preVote') && !m.transfer && this.inLease()) {
        // A leader was heard from within the election timeout: a vote now
        // could only come from a node that is partitioned or slow, and
        // granting it would disrupt a healthy leader (thesis §4.2.3).
        return;
      }
      if (m.type === 'preVote' || (m.type === 'preVoteResp' && !m.reject)) {
        // Pre-votes are for a future term; they change no state.
      } else {
        this.becomeFollower(m.term, fromLeader(m) ? m.from : null);
      }
    } else if (m.term < this.term) {
      if (fromLeader(m)) {
        // Tell a deposed leader about the newer term so it steps down (needed
        // with pre-vote/check-quorum, where our term may have moved without it noticing).
        this.sendAfterPersist({ ...this.envelope(m.from), type: 'appendResp', index: 0, reject: true, hintIndex: 0, hintTerm: 0 });
      } else if (m.type === 'preVote') {
        this.sendAfterPersist({ ...this.envelope(m.from), type: 'preVoteResp', reject: true });
      }
      return;
    }

    switch (m.type) {
      case 'preVote':
      case 'vote':
        this.handleVoteRequest(m);
        return;
      case 'preVoteResp':
      case 'voteResp':
        this.handleVoteResponse(m);
        return;
      case 'append':
        if (this.role === 'leader') return; // two leaders in one term cannot happen; the simulator checks
        this.followLeader(m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        if (this.role === 'leader') return;
        this.followLeader(m.from);
        this.handleHeartbeat(m);
        return;
      case 'commit':
        if (this.role === 'leader') return;
        this.followLeader(m.from);
        this.handleCommitNotice(m);
        return;
      case 'snapshot':
        if (this.role === 'leader') return;
        this.followLeader(m.from);
        this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        if (this.role !== 'leader' && this.promotable()) this.campaign('vote', true);
        return;
      case 'appendResp':
        if (this.role === 'leader') this.handleAppendResponse(m);
        return;
      case 'heartbeatResp':
        if (this.role === 'leader') this.handleHeartbeatResponse(m);
        return;
      case 'readIndex':
        if (this.role === 'leader') this.leaderRead(m.requestId, m.from, false);
        else this.sendAfterPersist({ ...this.envelope(m.from), type: 'readIndexResp', requestId: m.requestId, index: 0, reject: true });
        return;
      case 'readIndexResp':
        this.handleReadIndexResponse(m);
        return;
    }
  }

  /** Proposes commands on the leader; `expectedTerm` refuses them if leadership moved to another term. */
  propose(data: readonly Uint8Array[], options: { expectedTerm?: number; type?: number } = {}): ProposeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leaderHint: this.leader };
    if (options.expectedTerm !== undefined && options.expectedTerm !== this.term) {
      return { ok: false, reason: 'termMismatch', term: this.term };
    }
    if (this.transferee !== null) return { ok: false, reason: 'transferring', leaderHint: this.transferee };
    let bytes = 0;
    for (const d of data) bytes += d.byteLength;
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.opts.maxUncommittedBytes) {
      return { ok: false, reason: 'overloaded', leaderHint: this.id };
    }
    const type = options.type ?? EntryType.Command;
    let index = this.log.lastIndex();
    for (const d of data) this.appendEntry({ index: ++index, term: this.term, type, data: d });
    this.bcastAppend();
    this.maybeCommit();
    return { ok: true, index, term: this.term };
  }

  /**
   * Asks for a linearizable read. The answer comes in a later Ready:
   * a ReadState (serve the read once `index` is applied) or a ReadFailure.
   * `lease` serves it without a heartbeat round while the leader's lease holds.
   */
  readIndex(requestId: number, mode: 'readIndex' | 'lease' = 'readIndex'): void {
    if (this.role === 'leader') {
      this.leaderRead(requestId, this.id, mode === 'lease');
      return;
    }
    if (this.leader === null) {
      this.ready_.readFailures.push({ requestId, reason: 'notLeader', leaderHint: null });
      return;
    }
    this.forwardedReads.set(requestId, this.ticks);
    this.sendAfterPersist({ ...this.envelope(this.leader), type: 'readIndex', requestId });
  }

  /**
   * Proposes a membership change. Adding or removing one voter (or adding or
   * promoting a learner) takes one entry; any other change of voters goes
   * through a joint configuration (§4.3), which the leader leaves on its own
   * once it commits. Changes may not overlap.
   */
  proposeConfChange(change: ConfChange): ProposeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader', leaderHint: this.leader };
    if (this.transferee !== null) return { ok: false, reason: 'transferring', leaderHint: this.transferee };
    const refuse = (why: string): ProposeResult => ({ ok: false, reason: 'confChangeRefused', detail: why });
    // Until it commits an entry of its term, a new leader may not know of a
    // change its predecessor started (the single-server change bug, raft-dev 2015).
    if (this.log.term(this.log.committed) !== this.term) return refuse('the leader has not committed an entry of its term yet');
    const pending = this.confEntries[this.confEntries.length - 1];
    if (pending && pending.index > this.log.committed) return refuse(`configuration change at index ${pending.index} is not committed yet`);
    if (isJoint(this.conf)) return refuse('a joint configuration is being left');
    const next = applyConfChange(this.conf, change);
    if (typeof next === 'string') return { ok: false, reason: 'confChangeInvalid', detail: next };
    // A configuration takes effect when appended, and while its entry is
    // uncommitted no other change may follow: one whose quorum this leader
    // does not hear from could never commit nor be undone, leaving the
    // cluster without a leader until enough of its members came up.
    const live = (id: NodeId): boolean => id === this.id || this.inTouch(id);
    if (!hasQuorum({ voters: next.voters, learners: [] }, live)) {
      const silent = next.voters.filter((id) => !live(id));
      return refuse(`the new voters would have no quorum the leader hears from (not in touch: ${silent.join(', ')}); bring members up or add them as learners first`);
    }
    return this.appendConf(next);
  }

  /** Hands leadership to `to` once it has caught up (thesis §3.10); aborted after an election timeout. */
  transferLeadership(to: NodeId): { ok: true } | { ok: false; reason: string } {
    if (this.role !== 'leader') return { ok: false, reason: 'notLeader' };
    if (to === this.id) return { ok: false, reason: 'already leader' };
    // A voter only of the configuration being left would win, then step down on leaving it.
    if (!this.conf.voters.includes(to)) return { ok: false, reason: `${to} is not a voter${isVoter(this.conf, to) ? ' of the configuration being entered' : ''}` };
    if (this.transferee === to) return { ok: true };
    this.transferee = to;
    this.transferElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, true);
    return { ok: true };
  }

  /**
   * The runtime finished sending a snapshot through `index` to `to` (or
   * failed to). Replication resumes after it, or retries.
   */
  snapshotSent(to: NodeId, index: number, ok: boolean): void {
    const pr = this.progress.get(to);
    if (this.role !== 'leader' || !pr || pr.state !== 'snapshot') return;
    if (ok) pr.pendingSnapshot = Math.max(pr.pendingSnapshot, index);
    else pr.pendingSnapshot = 0;
    pr.becomeProbe();
    this.sendAppend(to, true);
  }

  /** The configuration in effect at `index` (what a snapshot through `index` must record). */
  configurationAt(index: number): Configuration {
    let conf = this.baseConf;
    for (const c of this.confEntries) if (c.index <= index) conf = c.conf;
    return conf;
  }

  /** The state machine has applied entries through `index`; more committed entries may be handed out. */
  applied(index: number): void {
    if (index > this.log.applied) throw new Error(`raft: applied(${index}) beyond the entries handed out (${this.log.applied})`);
    this.appliedIndex = Math.max(this.appliedIndex, index);
  }

  private applyLimit(): number {
    return this.appliedIndex + this.opts.maxUnappliedEntries;
  }

  /** The runtime made entries up to `index` (whose term is `term`) durable. */
  persisted(index: number, term: number): void {
    this.log.persisted(index, term);
    // The leader's own write may be what completes a quorum: followers hear
    // of the commit now, as when an answer completes it, not with the next
    // append or heartbeat.
    if (this.role === 'leader' && this.maybeCommit()) this.announceCommit();
  }

  // --------------------------------------------------------------- outputs

  hasReady(): boolean {
    const r = this.ready_;
    return (
      r.messages.length > 0 ||
      r.messagesAfterPersist.length > 0 ||
      r.readStates.length > 0 ||
      r.readFailures.length > 0 ||
      this.pendingReads.some((p) => p.round === 0) ||
      Math.min(this.log.committed, this.applyLimit()) > this.log.applied ||
      this.log.hasUnpersisted() ||
      r.sendSnapshots.length > 0 ||
      r.snapshot !== undefined ||
      this.hardStateChanged() ||
      this.softStateChanged()
    );
  }

  ready(): Ready {
    if (this.role === 'leader' && this.pendingReads.some((p) => p.round === 0)) this.bcastHeartbeat();
    const r = this.ready_;
    this.ready_ = emptyReady();
    r.entries = this.log.takeUnpersisted();
    r.committed = this.log.takeCommitted(this.opts.maxApplyBytes, this.applyLimit());
    if (this.hardStateChanged()) {
      r.hardState = { term: this.term, vote: this.vote };
      this.lastHardState = r.hardState;
    }
    if (this.softStateChanged()) {
      r.softState = { role: this.role, term: this.term, leader: this.leader };
      this.lastSoft = r.softState;
    }
    return r;
  }

  status(): CoreStatus {
    const peers: Record<NodeId, PeerStatus> = {};
    for (const [id, pr] of this.progress) {
      peers[id] = { match: pr.match, next: pr.next, state: pr.state, inflight: pr.inflights.count };
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.appliedIndex,
      lastIndex: this.log.lastIndex(),
      peers,
    };
  }

  get currentTerm(): number {
    return this.term;
  }

  get currentRole(): Role {
    return this.role;
  }

  get currentLeader(): NodeId | null {
    return this.leader;
  }

  /** The configuration in effect (the newest one in the log). */
  get configuration(): Readonly<Configuration> {
    return this.conf;
  }

  get commitIndex(): number {
    return this.log.committed;
  }

  // -------------------------------------------------------------- elections

  /**
   * Whether this node may campaign: it is a voter in the configuration in
   * effect, or in the committed one while a change that removes it is still
   * uncommitted. Without the latter, a leader that appended its own removal
   * and then lost its quorum would hold the longest log yet never campaign,
   * and no one else could win its vote: the cluster would stall.
   */
  private promotable(): boolean {
    return isVoter(this.conf, this.id) || isVoter(this.configurationAt(this.log.committed), this.id);
  }

  /**
   * Whether a leader may still count on this node's last acknowledgement.
   * A node that just started does not know whom it acknowledged before a
   * restart, so it keeps that promise for an election timeout after start.
   */
  private inLease(): boolean {
    const mayHavePromised = this.leader !== null || this.ticks < this.opts.electionTicks;
    return this.opts.checkQuorum && mayHavePromised && this.electionElapsed < this.opts.electionTicks;
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const t = this.opts.electionTicks;
    this.randomizedElectionTicks = t + Math.floor(this.opts.random() * t);
  }

  private campaign(kind: 'preVote' | 'vote', transfer: boolean): void {
    let term: number;
    if (kind === 'preVote') {
      this.role = 'preCandidate';
      this.failForwardedReads();
      this.leader = null;
      this.resetElectionTimer();
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      term = this.term;
    }
    if (kind === 'preVote') {
      // A pre-vote promises nothing durable: this node counts itself at once.
      this.votes = new Map([[this.id, true]]);
      if (this.tallyVotes(kind)) return;
    } else {
      // The requests leave at once, so this node's sync of its new term and
      // vote overlaps the voters' syncs of theirs instead of preceding them.
      // It counts itself only once that sync is done: its answer to itself
      // comes back after persisting, as a voter's does.
      this.votes = new Map();
      this.sendAfterPersist({ from: this.id, to: this.id, term, type: 'voteResp', reject: false });
    }
    for (const id of members(this.conf)) {
      if (id === this.id || !isVoter(this.conf, id)) continue;
      const req: VoteRequest = {
        type: kind,
        from: this.id,
        to: id,
        term,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
        transfer,
      };
      if (kind === 'vote') this.ready_.messages.push(req);
      else this.sendAfterPersist(req);
    }
  }

  /** Returns true when the election is decided. */
  private tallyVotes(kind: 'preVote' | 'vote'): boolean {
    const outcome = voteOutcome(this.conf, this.votes);
    if (outcome === 'won') {
      if (kind === 'preVote') {
        this.campaign('vote', false);
        return true;
      }
      // Leading before this node's own term is durable could, after a crash,
      // let it lead the same term again with a different log.
      if (this.votes.get(this.id) !== true) return false;
      this.becomeLeader();
      return true;
    }
    if (outcome === 'lost') {
      this.becomeFollower(this.term, null);
      return true;
    }
    return false;
  }

  private handleVoteRequest(m: VoteRequest): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.leader === null) ||
      (m.type === 'preVote' && m.term > this.term);
    const grant = canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    const type = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    // A granted pre-vote answers in the candidate's future term so it can
    // count it; a rejection carries our term.
    this.sendAfterPersist({ from: this.id, to: m.from, term: grant ? m.term : this.term, type, reject: !grant });
    if (grant && m.type === 'vote') {
      this.electionElapsed = 0;
      this.vote = m.from;
    }
  }

  private handleVoteResponse(m: VoteResponse): void {
    const expected = this.role === 'preCandidate' ? 'preVoteResp' : this.role === 'candidate' ? 'voteResp' : null;
    if (m.type !== expected) return;
    this.votes.set(m.from, !m.reject);
    this.tallyVotes(m.type === 'preVoteResp' ? 'preVote' : 'vote');
  }

  private becomeFollower(term: number, leader: NodeId | null): void {
    const wasLeader = this.role === 'leader';
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.role = 'follower';
    if (leader !== this.leader) this.failForwardedReads();
    this.leader = leader;
    this.resetElectionTimer();
    this.transferee = null;
    if (wasLeader) this.abandonLeaderState();
  }

  private becomeCandidate(): void {
    if (this.role === 'leader') throw new Error('raft invariant: a leader cannot become a candidate');
    this.term++;
    this.vote = this.id;
    this.role = 'candidate';
    this.failForwardedReads();
    this.leader = null;
    this.resetElectionTimer();
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leader = this.id;
    this.resetElectionTimer();
    this.progress = new Map();
    const next = this.log.lastIndex() + 1;
    for (const id of members(this.conf)) {
      if (id === this.id) continue;
      const pr = new Progress(next, this.opts.maxInflightMsgs, this.opts.maxInflightBytes);
      pr.recentActive = true;
      this.progress.set(id, pr);
    }
    this.round = 0;
    this.roundSentTick = new Map();
    this.timeoutNowSent = false;
    this.uncommitted = [];
    this.uncommittedBytes = 0;
    // Commits entries of earlier terms once this one commits (§5.4.2), and
    // lets reads proceed once it has.
    this.termStartIndex = next;
    this.appendEntry({ index: next, term: this.term, type: EntryType.Noop, data: new Uint8Array(0) });
    this.bcastAppend();
    this.maybeCommit();
  }

  private followLeader(leader: NodeId): void {
    if (this.role !== 'follower' || this.leader !== leader) this.becomeFollower(this.term, leader);
    this.electionElapsed = 0;
  }

  private abandonLeaderState(): void {
    for (const read of this.pendingReads) this.failRead(read.requestId, read.from);
    for (const read of this.readsAwaitingCommit) this.failRead(read.requestId, read.from);
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
    this.progress = new Map();
    this.uncommitted = [];
    this.uncommittedBytes = 0;
    // Asked for in the term just left: sent now, they would carry the new term, as if from its leader.
    this.ready_.sendSnapshots = [];
  }

  private failForwardedReads(): void {
    for (const requestId of this.forwardedReads.keys()) {
      this.ready_.readFailures.push({ requestId, reason: 'leadershipLost', leaderHint: null });
    }
    this.forwardedReads.clear();
  }

  /** A forwarded read or its answer may be lost; give up on it after an election timeout. */
  private expireForwardedReads(): void {
    for (const [requestId, sentTick] of this.forwardedReads) {
      if (this.ticks - sentTick < this.opts.electionTicks) continue;
      this.forwardedReads.delete(requestId);
      this.ready_.readFailures.push({ requestId, reason: 'timeout', leaderHint: this.leader });
    }
  }

  private failRead(requestId: number, from: NodeId): void {
    if (from === this.id) {
      this.ready_.readFailures.push({ requestId, reason: 'leadershipLost', leaderHint: this.leader });
    } else {
      this.sendAfterPersist({ ...this.envelope(from), type: 'readIndexResp', requestId, index: 0, reject: true });
    }
  }

  // ------------------------------------------------------------ replication

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.transferee !== null && ++this.transferElapsed >= this.opts.electionTicks) this.transferee = null;
    if (this.electionElapsed >= this.opts.electionTicks) {
      this.electionElapsed = 0;
      if (this.opts.checkQuorum) {
        const active = (id: NodeId): boolean => id === this.id || (this.progress.get(id)?.recentActive ?? false);
        if (!hasQuorum(this.conf, active)) {
          this.becomeFollower(this.term, null);
          return;
        }
        for (const pr of this.progress.values()) pr.recentActive = false;
      }
    }
    if (this.heartbeatElapsed >= this.opts.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  private appendEntry(e: Entry): void {
    this.log.append([e]);
    this.uncommitted.push({ index: e.index, bytes: e.data.byteLength });
    this.uncommittedBytes += e.data.byteLength;
  }

  private bcastAppend(): void {
    for (const id of this.progress.keys()) this.sendAppendWindow(id);
  }

  /** Sends as many appends as the follower's window allows (pipelining in replicate state). */
  private sendAppendWindow(to: NodeId): void {
    while (this.sendAppend(to, false) && this.progress.get(to)!.state === 'replicate');
  }

  /** Sends one append if the follower is not paused; returns whether it carried entries. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (!pr || pr.paused) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined || pr.next < this.log.firstIndex()) {
      // The entries it needs were compacted away: it needs a snapshot.
      pr.becomeSnapshot(this.log.firstIndex() - 1);
      this.ready_.sendSnapshots.push(to);
      return false;
    }
    const last = this.log.lastIndex();
    const entries = pr.next <= last ? this.log.entries(pr.next, last + 1, this.opts.maxMsgBytes) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    pr.commitSent = Math.max(pr.commitSent, Math.min(this.log.committed, prevIndex + entries.length));
    const msg: AppendRequest = {
      ...this.envelope(to),
      type: 'append',
      prevIndex,
      prevTerm,
      entries,
      commit: this.log.committed,
    };
    this.ready_.messages.push(msg);
    if (pr.state === 'replicate' && entries.length > 0) {
      const lastSent = entries[entries.length - 1].index;
      let bytes = 0;
      for (const e of entries) bytes += e.data.byteLength;
      pr.next = lastSent + 1;
      pr.inflights.add(lastSent, bytes);
    } else if (pr.state === 'probe') {
      pr.probeSent = true;
    }
    return entries.length > 0;
  }

  private handleAppend(m: AppendRequest): void {
    const respond = (fields: Omit<AppendResponse, 'from' | 'to' | 'term' | 'type'>): void => {
      this.sendAfterPersist({ ...this.envelope(m.from), type: 'appendResp', ...fields });
    };
    if (m.prevIndex < this.log.committed) {
      // Already have everything up to the commit index: acknowledge that much.
      respond({ index: this.log.committed, reject: false, hintIndex: 0, hintTerm: 0 });
      return;
    }
    if (this.log.matchTerm(m.prevIndex, m.prevTerm)) {
      const lastNew = this.log.appendFromLeader(m.prevIndex, m.entries);
      this.trackConfEntries(m.entries);
      this.log.commitTo(Math.min(m.commit, lastNew));
      respond({ index: lastNew, reject: false, hintIndex: 0, hintTerm: 0 });
      return;
    }
    // Point the leader at the last index that could match, skipping a whole
    // conflicting term per round trip instead of one entry (etcd's hint).
    const hintIndex = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    respond({ index: m.prevIndex, reject: true, hintIndex, hintTerm: this.log.term(hintIndex) ?? 0 });
  }

  private handleSnapshot(m: InstallSnapshot): void {
    const snap = m.snapshot;
    const respond = (index: number): void => {
      this.sendAfterPersist({ ...this.envelope(m.from), type: 'appendResp', index, reject: false, hintIndex: 0, hintTerm: 0 });
    };
    if (snap.index <= this.log.committed) {
      respond(this.log.committed);
      return;
    }
    if (this.log.matchTerm(snap.index, snap.term)) {
      // We already hold that prefix: the snapshot only tells us it is committed.
      this.log.commitTo(snap.index);
      respond(snap.index);
      return;
    }
    this.log.restore(snap.index, snap.term);
    this.appliedIndex = snap.index;
    this.baseConf = snap.configuration;
    this.confEntries = [];
    this.trackConfEntries([]);
    this.ready_.snapshot = snap;
    respond(snap.index);
  }

  private handleAppendResponse(m: AppendResponse): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.heardTick = this.ticks;
    if (m.reject) {
      const probeFrom = m.hintTerm > 0 ? this.log.findConflictByTerm(m.hintIndex, m.hintTerm) : m.hintIndex;
      if (pr.maybeDecrease(m.index, probeFrom)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.paused;
    if (!pr.maybeUpdate(m.index)) {
      if (wasPaused && !pr.paused) this.sendAppendWindow(m.from);
      return;
    }
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'replicate') pr.inflights.freeTo(m.index);
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) pr.becomeProbe();
    if (this.maybeCommit()) {
      this.announceCommit();
    } else if (this.caughtUp(pr)) {
      // The commit index already covers entries this answer acknowledges
      // (another follower's answer or the leader's own write came first):
      // without a notice now, this follower would learn of it only from the
      // next append or heartbeat.
      this.sendCommitNotice(m.from, pr);
    }
    this.sendAppendWindow(m.from);
    if (m.from === this.transferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  /** Whether `id` answered within the last two heartbeat intervals and holds an entry of this leader's term. */
  private inTouch(id: NodeId): boolean {
    const pr = this.progress.get(id);
    return pr !== undefined && this.ticks - pr.heardTick <= 2 * this.opts.heartbeatTicks && pr.match >= this.termStartIndex;
  }

  /** Tells every follower about the new commit index. */
  private announceCommit(): void {
    for (const id of this.progress.keys()) this.sendCommit(id);
  }

  /**
   * A follower that has been sent every entry gets a commit notice, which it
   * does not answer (the answer to an empty append would tell nothing new).
   * Any other gets an append, even an empty one: its answer drives probing
   * and the repair of a follower that lost entries.
   */
  private sendCommit(to: NodeId): void {
    const pr = this.progress.get(to);
    if (pr && this.caughtUp(pr)) this.sendCommitNotice(to, pr);
    else this.sendAppend(to, true);
  }

  private caughtUp(pr: Progress): boolean {
    return pr.state === 'replicate' && pr.next > this.log.lastIndex();
  }

  private sendCommitNotice(to: NodeId, pr: Progress): void {
    // Only up to match, as heartbeats: unlike an append, the notice carries
    // no (index, term) for the follower to check its log against, and it may
    // overtake the appends sent before it; above match the follower's log
    // may still hold another leader's entries.
    const commit = Math.min(pr.match, this.log.committed);
    if (commit <= pr.commitSent) return;
    pr.commitSent = commit;
    const notice: CommitNotice = { ...this.envelope(to), type: 'commit', commit };
    this.ready_.messages.push(notice);
  }

  private maybeCommit(): boolean {
    const stable = this.log.stableIndex();
    const index = quorumValue(this.conf, (id) => (id === this.id ? stable : (this.progress.get(id)?.match ?? 0)));
    // Only entries of the current term are committed by counting (§5.4.2).
    if (index <= this.log.committed || this.log.term(index) !== this.term) return false;
    this.log.commitTo(index);
    let released = 0;
    while (released < this.uncommitted.length && this.uncommitted[released].index <= index) {
      this.uncommittedBytes -= this.uncommitted[released].bytes;
      released++;
    }
    this.uncommitted.splice(0, released);
    const latest = this.confEntries[this.confEntries.length - 1];
    if (latest && latest.index <= index) {
      if (isJoint(this.conf)) {
        // The joint configuration is committed: move on to the new one (§4.3).
        this.appendConf({ voters: this.conf.voters, learners: this.conf.learners });
      } else if (!isVoter(this.conf, this.id)) {
        // Removed: lead no longer, now that the new configuration no longer
        // needs us (§4.2.2). The voters still believe in this leader's lease
        // and would refuse to elect another for an election timeout: tell
        // them of the commit and hand leadership to the most caught-up (§3.10).
        this.announceCommit();
        const successor = this.conf.voters.reduce<NodeId | null>((best, id) => (best === null || this.progress.get(id)!.match > this.progress.get(best)!.match ? id : best), null);
        if (successor !== null && this.progress.get(successor)!.match === this.log.lastIndex()) this.sendTimeoutNow(successor);
        this.becomeFollower(this.term, null);
        return true;
      }
    }
    if (this.readsAwaitingCommit.length > 0) {
      const waiting = this.readsAwaitingCommit;
      this.readsAwaitingCommit = [];
      for (const r of waiting) this.leaderRead(r.requestId, r.from, false);
    }
    return true;
  }

  private appendConf(conf: Configuration): ProposeResult {
    const e: Entry = {
      index: this.log.lastIndex() + 1,
      term: this.term,
      type: EntryType.Config,
      data: new TextEncoder().encode(JSON.stringify(conf)),
    };
    this.appendEntry(e);
    this.trackConfEntries([e]);
    this.bcastAppend();
    this.maybeCommit();
    return { ok: true, index: e.index, term: e.term };
  }

  /**
   * Brings the configuration up to date with the log: drops configuration
   * entries that were truncated away, records new ones, and uses the newest.
   */
  private trackConfEntries(added: readonly Entry[]): void {
    // Entries below the compaction point are committed and stay; above it,
    // an entry whose term changed was truncated away.
    const first = this.log.firstIndex();
    this.confEntries = this.confEntries.filter((c) => c.index < first || this.log.term(c.index) === c.term);
    for (const e of added) {
      if (e.type !== EntryType.Config) continue;
      const newest = this.confEntries[this.confEntries.length - 1];
      if (newest && newest.index >= e.index) continue;
      this.confEntries.push({ index: e.index, term: e.term, conf: JSON.parse(new TextDecoder().decode(e.data)) as Configuration });
    }
    this.conf = this.confEntries[this.confEntries.length - 1]?.conf ?? this.baseConf;
    if (this.role === 'leader') {
      const wanted = new Set(members(this.conf));
      for (const id of wanted) {
        if (id !== this.id && !this.progress.has(id)) {
          this.progress.set(id, new Progress(this.log.lastIndex() + 1, this.opts.maxInflightMsgs, this.opts.maxInflightBytes));
        }
      }
      for (const id of this.progress.keys()) if (!wanted.has(id)) this.progress.delete(id);
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    // The target may act on it however late, and its voters grant a transfer
    // vote in spite of their lease: no lease read is safe for the rest of the term.
    this.timeoutNowSent = true;
    this.ready_.messages.push({ ...this.envelope(to), type: 'timeoutNow' });
  }

  // -------------------------------------------------------- heartbeats, reads

  private bcastHeartbeat(): void {
    this.round++;
    this.roundSentTick.set(this.round, this.ticks);
    for (const read of this.pendingReads) if (read.round === 0) read.round = this.round;
    for (const [id, pr] of this.progress) {
      const hb: Heartbeat = {
        ...this.envelope(id),
        type: 'heartbeat',
        commit: Math.min(pr.match, this.log.committed),
        round: this.round,
      };
      pr.commitSent = Math.max(pr.commitSent, hb.commit);
      this.ready_.messages.push(hb);
    }
    this.releaseReads();
  }

  private handleHeartbeat(m: Heartbeat): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.sendAfterPersist({ ...this.envelope(m.from), type: 'heartbeatResp', round: m.round, lastIndex: this.log.lastIndex() });
  }

  private handleCommitNotice(m: CommitNotice): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
  }

  private handleHeartbeatResponse(m: HeartbeatResponse): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.heardTick = this.ticks;
    pr.ackedRound = Math.max(pr.ackedRound, m.round);
    pr.probeSent = false;
    // An append lost in flight never frees its slot; a heartbeat answer
    // frees one so replication resumes and the gap shows as a rejection.
    if (pr.state === 'replicate' && pr.inflights.full) pr.inflights.freeFirst();
    // On an idle group no append would show that the follower lost entries.
    pr.followerHolds(m.lastIndex);
    // Behind: send even an empty append, so a lost one shows up as a
    // rejection at the follower and replication restarts from there.
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
    this.releaseReads();
  }

  /** The newest heartbeat round a quorum has acknowledged. */
  private quorumRound(): number {
    return quorumValue(this.conf, (id) => (id === this.id ? this.round : (this.progress.get(id)?.ackedRound ?? 0)));
  }

  private leaseValid(): boolean {
    if (!this.opts.checkQuorum || this.transferee !== null || this.timeoutNowSent) return false;
    const sent = this.roundSentTick.get(this.quorumRound());
    // A follower that acknowledged the round grants no vote for electionTicks
    // of its ticks from when it received it, and the first may come at once:
    // it promised electionTicks − 1 tick intervals, not electionTicks.
    return sent !== undefined && this.ticks < sent + this.opts.electionTicks - 1 - this.opts.leaseMarginTicks;
  }

  private leaderRead(requestId: number, from: NodeId, lease: boolean): void {
    if (this.log.term(this.log.committed) !== this.term) {
      this.readsAwaitingCommit.push({ requestId, from });
      return;
    }
    if (lease && this.leaseValid()) {
      this.releaseRead({ requestId, from, index: this.log.committed, round: 0 });
      return;
    }
    this.pendingReads.push({ requestId, from, index: this.log.committed, round: 0 });
    this.releaseReads();
  }

  private releaseReads(): void {
    const confirmed = this.quorumRound();
    // Rounds older than the confirmed one can no longer be a lease's start.
    for (const round of this.roundSentTick.keys()) {
      if (round >= confirmed) break;
      this.roundSentTick.delete(round);
    }
    let n = 0;
    while (n < this.pendingReads.length && this.pendingReads[n].round !== 0 && this.pendingReads[n].round <= confirmed) {
      this.releaseRead(this.pendingReads[n]);
      n++;
    }
    this.pendingReads.splice(0, n);
  }

  private releaseRead(read: PendingRead): void {
    if (read.from === this.id) {
      this.ready_.readStates.push({ requestId: read.requestId, index: read.index });
    } else {
      this.ready_.messages.push({
        ...this.envelope(read.from),
        type: 'readIndexResp',
        requestId: read.requestId,
        index: read.index,
        reject: false,
      });
    }
  }

  private handleReadIndexResponse(m: ReadIndexResponse): void {
    if (!this.forwardedReads.delete(m.requestId)) return;
    if (m.reject) this.ready_.readFailures.push({ requestId: m.requestId, reason: 'leadershipLost', leaderHint: this.leader });
    else this.ready_.readStates.push({ requestId: m.requestId, index: m.index });
  }

  // ---------------------------------------------------------------- helpers

  private envelope(to: NodeId): { from: NodeId; to: NodeId; term: number } {
    return { from: this.id, to, term: this.term };
  }

  private sendAfterPersist(m: Message): void {
    this.ready_.messagesAfterPersist.push(m);
  }

  private hardStateChanged(): boolean {
    return this.term !== this.lastHardState.term || this.vote !== this.lastHardState.vote;
  }

  private softStateChanged(): boolean {
    return this.role !== this.lastSoft.role || this.term !== this.lastSoft.term || this.leader !== this.lastSoft.leader;
  }
}

/** Messages only a leader sends: they carry its term to followers. */
function fromLeader(m: Message): boolean {
  return m.type === 'append' || m.type === 'heartbeat' || m.type === 'commit' || m.type === 'snapshot';
}
