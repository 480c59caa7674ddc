// A linearizability checker for a key-value store, in the style of Wing &
// Gong / Lowe: per key, search for an order of the operations that respects
// real time and the register's sequential semantics, memoizing visited
// (linearized set, value) states.

export type KvOp =
  | { kind: 'put'; value: string }
  | { kind: 'get'; result: string | null }
  | { kind: 'cas'; expected: string | null; value: string; result: boolean };

export interface HistoryOp {
  client: number;
  key: string;
  op: KvOp;
  /** Virtual time of invocation. */
  call: number;
  /** Virtual time of the response; Infinity when the outcome is unknown (it may or may not have taken effect). */
  ret: number;
}

export interface CheckResult {
  ok: boolean;
  /** For a failure: the key whose history has no valid order. */
  key?: string;
  /** Search states visited, summed over keys. */
  states: number;
}

const MAX_STATES_PER_KEY = 2_000_000;

/** Applies `op` to `value`; undefined when the op's recorded result is impossible from `value`. */
function apply(value: string | null, op: KvOp, known: boolean): string | null | undefined {
  switch (op.kind) {
    case 'put':
      return op.value;
    case 'get':
      return !known || op.result === value ? value : undefined;
    case 'cas': {
      const matches = value === op.expected;
      if (known && matches !== op.result) return undefined;
      return matches ? op.value : value;
    }
  }
}

function checkKey(ops: HistoryOp[]): { ok: boolean; states: number } {
  const n = ops.length;
  if (n === 0) return { ok: true, states: 0 };
  if (n > 1000) throw new Error(`linearizability: ${n} operations on one key is beyond this checker`);
  ops.sort((a, b) => a.call - b.call);
  const seen = new Set<string>();
  const done = new Uint8Array(n);
  let states = 0;

  const search = (value: string | null, remaining: number): boolean => {
    // Operations with unknown outcomes may never have happened: once only
    // they remain, the history is linearizable.
    let pendingKnown = 0;
    let minRet = Infinity;
    for (let i = 0; i < n; i++) {
      if (done[i]) continue;
      if (ops[i].ret !== Infinity) pendingKnown++;
      if (ops[i].ret < minRet) minRet = ops[i].ret;
    }
    if (pendingKnown === 0) return true;
    const key = `${Array.from(done).join('')}|${value}`;
    if (seen.has(key)) return false;
    seen.add(key);
    if (++states > MAX_STATES_PER_KEY) throw new Error('linearizability: search space exhausted');
    for (let i = 0; i < n; i++) {
      // Only operations invoked before every remaining one has returned can go next.
      if (done[i] || ops[i].call > minRet) continue;
      const next = apply(value, ops[i].op, ops[i].ret !== Infinity);
      if (next === undefined) continue;
      done[i] = 1;
      if (search(next, remaining - 1)) return true;
      done[i] = 0;
    }
    return false;
  };

  return { ok: search(null, n), states };
}

/** Checks a whole history, key by key (operations on different keys commute). */
export function checkLinearizable(history: readonly HistoryOp[]): CheckResult {
  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) {
    const list = byKey.get(h.key) ?? [];
    list.push(h);
    byKey.set(h.key, list);
  }
  let states = 0;
  for (const [key, ops] of byKey) {
    const r = checkKey(ops.slice());
    states += r.states;
    if (!r.ok) return { ok: false, key, states };
  }
  return { ok: true, states };
}
