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
 * A turn also ends once its rows come to this many characters: 2,000 rows
 * of 1 MiB values would make a string longer than V8 allows, and take
 * seconds.
 */
const MAX_TURN_CHARS = 16 << 20;

/**
 * An answer of at most this many rows is built at once, by JSON.stringify:
 * one value of the largest size (16 MiB) makes at most 96 MB of JSON text
 * (every byte escaped); more could pass V8's longest string.
 */
export const ROWS_AT_ONCE = 1;

/** jsonInTurns' answer would be longer than its maxBytes. */
export class AnswerTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`the answer is more than ${maxBytes} bytes`);
    this.name = 'AnswerTooLargeError';
  }
}

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
 * plain objects and arrays. An answer of at most ROWS_AT_ONCE rows in all
 * is built at once; a longer one in turns (ROWS_PER_TURN rows, or fewer
 * long ones), into buffers, one per turn, to be sent one after the other: a
 * string that long may pass V8's largest, and joining 122 MB of buffers took 650 ms
 * of the event loop here.
 */
export async function jsonInTurns(value: unknown, maxBytes = Infinity): Promise<string | Buffer[]> {
  if (rowsIn(value) <= ROWS_AT_ONCE) {
    const json = JSON.stringify(value);
    if (Buffer.byteLength(json) > maxBytes) throw new AnswerTooLargeError(maxBytes);
    return json;
  }
  const parts: Buffer[] = [];
  let partBytes = 0;
  let pending: string[] = [];
  let rowsThisTurn = 0;
  let pendingChars = 0;
  const push = (text: string) => {
    pending.push(text);
    pendingChars += text.length;
  };
  /** Writes `value`, which has a JSON form (see leafJson). */
  const emit = async (value: unknown): Promise<void> => {
    if (value instanceof Rows) {
      push('[');
      for (let i = 0; i < value.items.length; i++) {
        // A turn ends after ROWS_PER_TURN rows, or sooner when its rows are long.
        if (rowsThisTurn === ROWS_PER_TURN || pendingChars > MAX_TURN_CHARS) {
          const part = Buffer.from(pending.join(''));
          partBytes += part.length;
          // Given up as soon as it is too long, rather than built whole first.
          if (partBytes > maxBytes) throw new AnswerTooLargeError(maxBytes);
          parts.push(part);
          pending = [];
          pendingChars = 0;
          rowsThisTurn = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
        push(`${i > 0 ? ',' : ''}${JSON.stringify(value.row(value.items[i])) ?? 'null'}`);
        rowsThisTurn++;
      }
      push(']');
    } else if (Array.isArray(value)) {
      push('[');
      for (let i = 0; i < value.length; i++) {
        if (i > 0) push(',');
        const leaf = leafJson(value[i]);
        // As JSON.stringify: an item with no JSON form is null.
        if (leaf === null) await emit(value[i]);
        else push(leaf ?? 'null');
      }
      push(']');
    } else if (isPlainObject(value)) {
      push('{');
      let first = true;
      for (const [key, field] of Object.entries(value)) {
        const leaf = leafJson(field);
        // As JSON.stringify: a field with no JSON form is left out.
        if (leaf === undefined) continue;
        push(`${first ? '' : ','}${JSON.stringify(key)}:`);
        first = false;
        if (leaf === null) await emit(field);
        else push(leaf);
      }
      push('}');
    } else {
      push(JSON.stringify(value));
    }
  };
  await emit(value);
  const last = Buffer.from(pending.join(''));
  if (partBytes + last.length > maxBytes) throw new AnswerTooLargeError(maxBytes);
  parts.push(last);
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

/** null for a value jsonInTurns walks into (Rows, an array, a plain object); otherwise JSON.stringify's text for it, undefined when it has none. */
function leafJson(value: unknown): string | undefined | null {
  return value instanceof Rows || Array.isArray(value) || isPlainObject(value) ? null : (JSON.stringify(value) as string | undefined);
}
