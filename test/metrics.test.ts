import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServerMetrics } from '../src/server/metrics.js';

test('raftline_leader_changes_total counts leaders learned of, not every change of role', async () => {
  const metrics = new ServerMetrics(() => null, () => true, () => ({ peers: {}, rejected: {} }) as never);
  const leaderChanges = async () => (await metrics.registry.getSingleMetric('raftline_leader_changes_total')!.get()).values[0]?.value ?? 0;
  const role = (role: string, leader: string | null, term: number) => metrics.onNodeEvent({ type: 'roleChanged', role, leader, term });
  role('follower', 'n1', 1);
  assert.equal(await leaderChanges(), 1);
  // n1 lost, this node campaigned twice, then n2 won: one new leader.
  role('follower', null, 2);
  role('preCandidate', null, 2);
  role('candidate', null, 3);
  role('follower', null, 3);
  role('follower', 'n2', 4);
  assert.equal(await leaderChanges(), 2);
  // n2 again, elected in a new term: a new leader all the same.
  role('follower', null, 5);
  role('follower', 'n2', 5);
  assert.equal(await leaderChanges(), 3);
});
