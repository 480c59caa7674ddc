// raftline/client: a TypeScript client for raftline servers over the binary
// WebSocket protocol (schema/client.fbs). It pipelines requests on one
// connection, prefers the leader (saving the followers' forwarding hop),
// reconnects to another endpoint when a connection fails, and retries
// safely: every write carries the id of a session the cluster registered for
// this client and a sequence number, and the server's state machine applies a
// given (session, sequence) at most once.
import WebSocket from 'ws';
import { encodeCommand, SESSION_REGISTRATION, type Operation, type Txn } from '../server/kv-command.js';
import {
  decodeResponse,
  encodeRequest,
  type ClientKeyValue,
  type ClientRead,
  type ClientResponse,
  type ClientResult,
  type ReadConsistency,
} from '../transport/client-codec.js';
import { LENGTH_PREFIX_BYTES, packFrames, unpackFrame } from '../transport/frame.js';
import { zeroMask } from '../transport/ws-mask.js';

export type { ClientKeyValue as KeyValue, ClientResult as OperationResult, ReadConsistency } from '../transport/client-codec.js';
export type { Compare, Operation, Txn } from '../server/kv-command.js';

export interface ClientOptions {
  /** Servers' client URLs, e.g. `http://127.0.0.1:7201`. */
  endpoints: string[];
  /**
   * A request that has not succeeded this long after the call (waiting for
   * a write slot included) rejects with RaftlineClientError('timeout'). Default 30000.
   */
  requestTimeoutMs?: number;
  /** The servers' client token (`raftline serve --client-token-file`), sent as `Authorization: Bearer <token>`. */
  token?: string;
}

/** A request the cluster refused or could not complete; `code` is the server's error code. */
export class RaftlineClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** The servers' own code, where `code` generalizes it (`sequence_too_old` and `session_expired` are `outcome_unknown`). */
    readonly serverCode: string = code,
  ) {
    super(message);
    this.name = 'RaftlineClientError';
  }
}

/**
 * A write refused as session_expired that went out once: that refusal was its
 * one chance to apply, so it never did, and it may go again under a new session.
 */
class NeverAppliedError extends RaftlineClientError {}

/** A client session: the id the cluster registered it under (it deduplicates its writes by it), and its sequences. */
interface Session {
  readonly id: string;
  sequence: number;
  /** Sequences sent and not yet settled, in increasing order (a Set keeps insertion order). */
  readonly inFlight: Set<number>;
}

export interface TxnResponse {
  revision: number;
  succeeded: boolean;
  results: ClientResult[];
  /** This answer is for a retry of a write the cluster had already applied: results are not repeated. */
  duplicate: boolean;
}

/** Errors after which the same request may simply be sent again (writes keep their sequence). */
const RETRYABLE = new Set(['no_leader', 'timeout', 'busy', 'shutting_down', 'outcome_unknown', 'storage_unavailable']);
/**
 * The servers remember a client's last 1024 applied sequences: the sequences
 * in flight span at most half of that, so a retry is always recognized,
 * however long one write is held up while later ones complete.
 */
const MAX_SEQUENCE_SPAN = 512;
/** Retried requests look for a new leader at most this often (each lookup asks every endpoint). */
const LEADER_LOOKUP_INTERVAL_MS = 250;
/** A connection with requests waiting and nothing heard for this long is pinged... */
const PING_AFTER_QUIET_MS = 1000;
/** ...and given up for another endpoint after this long (a frozen or unreachable server). */
const DEAD_AFTER_QUIET_MS = 4000;
/** A connection left for the leader's is kept this long at most for its answers: a server's default applyTimeoutMs, and some. */
const RETIRED_CONNECTION_MAX_MS = 12_000;
/** A retried request waits from RETRY_INITIAL_MS, doubling up to RETRY_MAX_MS (with jitter), so an overloaded cluster is not asked ever faster. */
const RETRY_INITIAL_MS = 50;
const RETRY_MAX_MS = 1000;
/** The request size every server takes (`limits.maxRequestBytes` of /status is never below it), until /status says more. */
const MIN_SERVER_REQUEST_BYTES = 2 << 20;
/**
 * The largest answer frame taken. The servers disconnect a client with more
 * than 256 MiB of answers unread; ws's default of 100 MiB would refuse a
 * large range's answer, and the range would be asked again on every reconnect.
 */
const MAX_ANSWER_FRAME_BYTES = 512 << 20;
/**
 * A request in flight on this many connections in a row that ended without
 * answering it fails: one the server cannot take, or whose answer this
 * client cannot, would otherwise be sent again on every new connection until
 * its deadline, taking the other requests on those connections down with it.
 */
const MAX_CONNECTIONS_LOST = 3;

interface Pending {
  frame: Uint8Array;
  isWrite: boolean;
  deadlineMs: number;
  resolve: (r: ClientResponse) => void;
  reject: (err: Error) => void;
  /** The connection it was last given to; while that one is open, its answer is awaited there and it goes nowhere else. */
  sentOn: WebSocket | null;
  /** Set while it waits to be retried after an error answer. */
  retryTimer: NodeJS.Timeout | undefined;
  retries: number;
  /** Times it was handed to a connection. */
  sends: number;
  /** Connections that ended under it since it was last answered (not counting those this client left). */
  connectionsLost: number;
}

interface QueuedWrite {
  txn: Txn;
  deadlineMs: number;
  resubmitted: boolean;
  resolve: (r: TxnResponse) => void;
  reject: (err: Error) => void;
}

const CONSISTENCIES: readonly ReadConsistency[] = ['linearizable', 'lease', 'stale'];

const bytes = (v: string | Uint8Array): Uint8Array => (typeof v === 'string' ? Buffer.from(v) : v);

/**
 * ```ts
 * const client = await RaftlineClient.connect({ endpoints: ['http://127.0.0.1:7201', 'http://127.0.0.1:7202'] });
 * const { revision } = await client.put('greeting', 'hello');
 * const kv = await client.get('greeting');       // linearizable by default
 * await client.close();
 * ```
 */
export class RaftlineClient {
  /** None before the first write, and after the cluster forgot the last one; the next write registers one. */
  private session: Session | null = null;
  private registering = false;
  private readonly endpoints: string[];
  private readonly requestTimeoutMs: number;
  private readonly headers: Record<string, string>;
  private readonly pending = new Map<number, Pending>();
  /** Writes waiting until the sequences in flight leave room (MAX_SEQUENCE_SPAN). */
  private readonly writeQueue: QueuedWrite[] = [];
  /** When the current connection last received anything, and was last pinged. */
  private heardAtMs = 0;
  private pingedAtMs = 0;
  /** The smallest request any endpoint accepts (its /status), once known. */
  private learnedMaxRequestBytes = Infinity;
  /** Request frames waiting for the current burst of calls to finish. */
  private outbox: Uint8Array[] = [];
  private socket: WebSocket | null = null;
  /** The connection being opened, if any: close() ends it too. */
  private opening: WebSocket | null = null;
  /** Connections this client gave up on itself: their requests did not cause their end. */
  private readonly abandoned = new WeakSet<WebSocket>();
  /**
   * Connections left for the leader's, and when: kept open until the
   * requests sent on them are answered (sent again elsewhere, a write that had
   * applied would come back a duplicate, without its results), or for
   * RETIRED_CONNECTION_MAX_MS at most.
   */
  private readonly retiring = new Map<WebSocket, number>();
  /** The endpoint (index into `endpoints`) of each connection. */
  private readonly endpointOf = new WeakMap<WebSocket, number>();
  private connecting: Promise<void> | null = null;
  private leaderLookup: Promise<void> | null = null;
  private leaderLookupAtMs = 0;
  private endpointIndex = 0;
  private nextId = 1;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;

  private constructor(opts: ClientOptions) {
    if (opts.endpoints.length === 0) throw new RaftlineClientError('bad_request', 'at least one endpoint is needed');
    for (const e of opts.endpoints) {
      if (!/^https?:\/\/[^/]/.test(e)) throw new RaftlineClientError('bad_request', `endpoint ${JSON.stringify(e)} is not a URL like http://127.0.0.1:7201 (a member's client address)`);
    }
    this.endpoints = opts.endpoints.map((e) => e.replace(/\/+$/, ''));
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    // Trimmed as the servers trim theirs: a token read from a file ends in a newline, which no header may hold.
    this.headers = opts.token === undefined ? {} : { Authorization: `Bearer ${String(opts.token).trim()}` };
    this.sweeper = setInterval(() => this.expire(), 250);
    this.sweeper.unref();
  }

  /** Connects to the leader if one of the endpoints reports it, else to the first that answers. */
  static async connect(opts: ClientOptions): Promise<RaftlineClient> {
    const client = new RaftlineClient(opts);
    try {
      await client.preferLeader();
      await client.ensureConnected();
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  /** With `ifModRevision` or `ifAbsent`, a put whose condition fails resolves with `succeeded: false` and writes nothing. */
  put(key: string | Uint8Array, value: string | Uint8Array, opts: { ifModRevision?: number; ifAbsent?: boolean; prevKv?: boolean } = {}): Promise<TxnResponse> {
    const k = bytes(key);
    const compare: Txn['compare'] = [];
    if (opts.ifModRevision !== undefined) compare.push({ key: k, target: 'mod', result: 'equal', number: opts.ifModRevision });
    if (opts.ifAbsent) compare.push({ key: k, target: 'create', result: 'equal', number: 0 });
    return this.txn({ compare, success: [{ type: 'put', key: k, value: bytes(value), prevKv: opts.prevKv }], failure: [] });
  }

  delete(key: string | Uint8Array, opts: { rangeEnd?: string | Uint8Array; prevKv?: boolean } = {}): Promise<TxnResponse> {
    const op: Operation = { type: 'delete', key: bytes(key), rangeEnd: opts.rangeEnd === undefined ? undefined : bytes(opts.rangeEnd), prevKv: opts.prevKv };
    return this.txn({ compare: [], success: [op], failure: [] });
  }

  /** Applies comparisons, then `success` or `failure` operations, atomically (etcd's Txn). */
  txn(txn: Txn): Promise<TxnResponse> {
    return this.submit(txn, Date.now() + this.requestTimeoutMs);
  }

  /** `resubmitted`: the write was refused once already under a session the servers had forgotten. */
  private submit(txn: Txn, deadlineMs: number, resubmitted = false): Promise<TxnResponse> {
    // Without async/await: on a busy client the promises and frames they add
    // per call were a good part of its garbage.
    if (this.writeQueue.length === 0 && this.sequenceFree()) return this.write(txn, deadlineMs, resubmitted);
    return new Promise((resolve, reject) => {
      this.writeQueue.push({ txn, deadlineMs, resubmitted, resolve, reject });
      this.sendQueued();
    });
  }

  async get(key: string | Uint8Array, opts: { consistency?: ReadConsistency } = {}): Promise<(ClientKeyValue & { revision: number }) | null> {
    const r = await this.range(key, undefined, { consistency: opts.consistency });
    return r.kvs[0] ? { ...r.kvs[0], revision: r.revision } : null;
  }

  /** Keys in [key, rangeEnd) (exactly `key` without rangeEnd), in byte order. */
  async range(
    key: string | Uint8Array,
    rangeEnd?: string | Uint8Array,
    opts: { limit?: number; keysOnly?: boolean; countOnly?: boolean; consistency?: ReadConsistency } = {},
  ): Promise<{ kvs: ClientKeyValue[]; count: number; more: boolean; revision: number }> {
    const consistency = opts.consistency ?? 'linearizable';
    if (!CONSISTENCIES.includes(consistency)) throw new RaftlineClientError('bad_request', `consistency must be one of ${CONSISTENCIES.join(', ')}, not ${String(consistency)}`);
    const read: ClientRead = {
      key: bytes(key),
      rangeEnd: rangeEnd === undefined ? undefined : bytes(rangeEnd),
      limit: opts.limit ?? 0,
      keysOnly: opts.keysOnly ?? false,
      countOnly: opts.countOnly ?? false,
      consistency,
    };
    const r = await this.send((id) => encodeRequest({ id, read }), false, Date.now() + this.requestTimeoutMs);
    const result = r.results[0];
    return { kvs: result?.kvs ?? [], count: result?.count ?? 0, more: result?.more ?? false, revision: r.revision };
  }

  /** Every key starting with `prefix`. */
  prefix(prefix: string | Uint8Array, opts: { limit?: number; consistency?: ReadConsistency } = {}) {
    const p = Buffer.from(bytes(prefix));
    let end = Buffer.from([0]);
    for (let i = p.length - 1; i >= 0; i--) {
      if (p[i] < 0xff) {
        end = Buffer.from(p.subarray(0, i + 1));
        end[i]++;
        break;
      }
    }
    return this.range(p.length ? p : Buffer.from([0]), end, opts);
  }

  /** Closes the connection; pending requests reject (a write already sent may still apply; one still queued was never sent). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    const closed = new RaftlineClientError('closed', 'the client was closed');
    const closedInFlight = new RaftlineClientError('closed', 'the client was closed; the write was sent and may still apply');
    for (const p of this.pending.values()) {
      clearTimeout(p.retryTimer);
      p.reject(p.isWrite ? closedInFlight : closed);
    }
    this.pending.clear();
    for (const w of this.writeQueue.splice(0)) w.reject(new RaftlineClientError('closed', 'the client was closed; the write was never sent'));
    this.socket?.close();
    this.socket = null;
    for (const socket of this.retiring.keys()) socket.terminate();
    this.retiring.clear();
    this.opening?.terminate();
    this.opening = null;
  }

  // --------------------------------------------------------------- internals

  /** The id of the session the cluster knows this client's writes by; null before the first write. */
  get sessionId(): string | null {
    return this.session?.id ?? null;
  }

  /**
   * Asks the cluster for a session, through the log like a write: its id is
   * the registering entry's index, so it is never given out again, not even
   * by a late copy of this request after the cluster has forgotten it.
   * Queued writes go out under it.
   */
  private register(): void {
    if (this.registering) return;
    this.registering = true;
    this.send((id) => encodeRequest({ id, command: SESSION_REGISTRATION }), true, Date.now() + this.requestTimeoutMs).then(
      (r) => {
        this.registering = false;
        if (!r.session) {
          this.failQueued(new RaftlineClientError('unsupported', 'the server registered no client session: it is older than this client'));
          return;
        }
        this.session = { id: r.session, sequence: 0, inFlight: new Set() };
        this.sendQueued();
      },
      (err: Error) => {
        this.registering = false;
        // Writes queued after the registration began still have time left.
        if (err instanceof RaftlineClientError && err.code === 'timeout') this.sendQueued();
        else this.failQueued(err);
      },
    );
  }

  private failQueued(err: Error): void {
    const code = err instanceof RaftlineClientError ? err.code : 'internal';
    for (const w of this.writeQueue.splice(0)) w.reject(new RaftlineClientError(code, `no client session could be registered (${err.message}); the write was never sent`));
  }

  /** Whether the next sequence keeps the sequences in flight within MAX_SEQUENCE_SPAN (false without a session). */
  private sequenceFree(): boolean {
    if (!this.session) return false;
    const lowest = this.session.inFlight.values().next();
    return lowest.done === true || this.session.sequence + 1 - lowest.value < MAX_SEQUENCE_SPAN;
  }

  /** Sends one write under the next sequence, which stays in flight until it settles. */
  private write(txn: Txn, deadlineMs: number, resubmitted: boolean): Promise<TxnResponse> {
    const session = this.session!;
    let command: Uint8Array;
    try {
      command = encodeCommand({ clientId: session.id, sequence: session.sequence + 1, txn });
    } catch (err) {
      return Promise.reject(new RaftlineClientError('bad_request', `txn: ${(err as Error).message}`));
    }
    const sequence = ++session.sequence;
    session.inFlight.add(sequence);
    return this.send((id) => encodeRequest({ id, command }), true, deadlineMs).then(
      (r) => {
        this.settleSequence(session, sequence);
        return { revision: r.revision, succeeded: r.succeeded, results: r.results, duplicate: r.duplicate };
      },
      (err: Error) => {
        // The servers forgot this session (100,000 others were active since):
        // later writes go under a new one.
        if (err instanceof RaftlineClientError && err.serverCode === 'session_expired' && session === this.session) this.session = null;
        this.settleSequence(session, sequence);
        // Once: sessions forgotten that fast mean a cluster registering far more than it keeps.
        if (err instanceof NeverAppliedError && !resubmitted) return this.submit(txn, deadlineMs, true);
        throw err;
      },
    );
  }

  private settleSequence(session: Session, sequence: number): void {
    session.inFlight.delete(sequence);
    this.sendQueued();
  }

  /** Sends queued writes while the sequences in flight leave room, first registering a session if there is none. */
  private sendQueued(): void {
    if (this.writeQueue.length === 0) return;
    if (!this.session) return this.register();
    while (this.writeQueue.length > 0 && this.sequenceFree()) {
      const w = this.writeQueue.shift()!;
      this.write(w.txn, w.deadlineMs, w.resubmitted).then(w.resolve, w.reject);
    }
  }

  /** Sends a request and resolves with its successful answer, retrying what may be retried until `deadlineMs`. */
  private send(frameFor: (id: number) => Uint8Array, isWrite: boolean, deadlineMs: number): Promise<ClientResponse> {
    if (this.closed) return Promise.reject(new RaftlineClientError('closed', 'the client was closed'));
    const id = this.nextId++;
    const frame = frameFor(id);
    // The server would close the connection on a frame over its limit, failing every request on it.
    const maxRequestBytes = this.learnedMaxRequestBytes === Infinity ? MIN_SERVER_REQUEST_BYTES : this.learnedMaxRequestBytes;
    if (LENGTH_PREFIX_BYTES + frame.byteLength > maxRequestBytes) {
      return Promise.reject(new RaftlineClientError('too_large', `the request is ${frame.byteLength} bytes; the servers take at most ${maxRequestBytes - LENGTH_PREFIX_BYTES}`));
    }
    return new Promise<ClientResponse>((resolve, reject) => {
      // Silence is counted from here when nothing else was waiting: an idle connection has had nothing to say.
      if (this.pending.size === 0) this.heardAtMs = Date.now();
      this.pending.set(id, { frame, isWrite, deadlineMs, resolve, reject, sentOn: null, retryTimer: undefined, retries: 0, sends: 0, connectionsLost: 0 });
      void this.transmit(id);
    });
  }

  /** Sends a pending request on the current connection (once connected), unless it went out on that one already or waits for a retry. */
  private async transmit(id: number): Promise<void> {
    if (!this.pending.has(id)) return;
    if (this.socket?.readyState !== WebSocket.OPEN) {
      try {
        await this.ensureConnected();
      } catch {
        return; // The sweeper times it out; reconnection goes on meanwhile.
      }
    }
    const p = this.pending.get(id);
    const socket = this.socket;
    // In flight on a connection still open (this one, or one left for the leader's): its answer will come there.
    if (!p || p.retryTimer || socket?.readyState !== WebSocket.OPEN || p.sentOn?.readyState === WebSocket.OPEN) return;
    p.sentOn = socket;
    p.sends++;
    this.enqueue(p.frame);
  }

  private enqueue(frame: Uint8Array): void {
    this.outbox.push(frame);
    if (this.outbox.length === 1) process.nextTick(() => this.sendOutbox());
  }

  /**
   * Sends the requests made by one burst of calls (everything the current
   * callback and its promise chains ask for) together, as few frames as fit:
   * one write instead of one per request. Requests that miss a connection
   * that closed in the meantime stay pending; the close handler sends them again.
   */
  private sendOutbox(): void {
    const requests = this.outbox;
    this.outbox = [];
    const socket = this.socket;
    if (socket?.readyState !== WebSocket.OPEN) return;
    for (const frame of packFrames(requests)) socket.send(frame, { binary: true });
  }

  private onResponse(r: ClientResponse, socket: WebSocket): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    if (!r.errorCode) {
      this.pending.delete(r.id);
      p.resolve(r);
      return;
    }
    // A late refusal of a copy sent on a connection it has since left: the copy in flight decides.
    if (p.sentOn !== socket) return;
    if (!RETRYABLE.has(r.errorCode)) {
      this.pending.delete(r.id);
      if (r.errorCode === 'session_expired' && p.sends === 1) {
        p.reject(new NeverAppliedError(r.errorCode, r.error));
        return;
      }
      // The servers no longer remember whether a write that old (or of a
      // session they forgot) applied: a retry could not tell either, so its
      // fate stays unknown.
      const unknown = r.errorCode === 'sequence_too_old' || r.errorCode === 'session_expired';
      p.reject(new RaftlineClientError(unknown ? 'outcome_unknown' : r.errorCode, r.error, r.errorCode));
      return;
    }
    // The same frame again (a write keeps its sequence), after a pause;
    // through the leader when this member knows one, or when it cannot serve
    // (no leader: perhaps it is cut off from the rest; cannot write its data).
    this.lookForLeader();
    // It was answered: whatever closed connections under it before, it is not what a server cannot take.
    p.connectionsLost = 0;
    if (p.retryTimer) return;
    const ceilingMs = Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** Math.min(p.retries, 10));
    p.retries++;
    p.sentOn = null;
    p.retryTimer = setTimeout(
      () => {
        p.retryTimer = undefined;
        void this.transmit(r.id);
      },
      ceilingMs / 2 + Math.random() * (ceilingMs / 2),
    );
    p.retryTimer.unref();
  }

  /** Runs every 250 ms: times out requests and queued writes, and checks that the connection is alive. */
  private expire(): void {
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (p.deadlineMs > now) continue;
      this.pending.delete(id);
      clearTimeout(p.retryTimer);
      p.reject(new RaftlineClientError('timeout', `no answer within ${this.requestTimeoutMs} ms${p.isWrite ? '; the write may still apply' : ''}`));
    }
    while (this.writeQueue.length > 0 && this.writeQueue[0].deadlineMs <= now) {
      this.writeQueue.shift()!.reject(new RaftlineClientError('timeout', `no write slot within ${this.requestTimeoutMs} ms; the write was never sent`));
    }
    for (const [retired, sinceMs] of this.retiring) {
      if (now - sinceMs < RETIRED_CONNECTION_MAX_MS) this.closeIfAnswered(retired);
      else {
        this.retiring.delete(retired);
        retired.terminate();
      }
    }
    const socket = this.socket;
    if (socket?.readyState !== WebSocket.OPEN || this.pending.size === 0) return;
    const quietMs = now - this.heardAtMs;
    if (quietMs >= DEAD_AFTER_QUIET_MS) {
      // Requests wait on a server that answers nothing, not even pings:
      // resend them elsewhere (the close handler does) and find the leader.
      this.endpointIndex = (this.endpointIndex + 1) % this.endpoints.length;
      this.lookForLeader();
      this.abandon(socket);
    } else if (quietMs >= PING_AFTER_QUIET_MS && now - this.pingedAtMs >= PING_AFTER_QUIET_MS) {
      this.pingedAtMs = now;
      socket.ping();
    }
  }

  /**
   * preferLeader for retried requests: one lookup at a time and at most one
   * per LEADER_LOOKUP_INTERVAL_MS, however many requests are being retried.
   */
  private lookForLeader(): void {
    const now = Date.now();
    if (this.leaderLookup || now - this.leaderLookupAtMs < LEADER_LOOKUP_INTERVAL_MS) return;
    this.leaderLookupAtMs = now;
    this.leaderLookup = this.preferLeader().finally(() => {
      this.leaderLookup = null;
    });
  }

  /**
   * Points the next connection at the endpoint that reports itself leader,
   * if any does (the one of the highest term: a deposed leader cut off from
   * the rest may not know yet), and learns the servers' request size limit.
   */
  private async preferLeader(): Promise<void> {
    const statuses = await Promise.all(
      this.endpoints.map((e) =>
        fetch(`${e}/status`, { headers: this.headers, signal: AbortSignal.timeout(1000) })
          .then((r) => r.json() as Promise<{ role?: string; term?: number; limits?: { maxRequestBytes?: number } }>)
          .catch(() => null),
      ),
    );
    let leader = -1;
    statuses.forEach((s, i) => {
      if (s?.role === 'leader' && (leader < 0 || (s.term ?? 0) > (statuses[leader]!.term ?? 0))) leader = i;
      const limit = s?.limits?.maxRequestBytes;
      if (typeof limit === 'number' && limit > 0) this.learnedMaxRequestBytes = Math.min(this.learnedMaxRequestBytes, limit);
    });
    if (leader < 0) return;
    this.endpointIndex = leader;
    // The endpoint the connection is on, not endpointIndex: a lookup that ends while a connection opens elsewhere moves only the latter.
    if (this.socket && this.endpointOf.get(this.socket) !== leader) this.retire(this.socket);
  }

  /** Sends no more requests on `socket` (the next go to a new connection), and closes it once those on it are answered. */
  private retire(socket: WebSocket): void {
    if (this.socket === socket) this.socket = null;
    this.abandoned.add(socket);
    this.retiring.set(socket, Date.now());
    this.closeIfAnswered(socket);
  }

  private closeIfAnswered(socket: WebSocket): void {
    for (const p of this.pending.values()) if (p.sentOn === socket) return;
    this.retiring.delete(socket);
    socket.terminate();
  }

  /** Ends a connection at once (a graceful close waits for a server that may be hung); its requests go out again on the next. */
  private abandon(socket: WebSocket): void {
    this.abandoned.add(socket);
    socket.terminate();
  }

  private ensureConnected(): Promise<void> {
    if (this.socket?.readyState === WebSocket.OPEN) return Promise.resolve();
    if (this.closed) return Promise.reject(new RaftlineClientError('closed', 'the client was closed'));
    this.connecting ??= this.connectLoop().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  /** Tries the endpoints in turn, with growing pauses, until one accepts or every pending request has expired. */
  private async connectLoop(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this.open(this.endpointIndex);
        return;
      } catch (err) {
        // Another endpoint or a later attempt would refuse the same token.
        if (err instanceof RaftlineClientError && err.code === 'unauthorized') {
          for (const p of this.pending.values()) {
            clearTimeout(p.retryTimer);
            p.reject(p.isWrite && p.sends > 0 ? new RaftlineClientError(err.code, `${err.message}; the write was sent before and may have applied`) : err);
          }
          this.pending.clear();
          throw err;
        }
        this.endpointIndex = (this.endpointIndex + 1) % this.endpoints.length;
        if (attempt >= this.endpoints.length && this.pending.size === 0) throw new RaftlineClientError('unavailable', `no endpoint of ${this.endpoints.join(', ')} accepts connections`);
        await new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** Math.min(attempt, 6))));
      }
    }
    throw new RaftlineClientError('closed', 'the client was closed');
  }

  private open(endpointIndex: number): Promise<void> {
    const endpoint = this.endpoints[endpointIndex];
    const socket = new WebSocket(`${endpoint.replace(/^http/, 'ws')}/v1/ws`, {
      perMessageDeflate: false,
      handshakeTimeout: 2000,
      headers: this.headers,
      generateMask: zeroMask,
      maxPayload: MAX_ANSWER_FRAME_BYTES,
    });
    this.opening = socket;
    this.endpointOf.set(socket, endpointIndex);
    return new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('unexpected-response', (_req, res) => {
        socket.terminate();
        if (res.statusCode !== 401) {
          reject(new RaftlineClientError('unavailable', `${endpoint} answered the WebSocket upgrade with HTTP ${res.statusCode}`));
          return;
        }
        const why = this.headers.Authorization ? 'the client token was refused' : 'the server needs a client token (the `token` option)';
        reject(new RaftlineClientError('unauthorized', `${endpoint}: ${why}`));
      });
      socket.on('close', () => {
        if (this.opening === socket) this.opening = null;
      });
      socket.on('open', () => {
        if (this.opening === socket) this.opening = null;
        if (this.closed) {
          socket.terminate();
          reject(new RaftlineClientError('closed', 'the client was closed'));
          return;
        }
        this.socket = socket;
        this.heardAtMs = Date.now();
        socket.on('pong', () => {
          this.heardAtMs = Date.now();
        });
        socket.on('message', (data) => {
          this.heardAtMs = Date.now();
          try {
            const { envelopes, error } = unpackFrame(data instanceof ArrayBuffer ? new Uint8Array(data) : Buffer.isBuffer(data) ? data : Buffer.concat(data));
            for (const response of envelopes) this.onResponse(decodeResponse(response), socket);
            if (error) socket.terminate();
            else if (this.retiring.has(socket)) this.closeIfAnswered(socket);
          } catch {
            socket.terminate();
          }
        });
        socket.on('close', () => {
          if (this.socket === socket) this.socket = null;
          this.retiring.delete(socket);
          if (this.closed) return;
          // Everything unanswered goes out again on the next connection.
          for (const [id, p] of this.pending) {
            if (p.sentOn === socket) {
              p.sentOn = null;
              if (!this.abandoned.has(socket) && ++p.connectionsLost >= MAX_CONNECTIONS_LOST) {
                this.pending.delete(id);
                p.reject(
                  new RaftlineClientError(
                    'connection_lost',
                    `${p.connectionsLost} connections closed while this request was in flight (is it, or its answer, too large?)${p.isWrite ? '; the write may have applied' : ''}`,
                  ),
                );
                continue;
              }
            }
            void this.transmit(id);
          }
        });
        resolve();
      });
    });
  }
}
