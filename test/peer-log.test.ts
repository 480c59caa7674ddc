// The peer transport's log rate limiter (src/transport/peer-log.ts), on a
// clock the test moves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_EVENTS_PER_WINDOW, rateLimited, type TransportLogEvent } from '../src/transport/peer-log.js';

function limiter(): { log: ReturnType<typeof rateLimited>; passed: TransportLogEvent[]; setMs: (ms: number) => void } {
  const passed: TransportLogEvent[] = [];
  let nowMs = 0;
  return { log: rateLimited((e) => passed.push(e), () => nowMs), passed, setMs: (ms) => (nowMs = ms) };
}

test('the same event passes once per second', () => {
  const { log, passed, setMs } = limiter();
  const e: TransportLogEvent = { level: 'warn', message: 'm', peer: 'n2' };
  for (let i = 0; i < 10; i++) log(e);
  setMs(999);
  log(e);
  assert.equal(passed.length, 1);
  setMs(1000);
  log(e);
  assert.equal(passed.length, 2);
});

test('events with one limitKey pass once per second, whatever their messages', () => {
  const { log, passed } = limiter();
  for (let i = 0; i < 2000; i++) log({ level: 'warn', message: `a process calling itself "x${i}"`, remote: '10.0.0.9' }, 'refused auth\x0010.0.0.9');
  assert.deepEqual(passed.map((e) => e.message), ['a process calling itself "x0"']);
});

test('a flood of distinct events passes MAX_EVENTS_PER_WINDOW a second; the rest are counted, not let through by forgetting the others', () => {
  const { log, passed, setMs } = limiter();
  const flood = (from: number, n: number) => {
    for (let i = from; i < from + n; i++) log({ level: 'warn', message: `event ${i}` });
  };
  flood(0, 2000);
  assert.equal(passed.length, MAX_EVENTS_PER_WINDOW);
  setMs(500);
  flood(2000, 100);
  assert.equal(passed.length, MAX_EVENTS_PER_WINDOW, 'nothing passed in the window is forgotten early');
  setMs(1000);
  flood(2100, 1);
  assert.deepEqual(passed.slice(MAX_EVENTS_PER_WINDOW).map((e) => e.message), [`${2100 - MAX_EVENTS_PER_WINDOW} log events suppressed: more than ${MAX_EVENTS_PER_WINDOW} distinct ones within 1000 ms`, 'event 2100']);
});
