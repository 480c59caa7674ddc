// raftline/client: a TypeScript client for raftline servers over the binary
// WebSocket protocol (schema/client.fbs). It pipelines requests on one
// connection, prefers the leader (saving the followers' forwarding hop),
// reconnects to another endpoint when a connection fails, and retries
// safely: every write carries this client's id and a sequence number, and the
// server's state machine applies a given (id, sequence) at most once.
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { encodeCommand, type Operation, type Txn } from '../server/kv-command.js';
import {
  decodeResponse,
  encodeRequest,
  type ClientKeyValue,
  type ClientRead,
  type ClientResponse,
  type ClientResult,
  type ReadConsistency,
} from '../transport/client-codec.js';
import { packFrames, unpackFrame } from '../transport/frame.js';
import { zeroMask } from '../transport/ws-mask.js';

export type { ClientKeyValue as KeyValue, ClientResult as OperationResult, ReadConsistency } from '../transport/client-codec.js';
export type { Compare, Operation, Txn } from '../server/kv-command.js';

export interface ClientOptions {
  /** Servers' client URLs, e.g. `http://127.0.0.1:7201`. */
  endpoints: string[];
  /** Identifies this client's writes for at-most-once retries; default a random UUID. */
  clientId?: string;
  /** A request that has not succeeded after this long rejects with RaftlineClientError('timeout'). Default 30000. */
  requestTimeoutMs?: number;
  /** The servers' client token (`raftline serve --client-token-file`), sent as `Authorization: Bearer <token>`. */
  token?: string;
}

/** A request the cluster refused or could not complete; `code` is the server's error code. */
export class RaftlineClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RaftlineClientError';
  }
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
/** The server keeps this many of a client's applied sequences: stay well inside it. */
const MAX_OUTSTANDING_WRITES = 512;
/** Retried requests look for a new leader at most this often (each lookup asks every endpoint). */
const LEADER_LOOKUP_INTERVAL_MS = 250;

interface Pending {
  frame: Uint8Array;
  isWrite: boolean;
  deadlineMs: number;
  resolve: (r: ClientResponse) => void;
  reject: (err: Error) => void;
}

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
  readonly clientId: string;
  private readonly endpoints: string[];
  private readonly requestTimeoutMs: number;
  private readonly headers: Record<string, string>;
  private readonly pending = new Map<number, Pending>();
  private readonly writeSlots: (() => void)[] = [];
  private writesInFlight = 0;
  /** Request frames waiting for the current burst of calls to finish. */
  private outbox: Uint8Array[] = [];
  private socket: WebSocket | null = null;
  private connecting: Promise<void> | null = null;
  private leaderLookup: Promise<void> | null = null;
  private leaderLookupAtMs = 0;
  private endpointIndex = 0;
  private nextId = 1;
  private sequence = 0;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;

  private constructor(opts: ClientOptions) {
    if (opts.endpoints.length === 0) throw new RaftlineClientError('bad_request', 'at least one endpoint is needed');
    this.endpoints = opts.endpoints.map((e) => e.replace(/\/+$/, ''));
    this.clientId = opts.clientId ?? randomUUID();
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.headers = opts.token === undefined ? {} : { Authorization: `Bearer ${opts.token}` };
    this.sweeper = setInterval(() => this.expire(), 250);
    this.sweeper.unref();
  }

  /** Connects to the leader if one of the endpoints reports it, else to the first that answers. */
  static async connect(opts: ClientOptions): Promise<RaftlineClient> {
    const client = new RaftlineClient(opts);
    await client.preferLeader();
    await client.ensureConnected();
    return client;
  }

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
    // Without async/await: on a busy client the promises and frames they add
    // per call were a good part of its garbage.
    if (this.writesInFlight < MAX_OUTSTANDING_WRITES) {
      this.writesInFlight++;
      return this.write(txn);
    }
    return new Promise((resolve) =>
      this.writeSlots.push(() => {
        this.writesInFlight++;
        resolve(this.write(txn));
      }),
    );
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
    const read: ClientRead = {
      key: bytes(key),
      rangeEnd: rangeEnd === undefined ? undefined : bytes(rangeEnd),
      limit: opts.limit ?? 0,
      keysOnly: opts.keysOnly ?? false,
      countOnly: opts.countOnly ?? false,
      consistency: opts.consistency ?? 'linearizable',
    };
    const r = await this.send((id) => encodeRequest({ id, read }), false);
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

  /** Closes the connection; pending requests reject. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const p of this.pending.values()) p.reject(new RaftlineClientError('closed', 'the client was closed'));
    this.pending.clear();
    this.socket?.close();
    this.socket = null;
  }

  // --------------------------------------------------------------- internals

  /** Sends one write, holding a write slot until it settles. */
  private write(txn: Txn): Promise<TxnResponse> {
    let command: Uint8Array;
    try {
      command = encodeCommand({ clientId: this.clientId, sequence: ++this.sequence, txn });
    } catch (err) {
      this.releaseWriteSlot();
      return Promise.reject(err);
    }
    return this.send((id) => encodeRequest({ id, command }), true).then(
      (r) => {
        this.releaseWriteSlot();
        return { revision: r.revision, succeeded: r.succeeded, results: r.results, duplicate: r.duplicate };
      },
      (err: Error) => {
        this.releaseWriteSlot();
        throw err;
      },
    );
  }

  private releaseWriteSlot(): void {
    this.writesInFlight--;
    this.writeSlots.shift()?.();
  }

  /** Sends a request and resolves with its successful answer, retrying what may be retried until the deadline. */
  private send(frameFor: (id: number) => Uint8Array, isWrite: boolean): Promise<ClientResponse> {
    if (this.closed) return Promise.reject(new RaftlineClientError('closed', 'the client was closed'));
    const id = this.nextId++;
    return new Promise<ClientResponse>((resolve, reject) => {
      const frame = frameFor(id);
      this.pending.set(id, { frame, isWrite, deadlineMs: Date.now() + this.requestTimeoutMs, resolve, reject });
      if (this.socket?.readyState === WebSocket.OPEN) this.enqueue(frame);
      else void this.transmit(id);
    });
  }

  /** Sends a pending request once connected. */
  private async transmit(id: number): Promise<void> {
    try {
      await this.ensureConnected();
    } catch {
      return; // The sweeper times it out; reconnection goes on meanwhile.
    }
    const p = this.pending.get(id);
    if (!p || this.socket?.readyState !== WebSocket.OPEN) return;
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

  private onResponse(r: ClientResponse): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    if (!r.errorCode) {
      this.pending.delete(r.id);
      p.resolve(r);
      return;
    }
    if (!RETRYABLE.has(r.errorCode)) {
      this.pending.delete(r.id);
      p.reject(new RaftlineClientError(r.errorCode, r.error));
      return;
    }
    // The same frame again (a write keeps its sequence), after a pause; through the leader when
    // hinted, or when this member cannot write its data (it does not report itself leader then).
    if (r.leader || r.errorCode === 'storage_unavailable') this.lookForLeader();
    setTimeout(() => void this.transmit(r.id), 50).unref();
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, p] of this.pending) {
      if (p.deadlineMs > now) continue;
      this.pending.delete(id);
      p.reject(new RaftlineClientError('timeout', `no answer within ${this.requestTimeoutMs} ms${p.isWrite ? '; the write may still apply' : ''}`));
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

  /** Points the next connection at the endpoint that reports itself leader, if any does. */
  private async preferLeader(): Promise<void> {
    const found = await Promise.all(
      this.endpoints.map((e) =>
        fetch(`${e}/status`, { headers: this.headers, signal: AbortSignal.timeout(1000) })
          .then((r) => r.json() as Promise<{ role?: string }>)
          .then((s) => s.role === 'leader', () => false),
      ),
    );
    const leader = found.indexOf(true);
    if (leader >= 0 && leader !== this.endpointIndex) {
      this.endpointIndex = leader;
      this.socket?.close();
    }
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
      const endpoint = this.endpoints[this.endpointIndex];
      try {
        await this.open(endpoint);
        return;
      } catch (err) {
        // Another endpoint or a later attempt would refuse the same token.
        if (err instanceof RaftlineClientError && err.code === 'unauthorized') {
          for (const p of this.pending.values()) p.reject(err);
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

  private open(endpoint: string): Promise<void> {
    const socket = new WebSocket(`${endpoint.replace(/^http/, 'ws')}/v1/ws`, { perMessageDeflate: false, handshakeTimeout: 2000, headers: this.headers, generateMask: zeroMask });
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
      socket.on('open', () => {
        this.socket = socket;
        socket.on('message', (data) => {
          try {
            const { envelopes, error } = unpackFrame(data instanceof ArrayBuffer ? new Uint8Array(data) : Buffer.isBuffer(data) ? data : Buffer.concat(data));
            for (const response of envelopes) this.onResponse(decodeResponse(response));
            if (error) socket.terminate();
          } catch {
            socket.terminate();
          }
        });
        socket.on('close', () => {
          if (this.socket === socket) this.socket = null;
          // Everything unanswered goes out again on the next connection.
          if (!this.closed && this.pending.size > 0) for (const id of [...this.pending.keys()]) void this.transmit(id);
        });
        resolve();
      });
    });
  }
}
