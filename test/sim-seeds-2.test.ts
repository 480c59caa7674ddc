// Seeds 1001..2000 of the cluster simulator; the seeds are split across two
// files so the halves run in parallel on two cores.
import { test } from 'node:test';
import { assertSeedsPass } from './sim/seed-range.js';

test('simulated clusters stay safe, live and linearizable (seeds 1001..2000)', () => {
  assertSeedsPass(1001, 2000);
});
