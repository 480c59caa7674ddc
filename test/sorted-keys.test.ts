// SortedKeys against a plain sorted array, through enough keys to split
// blocks, rebuild, and empty blocks out again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SortedKeys } from '../src/server/sorted-keys.js';
import { Prng } from './support/prng.js';

/** A binary string (one char per byte) of 0-6 bytes, from a small alphabet so that ranges hold several keys and bounds fall on keys. */
function randomKey(rng: Prng): string {
  const alphabet = [0x00, 0x01, 0x41, 0x42, 0x7f, 0x80, 0xfe, 0xff];
  let key = '';
  for (let n = rng.int(0, 6); n > 0; n--) key += String.fromCharCode(alphabet[rng.int(0, alphabet.length - 1)]!);
  return key;
}

function lowerBound(sorted: string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A random [from, to) (`to` null: to the end) and the keys of `model` in it, in order. */
function randomRange(rng: Prng, model: Set<string>): { from: string; to: string | null; expected: string[] } {
  const sorted = [...model].sort();
  const from = randomKey(rng);
  const to = rng.chance(0.2) ? null : randomKey(rng);
  const start = lowerBound(sorted, from);
  const end = to === null ? sorted.length : Math.max(start, lowerBound(sorted, to));
  return { from, to, expected: sorted.slice(start, end) };
}

for (const seed of [1, 2, 3, 4]) {
  test(`sorted keys agree with a sorted array through adds, removes, counts and limited scans (seed ${seed})`, () => {
    const rng = new Prng(seed);
    const keys = new SortedKeys();
    const model = new Set<string>();
    // Phases that grow (and split blocks), shrink (and empty them), and grow again in bulk (rebuilds).
    const phases: [number, number][] = [
      [6000, 0.9],
      [6000, 0.2],
      [4000, 0.97],
    ];
    for (const [phase, [steps, addShare]] of phases.entries()) {
      // The last phase starts from the keys given all at once, in no order.
      if (phase === phases.length - 1) keys.reset([...model].reverse());
      for (let step = 0; step < steps; step++) {
        if (rng.chance(addShare)) {
          const key = randomKey(rng);
          if (!model.has(key)) {
            model.add(key);
            keys.add(key);
          }
        } else if (rng.chance(0.03)) {
          // A range delete: whole blocks, and parts of the blocks at its ends.
          const { from, to, expected } = randomRange(rng, model);
          for (const key of expected) model.delete(key);
          assert.deepEqual(keys.removeRange(from, to), expected, `removeRange seed ${seed}, step ${step}, [${JSON.stringify(from)}, ${JSON.stringify(to)})`);
          assert.equal(keys.size, model.size);
        } else if (model.size > 0) {
          const present = [...model];
          const key = present[rng.int(0, present.length - 1)]!;
          model.delete(key);
          keys.remove(key);
        }
        // Reads every few steps only: between them, added keys stay pending.
        if (rng.chance(0.05)) {
          const { from, to, expected } = randomRange(rng, model);
          const limit = rng.chance(0.5) ? Infinity : rng.int(0, 20);
          const where = `seed ${seed}, step ${step}, [${JSON.stringify(from)}, ${JSON.stringify(to)}), limit ${limit}`;
          assert.equal(keys.count(from, to), expected.length, `count ${where}`);
          assert.deepEqual(keys.keys(from, to, limit), expected.slice(0, limit), `keys ${where}`);
          assert.equal(keys.size, model.size);
        }
      }
    }
    assert.deepEqual(keys.keys('', null), [...model].sort(), 'every key, in order, at the end');
  });
}

test('keys placed one at a time into a large base, then removed, leave the order consistent at every step', () => {
  const keys = new SortedKeys();
  const all = Array.from({ length: 3000 }, (_, i) => `k${String(i * 7919 % 3000).padStart(5, '0')}`);
  // A large base first, so that later additions are placed one by one instead of rebuilt.
  for (const k of all.slice(0, 2500)) keys.add(k);
  assert.equal(keys.count('', null), 2500);
  for (const k of all.slice(2500)) {
    keys.add(k);
    assert.ok(keys.keys(k, null, 1)[0] === k, `${k} is found right after it is placed`);
  }
  const sorted = [...all].sort();
  assert.deepEqual(keys.keys('', null), sorted);
  for (const k of sorted.filter((_, i) => i % 2 === 0)) keys.remove(k);
  assert.deepEqual(keys.keys('', null), sorted.filter((_, i) => i % 2 === 1));
  assert.throws(() => keys.remove(sorted[0]!), /not present/);
});

test('a range removed across many blocks takes whole blocks and the ends of two, and the order stays usable', () => {
  const keys = new SortedKeys();
  const all = Array.from({ length: 10_000 }, (_, i) => `k${String(i).padStart(5, '0')}`);
  keys.reset(all);
  let model = [...all];
  const removeAndCheck = (from: string, to: string | null) => {
    const expected = model.filter((k) => k >= from && (to === null || k < to));
    model = model.filter((k) => !(k >= from && (to === null || k < to)));
    assert.deepEqual(keys.removeRange(from, to), expected, `[${from}, ${to})`);
    assert.deepEqual(keys.keys('', null), model, `what is left after [${from}, ${to})`);
    assert.equal(keys.count('', null), model.length);
  };
  removeAndCheck('k00700', 'k06300'); // ends inside two blocks, whole ones between
  removeAndCheck('k00600', 'k00700'); // up to a gap left by the last
  removeAndCheck('k06300', 'k06301'); // one key
  removeAndCheck('k06310', 'k06310'); // empty
  removeAndCheck('k09000', null); // to the end
  removeAndCheck('', 'k00100'); // from the start
  for (const k of ['k00650', 'k05000', 'k09500']) keys.add(k);
  model = [...model, 'k00650', 'k05000', 'k09500'].sort();
  assert.deepEqual(keys.keys('', null), model, 'keys added after the removals are placed in order');
  removeAndCheck('', null);
  assert.equal(keys.size, 0);
});
