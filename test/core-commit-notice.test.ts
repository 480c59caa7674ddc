// Commit notices: how a leader tells followers that already hold every entry
// sent to them about a new commit index, without an empty append that each
// of them would answer.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CoreOptions, Message } from '../src/core/index.js';
import { Cluster, texts } from './core/harness.js';

const ABC = ['a', 'b', 'c'];

/** Delivers the queued messages that match `which`, once, then collects what every node sends. */
function deliver(c: Cluster, which: (m: Message) => boolean): void {
  const now = c.inbox.filter(which);
  c.inbox = c.inbox.filter((m) => !which(m));
  for (const m of now) c.node(m.to).core.step(m);
  c.flush();
}

function notices(c: Cluster, to: string): Message[] {
  return c.inbox.filter((m) => m.type === 'commit' && m.to === to);
}

/** Leader `a` of a, b, c with everything delivered and nothing queued. */
function quietCluster(overrides: Partial<CoreOptions> = {}): Cluster {
  const c = new Cluster(ABC, overrides);
  c.elect('a');
  c.stabilize();
  return c;
}

describe('commit notices', () => {
  test('with one write in flight, each follower gets the entry in one append and the commit in one notice, and answers once', () => {
    const c = quietCluster();
    const r = c.propose('a', 'x');
    assert.ok(r.ok);
    const sent = new Set<Message>();
    c.stabilize((m) => {
      sent.add(m);
      return true;
    });
    const summary = (m: Message): string =>
      `${m.from}>${m.to} ${m.type}${m.type === 'append' ? ` entries=${m.entries.length}` : ''}${m.type === 'commit' ? ` commit=${m.commit}` : ''}`;
    assert.deepEqual([...sent].map(summary).sort(), [
      'a>b append entries=1',
      `a>b commit commit=${r.index}`,
      'a>c append entries=1',
      `a>c commit commit=${r.index}`,
      'b>a appendResp',
      'c>a appendResp',
    ]);
    for (const n of c.nodes.values()) {
      assert.equal(n.core.commitIndex, r.index, n.id);
      assert.deepEqual(texts(n.applied), ['x'], n.id);
    }
  });

  test('a caught-up follower applies up to the notice and sends nothing back', () => {
    const c = quietCluster();
    const r = c.propose('a', 'x');
    assert.ok(r.ok);
    deliver(c, (m) => m.type === 'append');
    deliver(c, (m) => m.type === 'appendResp' && m.from === 'b');
    assert.deepEqual(
      c.inbox.filter((m) => m.from === 'a' && m.to === 'b'),
      [{ type: 'commit', from: 'a', to: 'b', term: c.node('a').core.currentTerm, commit: r.index }],
      'the commit goes to b in a notice, not in an empty append',
    );
    deliver(c, (m) => m.type === 'commit');
    const b = c.node('b');
    assert.equal(b.core.commitIndex, r.index);
    assert.deepEqual(texts(b.applied), ['x']);
    assert.deepEqual(
      c.inbox.filter((m) => m.from === 'b'),
      [],
      'b does not answer the notice',
    );
  });

  test("a notice carries at most the follower's match; a follower whose answer comes after the commit is told then", () => {
    const c = quietCluster();
    const x1 = c.propose('a', 'x1');
    const x2 = c.propose('a', 'x2');
    assert.ok(x1.ok && x2.ok);
    deliver(c, (m) => m.type === 'append');
    // b's answers commit both entries; c's are still on their way.
    deliver(c, (m) => m.type === 'appendResp' && m.from === 'b');
    const a = c.node('a');
    assert.equal(a.core.commitIndex, x2.index);
    assert.deepEqual(notices(c, 'c'), [], 'c has not acknowledged anything the leader could tell it is committed');
    // c's answer for x1 alone: it may be told x1, not x2, which it has not acknowledged.
    const [first] = c.inbox.filter((m) => m.type === 'appendResp' && m.from === 'c');
    deliver(c, (m) => m === first);
    assert.equal(a.core.status().peers.c.match, x1.index);
    assert.deepEqual(
      notices(c, 'c').map((m) => m.type === 'commit' && m.commit),
      [x1.index],
    );
    deliver(c, (m) => m.type === 'commit');
    assert.equal(c.node('c').core.commitIndex, x1.index);
    deliver(c, (m) => m.type === 'appendResp' && m.from === 'c');
    assert.deepEqual(
      notices(c, 'c').map((m) => m.type === 'commit' && m.commit),
      [x2.index],
    );
    deliver(c, (m) => m.type === 'commit');
    assert.deepEqual(texts(c.node('c').applied), ['x1', 'x2']);
  });

  test('a follower with entries still to send gets them in an append carrying the commit, not a notice', () => {
    // One append in flight per follower: x2 waits until x1 is acknowledged.
    const c = quietCluster({ maxInflightMsgs: 1 });
    const x1 = c.propose('a', 'x1');
    const x2 = c.propose('a', 'x2');
    assert.ok(x1.ok && x2.ok);
    deliver(c, (m) => m.type === 'append');
    deliver(c, (m) => m.type === 'appendResp' && m.from === 'b');
    assert.equal(c.node('a').core.commitIndex, x1.index);
    const toB = c.inbox.filter((m) => m.from === 'a' && m.to === 'b');
    assert.deepEqual(
      toB.map((m) => (m.type === 'append' ? { type: m.type, first: m.entries[0]?.index, commit: m.commit } : { type: m.type })),
      [{ type: 'append', first: x2.index, commit: x1.index }],
    );
  });

  test('a follower in probe state (a new voter) gets a probing append when the commit advances, not a notice', () => {
    const c = new Cluster(['a', 'b', 'c', 'd'], {}, ABC);
    c.elect('a');
    c.stabilize();
    const a = c.node('a');
    const r = a.core.proposeConfChange({ type: 'addVoter', id: 'd' });
    assert.ok(r.ok);
    c.flush();
    assert.equal(a.core.status().peers.d.state, 'probe');
    assert.deepEqual(
      c.inbox.filter((m) => m.to === 'd'),
      [],
      'd has no entries yet to be sent',
    );
    deliver(c, (m) => m.type === 'append');
    deliver(c, (m) => m.type === 'appendResp');
    assert.equal(a.core.commitIndex, r.index);
    assert.deepEqual(
      c.inbox.filter((m) => m.to === 'd').map((m) => m.type),
      ['append'],
    );
    c.stabilize();
    assert.equal(a.core.status().peers.d.match, r.index, 'the probe started d on its way');
  });

  test('a notice never lets a follower commit past its own log', () => {
    const c = quietCluster();
    const b = c.node('b');
    const last = b.core.status().lastIndex;
    b.core.step({ type: 'commit', from: 'a', to: 'b', term: b.core.currentTerm, commit: last + 5 });
    assert.equal(b.core.commitIndex, last);
  });

  test('a notice from a stale term changes nothing; its sender hears of the newer term, as from a stale heartbeat', () => {
    const c = quietCluster();
    const r = c.propose('a', 'x');
    assert.ok(r.ok);
    deliver(c, (m) => m.type === 'append' && m.to === 'b');
    c.inbox = [];
    const b = c.node('b');
    const before = b.core.status();
    assert.equal(before.lastIndex, r.index);
    assert.ok(before.commit < r.index);
    b.core.step({ type: 'commit', from: 'c', to: 'b', term: before.term - 1, commit: r.index });
    c.flush();
    const after = b.core.status();
    assert.deepEqual([after.term, after.role, after.leader, after.commit], [before.term, 'follower', 'a', before.commit]);
    assert.deepEqual(c.inbox, [{ type: 'appendResp', from: 'b', to: 'c', term: before.term, index: 0, reject: true, hintIndex: 0, hintTerm: 0 }]);
  });

  test('a notice is leader traffic: it resets the election timer, and one of a newer term makes its sender the leader', () => {
    const c = quietCluster();
    const b = c.node('b');
    // Without the notices, 27 ticks would exceed any randomized election timeout (10..19).
    for (let i = 0; i < 3; i++) {
      c.tick('b', 9);
      b.core.step({ type: 'commit', from: 'a', to: 'b', term: b.core.currentTerm, commit: 0 });
    }
    assert.equal(b.core.currentRole, 'follower');
    const term = b.core.currentTerm + 1;
    b.core.step({ type: 'commit', from: 'c', to: 'b', term, commit: 0 });
    assert.deepEqual([b.core.currentTerm, b.core.currentRole, b.core.currentLeader], [term, 'follower', 'c']);
  });
  test("when the leader's own write completes the quorum, the follower that answered hears of the commit at once", () => {
    const c = quietCluster();
    c.node('a').holdPersist = true;
    const r = c.propose('a', 'x');
    assert.ok(r.ok);
    // Only b gets the entry and answers: with a's write still held, b's answer alone is no quorum.
    deliver(c, (m) => m.type === 'append' && m.to === 'b');
    deliver(c, (m) => m.type === 'appendResp' && m.from === 'b');
    assert.equal(c.node('a').core.commitIndex, r.index - 1);
    assert.deepEqual(notices(c, 'b'), []);
    c.release('a');
    assert.equal(c.node('a').core.commitIndex, r.index);
    assert.deepEqual(
      notices(c, 'b').map((m) => (m.type === 'commit' ? m.commit : -1)),
      [r.index],
    );
    deliver(c, (m) => m.type === 'commit' && m.to === 'b');
    assert.deepEqual(texts(c.node('b').applied), ['x']);
  });
});
