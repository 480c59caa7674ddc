// 64-bit integer fields of the FlatBuffers schemas, without BigInt.
//
// The generated code makes a BigInt for every int64 field it writes or reads,
// and parses another from the string '0' as the default each time: that was a
// good part of the cost of a client request and its answer. Every 64-bit field
// raftline defines holds a non-negative safe integer, so these helpers write
// and read such fields as two 32-bit halves, producing the bytes the generated
// adders produce (test/flat-int.test.ts compares them field by field).
import type * as flatbuffers from 'flatbuffers';

/**
 * Every 64-bit field of schema/client.fbs and schema/raft.fbs, by table: the
 * field's slot, the index the generated `add…` passes to `addFieldInt64`.
 */
export const INT64_SLOTS = {
  Request: { id: 0, limit: 4 },
  Response: { id: 0, revision: 4 },
  Result: { deleted: 1, count: 2 },
  KeyValue: { createRevision: 2, modRevision: 3, version: 4 },
  SnapshotMeta: { index: 0, term: 1 },
  Envelope: {
    term: 4,
    lastLogIndex: 5,
    lastLogTerm: 6,
    prevIndex: 9,
    prevTerm: 10,
    commit: 11,
    index: 13,
    hintIndex: 14,
    hintTerm: 15,
    round: 16,
    requestId: 17,
    snapshotBytes: 19,
    chunkOffset: 21,
  },
} as const;

/** What every generated table class exposes. */
export interface FlatTable {
  bb: flatbuffers.ByteBuffer | null;
  bb_pos: number;
}

const TWO_TO_32 = 2 ** 32;
/** The high 32 bits of Number.MAX_SAFE_INTEGER. */
const MAX_SAFE_HIGH = 0x1f_ffff;

/**
 * Adds the 64-bit field at `slot` of the table being built. As with the
 * generated adders (raftline's builders never force defaults), a 0, the
 * schema's default, is left out.
 */
export function addSafeInteger(b: flatbuffers.Builder, slot: number, value: number): void {
  if (value === 0) return;
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${value} is not a non-negative safe integer`);
  b.prep(8, 0);
  // Written downwards: the high half first lands above the low half (little-endian).
  b.writeInt32(Math.floor(value / TWO_TO_32));
  b.writeInt32(value >>> 0);
  b.slot(slot);
}

/** The 64-bit field at `slot` of `table` (0 when absent), or -1 when it is negative or above MAX_SAFE_INTEGER. */
export function readSafeInteger(table: FlatTable, slot: number): number {
  const bb = table.bb!;
  const offset = bb.__offset(table.bb_pos, 4 + 2 * slot);
  if (offset === 0) return 0;
  const at = table.bb_pos + offset;
  const high = bb.readUint32(at + 4);
  return high > MAX_SAFE_HIGH ? -1 : high * TWO_TO_32 + bb.readUint32(at);
}
