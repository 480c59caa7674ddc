// The record framing (docs/log-format.md): what segment files hold and what
// AppendEntries carries, byte for byte.
import { fromNative, InvalidLogOperationError } from './errors.js';
import { native } from './native.js';

/** One log entry. `type` is an application tag in 0..255 that the log stores but does not interpret. */
export interface LogEntry {
  index: number;
  term: number;
  type: number;
  data: Uint8Array;
}

export const RECORD_HEADER_BYTES = 32;
export const MAX_PAYLOAD_BYTES: number = native.maxPayloadBytes;

const TWO_32 = 2 ** 32;

function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32LE(value % TWO_32, offset);
  buf.writeUInt32LE(Math.floor(value / TWO_32), offset + 4);
}

function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * TWO_32;
}

function checkEntry(e: LogEntry, position: number): void {
  if (!Number.isSafeInteger(e.index) || e.index < 1) {
    throw new InvalidLogOperationError(`entry ${position}: index must be a positive safe integer, got ${e.index}`);
  }
  if (!Number.isSafeInteger(e.term) || e.term < 0) {
    throw new InvalidLogOperationError(`entry ${position}: term must be a non-negative safe integer, got ${e.term}`);
  }
  if (!Number.isInteger(e.type) || e.type < 0 || e.type > 255) {
    throw new InvalidLogOperationError(`entry ${position}: type must be an integer in 0..255, got ${e.type}`);
  }
  if (!(e.data instanceof Uint8Array)) {
    throw new InvalidLogOperationError(`entry ${position}: data must be a Uint8Array`);
  }
  if (e.data.byteLength > MAX_PAYLOAD_BYTES) {
    throw new InvalidLogOperationError(
      `entry ${position}: ${e.data.byteLength}-byte payload exceeds the ${MAX_PAYLOAD_BYTES}-byte limit`,
    );
  }
}

/**
 * Entries whose sealed records are known are never framed again: a follower
 * writes what it received as it is, and a leader frames a batch once however
 * many followers it sends it to and then writes those same bytes.
 *
 * An entry decoded from records carries its record. (A WeakMap entry per
 * record made the garbage collector work through an ephemeron for every
 * entry held in memory.)
 */
class DecodedEntry implements LogEntry {
  /** The buffer the entry was decoded from and where its record starts there (it ends where `data` does). */
  readonly #records: Buffer;
  readonly #start: number;
  constructor(
    public index: number,
    public term: number,
    public type: number,
    public data: Uint8Array,
    records: Buffer,
    start: number,
  ) {
    this.#records = records;
    this.#start = start;
  }

  /** The buffer `e`'s sealed record lies in, if it was decoded from one. */
  static recordsOf(e: LogEntry): Buffer | undefined {
    return e instanceof DecodedEntry ? e.#records : undefined;
  }

  /** Where the record of `e` (decoded: `recordsOf` returned a buffer) starts in that buffer. */
  static recordStart(e: LogEntry): number {
    return (e as DecodedEntry).#start;
  }
}

const recordEnd = (e: LogEntry): number => DecodedEntry.recordStart(e) + RECORD_HEADER_BYTES + e.data.byteLength;

/** A batch `frameEntries` framed: `records` holds entry i at [offsets[i], offsets[i + 1]). */
interface FramedBatch {
  entries: readonly LogEntry[];
  records: Buffer;
  offsets: number[];
}

/**
 * Enough for the batches of a few groups in flight at once; older ones are
 * framed again if asked for. Bounded in bytes too: a batch holds its records
 * and, through its entries, their data.
 */
const RECENT_BATCHES_MAX = 8;
const RECENT_BATCHES_MAX_BYTES = 8 * 1024 * 1024;
const recentBatches: FramedBatch[] = [];
let recentBatchesBytes = 0;

/**
 * The sealed records of `entries` if every one is known: a view when they lie
 * back to back in one buffer (the usual case), a copy otherwise.
 */
export function knownRecords(entries: readonly LogEntry[]): Buffer | undefined {
  if (entries.length === 0) return undefined;
  // A leader's first batch after an election can mix entries it received with its own.
  return decodedRecords(entries) ?? recentlyFramed(entries);
}

function decodedRecords(entries: readonly LogEntry[]): Buffer | undefined {
  const records = DecodedEntry.recordsOf(entries[0]);
  if (records === undefined) return undefined;
  let contiguous = true;
  for (let i = 1; i < entries.length; i++) {
    const r = DecodedEntry.recordsOf(entries[i]);
    if (r === undefined) return undefined;
    if (r !== records || DecodedEntry.recordStart(entries[i]) !== recordEnd(entries[i - 1])) contiguous = false;
  }
  if (contiguous) return records.subarray(DecodedEntry.recordStart(entries[0]), recordEnd(entries[entries.length - 1]));
  return Buffer.concat(entries.map((e) => DecodedEntry.recordsOf(e)!.subarray(DecodedEntry.recordStart(e), recordEnd(e))));
}

/** `entries` as a run of a recently framed batch (the very same objects), or undefined. */
function recentlyFramed(entries: readonly LogEntry[]): Buffer | undefined {
  for (let b = recentBatches.length - 1; b >= 0; b--) {
    const batch = recentBatches[b];
    const at = entries[0].index - batch.entries[0].index;
    if (!(at >= 0 && at + entries.length <= batch.entries.length)) continue;
    let same = true;
    for (let i = 0; i < entries.length && same; i++) same = batch.entries[at + i] === entries[i];
    if (same) return batch.records.subarray(batch.offsets[at], batch.offsets[at + entries.length]);
  }
  return undefined;
}

/**
 * Frames entries into one buffer of records with their checksums filled in,
 * ready for `SegmentLog.appendFramed` or the wire.
 */
export function frameEntries(entries: readonly LogEntry[]): Buffer {
  if (entries.length === 0) return Buffer.alloc(0);
  const known = knownRecords(entries);
  if (known) return known;
  const records = frameUnsealed(entries);
  native.sealRecords(records);
  if (records.byteLength <= RECENT_BATCHES_MAX_BYTES) remember(entries, records);
  return records;
}

function remember(entries: readonly LogEntry[], records: Buffer): void {
  const offsets = [0];
  for (const e of entries) offsets.push(offsets[offsets.length - 1] + RECORD_HEADER_BYTES + e.data.byteLength);
  // A copy: the caller's array may change, the framed objects may not.
  recentBatches.push({ entries: entries.slice(), records, offsets });
  recentBatchesBytes += records.byteLength;
  while (recentBatches.length > RECENT_BATCHES_MAX || recentBatchesBytes > RECENT_BATCHES_MAX_BYTES) {
    recentBatchesBytes -= recentBatches.shift()!.records.byteLength;
  }
}

/** Frames entries leaving magic and checksums for the addon to fill in, into a buffer from `allocate`. */
export function frameUnsealed(
  entries: readonly LogEntry[],
  allocate: (bytes: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  let total = 0;
  for (let i = 0; i < entries.length; i++) {
    checkEntry(entries[i], i);
    total += RECORD_HEADER_BYTES + entries[i].data.byteLength;
  }
  const buf = allocate(total);
  let at = 0;
  for (const e of entries) {
    buf.writeUInt32LE(0, at);
    buf[at + 3] = e.type;
    buf.writeUInt32LE(e.data.byteLength, at + 4);
    writeU64(buf, e.term, at + 8);
    writeU64(buf, e.index, at + 16);
    buf.writeUInt32LE(0, at + 24);
    buf.writeUInt32LE(0, at + 28);
    buf.set(e.data, at + RECORD_HEADER_BYTES);
    at += RECORD_HEADER_BYTES + e.data.byteLength;
  }
  return buf;
}

/**
 * Verifies every record's checksums (natively) and returns how many there
 * are; throws `InvalidLogOperationError` naming the first bad record.
 */
export function verifyRecords(records: Uint8Array): number {
  try {
    return native.verifyRecords(records);
  } catch (err) {
    throw fromNative(err);
  }
}

/**
 * Splits framed records into entries whose `data` are views into `records`
 * (no copy). Checksums are not re-verified: records from the log were
 * verified when read, and the caller verifies anything else first
 * (`verifyRecords`) — the entries remember their records as sealed, which
 * makes them instances of a class of their own rather than plain objects:
 * compare their fields, not their prototypes.
 */
export function decodeRecords(records: Buffer, count?: number): LogEntry[] {
  const out: LogEntry[] = [];
  let at = 0;
  while (at < records.length && (count === undefined || out.length < count)) {
    if (records.length - at < RECORD_HEADER_BYTES) {
      throw new InvalidLogOperationError(`record at byte ${at} is cut short`);
    }
    const length = records.readUInt32LE(at + 4);
    const end = at + RECORD_HEADER_BYTES + length;
    if (end > records.length) throw new InvalidLogOperationError(`record at byte ${at} is cut short`);
    out.push(
      new DecodedEntry(
        readU64(records, at + 16),
        readU64(records, at + 8),
        records[at + 3],
        records.subarray(at + RECORD_HEADER_BYTES, end),
        records,
        at,
      ),
    );
    at = end;
  }
  return out;
}
