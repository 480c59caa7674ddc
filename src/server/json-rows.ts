// JSON answers that list many rows (range results, the key-values a delete
// removed, a transaction's ranges), built without holding the event loop.

/**
 * Rows of an answer turned into JSON per event-loop turn. An answer
 * listing 300,000 keys took seconds to build in one piece, holding the
 * event loop (and the node's heartbeats) long enough for a leader to lose
 * its leadership; the rows are the stored key-values captured at the read
 * or the write, which are never modified, so writes applied between turns
 * do not show.
 */
export const ROWS_PER_TURN = 2_000;

/**
 * A list in an answer whose items become JSON one by one (`row`), so that
 * jsonInTurns can spread a long one over turns. JSON.stringify writes it
 * as the array of its rows.
 */
export class Rows<T> {
  constructor(
    readonly items: readonly T[],
    readonly row: (item: T) => unknown,
  ) {}

  toJSON(): unknown[] {
    return this.items.map(this.row);
  }
}

/**
 * JSON.stringify(value) for answers whose long lists are Rows, anywhere in
 * plain objects and arrays. An answer of at most ROWS_PER_TURN rows in all
 * is built at once; a longer one in turns of ROWS_PER_TURN rows, into
 * buffers, one per turn, to be sent one after the other: a string that
 * long may pass V8's largest, and joining 122 MB of buffers took 650 ms
 * of the event loop here.
 */
export async function jsonInTurns(value: unknown): Promise<string | Buffer[]> {
  if (rowsIn(value) <= ROWS_PER_TURN) return JSON.stringify(value);
  const parts: Buffer[] = [];
  let pending: string[] = [];
  let rowsThisTurn = 0;
  const emit = async (value: unknown): Promise<void> => {
    if (value instanceof Rows) {
      pending.push('[');
      for (let i = 0; i < value.items.length; i++) {
        if (rowsThisTurn === ROWS_PER_TURN) {
          parts.push(Buffer.from(pending.join('')));
          pending = [];
          rowsThisTurn = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
        pending.push(`${i > 0 ? ',' : ''}${JSON.stringify(value.row(value.items[i]))}`);
        rowsThisTurn++;
      }
      pending.push(']');
    } else if (Array.isArray(value)) {
      pending.push('[');
      for (let i = 0; i < value.length; i++) {
        if (i > 0) pending.push(',');
        // As JSON.stringify: an item with no JSON form is null.
        if (isOmitted(value[i])) pending.push('null');
        else await emit(value[i]);
      }
      pending.push(']');
    } else if (isPlainObject(value)) {
      pending.push('{');
      let first = true;
      for (const [key, field] of Object.entries(value)) {
        if (isOmitted(field)) continue;
        pending.push(`${first ? '' : ','}${JSON.stringify(key)}:`);
        first = false;
        await emit(field);
      }
      pending.push('}');
    } else {
      pending.push(JSON.stringify(value));
    }
  };
  await emit(value);
  parts.push(Buffer.from(pending.join('')));
  return parts;
}

/** How many Rows items `value` holds. */
function rowsIn(value: unknown): number {
  if (value instanceof Rows) return value.items.length;
  let rows = 0;
  if (Array.isArray(value)) for (const item of value) rows += rowsIn(item);
  else if (isPlainObject(value)) for (const field of Object.values(value)) rows += rowsIn(field);
  return rows;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !('toJSON' in value) && !Array.isArray(value);
}

/** What JSON.stringify leaves out of an object (and writes as null in an array). */
function isOmitted(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}
