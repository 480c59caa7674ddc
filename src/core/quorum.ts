// Quorum arithmetic over a configuration, joint or not. A joint configuration
// (during a membership change) needs a majority of the incoming voters and a
// majority of the outgoing voters for every decision.
import type { NodeId } from './types.js';

export interface Configuration {
  voters: NodeId[];
  learners: NodeId[];
  /** Voters of the configuration being left, while a joint change is in progress. */
  outgoing?: NodeId[];
}

export function isJoint(conf: Configuration): boolean {
  return conf.outgoing !== undefined;
}

/**
 * The most members (voters of both halves and learners, each counted once) a
 * configuration may name: far more than one leader can replicate to, so a
 * bound only on what a damaged or hostile message may make a member build.
 * The leader refuses changes beyond it and the peer codec refuses
 * configurations beyond it (docs/transport.md).
 */
export const MAX_CONFIGURATION_MEMBERS = 1024;

/** Every node that receives replication: voters of both halves and learners. */
export function members(conf: Configuration): NodeId[] {
  return [...new Set([...conf.voters, ...(conf.outgoing ?? []), ...conf.learners])];
}

export function isVoter(conf: Configuration, id: NodeId): boolean {
  return conf.voters.includes(id) || (conf.outgoing?.includes(id) ?? false);
}

let sortScratch = new Float64Array(8);

/**
 * The largest value that a majority of `voters` has reached, given each
 * voter's value (missing voters count as 0). For match indexes this is the
 * commit index the majority supports.
 */
function majorityValue(voters: readonly NodeId[], valueOf: (id: NodeId) => number): number {
  const n = voters.length;
  if (n === 0) return Number.MAX_SAFE_INTEGER;
  // An insertion sort (descending) into a reused array: this runs for every
  // acknowledgement, and Array.prototype.sort allocates on every call.
  if (sortScratch.length < n) sortScratch = new Float64Array(n);
  const values = sortScratch;
  for (let i = 0; i < n; i++) {
    const v = valueOf(voters[i]);
    let j = i;
    for (; j > 0 && values[j - 1] < v; j--) values[j] = values[j - 1];
    values[j] = v;
  }
  return values[Math.floor(n / 2)];
}

/** The value a quorum of `conf` has reached (the minimum over both halves of a joint configuration). */
export function quorumValue(conf: Configuration, valueOf: (id: NodeId) => number): number {
  const incoming = majorityValue(conf.voters, valueOf);
  return conf.outgoing ? Math.min(incoming, majorityValue(conf.outgoing, valueOf)) : incoming;
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

function majorityVote(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  if (voters.length === 0) return 'won';
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const needed = Math.floor(voters.length / 2) + 1;
  if (granted >= needed) return 'won';
  if (rejected > voters.length - needed) return 'lost';
  return 'pending';
}

export function voteOutcome(conf: Configuration, votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  const incoming = majorityVote(conf.voters, votes);
  if (!conf.outgoing) return incoming;
  const outgoing = majorityVote(conf.outgoing, votes);
  if (incoming === 'lost' || outgoing === 'lost') return 'lost';
  return incoming === 'won' && outgoing === 'won' ? 'won' : 'pending';
}

/** Whether the nodes for which `active` holds form a quorum. */
export function hasQuorum(conf: Configuration, active: (id: NodeId) => boolean): boolean {
  return quorumValue(conf, (id) => (active(id) ? 1 : 0)) === 1;
}
