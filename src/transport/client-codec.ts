// The binary client protocol's messages (schema/client.fbs) and their
// encoding. Shared by the server and raftline/client.
import * as flatbuffers from 'flatbuffers';
import { Consistency } from './generated/raftline/client/consistency.js';
import { KeyValue as WireKeyValue } from './generated/raftline/client/key-value.js';
import { Request } from './generated/raftline/client/request.js';
import { Response } from './generated/raftline/client/response.js';
import { Result } from './generated/raftline/client/result.js';
import { addSafeInteger, INT64_SLOTS, readSafeInteger, type FlatTable } from './flat-int.js';
import { MIN_ENVELOPE_BYTES, within } from './frame.js';

const REQUEST_INT64 = INT64_SLOTS.Request;
const RESPONSE_INT64 = INT64_SLOTS.Response;
const RESULT_INT64 = INT64_SLOTS.Result;
const KEY_VALUE_INT64 = INT64_SLOTS.KeyValue;

export type ReadConsistency = 'linearizable' | 'lease' | 'stale';

export interface ClientKeyValue {
  key: Uint8Array;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
}

export interface ClientRead {
  key: Uint8Array;
  /** Absent: exactly `key`. */
  rangeEnd?: Uint8Array;
  limit: number;
  keysOnly: boolean;
  countOnly: boolean;
  consistency: ReadConsistency;
}

/** A write (`command`, the key-value command bytes) or a read. */
export interface ClientRequest {
  id: number;
  command?: Uint8Array;
  read?: ClientRead;
}

export const RESULT_TYPES = ['put', 'delete', 'range', 'member'] as const;

export interface ClientResult {
  type: (typeof RESULT_TYPES)[number];
  deleted: number;
  count: number;
  more: boolean;
  kvs: ClientKeyValue[];
  prevKvs: ClientKeyValue[];
}

export interface ClientResponse {
  id: number;
  /** '' on success. */
  errorCode: string;
  error: string;
  leader: string | null;
  revision: number;
  succeeded: boolean;
  duplicate: boolean;
  results: ClientResult[];
  /** A registration's answer: the session's id; '' otherwise. */
  session: string;
}

export class ClientFrameError extends Error {
  /** The id of the request that failed to decode, when it could be read; else 0. */
  requestId = 0;

  constructor(reason: string) {
    super(`malformed client frame: ${reason}`);
    this.name = 'ClientFrameError';
  }
}

const CONSISTENCY: ReadConsistency[] = ['linearizable', 'lease', 'stale'];

/** A 64-bit field of `table`, refused when it is not a non-negative safe integer. */
function safe(table: FlatTable, slot: number, field: string): number {
  const value = readSafeInteger(table, slot);
  if (value < 0) throw new ClientFrameError(`${field} out of range`);
  return value;
}

/** Checks on what the generated accessors read from the message being decoded. */
interface Bounds {
  /** A byte vector, refused unless it lies within the message (see `within`). */
  vector(v: Uint8Array | null, field: string): Uint8Array | null;
  /**
   * A vector's element count, refused when the message is too small to hold
   * that many (each takes at least 4 bytes), counting every vector decoded so
   * far: tables may be shared, so a small message could otherwise name the
   * same large vector many times over.
   */
  count(n: number, field: string): number;
}

/**
 * Decoding runs without a FlatBuffers verifier: any damage surfaces as an
 * exception, turned into ClientFrameError, or as a vector that cannot be
 * inside the message, which `Bounds` refuses.
 */
function guarded<T>(what: string, bytes: Uint8Array, decode: (bb: flatbuffers.ByteBuffer, bounds: Bounds) => T): T {
  if (bytes.byteLength < MIN_ENVELOPE_BYTES) throw new ClientFrameError(`${bytes.byteLength} bytes is too short for a ${what}`);
  let elementsLeft = Math.floor(bytes.byteLength / 4);
  const bounds: Bounds = {
    vector(v, field) {
      if (v && !within(bytes, v)) throw new ClientFrameError(`${field} lies outside the ${what}`);
      return v;
    },
    count(n, field) {
      if (n > elementsLeft) throw new ClientFrameError(`${n} more ${field} cannot fit in a ${bytes.byteLength}-byte ${what}`);
      elementsLeft -= n;
      return n;
    },
  };
  try {
    return decode(new flatbuffers.ByteBuffer(bytes), bounds);
  } catch (err) {
    if (err instanceof ClientFrameError) throw err;
    throw new ClientFrameError(`undecodable ${what} (${(err as Error).message})`);
  }
}

/**
 * One builder for every message encoded here: a fresh one per message was a
 * good part of the garbage a busy connection makes. Encoding never reenters,
 * and each message is copied out; a builder grown past its usual size by a
 * large message is replaced rather than kept.
 */
let shared = new flatbuffers.Builder(1024);
const SHARED_BUILDER_MAX_BYTES = 64 * 1024;

function builder(): flatbuffers.Builder {
  if (shared.dataBuffer().capacity() > SHARED_BUILDER_MAX_BYTES) shared = new flatbuffers.Builder(1024);
  shared.clear();
  return shared;
}

function finished(b: flatbuffers.Builder, root: flatbuffers.Offset): Uint8Array {
  b.finish(root);
  // Copied into Buffer's pool: slice() gave every message an ArrayBuffer of
  // its own (a malloc and a free each), half the cost of encoding an answer.
  return Buffer.from(b.asUint8Array());
}

export function encodeRequest(r: ClientRequest): Uint8Array {
  const b = builder();
  const command = r.command ? b.createByteVector(r.command) : 0;
  const key = r.read ? b.createByteVector(r.read.key) : 0;
  const rangeEnd = r.read?.rangeEnd ? b.createByteVector(r.read.rangeEnd) : 0;
  Request.startRequest(b);
  addSafeInteger(b, REQUEST_INT64.id, r.id);
  if (command) Request.addCommand(b, command);
  if (r.read) {
    Request.addKey(b, key);
    if (rangeEnd) Request.addRangeEnd(b, rangeEnd);
    addSafeInteger(b, REQUEST_INT64.limit, r.read.limit);
    Request.addKeysOnly(b, r.read.keysOnly);
    Request.addCountOnly(b, r.read.countOnly);
    Request.addConsistency(b, CONSISTENCY.indexOf(r.read.consistency) as Consistency);
  }
  return finished(b, Request.endRequest(b));
}

export function decodeRequest(bytes: Uint8Array): ClientRequest {
  let id = 0;
  try {
    return guarded('request', bytes, (bb, { vector }) => {
      const r = Request.getRootAsRequest(bb);
      id = safe(r, REQUEST_INT64.id, 'id');
      const command = vector(r.commandArray(), 'command');
      if (command) return { id, command };
      const key = vector(r.keyArray(), 'key');
      if (!key) throw new ClientFrameError('a request needs a command or a key');
      const consistency = CONSISTENCY[r.consistency()];
      if (!consistency) throw new ClientFrameError(`unknown consistency ${r.consistency()}`);
      return {
        id,
        read: { key, rangeEnd: vector(r.rangeEndArray(), 'range_end') ?? undefined, limit: safe(r, REQUEST_INT64.limit, 'limit'), keysOnly: r.keysOnly(), countOnly: r.countOnly(), consistency },
      };
    });
  } catch (err) {
    // The server answers under this id, so the client can match the error to its request.
    if (err instanceof ClientFrameError) err.requestId = id;
    throw err;
  }
}

/**
 * Key-values encoded per event-loop turn by encodeResponseInTurns: a range
 * answer of 300,000 took 2-3 s in one piece, long enough for a leader's
 * missed heartbeats to cost it its leadership.
 */
export const KVS_PER_TURN = 2_000;

/** A key-value's bytes in a response besides its key and value (table, vtable offset, vector lengths, padding), rounded up. */
const KV_TABLE_BYTES = 64;
/** A response of at most this many key-values is encoded at once, on the shared builder: 16 values of the largest size (16 MiB) stay far from the builder's 2 GiB. */
export const KVS_AT_ONCE = 16;
/** Key-values looked at to estimate the size of many: reading a key or a value may copy it (a store's key-values make them on demand). */
const SIZE_SAMPLE_KVS = 64;
/** A builder starts at most this large (flatbuffers' limit is 2 GiB); past it, it grows. */
const MAX_BUILDER_START_BYTES = 1 << 30;

/** About how many bytes `kvs` take in a response, from an evenly spread sample of them, a quarter over. */
function estimatedKvBytes(kvs: readonly ClientKeyValue[]): number {
  if (kvs.length === 0) return 0;
  const step = Math.max(1, Math.floor(kvs.length / SIZE_SAMPLE_KVS));
  let sampled = 0;
  let bytes = 0;
  for (let i = 0; i < kvs.length; i += step, sampled++) bytes += kvs[i].key.length + kvs[i].value.length + KV_TABLE_BYTES;
  return Math.ceil(((bytes / sampled) * kvs.length * 5) / 4);
}

/**
 * Key-value tables for kvs[from, to), their offsets into `offsets`; false,
 * stopping, once the builder holds more than `maxBytes` (it cannot grow past
 * 2 GiB: checked at each key-value, so it never tries).
 */
function encodeKvTables(b: flatbuffers.Builder, kvs: readonly ClientKeyValue[], from: number, to: number, offsets: flatbuffers.Offset[], maxBytes = Infinity): boolean {
  for (let i = from; i < to; i++) {
    if (b.offset() > maxBytes) return false;
    const kv = kvs[i];
    const key = b.createByteVector(kv.key);
    const value = b.createByteVector(kv.value);
    WireKeyValue.startKeyValue(b);
    WireKeyValue.addKey(b, key);
    WireKeyValue.addValue(b, value);
    addSafeInteger(b, KEY_VALUE_INT64.createRevision, kv.createRevision);
    addSafeInteger(b, KEY_VALUE_INT64.modRevision, kv.modRevision);
    addSafeInteger(b, KEY_VALUE_INT64.version, kv.version);
    offsets[i] = WireKeyValue.endKeyValue(b);
  }
  return b.offset() <= maxBytes;
}

/** The vector of tables at `offsets`, or 0 (no vector) when there are none: an absent vector reads as empty. */
function kvsVector(b: flatbuffers.Builder, offsets: flatbuffers.Offset[]): flatbuffers.Offset {
  return offsets.length === 0 ? 0 : Result.createKvsVector(b, offsets);
}

function kvsVectorAtOnce(b: flatbuffers.Builder, kvs: readonly ClientKeyValue[]): flatbuffers.Offset {
  if (kvs.length === 0) return 0;
  const offsets = new Array<flatbuffers.Offset>(kvs.length);
  encodeKvTables(b, kvs, 0, kvs.length, offsets);
  return kvsVector(b, offsets);
}

/** The response around its results' key-value vectors (kvs and prevKvs of each result, in order); its root. */
function buildResponse(b: flatbuffers.Builder, r: ClientResponse, vectors: flatbuffers.Offset[]): flatbuffers.Offset {
  const results = r.results.map((res, i) => {
    Result.startResult(b);
    Result.addType(b, RESULT_TYPES.indexOf(res.type));
    addSafeInteger(b, RESULT_INT64.deleted, res.deleted);
    addSafeInteger(b, RESULT_INT64.count, res.count);
    Result.addMore(b, res.more);
    if (vectors[2 * i]) Result.addKvs(b, vectors[2 * i]);
    if (vectors[2 * i + 1]) Result.addPrevKvs(b, vectors[2 * i + 1]);
    return Result.endResult(b);
  });
  const resultsVector = Response.createResultsVector(b, results);
  // Absent strings decode as empty: a success carries none.
  const errorCode = r.errorCode ? b.createString(r.errorCode) : 0;
  const error = r.error ? b.createString(r.error) : 0;
  const leader = r.leader ? b.createString(r.leader) : 0;
  const session = r.session ? b.createString(r.session) : 0;
  Response.startResponse(b);
  addSafeInteger(b, RESPONSE_INT64.id, r.id);
  if (errorCode) Response.addErrorCode(b, errorCode);
  if (error) Response.addError(b, error);
  if (leader) Response.addLeader(b, leader);
  addSafeInteger(b, RESPONSE_INT64.revision, r.revision);
  Response.addSucceeded(b, r.succeeded);
  Response.addDuplicate(b, r.duplicate);
  Response.addResults(b, resultsVector);
  if (session) Response.addSession(b, session);
  return Response.endResponse(b);
}

export function encodeResponse(r: ClientResponse): Uint8Array {
  const b = builder();
  const vectors: flatbuffers.Offset[] = [];
  for (const res of r.results) vectors.push(kvsVectorAtOnce(b, res.kvs), kvsVectorAtOnce(b, res.prevKvs));
  return finished(b, buildResponse(b, r, vectors));
}

/**
 * encodeResponse for a response that may carry many key-values, KVS_PER_TURN
 * per event-loop turn: other work runs in between. Its builder is its own
 * (the shared one is taken by every encoding in between). The same bytes;
 * a response of at most KVS_AT_ONCE key-values is encoded at once. Null
 * once more than `maxBytes` are encoded: given up rather than built whole.
 */
export async function encodeResponseInTurns(r: ClientResponse, maxBytes = Infinity): Promise<Uint8Array | null> {
  if (r.results.reduce((kvs, res) => kvs + res.kvs.length + res.prevKvs.length, 0) <= KVS_AT_ONCE) return encodeResponse(r);
  // Sized for the answer up front: a builder that grows copies all it
  // holds each time it doubles, the last time in one piece.
  let estimatedBytes = 1024;
  for (const res of r.results) for (const kvs of [res.kvs, res.prevKvs]) estimatedBytes += estimatedKvBytes(kvs);
  const b = new flatbuffers.Builder(Math.min(estimatedBytes, maxBytes + 1024, MAX_BUILDER_START_BYTES));
  const vectors: flatbuffers.Offset[] = [];
  for (const res of r.results) {
    for (const kvs of [res.kvs, res.prevKvs]) {
      const offsets = new Array<flatbuffers.Offset>(kvs.length);
      for (let from = 0; from < kvs.length; from += KVS_PER_TURN) {
        if (from > 0) await new Promise((resolve) => setImmediate(resolve));
        if (!encodeKvTables(b, kvs, from, Math.min(kvs.length, from + KVS_PER_TURN), offsets, maxBytes)) return null;
      }
      vectors.push(kvsVector(b, offsets));
    }
  }
  b.finish(buildResponse(b, r, vectors));
  // The builder is this answer's own: no copy out of it.
  return b.asUint8Array();
}

function decodeKvs(length: number, at: (i: number) => WireKeyValue | null, { vector, count }: Bounds): ClientKeyValue[] {
  const out: ClientKeyValue[] = [];
  const n = count(length, 'key-values');
  for (let i = 0; i < n; i++) {
    const kv = at(i);
    if (!kv) throw new ClientFrameError('missing key-value');
    out.push({
      key: vector(kv.keyArray(), 'key') ?? new Uint8Array(0),
      value: vector(kv.valueArray(), 'value') ?? new Uint8Array(0),
      createRevision: safe(kv, KEY_VALUE_INT64.createRevision, 'create_revision'),
      modRevision: safe(kv, KEY_VALUE_INT64.modRevision, 'mod_revision'),
      version: safe(kv, KEY_VALUE_INT64.version, 'version'),
    });
  }
  return out;
}

export function decodeResponse(bytes: Uint8Array): ClientResponse {
  return guarded('response', bytes, (bb, bounds) => {
    const r = Response.getRootAsResponse(bb);
    const results: ClientResult[] = [];
    const n = bounds.count(r.resultsLength(), 'results');
    for (let i = 0; i < n; i++) {
      const res = r.results(i);
      const type = res ? RESULT_TYPES[res.type()] : undefined;
      if (!res || !type) throw new ClientFrameError('bad result');
      results.push({
        type,
        deleted: safe(res, RESULT_INT64.deleted, 'deleted'),
        count: safe(res, RESULT_INT64.count, 'count'),
        more: res.more(),
        kvs: decodeKvs(res.kvsLength(), (j) => res.kvs(j), bounds),
        prevKvs: decodeKvs(res.prevKvsLength(), (j) => res.prevKvs(j), bounds),
      });
    }
    return {
      id: safe(r, RESPONSE_INT64.id, 'id'),
      errorCode: r.errorCode() ?? '',
      error: r.error() ?? '',
      leader: r.leader(),
      revision: safe(r, RESPONSE_INT64.revision, 'revision'),
      succeeded: r.succeeded(),
      duplicate: r.duplicate(),
      results,
      session: r.session() ?? '',
    };
  });
}
