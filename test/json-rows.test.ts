import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsonWithRows, ROWS_PER_TURN } from '../src/server/json-rows.js';

const text = (body: string | Buffer) => (typeof body === 'string' ? body : body.toString('utf8'));

test('an answer with rows is the same JSON whether built at once or in turns, around every boundary', async () => {
  const row = (i: number) => ({ key: `k${i}`, value: 'ünï\u0000"\\', n: i });
  for (const count of [0, 1, ROWS_PER_TURN, ROWS_PER_TURN + 1, 2 * ROWS_PER_TURN, 2 * ROWS_PER_TURN + 7]) {
    const rows = Array.from({ length: count }, (_, i) => i);
    for (const [head, tail] of [
      [{ header: { revision: '3' } }, { more: true, count: String(count) }],
      [{}, {}],
      [{ revision: 1, count: count, more: false }, {}],
    ] as const) {
      const body = await jsonWithRows(head, 'kvs', rows, row, tail);
      assert.equal(text(body), JSON.stringify({ ...head, kvs: rows.map(row), ...tail }), `${count} rows, head ${JSON.stringify(head)}, tail ${JSON.stringify(tail)}`);
    }
  }
});

test('a long answer lets the event loop run between its turns', async () => {
  const rows = Array.from({ length: 5 * ROWS_PER_TURN }, (_, i) => i);
  let turnsBetween = 0;
  let building = true;
  const count = () => {
    if (!building) return;
    turnsBetween++;
    setImmediate(count);
  };
  setImmediate(count);
  await jsonWithRows({}, 'rows', rows, (i) => i);
  building = false;
  assert.ok(turnsBetween >= 4, `other work ran in ${turnsBetween} turns while 5 turns' worth of rows were built`);
  let shortTurns = 0;
  building = true;
  setImmediate(() => shortTurns++);
  await jsonWithRows({}, 'rows', rows.slice(0, ROWS_PER_TURN), (i) => i);
  assert.equal(shortTurns, 0, 'a short answer is built at once');
  building = false;
});
