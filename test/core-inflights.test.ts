// The leader's window of appends in flight to one follower, checked against a
// plain list over random adds and releases (the window is a ring that grows).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Inflights } from '../src/core/progress.js';
import { Prng } from './support/prng.js';

test('the in-flight window counts and releases messages like a list, across wrap-arounds and growth', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const rng = new Prng(seed);
    const maxCount = rng.int(1, 60);
    const maxBytes = rng.int(100, 5000);
    const window = new Inflights(maxCount, maxBytes);
    let model: { lastIndex: number; bytes: number }[] = [];
    let nextIndex = 1;
    for (let step = 0; step < 2000; step++) {
      const action = rng.int(0, 9);
      if (action < 5 && model.length < 100) {
        nextIndex += rng.int(1, 5);
        const bytes = rng.int(0, 300);
        window.add(nextIndex, bytes);
        model.push({ lastIndex: nextIndex, bytes });
      } else if (action < 8) {
        const upTo = nextIndex - rng.int(0, 40);
        window.freeTo(upTo);
        model = model.filter((m) => m.lastIndex > upTo);
      } else if (action < 9) {
        window.freeFirst();
        model.shift();
      } else if (rng.chance(0.05)) {
        window.reset();
        model = [];
      }
      const bytes = model.reduce((sum, m) => sum + m.bytes, 0);
      const where = `seed ${seed} step ${step}`;
      assert.equal(window.count, model.length, where);
      assert.equal(window.inflightBytes, bytes, where);
      assert.equal(window.full, model.length >= maxCount || bytes >= maxBytes, where);
    }
  }
});
