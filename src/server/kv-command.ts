// The commands the key-value state machine replicates, and their binary
// encoding in log entries. Every write is a transaction (etcd's model): a put
// is a transaction with no comparisons and one operation.
//
// Encoding: u8 version (1), string clientId, varint sequence, then the
// transaction: varint count + comparisons, varint count + success operations,
// varint count + failure operations. Strings and byte strings are a varint
// length then the bytes; numbers are varints (at most 2^53 - 1).
//
// A client session is registered by an entry of one byte, 2 (a version 1
// decoder refuses it): its id is then the entry's log index, unique for the
// cluster's life, so a session the state machine forgot can never be
// registered again by a late copy of its registration.

import { types } from 'node:util';

/** Any realm's Uint8Array, Buffer included. */
const isUint8Array = types.isUint8Array;

/** A key or value: raw bytes. */
export type Bytes = Uint8Array;

export type CompareTarget = 'value' | 'version' | 'create' | 'mod';
export type CompareResult = 'equal' | 'notEqual' | 'greater' | 'less';

export interface Compare {
  key: Bytes;
  /** With `rangeEnd`, the comparison must hold for every key in [key, rangeEnd) (etcd 3.3+). */
  rangeEnd?: Bytes;
  target: CompareTarget;
  result: CompareResult;
  /** For `value`. */
  value?: Bytes;
  /** For `version`, `create` and `mod`. */
  number?: number;
}

export type Operation =
  | { type: 'put'; key: Bytes; value: Bytes; prevKv?: boolean }
  | { type: 'delete'; key: Bytes; rangeEnd?: Bytes; prevKv?: boolean }
  | { type: 'range'; key: Bytes; rangeEnd?: Bytes; limit?: number; countOnly?: boolean; keysOnly?: boolean }
  /** Cluster metadata, not a key: a member's peer address (empty to forget it), replicated so every node can reach it. */
  | { type: 'member'; key: Bytes; address: string };

export interface Txn {
  compare: Compare[];
  success: Operation[];
  failure: Operation[];
}

export interface KvCommand {
  /**
   * With `sequence`, makes a retried command apply at most once; '' for none.
   * A registered session's id (`sessionIdFor`), or any other string for a
   * session the state machine starts at its first write (clients of earlier
   * versions; weaker, see docs/server.md).
   */
  clientId: string;
  sequence: number;
  txn: Txn;
}

const VERSION = 1;
const SESSION_REGISTRATION_VERSION = 2;

/**
 * What the key-value state machine speaks: its commands, its snapshots and
 * the rules it applies them by. Named to every peer (UwsTransport's
 * `protocol`), so that members that could decide differently on the same log
 * never form a cluster: change it with any such change. 2: client sessions
 * registered through the log (0.2.0).
 */
export const KV_PROTOCOL = 'raftline-kv/2';

/**
 * What 0.2.0, the last build to name no protocol, speaks (builds before it
 * fail the peer token check).
 */
export const UNNAMED_KV_PROTOCOL = 'raftline-kv/2';

/** The log entry that registers a client session. */
export const SESSION_REGISTRATION: Uint8Array = Uint8Array.of(SESSION_REGISTRATION_VERSION);

export const isSessionRegistration = (bytes: Uint8Array): boolean => bytes.length === 1 && bytes[0] === SESSION_REGISTRATION_VERSION;

/** The id of the session registered by the entry at `index`. */
export const sessionIdFor = (index: number): string => `#${index}`;

/** Whether `id` has the form of a registered session's id: such a session is never started by a write. */
export const isRegisteredSessionId = (id: string): boolean => /^#[1-9][0-9]*$/.test(id);
const TARGETS: CompareTarget[] = ['value', 'version', 'create', 'mod'];
const RESULTS: CompareResult[] = ['equal', 'notEqual', 'greater', 'less'];
const OPS = ['put', 'delete', 'range', 'member'] as const;

export class CommandDecodeError extends Error {
  constructor(reason: string) {
    super(`undecodable key-value command: ${reason}`);
    this.name = 'CommandDecodeError';
  }
}

class Writer {
  private buf: Buffer;
  private at = 0;

  constructor(expectedBytes: number) {
    this.buf = Buffer.allocUnsafe(expectedBytes);
  }

  private room(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + bytes));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.at++] = v;
  }

  varint(v: number): void {
    this.room(8);
    while (v >= 0x80) {
      this.buf[this.at++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.at++] = v;
  }

  bytes(v: Uint8Array): void {
    this.varint(v.length);
    this.room(v.length);
    this.buf.set(v, this.at);
    this.at += v.length;
  }

  optionalBytes(v: Uint8Array | undefined): void {
    if (v === undefined) this.u8(0);
    else {
      this.u8(1);
      this.bytes(v);
    }
  }

  done(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}

/** Commands repeat their client's id: the last one decoded, kept for `Reader.string`. */
let lastString = { bytes: new Uint8Array(0), text: '' };

class Reader {
  private at = 0;
  constructor(private readonly buf: Uint8Array) {}

  u8(): number {
    if (this.at >= this.buf.length) throw new CommandDecodeError('cut short');
    return this.buf[this.at++];
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(value)) throw new CommandDecodeError('number out of range');
        return value;
      }
      scale *= 0x80;
    }
    throw new CommandDecodeError('varint too long');
  }

  /**
   * A plain Uint8Array view, not a Buffer: subarray on a Buffer goes through
   * its species constructor, a good part of the cost of decoding a put.
   */
  bytes(): Uint8Array {
    const length = this.varint();
    if (this.at + length > this.buf.length) throw new CommandDecodeError('cut short');
    const out = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.at, length);
    this.at += length;
    return out;
  }

  /** A string's UTF-8 bytes, decoded; a repeat of the last one decoded costs a comparison instead. */
  string(): string {
    const length = this.varint();
    if (this.at + length > this.buf.length) throw new CommandDecodeError('cut short');
    const start = this.at;
    this.at += length;
    if (length === lastString.bytes.length) {
      let same = true;
      for (let i = 0; i < length && same; i++) same = this.buf[start + i] === lastString.bytes[i];
      if (same) return lastString.text;
    }
    // A copy: the command's buffer may be a pooled one, reused later.
    const bytes = new Uint8Array(length);
    bytes.set(new Uint8Array(this.buf.buffer, this.buf.byteOffset + start, length));
    lastString = { bytes, text: Buffer.from(bytes.buffer, 0, length).toString() };
    return lastString.text;
  }

  optionalBytes(): Uint8Array | undefined {
    return this.u8() === 0 ? undefined : this.bytes();
  }

  end(): void {
    if (this.at !== this.buf.length) throw new CommandDecodeError(`${this.buf.length - this.at} trailing bytes`);
  }
}

function writeOp(w: Writer, op: Operation): void {
  w.u8(OPS.indexOf(op.type));
  w.bytes(op.key);
  switch (op.type) {
    case 'put':
      w.bytes(op.value);
      w.u8(op.prevKv ? 1 : 0);
      break;
    case 'delete':
      w.optionalBytes(op.rangeEnd);
      w.u8(op.prevKv ? 1 : 0);
      break;
    case 'range':
      w.optionalBytes(op.rangeEnd);
      w.varint(op.limit ?? 0);
      w.u8((op.countOnly ? 1 : 0) | (op.keysOnly ? 2 : 0));
      break;
    case 'member':
      w.bytes(Buffer.from(op.address));
      break;
  }
}

function readOp(r: Reader): Operation {
  const type = OPS[r.u8()];
  if (type === undefined) throw new CommandDecodeError('unknown operation');
  const key = r.bytes();
  switch (type) {
    case 'put':
      return { type, key, value: r.bytes(), prevKv: r.u8() === 1 };
    case 'delete':
      return { type, key, rangeEnd: r.optionalBytes(), prevKv: r.u8() === 1 };
    case 'range': {
      const rangeEnd = r.optionalBytes();
      const limit = r.varint();
      const flags = r.u8();
      return { type, key, rangeEnd, limit: limit || undefined, countOnly: (flags & 1) !== 0, keysOnly: (flags & 2) !== 0 };
    }
    case 'member':
      return { type, key, address: r.string() };
  }
}

/** Room for the keys and values of `ops` and some; the writer grows past it if need be. */
function expectedBytes(ops: Operation[]): number {
  let bytes = 64;
  for (const op of ops) bytes += 16 + op.key.length + (op.type === 'put' ? op.value.length : 0);
  return bytes;
}

/**
 * Throws a TypeError naming the first field of `txn` an encoded command
 * cannot hold as given. A JavaScript caller passing a string for a key
 * would otherwise have it written as that many zero bytes, and an unknown
 * comparison name as one every member refuses.
 */
function checkTxn(txn: Txn): void {
  if (!Array.isArray(txn.compare) || !Array.isArray(txn.success) || !Array.isArray(txn.failure)) {
    throw new TypeError('a transaction needs compare, success and failure arrays');
  }
  for (let i = 0; i < txn.compare.length; i++) {
    const cmp = txn.compare[i];
    if (!isUint8Array(cmp.key)) refuse('compare', i, 'key', BYTES, cmp.key);
    if (cmp.rangeEnd !== undefined && !isUint8Array(cmp.rangeEnd)) refuse('compare', i, 'rangeEnd', BYTES, cmp.rangeEnd);
    if (!TARGETS.includes(cmp.target)) refuse('compare', i, 'target', `one of ${TARGETS.join(', ')}`, cmp.target);
    if (!RESULTS.includes(cmp.result)) refuse('compare', i, 'result', `one of ${RESULTS.join(', ')}`, cmp.result);
    if (cmp.target === 'value' && cmp.value !== undefined && !isUint8Array(cmp.value)) refuse('compare', i, 'value', BYTES, cmp.value);
    if (cmp.target !== 'value' && !isCount(cmp.number)) refuse('compare', i, 'number', 'a non-negative integer', cmp.number);
  }
  checkOps(txn.success, 'success');
  checkOps(txn.failure, 'failure');
}

function checkOps(ops: Operation[], list: string): void {
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    if (!isUint8Array(op.key)) refuse(list, i, 'key', BYTES, op.key);
    if ((op.type === 'delete' || op.type === 'range') && op.rangeEnd !== undefined && !isUint8Array(op.rangeEnd)) refuse(list, i, 'rangeEnd', BYTES, op.rangeEnd);
    switch (op.type) {
      case 'put':
        if (!isUint8Array(op.value)) refuse(list, i, 'value', BYTES, op.value);
        break;
      case 'range':
        // A limit the varint cannot hold made an entry every member failed to decode (-1), or never ended (Infinity).
        if (!isCount(op.limit)) refuse(list, i, 'limit', 'a non-negative integer', op.limit);
        break;
      case 'delete':
      case 'member':
        break;
      default:
        refuse(list, i, 'type', `one of ${OPS.join(', ')}`, (op as { type: unknown }).type);
    }
  }
}

const BYTES = 'a Uint8Array (Buffer.from(text) for text)';

function isCount(n: unknown): boolean {
  return n === undefined || (Number.isSafeInteger(n) && (n as number) >= 0);
}

/** Field names are spelt out only here, for a refusal: the checks run for every write. */
function refuse(list: string, i: number, field: string, what: string, value: unknown): never {
  throw new TypeError(`${list}[${i}].${field} must be ${what}, not ${value === null ? 'null' : typeof value === 'string' ? JSON.stringify(value) : typeof value}`);
}

export function encodeCommand(c: KvCommand): Buffer {
  checkTxn(c.txn);
  const w = new Writer(expectedBytes(c.txn.success) + expectedBytes(c.txn.failure) + c.clientId.length * 3);
  w.u8(VERSION);
  w.bytes(Buffer.from(c.clientId));
  w.varint(c.sequence);
  w.varint(c.txn.compare.length);
  for (const cmp of c.txn.compare) {
    w.bytes(cmp.key);
    w.optionalBytes(cmp.rangeEnd);
    w.u8(TARGETS.indexOf(cmp.target));
    w.u8(RESULTS.indexOf(cmp.result));
    if (cmp.target === 'value') w.bytes(cmp.value ?? new Uint8Array(0));
    else w.varint(cmp.number ?? 0);
  }
  for (const ops of [c.txn.success, c.txn.failure]) {
    w.varint(ops.length);
    for (const op of ops) writeOp(w, op);
  }
  return w.done();
}

export function decodeCommand(bytes: Uint8Array): KvCommand {
  const r = new Reader(bytes);
  const version = r.u8();
  if (version !== VERSION) throw new CommandDecodeError(`unknown version ${version}`);
  const clientId = r.string();
  const sequence = r.varint();
  const compare: Compare[] = [];
  for (let n = r.varint(); n > 0; n--) {
    const key = r.bytes();
    const rangeEnd = r.optionalBytes();
    const target = TARGETS[r.u8()];
    const result = RESULTS[r.u8()];
    if (target === undefined || result === undefined) throw new CommandDecodeError('unknown comparison');
    if (target === 'value') compare.push({ key, rangeEnd, target, result, value: r.bytes() });
    else compare.push({ key, rangeEnd, target, result, number: r.varint() });
  }
  const lists: Operation[][] = [[], []];
  for (const list of lists) for (let n = r.varint(); n > 0; n--) list.push(readOp(r));
  r.end();
  return { clientId, sequence, txn: { compare, success: lists[0], failure: lists[1] } };
}
