// Scenario tests that follow the Raft paper (§5) and thesis (§3.10, §4.2.3,
// §6.4, §9.6) claim by claim, on a small in-process cluster of pure cores.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, texts } from './core/harness.js';
import type { Message } from '../src/core/index.js';

const ABC = ['a', 'b', 'c'];

describe('§5.2 leader election', () => {
  test('a follower that hears nothing for an election timeout becomes a candidate, bumps its term and votes for itself', () => {
    const c = new Cluster(ABC, { preVote: false });
    const a = c.node('a');
    c.tick('a', 19);
    assert.equal(a.core.currentRole, 'candidate');
    assert.equal(a.core.currentTerm, 1);
    assert.deepEqual(a.storage.hardState, { term: 1, vote: 'a' }, 'term and vote are persisted');
    const requests = c.inbox.filter((m) => m.type === 'vote');
    assert.deepEqual(requests.map((m) => m.to).sort(), ['b', 'c']);
  });

  test('a candidate that wins votes from a majority becomes leader, and there is at most one leader per term', () => {
    const c = new Cluster(['a', 'b', 'c', 'd', 'e'], { preVote: false });
    c.elect('c');
    assert.deepEqual(c.leaders(), ['c']);
    for (const n of c.nodes.values()) assert.equal(n.core.currentTerm, c.node('c').core.currentTerm);
  });

  test('each server votes for at most one candidate in a term, first come first served', () => {
    // Every election timeout drawn at its longest (19 ticks), so that c can
    // leave its start-up lease (10 ticks) without campaigning itself.
    const c = new Cluster(ABC, { preVote: false, random: () => 0.99 });
    c.tick('c', 10);
    c.tick('a', 19);
    c.tick('b', 19);
    assert.equal(c.node('a').core.currentTerm, 1);
    assert.equal(c.node('b').core.currentTerm, 1);
    // c hears a first, then b, in the same term.
    const toC = c.inbox.filter((m) => m.to === 'c' && m.type === 'vote').sort((x) => (x.from === 'a' ? -1 : 1));
    for (const m of toC) c.node('c').core.step(m);
    c.flush();
    const answers = c.inbox.filter((m) => m.from === 'c' && m.type === 'voteResp');
    assert.deepEqual(
      answers.map((m) => [m.to, m.type === 'voteResp' && m.reject]),
      [
        ['a', false],
        ['b', true],
      ],
    );
  });

  test('a candidate that receives AppendEntries from a leader of its term returns to follower', () => {
    const c = new Cluster(ABC, { preVote: false });
    c.elect('a');
    const b = c.node('b');
    b.core.step({ from: 'c', to: 'b', term: b.core.currentTerm + 1, type: 'vote', lastLogIndex: 0, lastLogTerm: 0, transfer: true });
    c.flush();
    c.inbox = [];
    c.tick('b', 30);
    assert.equal(b.core.currentRole, 'candidate');
    const term = b.core.currentTerm;
    b.core.step({ from: 'c', to: 'b', term, type: 'append', prevIndex: 0, prevTerm: 0, entries: [], commit: 0 });
    assert.equal(b.core.currentRole, 'follower');
    assert.equal(b.core.currentLeader, 'c');
  });
});

describe('§5.3 log replication', () => {
  test('the leader appends a command, replicates it in parallel and applies it once a majority stores it', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    const r = c.propose('a', 'x=1');
    assert.ok(r.ok);
    c.stabilize();
    for (const n of c.nodes.values()) assert.deepEqual(texts(n.applied), ['x=1']);
  });

  test('the leader forces an inconsistent follower log to duplicate its own', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.propose('a', 'committed');
    c.stabilize();
    // a accepts entries it cannot replicate, then loses leadership.
    c.isolate('a');
    c.propose('a', 'lost-1');
    c.propose('a', 'lost-2');
    c.stabilize();
    c.elect('b');
    c.propose('b', 'new');
    c.stabilize();
    c.heal();
    c.tickAll(2);
    c.stabilize();
    c.tick('b', 2);
    c.stabilize();
    for (const n of c.nodes.values()) assert.deepEqual(texts(n.applied), ['committed', 'new'], n.id);
    assert.deepEqual(texts(c.node('a').storage.log.slice()), ['committed', 'new'], 'the uncommitted suffix is gone');
  });

  test('a rejection carries a hint so the leader skips a whole conflicting term per round trip', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.isolate('a');
    for (let i = 0; i < 50; i++) c.propose('a', `stale-${i}`);
    c.stabilize();
    c.elect('b');
    for (let i = 0; i < 5; i++) c.propose('b', `fresh-${i}`);
    c.stabilize();
    c.heal();
    let rejections = 0;
    c.tick('b', 2);
    c.stabilize((m) => {
      if (m.type === 'appendResp' && m.reject && m.from === 'a') rejections++;
      return true;
    });
    assert.ok(rejections <= 2, `${rejections} rejections to skip 50 conflicting entries`);
    assert.deepEqual(texts(c.node('a').applied).slice(-5), ['fresh-0', 'fresh-1', 'fresh-2', 'fresh-3', 'fresh-4']);
  });

  /** Leader `a` with five entries everywhere, then `c` restarted without the last two, which it had acknowledged. */
  function followerLostTail(): Cluster {
    const c = new Cluster(ABC);
    c.elect('a');
    for (let i = 0; i < 5; i++) c.propose('a', `x${i}`);
    c.stabilize();
    c.restart('c', (s) => s.loseTail(2));
    return c;
  }

  test('a follower that lost entries it acknowledged (a damaged tail cut off on restart) gets them again', () => {
    const c = followerLostTail();
    c.propose('a', 'after');
    c.stabilize();
    c.tick('a', 2);
    c.stabilize();
    assert.deepEqual(texts(c.node('c').storage.log), texts(c.node('a').storage.log));
    assert.deepEqual(texts(c.node('c').storage.log).slice(-3), ['x3', 'x4', 'after']);
  });

  test('on an idle group, heartbeats show a follower lost acknowledged entries, and it gets them again', () => {
    const c = followerLostTail();
    c.tick('a', 2);
    c.stabilize();
    assert.deepEqual(texts(c.node('c').storage.log), texts(c.node('a').storage.log));
  });

  test('the leader counts its own vote for an entry only once the entry is durable locally', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.node('a').holdPersist = true;
    c.propose('a', 'slow-leader-disk');
    // Only b answers: without a's own durable copy there is no majority.
    c.stabilize((m) => m.to !== 'c' && m.from !== 'c');
    assert.equal(texts(c.node('a').applied).length, 0);
    c.release('a');
    assert.deepEqual(texts(c.node('a').applied), ['slow-leader-disk']);
  });

  test('a candidate asks for votes while its own term and vote sync, and leads only once they are durable', () => {
    const c = new Cluster(ABC);
    const a = c.node('a');
    a.holdPersist = true;
    c.campaign('a');
    assert.deepEqual(c.inbox.filter((m) => m.type === 'vote').map((m) => m.to).sort(), ['b', 'c'], 'the requests leave before the write is durable');
    c.stabilize();
    assert.equal(a.core.currentRole, 'candidate', 'b and c granted, but without its own durable vote a does not lead');
    c.release('a');
    c.stabilize();
    assert.equal(a.core.currentRole, 'leader');
  });

  test('a candidate that crashes before its own vote is durable never led, and the group elects a leader after it', () => {
    const c = new Cluster(ABC);
    c.node('a').holdPersist = true;
    c.campaign('a');
    c.stabilize();
    c.restart('a');
    assert.equal(c.node('a').core.currentTerm, 0, 'the term a campaigned in was lost with the crash');
    assert.deepEqual(c.leaders(), []);
    c.elect('b');
    assert.deepEqual(c.leaders(), ['b']);
    assert.ok(c.node('b').core.currentTerm > 1);
  });

  test('a leader does not commit entries of earlier terms by counting replicas (§5.4.2, figure 8)', () => {
    // One entry per message, so replication of an old entry and of the new
    // leader's own entry can be told apart.
    const c = new Cluster(ABC, { maxMsgBytes: 1 });
    c.elect('a');
    c.isolate('a');
    c.propose('a', 'old'); // index 2, term of a's first leadership, stored on a alone
    c.stabilize();
    c.heal();
    c.isolate('a');
    // b wins a later term with c's vote, but its own entry never leaves it.
    const b = c.node('b');
    b.core.step({ type: 'timeoutNow', from: 'b', to: 'b', term: b.core.currentTerm });
    c.stabilize((m) => m.type !== 'append');
    assert.equal(b.core.currentRole, 'leader');
    c.inbox = [];
    c.heal();
    c.isolate('b');
    // a hears of the later term, then leads a third one with c's vote.
    const a = c.node('a');
    a.core.step({ type: 'heartbeat', from: 'b', to: 'a', term: b.core.currentTerm, commit: 0, round: 0 });
    c.flush();
    c.inbox = [];
    a.core.step({ type: 'timeoutNow', from: 'a', to: 'a', term: a.core.currentTerm });
    // Votes flow; c catches up to the old entry (probe, rejection, append of
    // index 2) but never receives a's own-term entry at index 3.
    const c3 = c.node('c');
    c.stabilize(
      (m) =>
        m.type === 'vote' ||
        m.type === 'voteResp' ||
        (m.type === 'append' && m.to === 'c' && (c3.core.status().lastIndex < 2 || m.entries.every((e) => e.index <= 2))) ||
        (m.type === 'appendResp' && m.from === 'c'),
    );
    assert.equal(a.core.currentRole, 'leader');
    assert.equal(a.core.currentTerm, b.core.currentTerm + 1);
    assert.ok(a.core.status().peers.c.match >= 2, 'c stores the old entry: a majority (a, c) has it');
    assert.ok(a.core.commitIndex < 2, `the old-term entry was committed by counting (commit ${a.core.commitIndex})`);
    c.stabilize((m) => m.to !== 'b' && m.from !== 'b');
    assert.ok(a.core.commitIndex >= 3, 'it commits together with an entry of the current term');
    assert.deepEqual(texts(a.applied), ['old']);
  });
});

describe('§5.4.1 election restriction', () => {
  test('a voter denies its vote to a candidate whose log is less up to date', () => {
    const c = new Cluster(ABC, { preVote: false });
    c.elect('a');
    c.isolate('c');
    c.propose('a', 'x');
    c.stabilize();
    c.heal();
    c.isolate('a');
    // c missed 'x'; b has it and refuses c.
    const c3 = c.node('c');
    c3.core.step({ from: 'a', to: 'c', term: c3.core.currentTerm, type: 'heartbeat', commit: 0, round: 0 });
    c.tick('c', 40);
    c.stabilize();
    assert.notEqual(c3.core.currentRole, 'leader');
  });
});

describe('thesis §9.6 pre-vote and §6.2 check-quorum', () => {
  test('a partitioned follower rejoining does not disrupt the leader (pre-vote)', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    const term = c.node('a').core.currentTerm;
    c.isolate('c');
    c.tick('c', 100);
    c.stabilize();
    assert.equal(c.node('c').core.currentTerm, term, 'pre-votes never win, so the term does not grow');
    c.heal();
    c.tick('a', 2);
    c.stabilize();
    assert.deepEqual(c.leaders(), ['a']);
    assert.equal(c.node('a').core.currentTerm, term);
  });

  test('a leader that cannot reach a quorum for an election timeout steps down (check-quorum)', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.isolate('a');
    for (let i = 0; i < 25; i++) {
      c.tick('a');
      c.stabilize();
    }
    assert.equal(c.node('a').core.currentRole, 'follower');
  });
});

describe('§6.4 linearizable reads', () => {
  test('ReadIndex is released only after a heartbeat round confirms leadership', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.propose('a', 'x');
    c.stabilize();
    const a = c.node('a');
    a.core.readIndex(7);
    c.flush();
    assert.deepEqual(a.readStates, [], 'not before a quorum answers');
    c.stabilize();
    assert.deepEqual(a.readStates, [{ requestId: 7, index: a.core.commitIndex }]);
  });

  test('a read on a leader cut off from its followers is never released', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.isolate('a');
    const a = c.node('a');
    a.core.readIndex(1);
    for (let i = 0; i < 25; i++) {
      c.tick('a');
      c.stabilize();
    }
    assert.deepEqual(a.readStates, []);
    assert.deepEqual(a.readFailures.map((f) => f.requestId), [1], 'it fails when the leader steps down');
  });

  test('a follower forwards ReadIndex to the leader and gets the commit index back', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.propose('a', 'x');
    c.stabilize();
    c.node('b').core.readIndex(9);
    c.stabilize();
    assert.deepEqual(c.node('b').readStates, [{ requestId: 9, index: c.node('a').core.commitIndex }]);
  });

  test('a lease read needs no heartbeat round while the lease holds, and none is granted during a transfer', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.tick('a');
    c.stabilize();
    const a = c.node('a');
    a.core.readIndex(1, 'lease');
    c.flush();
    assert.deepEqual(a.readStates.map((r) => r.requestId), [1], 'served at once');
    c.isolate('b');
    a.core.transferLeadership('b');
    a.core.readIndex(2, 'lease');
    c.flush();
    assert.deepEqual(a.readStates.map((r) => r.requestId), [1], 'not served from the lease while transferring');
  });

  test('a lease lasts electionTicks − 1 − leaseMarginTicks ticks from the acknowledged round: a follower may tick right after it, so it promised one tick less than electionTicks', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.tick('a');
    c.stabilize();
    const a = c.node('a');
    // Later rounds go unanswered: the lease runs from the round just acknowledged.
    c.isolate('a');
    c.tick('a', 7);
    a.core.readIndex(1, 'lease');
    c.flush();
    assert.deepEqual(a.readStates.map((r) => r.requestId), [1], 'served 7 ticks after the round');
    c.tick('a');
    a.core.readIndex(2, 'lease');
    c.flush();
    assert.deepEqual(a.readStates.map((r) => r.requestId), [1], 'not from the lease 8 ticks after it (10 − 1 − 1)');
  });

  test('snapshots a leader asked to send are dropped when it steps down in the same Ready: sent, they would carry the new term', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.isolate('c');
    for (let i = 0; i < 10; i++) c.propose('a', `e${i}`);
    c.stabilize();
    const a = c.node('a');
    a.storage.compact(a.core.commitIndex - 2);
    c.heal();
    c.tick('a');
    // c's rejections of the appends it cannot take are held back, then stepped
    // together with a message of a later term.
    const fromC = (m: Message) => m.type === 'appendResp' && m.from === 'c';
    c.stabilize((m) => !fromC(m));
    const rejections = c.inbox.filter(fromC);
    c.inbox = [];
    assert.ok(rejections.length > 0);
    const term = a.core.currentTerm;
    for (const m of rejections) a.core.step(m);
    a.core.step({ type: 'appendResp', from: 'b', to: 'a', term: term + 1, index: 0, reject: true, hintIndex: 0, hintTerm: 0 });
    const r = a.core.ready();
    assert.equal(r.softState?.role, 'follower');
    assert.deepEqual(r.sendSnapshots, []);
  });

  test('after a TimeoutNow went out, the leader serves no lease read for the rest of its term, even once the transfer is abandoned', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.tick('a');
    c.stabilize();
    const a = c.node('a');
    // b is caught up, so TimeoutNow goes out at once; b acts on it only much later (its link is cut meanwhile).
    c.isolate('b');
    a.core.transferLeadership('b');
    c.tick('a', 10);
    c.heal();
    c.stabilize((m) => m.type !== 'timeoutNow');
    c.tick('a');
    c.stabilize((m) => m.type !== 'timeoutNow');
    assert.equal(a.core.currentRole, 'leader', 'the transfer was abandoned and a still leads');
    a.core.readIndex(3, 'lease');
    c.flush();
    assert.deepEqual(a.readStates.map((r) => r.requestId), [], 'b could still win with TimeoutNow: no lease read');
    c.stabilize((m) => m.type !== 'timeoutNow');
    c.tick('a');
    c.stabilize((m) => m.type !== 'timeoutNow');
    assert.deepEqual(a.readStates.map((r) => r.requestId), [3], 'served once a heartbeat round confirmed it (ReadIndex)');
  });

  test('a restarted follower keeps its lease promise: it grants no vote for an election timeout after it starts', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.tick('a');
    c.stabilize();
    c.restart('c', () => {});
    const term = c.node('a').core.currentTerm;
    const vote = (): Message => ({ from: 'b', to: 'c', term: term + 1, type: 'vote', lastLogIndex: 1000, lastLogTerm: term, transfer: false });
    c.node('c').core.step(vote());
    c.flush();
    assert.equal(c.inbox.filter((m) => m.from === 'c' && m.type === 'voteResp').length, 0, 'a just-started node might have acknowledged a leader whose lease still runs');
    c.inbox.length = 0;
    c.tick('c', 10);
    c.inbox.length = 0;
    c.node('c').core.step(vote());
    c.flush();
    assert.deepEqual(
      c.inbox.filter((m) => m.from === 'c' && m.type === 'voteResp').map((m) => m.type === 'voteResp' && m.reject),
      [false],
      'after an election timeout it votes',
    );
  });
});

describe('thesis §3.10 leadership transfer', () => {
  test('the leader catches the target up, sends TimeoutNow, and the target wins at once', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.isolate('c');
    c.propose('a', 'x');
    c.stabilize();
    c.heal();
    assert.deepEqual(c.node('a').core.transferLeadership('c'), { ok: true });
    const during = c.node('a').core.propose([Buffer.from('y')]);
    assert.deepEqual(during, { ok: false, reason: 'transferring', leaderHint: 'c' });
    c.tick('a');
    c.stabilize();
    assert.deepEqual(c.leaders(), ['c']);
    assert.deepEqual(texts(c.node('c').applied), ['x']);
  });

  test('a transfer to an unreachable node is abandoned after an election timeout', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.isolate('c');
    c.node('a').core.transferLeadership('c');
    for (let i = 0; i < 11; i++) {
      c.tick('a');
      c.stabilize();
    }
    assert.ok(c.propose('a', 'after').ok, 'proposals are accepted again');
  });
});

describe('thesis chapter 4: membership changes', () => {
  const status = (c: Cluster, id: string): { voters: string[]; learners: string[] } => {
    const conf = c.node(id).core.configuration;
    return { voters: [...conf.voters].sort(), learners: [...conf.learners].sort() };
  };

  test('adding one voter takes effect when appended, and the new voter then counts toward commits', () => {
    const c = new Cluster(['a', 'b', 'c', 'd'], {}, ABC);
    c.elect('a');
    const r = c.node('a').core.proposeConfChange({ type: 'addVoter', id: 'd' });
    assert.ok(r.ok);
    assert.deepEqual(status(c, 'a').voters, ['a', 'b', 'c', 'd'], 'in effect on the leader before it commits');
    c.stabilize();
    assert.deepEqual(status(c, 'd').voters, ['a', 'b', 'c', 'd']);
    // With four voters, a and d alone are not a majority.
    c.isolate('b');
    c.isolate('c');
    c.propose('a', 'needs-three');
    c.stabilize();
    assert.deepEqual(texts(c.node('a').applied), []);
    c.heal();
    c.tick('a');
    c.stabilize();
    assert.deepEqual(texts(c.node('a').applied), ['needs-three']);
  });

  test('a removed leader steps down once the configuration without it commits', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    const r = c.node('a').core.proposeConfChange({ type: 'removeVoter', id: 'a' });
    assert.ok(r.ok);
    c.stabilize();
    assert.equal(c.node('a').core.currentRole, 'follower');
    assert.deepEqual(status(c, 'b').voters, ['b', 'c']);
    // It hands leadership on as it goes: no voter waits out an election timeout.
    const [successor] = c.leaders();
    assert.ok(successor === 'b' || successor === 'c', `a voter of the new configuration leads without a tick (leaders: ${c.leaders().join(', ')})`);
    for (const id of ['b', 'c']) assert.ok(c.node(id).core.commitIndex >= r.index, `${id} learned that the removal committed`);
    c.propose(successor, 'after');
    c.stabilize();
    assert.deepEqual(texts(c.node('c').applied), ['after']);
  });

  test('a change whose voters would have no quorum in touch with the leader is refused, not left uncommittable', () => {
    const c = new Cluster(['a', 'b', 'c', 'd'], {}, ABC);
    c.elect('a');
    c.isolate('c');
    c.tick('a', 3);
    c.stabilize();
    // With c down, {a, b, c, d} would need three of a, b and an unreachable d.
    const add = c.node('a').core.proposeConfChange({ type: 'addVoter', id: 'd' });
    assert.equal(add.ok, false);
    assert.match(String((add as { detail?: string }).detail), /no quorum .*not in touch: c, d/);
    assert.equal(c.node('a').core.proposeConfChange({ type: 'removeVoter', id: 'b' }).ok, false, '{a, c} without c is no quorum either');
    // As a learner d costs no quorum; once it replicates it may be promoted.
    assert.ok(c.node('a').core.proposeConfChange({ type: 'addLearner', id: 'd' }).ok);
    c.stabilize();
    assert.ok(c.node('a').core.proposeConfChange({ type: 'promoteLearner', id: 'd' }).ok);
    c.stabilize();
    assert.deepEqual(status(c, 'a').voters, ['a', 'b', 'c', 'd']);
    c.propose('a', 'with-d');
    c.stabilize();
    assert.deepEqual(texts(c.node('d').applied), ['with-d'], 'three of four in touch commit');
  });

  /** {a, b, c} led by a, changing its voters to {a, d, e} (d and e learners first), d and e then cut off: the change stays joint. */
  const jointWithNewVotersCutOff = (): { c: Cluster; index: number } => {
    const c = new Cluster(['a', 'b', 'c', 'd', 'e'], {}, ABC);
    c.elect('a');
    for (const id of ['d', 'e']) {
      assert.ok(c.node('a').core.proposeConfChange({ type: 'addLearner', id }).ok);
      c.stabilize();
    }
    const r = c.node('a').core.proposeConfChange({ type: 'changeVoters', voters: ['a', 'd', 'e'] });
    assert.ok(r.ok);
    c.isolate('d');
    c.isolate('e');
    c.stabilize();
    return { c, index: r.index };
  };

  test('leadership goes only to a voter of the configuration being entered', () => {
    const { c } = jointWithNewVotersCutOff();
    assert.ok(c.node('a').core.configuration.outgoing, 'joint while d and e are cut off');
    assert.deepEqual(c.node('a').core.transferLeadership('b'), { ok: false, reason: 'b is not a voter of the configuration being entered' });
    assert.deepEqual(c.node('a').core.transferLeadership('e'), { ok: true });
  });

  test('changing several voters goes through a joint configuration that needs both majorities', () => {
    const { c, index } = jointWithNewVotersCutOff();
    assert.deepEqual(c.node('a').core.configuration.outgoing?.slice().sort(), ['a', 'b', 'c']);
    // The old majority alone cannot commit the joint entry: the new one is missing.
    assert.ok(c.node('a').core.commitIndex < index);
    c.heal();
    c.tick('a');
    c.stabilize();
    c.tick('a');
    c.stabilize();
    assert.deepEqual(status(c, 'a'), { voters: ['a', 'd', 'e'], learners: [] });
    assert.equal(c.node('a').core.configuration.outgoing, undefined, 'the leader left the joint configuration on its own');
    c.isolate('b');
    c.isolate('c');
    c.propose('a', 'new-majority');
    c.stabilize();
    assert.deepEqual(texts(c.node('e').applied), ['new-majority']);
  });

  test('learners replicate but neither vote nor count toward commits, until promoted', () => {
    const c = new Cluster(['a', 'b', 'c'], {}, ['a', 'b']);
    c.elect('a');
    assert.ok(c.node('a').core.proposeConfChange({ type: 'addLearner', id: 'c' }).ok);
    c.stabilize();
    c.propose('a', 'x');
    c.stabilize();
    assert.deepEqual(texts(c.node('c').applied), ['x'], 'the learner receives entries');
    c.isolate('b');
    c.propose('a', 'y');
    c.stabilize();
    assert.deepEqual(texts(c.node('a').applied), ['x'], 'a and the learner are not a majority');
    c.tick('c', 50);
    assert.equal(c.node('c').core.currentRole, 'follower', 'a learner never campaigns');
    c.heal();
    c.tick('a');
    c.stabilize();
    assert.ok(c.node('a').core.proposeConfChange({ type: 'promoteLearner', id: 'c' }).ok);
    c.stabilize();
    assert.deepEqual(status(c, 'a'), { voters: ['a', 'b', 'c'], learners: [] });
  });

  test('a leader that appended its own removal and then lost its quorum can still finish the change', () => {
    const c = new Cluster(['a', 'b']);
    c.elect('a');
    c.isolate('b');
    assert.ok(c.node('a').core.proposeConfChange({ type: 'removeVoter', id: 'a' }).ok);
    for (let i = 0; i < 25; i++) {
      c.tick('a');
      c.stabilize();
    }
    assert.equal(c.node('a').core.currentRole, 'follower', 'check-quorum: its new configuration is unreachable');
    c.heal();
    // a holds the longest log, so only a can win b's vote; it must still campaign.
    for (let i = 0; i < 60 && c.node('b').core.currentRole !== 'leader'; i++) {
      c.tickAll();
      c.stabilize();
    }
    assert.equal(c.node('b').core.currentRole, 'leader');
    assert.deepEqual(status(c, 'b').voters, ['b']);
  });

  test('changes may not overlap', () => {
    const c = new Cluster(['a', 'b', 'c', 'd', 'e'], {}, ABC);
    c.elect('a');
    c.isolate('b');
    c.isolate('c');
    assert.ok(c.node('a').core.proposeConfChange({ type: 'addVoter', id: 'd' }).ok);
    const second = c.node('a').core.proposeConfChange({ type: 'addVoter', id: 'e' });
    assert.equal(second.ok, false);
    assert.match(second.ok ? '' : 'detail' in second ? second.detail : '', /not committed yet/);
  });

  test('a configuration entry that is truncated away takes its configuration with it', () => {
    const c = new Cluster(['a', 'b', 'c', 'd'], {}, ABC);
    c.elect('a');
    c.isolate('a');
    assert.ok(c.node('a').core.proposeConfChange({ type: 'addVoter', id: 'd' }).ok);
    c.stabilize();
    c.elect('b');
    c.propose('b', 'other');
    c.stabilize();
    c.heal();
    c.tick('b', 2);
    c.stabilize();
    assert.deepEqual(status(c, 'a').voters, ['a', 'b', 'c'], 'a dropped its uncommitted configuration entry');
  });
});

describe('§7 log compaction', () => {
  test('a follower that needs compacted entries gets a snapshot, installs it, and catches up after it', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.isolate('c');
    for (let i = 0; i < 20; i++) c.propose('a', `e${i}`);
    c.stabilize();
    const a = c.node('a');
    const snapIndex = a.core.commitIndex - 3;
    const snapTerm = a.storage.term(snapIndex)!;
    a.storage.compact(snapIndex);
    c.heal();
    c.tick('a');
    c.stabilize();
    assert.deepEqual(a.snapshotRequests, ['c'], 'the leader asks the runtime to send a snapshot');
    assert.equal(a.core.status().peers.c.state, 'snapshot');
    c.node('c').core.step({
      type: 'snapshot',
      from: 'a',
      to: 'c',
      term: a.core.currentTerm,
      snapshot: { index: snapIndex, term: snapTerm, configuration: a.core.configurationAt(snapIndex) },
    });
    c.stabilize();
    assert.deepEqual(c.node('c').installed, [snapIndex]);
    a.core.snapshotSent('c', snapIndex, true);
    c.stabilize();
    assert.equal(c.node('c').core.commitIndex, a.core.commitIndex);
    assert.deepEqual(texts(c.node('c').applied), ['e17', 'e18', 'e19'], 'entries after the snapshot are replicated and applied');
  });

  test('a snapshot the follower already has committed changes nothing', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    c.propose('a', 'x');
    c.stabilize();
    const b = c.node('b');
    const commit = b.core.commitIndex;
    b.core.step({ type: 'snapshot', from: 'a', to: 'b', term: b.core.currentTerm, snapshot: { index: 1, term: 1, configuration: { voters: ABC, learners: [] } } });
    c.stabilize();
    assert.deepEqual(b.installed, []);
    assert.equal(b.core.commitIndex, commit);
  });
});

describe('applying', () => {
  test('committed entries are handed out in order and in batches, no further ahead of the applied index than allowed', () => {
    const c = new Cluster(['a'], { maxUnappliedEntries: 5, maxApplyBytes: 1 << 20 });
    c.elect('a');
    const a = c.node('a');
    for (let i = 0; i < 12; i++) a.core.propose([Buffer.from(`e${i}`)]);
    // Drain without reporting progress: at most 5 entries may be outstanding.
    const handed: number[] = [];
    for (let round = 0; round < 4; round++) {
      const r = a.core.ready();
      for (const e of r.committed) handed.push(e.index);
      if (r.entries.length > 0) {
        a.storage.write(r.entries, r.hardState);
        a.storage.syncOne();
        a.core.persisted(r.entries[r.entries.length - 1].index, r.entries[r.entries.length - 1].term);
      }
    }
    // The leader's noop (index 1) was applied during the election.
    assert.deepEqual(handed, [2, 3, 4, 5, 6], 'five commands, then it waits');
    a.core.applied(6);
    const next = a.core.ready().committed.map((e) => e.index);
    assert.deepEqual(next, [7, 8, 9, 10, 11]);
  });
});

describe('proposals', () => {
  test('a follower refuses proposals and names the leader', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    assert.deepEqual(c.node('b').core.propose([Buffer.from('x')]), { ok: false, reason: 'notLeader', leaderHint: 'a' });
  });

  test('expectedTerm refuses a proposal once the term has moved', () => {
    const c = new Cluster(ABC);
    c.elect('a');
    const term = c.node('a').core.currentTerm;
    assert.ok(c.node('a').core.propose([Buffer.from('x')], { expectedTerm: term }).ok);
    assert.deepEqual(c.node('a').core.propose([Buffer.from('y')], { expectedTerm: term - 1 }), {
      ok: false,
      reason: 'termMismatch',
      term,
    });
  });

  test('a leader cut off from its followers stops accepting once its uncommitted bytes reach the bound', () => {
    const c = new Cluster(ABC, { maxUncommittedBytes: 1000 });
    c.elect('a');
    c.isolate('a');
    const results = Array.from({ length: 20 }, () => c.node('a').core.propose([new Uint8Array(100)]));
    assert.equal(results.filter((r) => r.ok).length, 10);
    assert.deepEqual(results.at(-1), { ok: false, reason: 'overloaded', leaderHint: 'a' });
  });
});
