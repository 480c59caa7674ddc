import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsonInTurns, Rows, ROWS_AT_ONCE, ROWS_PER_TURN } from '../src/server/json-rows.js';

const text = (body: string | Buffer[]) => (typeof body === 'string' ? body : Buffer.concat(body).toString('utf8'));
const row = (i: number) => ({ key: `k${i}`, value: 'ünï\u0000"\\', n: i });
const numbers = (count: number) => Array.from({ length: count }, (_, i) => i);

/** `work`'s result, and in how many event-loop turns other work ran while it did. */
async function turnsDuring<T>(work: () => Promise<T>): Promise<{ result: T; turnsBetween: number }> {
  let turnsBetween = 0;
  let working = true;
  const count = () => {
    if (!working) return;
    turnsBetween++;
    setImmediate(count);
  };
  setImmediate(count);
  const result = await work();
  working = false;
  return { result, turnsBetween };
}

test('an answer with rows is the same JSON whether built at once or in turns, around every boundary', async () => {
  for (const count of [0, 1, ROWS_AT_ONCE, ROWS_AT_ONCE + 1, ROWS_PER_TURN, ROWS_PER_TURN + 1, 2 * ROWS_PER_TURN, 2 * ROWS_PER_TURN + 7]) {
    const rows = numbers(count);
    for (const answer of [
      { header: { revision: '3' }, kvs: new Rows(rows, row), more: true, count: String(count) },
      { kvs: new Rows(rows, row) },
      { revision: 1, count, more: false, kvs: new Rows(rows, row) },
    ]) {
      const expected = JSON.stringify({ ...answer, kvs: rows.map(row) });
      assert.equal(text(await jsonInTurns(answer)), expected, `${count} rows in ${Object.keys(answer).join(', ')}`);
      assert.equal(JSON.stringify(answer), expected, 'JSON.stringify writes Rows as the array of their rows');
    }
  }
});

test('rows anywhere in an answer count together: a transaction of several long lists is the same JSON, built in turns', async () => {
  const half = Math.floor(ROWS_PER_TURN / 2) + 1;
  const answer = {
    header: { revision: '9', raft_term: '2' },
    succeeded: true,
    skipped: undefined,
    responses: [
      { response_range: { header: { revision: '9' }, kvs: new Rows(numbers(half), row), count: String(half) } },
      { response_put: { header: { revision: '9' } } },
      { response_delete_range: { header: { revision: '9' }, deleted: '3', prev_kvs: new Rows(numbers(half), row) } },
      [undefined, () => 1, null, 'text', 4.5, false],
    ],
  };
  const expected = JSON.stringify(answer);
  assert.ok(expected.includes('"prev_kvs":[{"key":"k0"') && !expected.includes('skipped'), expected.slice(0, 200));
  const { result: body, turnsBetween } = await turnsDuring(() => jsonInTurns(answer));
  assert.ok(Array.isArray(body) && body.length > 1, 'more rows than one turn takes: built in turns, a part per turn');
  assert.equal(text(body), expected);
  assert.ok(turnsBetween >= 1, `other work ran while two lists of ${half} rows were built (${turnsBetween} turns)`);
});

test('a long answer lets the event loop run between its turns', async () => {
  const rows = numbers(5 * ROWS_PER_TURN);
  const { turnsBetween } = await turnsDuring(() => jsonInTurns({ rows: new Rows(rows, (i) => i) }));
  assert.ok(turnsBetween >= 4, `other work ran in ${turnsBetween} turns while 5 turns' worth of rows were built`);
  let shortTurns = 0;
  setImmediate(() => shortTurns++);
  await jsonInTurns({ rows: new Rows(rows.slice(0, ROWS_PER_TURN), (i) => i) });
  assert.equal(shortTurns, 0, 'an answer of one turn\'s rows is built in one turn');
});

test('long rows end a turn early; values with no JSON form are null in a list and left out of an object, as JSON.stringify does', async () => {
  const long = 'x'.repeat(1 << 20);
  const answer = { kvs: new Rows(numbers(20), (i) => ({ i, long, gone: undefined, f: () => i, asNull: [undefined, () => 1] })) };
  const { result, turnsBetween } = await turnsDuring(() => jsonInTurns(answer));
  assert.ok(Array.isArray(result) && result.length >= 2, '20 rows of 1 MiB: more than one turn');
  assert.ok(turnsBetween >= 1, `other work ran between them (${turnsBetween} turns)`);
  assert.equal(text(result), JSON.stringify(answer));
  const odd = { rows: new Rows(numbers(ROWS_AT_ONCE + 1), (i) => (i % 2 ? undefined : { at: new Date(i), missing: { toJSON: () => undefined } })) };
  assert.equal(text(await jsonInTurns(odd)), JSON.stringify(odd));
});
