// JSON answers that list many rows (range results), built without holding
// the event loop.

/**
 * Rows of a range answer turned into JSON per event-loop turn. An answer
 * listing 300,000 keys took seconds to build in one piece, holding the
 * event loop (and the node's heartbeats) long enough for a leader to lose
 * its leadership; the rows are the stored key-values captured at the read,
 * which are never modified, so writes applied between turns do not show.
 */
export const ROWS_PER_TURN = 2_000;

/**
 * `{...head, [field]: rows.map(row), ...tail}` as JSON. A short answer is
 * built at once; a long one in turns of ROWS_PER_TURN rows, into a buffer (a
 * string that long may pass V8's largest).
 */
export async function jsonWithRows<T>(
  head: Record<string, unknown>,
  field: string,
  rows: readonly T[],
  row: (item: T) => unknown,
  tail: Record<string, unknown> = {},
): Promise<string | Buffer> {
  if (rows.length <= ROWS_PER_TURN) return JSON.stringify({ ...head, [field]: rows.map(row), ...tail });
  const open = JSON.stringify(head);
  const close = JSON.stringify(tail);
  const parts: Buffer[] = [Buffer.from(`${open.length > 2 ? `${open.slice(0, -1)},` : '{'}${JSON.stringify(field)}:[`)];
  for (let from = 0; from < rows.length; from += ROWS_PER_TURN) {
    if (from > 0) await new Promise((resolve) => setImmediate(resolve));
    const rowsJson = rows.slice(from, from + ROWS_PER_TURN).map((item) => JSON.stringify(row(item)));
    parts.push(Buffer.from(`${from > 0 ? ',' : ''}${rowsJson.join(',')}`));
  }
  parts.push(Buffer.from(`]${close.length > 2 ? `,${close.slice(1)}` : '}'}`));
  return Buffer.concat(parts);
}
