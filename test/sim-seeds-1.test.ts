// Seeds 1..1000 of the cluster simulator; the seeds are split across two
// files so the halves run in parallel on two cores.
import { test } from 'node:test';
import { assertSeedsPass } from './sim/seed-range.js';

test('simulated clusters stay safe, live and linearizable (seeds 1..1000)', () => {
  assertSeedsPass(1, 1000);
});
