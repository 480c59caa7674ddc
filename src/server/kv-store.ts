// The replicated key-value state machine (like etcd's mvcc store without
// history): keys and values are bytes; a global revision counts committed
// transactions that changed something; each key carries its create and mod
// revision and its version, as etcd defines them. Retried commands with the
// same client id and sequence apply at most once.
import type { Configuration } from '../core/quorum.js';
import type { ApplyIterator, RaftError, SnapshotReader, SnapshotWrite, SnapshotWriter, StateMachine } from '../node/index.js';
import { decodeCommand, isRegisteredSessionId, isSessionRegistration, sessionIdFor, type Bytes, type Compare, type KvCommand, type Operation } from './kv-command.js';
import { SortedKeys } from './sorted-keys.js';

export interface KeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

/**
 * A stored version of a key. Key and value are kept as binary (latin1)
 * strings: one heap object each, where a Buffer is an object plus a share of
 * an 8 KiB pool slab that stays alive as long as any value cut from it does.
 * Buffers are made only for whoever reads them. Never modified once stored.
 */
class StoredKv implements KeyValue {
  constructor(
    readonly keyText: string,
    readonly valueText: string,
    readonly createRevision: number,
    readonly modRevision: number,
    readonly version: number,
  ) {}

  get key(): Buffer {
    return Buffer.from(this.keyText, 'latin1');
  }

  get value(): Buffer {
    return Buffer.from(this.valueText, 'latin1');
  }
}

export type OperationResult =
  | { type: 'put'; prevKv?: KeyValue }
  | { type: 'delete'; deleted: number; prevKvs?: KeyValue[] }
  | { type: 'range'; kvs: KeyValue[]; count: number; more: boolean }
  | { type: 'member' };

export interface TxnResult {
  /** The store's revision after the command. */
  revision: number;
  succeeded: boolean;
  responses: OperationResult[];
  /** Set when this answers a retry of a command already applied: only revision and succeeded are known. */
  duplicate?: boolean;
  /**
   * Set when the command was refused: its sequence is older than every one
   * the client's session still remembers (staleSequence), or the session is
   * not known (unknownSession): registered and forgotten since, or, for a
   * session started by its first write, the sequence is too high to be its start.
   */
  error?: 'staleSequence' | 'unknownSession';
  /** The id of the session this entry registered. */
  session?: string;
  /** Why the entry was not applied: it could not be decoded (proposed by a newer member than the leader, say). */
  undecodable?: string;
  /**
   * Set when the key-values the write's results would list (its ranges and
   * previous key-values) come to more than maxResultBytes: the write
   * applied, and its results are left out (ranges empty, no previous
   * key-values), since no answer could carry them.
   */
  resultsDropped?: true;
}

/**
 * What a client's writes did, by sequence number: the last SESSION_WINDOW
 * applied (in any order, so a pipelining client may retry any of them), and a
 * floor at or below which every sequence counts as settled. An outcome is the
 * revision after the write, negated when its comparisons failed (revisions
 * start at 1): a number, not an object per write.
 */
interface Session {
  floor: number;
  applied: Map<number, number>;
}

const outcome = (revision: number, succeeded: boolean): number => (succeeded ? revision : -revision);

/** Clients remembered for deduplication; the least recently active is forgotten beyond this. */
export const MAX_SESSIONS = 100_000;
/** Applied sequences remembered per client: a client keeps fewer writes than this outstanding. */
export const SESSION_WINDOW = 1024;
/** The highest sequence an unregistered session may start at (the span of sequences in flight of raftline/client before 0.2). */
export const NEW_SESSION_MAX_SEQUENCE = 512;
const SNAPSHOT_CHUNK_BYTES = 1 << 20;
/** Per key in a snapshot: key and value lengths (u32 each), create and mod revision and version (f64 each). */
const KV_META_BYTES = 32;
/** Per session in a snapshot: id length and write count (u32 each), floor (f64); then per write its sequence and outcome (f64 each). */
const SESSION_META_BYTES = 16;
const SESSION_WRITE_BYTES = 16;

// Buffer's own latin1 decoder, which takes any Uint8Array: Buffer.from(view)
// first would make a Buffer object per key and value only to read it.
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }).latin1Slice;

/** Bytes as a binary string: the order of such strings is the byte order of the keys. */
/** Whether `cmp` holds for one key, `kv` (undefined: the key is missing). */
function holdsFor(cmp: Compare, kv: StoredKv | undefined): boolean {
  let order: number;
  if (cmp.target === 'value') {
    // etcd: a value comparison on a missing key fails.
    if (!kv) return false;
    const expected = binaryString(cmp.value ?? new Uint8Array(0));
    order = kv.valueText < expected ? -1 : kv.valueText > expected ? 1 : 0;
  } else {
    const actual = !kv ? 0 : cmp.target === 'version' ? kv.version : cmp.target === 'create' ? kv.createRevision : kv.modRevision;
    order = Math.sign(actual - (cmp.number ?? 0));
  }
  switch (cmp.result) {
    case 'equal':
      return order === 0;
    case 'notEqual':
      return order !== 0;
    case 'greater':
      return order > 0;
    case 'less':
      return order < 0;
  }
}

/** What `kv` counts for against maxResultBytes. */
function answerBytes(kv: KeyValue): number {
  return (kv instanceof StoredKv ? kv.keyText.length + kv.valueText.length : kv.key.byteLength + kv.value.byteLength) + KV_ANSWER_OVERHEAD_BYTES;
}

/** About how many bytes an answer listing `results` takes (what they count for against maxResultBytes). */
export function resultsAnswerBytes(results: readonly OperationResult[]): number {
  let bytes = 0;
  for (const r of results) {
    const kvs = r.type === 'range' ? r.kvs : r.type === 'delete' ? r.prevKvs : r.type === 'put' && r.prevKv ? [r.prevKv] : undefined;
    if (kvs) for (const kv of kvs) bytes += answerBytes(kv);
  }
  return bytes;
}

/** `result` listing no key-values. */
function withoutKvs(result: OperationResult): OperationResult {
  if (result.type === 'range') return UNREAD_RANGE;
  if (result.type === 'delete') return { type: 'delete', deleted: result.deleted };
  return result.type === 'put' ? PUT_RESULT : result;
}

function binaryString(bytes: Bytes): string {
  return latin1Slice.call(bytes, 0, bytes.byteLength);
}

const ALL = '\u0000';
/** The result of every put without prevKv: shared, as results are only read. */
const PUT_RESULT: OperationResult = Object.freeze({ type: 'put' });
/** A range in a command nobody waits for: not read (a transaction's range over many keys cost each follower 140 ms at 300,000). */
const UNREAD_RANGE: OperationResult = Object.freeze({ type: 'range', kvs: [], count: 0, more: false });

/**
 * Less than any answer spends on one key-value besides its key and value
 * (revisions, field names, framing), through any protocol: a write's
 * results whose keys and values, with this much each, pass maxResultBytes
 * would not fit in an answer.
 */
const KV_ANSWER_OVERHEAD_BYTES = 32;

export interface KvStoreOptions {
  /**
   * The most the key-values in one write's results may come to (keys,
   * values and KV_ANSWER_OVERHEAD_BYTES each), for the answers' limit
   * (--max-unread-answer-bytes). Past it the results are dropped as they
   * are built: a transaction of 1,024 ranges over every key would otherwise
   * hold the proposer's event loop for minutes and take gigabytes of
   * memory, for an answer refused in the end.
   */
  maxResultBytes?: number;
}

/**
 * The JSON header of a snapshot: state kept beside the keys. The sessions
 * follow it as binary records (SESSION_META_BYTES each, then the client id and
 * its remembered writes); snapshots written before that hold them in the
 * header itself (`sessions` an array).
 */
interface SnapshotHeader {
  revision: number;
  members: [string, string][];
  /** The number of session records after the header. */
  sessionCount?: number;
  /** Client id, floor, and [sequence, revision, succeeded] of each remembered write (older snapshots). */
  sessions?: [string, number, [number, number, boolean][]][];
}

export class KvStore implements StateMachine {
  private readonly maxResultBytes: number;
  /** What the results of the command being applied may still list (see KvStoreOptions.maxResultBytes); below 0 they are dropped. */
  private resultBytesLeft = 0;
  private data = new Map<string, StoredKv>();
  private sessions = new Map<string, Session>();
  /** Peer addresses of members, by node id (cluster metadata replicated with the data). */
  private readonly memberAddresses = new Map<string, string>();
  /**
   * The keys in order, built by the first range that needs them and kept up
   * to date from then on: a store that serves no range pays nothing for order.
   */
  private order: SortedKeys | null = null;
  /** The session last in `sessions` (the most recently active), if known. */
  private lastActiveSession: string | undefined;
  private revisionValue = 1;
  /** Hooks the server sets for logging. */
  onError?: (err: RaftError) => void;
  onConfigurationCommitted?: (conf: Configuration) => void;
  /** Called when a member's address is set or forgotten (and for each one after a snapshot load). */
  onMemberAddress?: (id: string, address: string | null) => void;

  constructor(opts: KvStoreOptions = {}) {
    this.maxResultBytes = opts.maxResultBytes ?? Infinity;
  }

  /** Member peer addresses recorded through the log. */
  get addresses(): Record<string, string> {
    return Object.fromEntries(this.memberAddresses);
  }

  /** The revision of the last change (etcd starts an empty store at 1). */
  get revision(): number {
    return this.revisionValue;
  }

  get size(): number {
    return this.data.size;
  }

  onApply(batch: ApplyIterator): void {
    for (const cmd of batch) {
      if (isSessionRegistration(cmd.data)) {
        const id = sessionIdFor(cmd.index);
        this.markActive(id, { floor: 0, applied: new Map() });
        cmd.respond({ revision: this.revisionValue, succeeded: true, responses: [], session: id } satisfies TxnResult);
        continue;
      }
      let command: KvCommand;
      try {
        command = decodeCommand(cmd.data);
      } catch (err) {
        // The server validates before proposing; a damaged command must not
        // stop the group, and every replica refuses it the same way.
        cmd.respond({ revision: this.revisionValue, succeeded: false, responses: [], undecodable: (err as Error).message } satisfies TxnResult);
        continue;
      }
      cmd.respond(this.applyCommand(command, cmd.awaited));
    }
  }

  /** A read at the current state (after a read barrier for linearizable reads). */
  range(op: Extract<Operation, { type: 'range' }>): Extract<OperationResult, { type: 'range' }> {
    return this.rangeOf(op, Infinity)!;
  }

  /** range(op), or null when it would list more than `maxKvs` key-values (it lists none then). */
  private rangeOf(op: Extract<Operation, { type: 'range' }>, maxKvs: number): Extract<OperationResult, { type: 'range' }> | null {
    const limit = op.countOnly ? 0 : op.limit && op.limit > 0 ? op.limit : Infinity;
    const span = this.span(op.key, op.rangeEnd);
    const count = span ? this.ordered().count(span.from, span.to) : Number(this.data.has(binaryString(op.key)));
    if (Math.min(count, limit) > maxKvs) return null;
    const keys = this.keysIn(op.key, op.rangeEnd, limit);
    const kvs = keys.map((k): KeyValue => {
      const kv = this.data.get(k)!;
      return op.keysOnly ? { key: kv.key, value: Buffer.alloc(0), createRevision: kv.createRevision, modRevision: kv.modRevision, version: kv.version } : kv;
    });
    return { type: 'range', kvs, count, more: count > kvs.length && !op.countOnly };
  }

  get(key: Bytes): KeyValue | undefined {
    return this.data.get(binaryString(key));
  }

  /**
   * Snapshot capture: the header and the sessions (state that changes in
   * place) are serialized now, the sessions straight into one buffer: as JSON
   * they took 1.5 s of the apply chain at 2,000 busy clients and outgrew V8's
   * longest string at 23,000. Of the keys only the KeyValue objects are
   * collected, which is safe because none is ever modified once in `data` (a
   * put stores a new one, a delete removes it). The returned writer streams
   * exactly that state while later commands apply.
   */
  onSnapshotCapture(): SnapshotWrite {
    const json = Buffer.from(JSON.stringify({ revision: this.revisionValue, members: [...this.memberAddresses], sessionCount: this.sessions.size } satisfies SnapshotHeader));
    const header = Buffer.allocUnsafe(4 + json.length);
    header.writeUInt32LE(json.length, 0);
    json.copy(header, 4);
    const sessions = this.encodeSessions();
    const values = [...this.data.values()];
    return async (writer: SnapshotWriter) => {
      await writer.write(header);
      if (sessions.length > 0) await writer.write(sessions);
      // Keys are encoded straight into large chunks: a buffer per key (and a
      // concat per chunk) made snapshots a tenth of a busy follower's CPU.
      let chunk = Buffer.allocUnsafe(SNAPSHOT_CHUNK_BYTES);
      let view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      let at = 0;
      for (const kv of values) {
        const keyBytes = kv.keyText.length;
        const valueBytes = kv.valueText.length;
        const bytes = KV_META_BYTES + keyBytes + valueBytes;
        if (at + bytes > chunk.length) {
          if (at > 0) await writer.write(chunk.subarray(0, at));
          chunk = Buffer.allocUnsafe(Math.max(SNAPSHOT_CHUNK_BYTES, bytes));
          view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          at = 0;
        }
        view.setUint32(at, keyBytes, true);
        view.setUint32(at + 4, valueBytes, true);
        view.setFloat64(at + 8, kv.createRevision, true);
        view.setFloat64(at + 16, kv.modRevision, true);
        view.setFloat64(at + 24, kv.version, true);
        chunk.write(kv.keyText, at + KV_META_BYTES, 'latin1');
        chunk.write(kv.valueText, at + KV_META_BYTES + keyBytes, 'latin1');
        at += bytes;
      }
      if (at > 0) await writer.write(chunk.subarray(0, at));
    };
  }

  /**
   * Reads the snapshot into new maps and swaps them in at the end: requests
   * served between its chunks (stale reads) see the state before it, never a
   * half-loaded one, and a damaged snapshot leaves the store as it was.
   */
  async onSnapshotLoad(reader: SnapshotReader): Promise<void> {
    const data = new Map<string, StoredKv>();
    const sessions = new Map<string, Session>();
    let header: SnapshotHeader | undefined;
    let sessionsLeft = 0;
    let pending = Buffer.alloc(0);
    for await (const chunk of reader.chunks()) {
      pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk]);
      let at = 0;
      if (!header) {
        if (pending.length < 4 || pending.length < 4 + pending.readUInt32LE(0)) continue;
        const length = pending.readUInt32LE(0);
        header = JSON.parse(pending.toString('utf8', 4, 4 + length)) as SnapshotHeader;
        for (const [id, floor, applied] of header.sessions ?? []) {
          sessions.set(id, { floor, applied: new Map(applied.map(([seq, revision, succeeded]) => [seq, outcome(revision, succeeded)])) });
        }
        sessionsLeft = header.sessionCount ?? 0;
        at = 4 + length;
      }
      while (sessionsLeft > 0 && pending.length - at >= SESSION_META_BYTES) {
        const idBytes = pending.readUInt32LE(at);
        const writes = pending.readUInt32LE(at + 4);
        const idEnd = at + SESSION_META_BYTES + idBytes;
        const end = idEnd + writes * SESSION_WRITE_BYTES;
        if (end > pending.length) break;
        const applied = new Map<number, number>();
        for (let w = idEnd; w < end; w += SESSION_WRITE_BYTES) applied.set(pending.readDoubleLE(w), pending.readDoubleLE(w + 8));
        sessions.set(pending.toString('utf8', at + SESSION_META_BYTES, idEnd), { floor: pending.readDoubleLE(at + 8), applied });
        sessionsLeft--;
        at = end;
      }
      while (sessionsLeft === 0 && pending.length - at >= KV_META_BYTES) {
        const keyBytes = pending.readUInt32LE(at);
        const valueBytes = pending.readUInt32LE(at + 4);
        const end = at + KV_META_BYTES + keyBytes + valueBytes;
        if (end > pending.length) break;
        const keyText = pending.toString('latin1', at + KV_META_BYTES, at + KV_META_BYTES + keyBytes);
        const valueText = pending.toString('latin1', at + KV_META_BYTES + keyBytes, end);
        data.set(keyText, new StoredKv(keyText, valueText, pending.readDoubleLE(at + 8), pending.readDoubleLE(at + 16), pending.readDoubleLE(at + 24)));
        at = end;
      }
      pending = pending.subarray(at);
    }
    if (!header || sessionsLeft > 0 || pending.length > 0) throw new Error('key-value snapshot is truncated');
    this.data = data;
    this.sessions = sessions;
    this.lastActiveSession = undefined;
    this.order = null;
    this.revisionValue = header.revision;
    for (const id of this.memberAddresses.keys()) this.onMemberAddress?.(id, null);
    this.memberAddresses.clear();
    for (const [id, address] of header.members) {
      this.memberAddresses.set(id, address);
      this.onMemberAddress?.(id, address);
    }
  }

  // --------------------------------------------------------------- internals

  /** The sessions as snapshot records, in their order (least recently active first). */
  private encodeSessions(): Buffer {
    let bytes = 0;
    for (const [id, s] of this.sessions) bytes += SESSION_META_BYTES + Buffer.byteLength(id) + s.applied.size * SESSION_WRITE_BYTES;
    const out = Buffer.allocUnsafe(bytes);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    let at = 0;
    for (const [id, s] of this.sessions) {
      const idBytes = out.write(id, at + SESSION_META_BYTES, 'utf8');
      view.setUint32(at, idBytes, true);
      view.setUint32(at + 4, s.applied.size, true);
      view.setFloat64(at + 8, s.floor, true);
      at += SESSION_META_BYTES + idBytes;
      for (const [sequence, result] of s.applied) {
        view.setFloat64(at, sequence, true);
        view.setFloat64(at + 8, result, true);
        at += SESSION_WRITE_BYTES;
      }
    }
    return out;
  }

  /** Applies `c`; without `awaited` (nobody reads the result) its ranges and previous key-values are left out of it. */
  private applyCommand(c: KvCommand, awaited: boolean): TxnResult {
    const session = c.clientId ? this.sessions.get(c.clientId) : undefined;
    if (session) {
      const earlier = session.applied.get(c.sequence);
      if (earlier !== undefined) return { revision: Math.abs(earlier), succeeded: earlier > 0, responses: [], duplicate: true };
      if (c.sequence <= session.floor) return { revision: this.revisionValue, succeeded: false, responses: [], error: 'staleSequence' };
    } else if (c.clientId && (c.sequence > NEW_SESSION_MAX_SEQUENCE || isRegisteredSessionId(c.clientId))) {
      // A registered session not known was forgotten (MAX_SESSIONS), and
      // this may be a retry of a write that applied then. So may a write of
      // an unregistered session past the start of sequences: its clients
      // keep their writes in flight within 512 sequences.
      return { revision: this.revisionValue, succeeded: false, responses: [], error: 'unknownSession' };
    }
    const succeeded = c.txn.compare.every((cmp) => this.holds(cmp));
    const ops = succeeded ? c.txn.success : c.txn.failure;
    const next = this.revisionValue + 1;
    let changed = false;
    const responses: OperationResult[] = [];
    this.resultBytesLeft = awaited ? this.maxResultBytes : -1;
    for (const op of ops) {
      switch (op.type) {
        case 'put': {
          const k = binaryString(op.key);
          const prev = this.data.get(k);
          if (!prev) this.order?.add(k);
          this.data.set(k, new StoredKv(k, binaryString(op.value), prev ? prev.createRevision : next, next, prev ? prev.version + 1 : 1));
          changed = true;
          responses.push(op.prevKv && prev && this.mayList([prev]) ? { type: 'put', prevKv: prev } : PUT_RESULT);
          break;
        }
        case 'delete': {
          const keys = this.removeKeys(op.key, op.rangeEnd);
          const prevKvs = op.prevKv && keys.length <= this.kvsLeft() ? keys.map((k) => this.data.get(k)!) : undefined;
          if (op.prevKv && !(prevKvs && this.mayList(prevKvs))) this.resultBytesLeft = -1;
          for (const k of keys) this.data.delete(k);
          if (keys.length > 0) changed = true;
          responses.push({ type: 'delete', deleted: keys.length, ...(prevKvs ? { prevKvs } : {}) });
          break;
        }
        case 'range': {
          // Not even counted once dropped: on a follower that would build the key order for nothing.
          const range = this.resultBytesLeft < 0 ? null : this.rangeOf(op, this.kvsLeft());
          if (range && this.mayList(range.kvs)) responses.push(range);
          else {
            this.resultBytesLeft = -1;
            responses.push(UNREAD_RANGE);
          }
          break;
        }
        case 'member': {
          const id = Buffer.from(op.key).toString();
          if (op.address) this.memberAddresses.set(id, op.address);
          else this.memberAddresses.delete(id);
          this.onMemberAddress?.(id, op.address || null);
          responses.push({ type: 'member' });
          break;
        }
      }
    }
    if (changed) this.revisionValue = next;
    if (c.clientId) this.remember(c.clientId, session, c.sequence, succeeded);
    if (awaited && this.resultBytesLeft < 0) return { revision: this.revisionValue, succeeded, responses: responses.map(withoutKvs), resultsDropped: true };
    return { revision: this.revisionValue, succeeded, responses };
  }

  /** Whether the results may also list `kvs` (counted against them if so). */
  private mayList(kvs: readonly KeyValue[]): boolean {
    if (this.resultBytesLeft < 0) return false;
    for (const kv of kvs) this.resultBytesLeft -= answerBytes(kv);
    return this.resultBytesLeft >= 0;
  }

  /** The most key-values the results may still list, before their sizes are known. */
  private kvsLeft(): number {
    return this.resultBytesLeft < 0 ? -1 : this.resultBytesLeft / KV_ANSWER_OVERHEAD_BYTES;
  }

  private remember(clientId: string, existing: Session | undefined, sequence: number, succeeded: boolean): void {
    const session = existing ?? { floor: 0, applied: new Map() };
    session.applied.set(sequence, outcome(this.revisionValue, succeeded));
    if (session.applied.size > SESSION_WINDOW) {
      // Sequences arrive nearly in order, so the oldest entry is (about) the smallest.
      const oldest = session.applied.keys().next().value!;
      session.applied.delete(oldest);
      session.floor = Math.max(session.floor, oldest);
    }
    this.markActive(clientId, session);
  }

  /** Makes `session` the most recently active, forgetting the least recently active beyond MAX_SESSIONS. */
  private markActive(clientId: string, session: Session): void {
    // Most recently active last, so the least recently active is evicted first.
    // Moving a session that is already last would cost two map operations per write.
    if (clientId !== this.lastActiveSession) {
      this.sessions.delete(clientId);
      this.sessions.set(clientId, session);
      this.lastActiveSession = clientId;
    }
    if (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
  }

  private holds(cmp: Compare): boolean {
    const keys = cmp.rangeEnd ? this.keysIn(cmp.key, cmp.rangeEnd) : [binaryString(cmp.key)];
    // etcd: a range holding no key compares as one missing key.
    if (keys.length === 0) return holdsFor(cmp, undefined);
    return keys.every((k) => holdsFor(cmp, this.data.get(k)));
  }

  /** etcd's range as [from, to) (`to` null: from `from` on, when rangeEnd is "\0"), or null for exactly `key` (no rangeEnd). */
  private span(key: Bytes, rangeEnd: Bytes | undefined): { from: string; to: string | null } | null {
    if (!rangeEnd || rangeEnd.length === 0) return null;
    const to = binaryString(rangeEnd);
    return { from: binaryString(key), to: to === ALL ? null : to };
  }

  private ordered(): SortedKeys {
    if (this.order === null) {
      this.order = new SortedKeys();
      this.order.reset(this.data.keys());
    }
    return this.order;
  }

  /** Takes the keys in etcd's range out of the key order and returns them, in order (the caller deletes their values). */
  private removeKeys(key: Bytes, rangeEnd: Bytes | undefined): string[] {
    const span = this.span(key, rangeEnd);
    if (span) return this.ordered().removeRange(span.from, span.to);
    const k = binaryString(key);
    if (!this.data.has(k)) return [];
    this.order?.remove(k);
    return [k];
  }

  /** The first `limit` keys in etcd's range, in order. */
  private keysIn(key: Bytes, rangeEnd: Bytes | undefined, limit = Infinity): string[] {
    const span = this.span(key, rangeEnd);
    if (span) return this.ordered().keys(span.from, span.to, limit);
    const k = binaryString(key);
    return limit > 0 && this.data.has(k) ? [k] : [];
  }
}
