import assert from 'node:assert/strict';
import { runSeed } from './cluster.js';

/** Runs seeds [from, to] and fails with every failing seed's one-line reproduction. */
export function assertSeedsPass(from: number, to: number): void {
  const failures: string[] = [];
  for (let seed = from; seed <= to; seed++) {
    const r = runSeed(seed);
    if (!r.ok) failures.push(`seed ${seed}: ${r.error}\n  reproduce: npm run sim -- --seed ${seed}`);
  }
  assert.deepEqual(failures, []);
}
