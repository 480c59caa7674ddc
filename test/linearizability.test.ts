// The checker must accept linearizable histories and, just as important,
// reject the known non-linearizable ones; otherwise the simulator proves nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLinearizable, type HistoryOp, type KvOp } from './sim/linearizability.js';

function op(client: number, call: number, ret: number, o: KvOp, key = 'k'): HistoryOp {
  return { client, key, op: o, call, ret };
}
const put = (value: string): KvOp => ({ kind: 'put', value });
const get = (result: string | null): KvOp => ({ kind: 'get', result });
const cas = (expected: string | null, value: string, result: boolean): KvOp => ({ kind: 'cas', expected, value, result });

test('sequential and overlapping histories with a valid order are accepted', () => {
  assert.ok(checkLinearizable([op(0, 0, 1, put('a')), op(1, 2, 3, get('a'))]).ok);
  // Overlapping put and get: the get may see either value.
  assert.ok(checkLinearizable([op(0, 0, 10, put('a')), op(1, 1, 2, get(null))]).ok);
  assert.ok(checkLinearizable([op(0, 0, 10, put('a')), op(1, 1, 2, get('a'))]).ok);
  assert.ok(checkLinearizable([op(0, 0, 5, cas(null, 'a', true)), op(1, 1, 6, cas(null, 'b', false)), op(2, 7, 8, get('a'))]).ok);
});

test('a stale read after a completed write is rejected', () => {
  const r = checkLinearizable([op(0, 0, 1, put('a')), op(1, 2, 3, get(null))]);
  assert.equal(r.ok, false);
  assert.equal(r.key, 'k');
});

test('a value that flips back is rejected', () => {
  const history = [
    op(0, 0, 10, put('a')),
    op(1, 0, 10, put('b')),
    op(2, 11, 12, get('b')),
    op(3, 13, 14, get('a')),
  ];
  assert.equal(checkLinearizable(history).ok, false);
});

test('real-time order is respected: a later write cannot precede an earlier one', () => {
  assert.equal(checkLinearizable([op(0, 0, 1, put('a')), op(0, 2, 3, put('b')), op(1, 4, 5, get('a'))]).ok, false);
});

test('two compare-and-sets from the same state cannot both succeed', () => {
  const history = [op(0, 0, 5, cas(null, 'a', true)), op(1, 0, 5, cas(null, 'b', true))];
  assert.equal(checkLinearizable(history).ok, false);
});

test('a read of a value nobody wrote is rejected', () => {
  assert.equal(checkLinearizable([op(0, 0, 1, put('a')), op(1, 2, 3, get('z'))]).ok, false);
});

test('a write with an unknown outcome may have happened, or not', () => {
  const unknown = op(0, 0, Infinity, put('x'));
  assert.ok(checkLinearizable([unknown, op(1, 5, 6, get('x'))]).ok, 'it happened');
  assert.ok(checkLinearizable([unknown, op(1, 5, 6, get(null))]).ok, 'it did not (yet)');
  assert.equal(checkLinearizable([op(1, 0, 1, get('x')), op(0, 2, Infinity, put('x'))]).ok, false, 'but not before it was invoked');
});

test('keys are checked independently', () => {
  const history = [op(0, 0, 1, put('a'), 'k1'), op(1, 2, 3, get(null), 'k2'), op(2, 4, 5, get(null), 'k1')];
  const r = checkLinearizable(history);
  assert.equal(r.ok, false);
  assert.equal(r.key, 'k1');
});
