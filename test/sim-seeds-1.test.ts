// Seeds 1..1000 of the cluster simulator (split across files so the
// two halves run in parallel). Any failure prints its one-line reproduction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSeed } from './sim/cluster.js';

test('simulated clusters stay safe, live and linearizable (seeds 1..1000)', () => {
  const failures: string[] = [];
  for (let seed = 1; seed <= 1000; seed++) {
    const r = runSeed(seed);
    if (!r.ok) failures.push(`seed ${seed}: ${r.error}\n  reproduce: npm run sim -- --seed ${seed}`);
  }
  assert.deepEqual(failures, []);
});
