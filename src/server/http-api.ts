// The client-facing HTTP APIs on a uWebSockets.js app: `/v1` (plain keys and
// values) and the etcd v3 JSON gateway subset (`/v3/kv/*`, shaped as etcd 3.4
// answers). Any node serves any request: writes are forwarded to the leader,
// linearizable reads go through a ReadIndex barrier.
import { isUtf8 } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from '@trufflesuite/uws-js-unofficial';
import { BusyError, InvalidChangeError, NotLeaderError, OutcomeUnknownError, RaftError, ShutdownError, TimeoutError, type RaftNode } from '../node/index.js';
import type { UwsTransportStats } from '../transport/index.js';
import { isPeerAddress } from '../transport/handshake.js';
import { ClientFrameError, decodeRequest, encodeResponse, encodeResponseInTurns, type ClientResponse, type ClientResult } from '../transport/client-codec.js';
import { FRAME_TARGET_BYTES, frameEnd, LENGTH_PREFIX_BYTES, packFrame, unpackFrame } from '../transport/frame.js';
import { decodeCommand, encodeCommand, isSessionRegistration, type Compare, type CompareResult, type CompareTarget, type Operation, type Txn } from './kv-command.js';
import { ClientTokenCheck } from './client-auth.js';
import { AnswerTooLargeError, jsonInTurns, Rows } from './json-rows.js';
import { resultsAnswerBytes, type KeyValue, type KvStore, type OperationResult, type TxnResult } from './kv-store.js';
import { encodeMemberInfo, parseMemberInfo, type MemberInfo } from './members.js';
import type { ServerMetrics } from './metrics.js';

export interface HttpApiOptions {
  /** Largest key accepted, in bytes. Default 1536 (etcd's gateway allows about that much in practice). */
  maxKeyBytes?: number;
  /** Largest value accepted, in bytes. Default 1 MiB. */
  maxValueBytes?: number;
  /**
   * Largest request body or binary-protocol frame, in bytes. Default twice
   * maxValueBytes plus 64 KiB (a value of the largest size fits, base64 in
   * JSON or in a transaction beside another), and at least 2 MiB.
   */
  maxBodyBytes?: number;
  /**
   * Binary-protocol answers a connection may leave unread (queued in the
   * server) before it is closed; a single answer larger than this, over
   * HTTP as well, is not sent (too_large for a read; results_too_large,
   * applied, for a write), and is given up while it is built. Default 256 MiB.
   */
  maxUnreadAnswerBytes?: number;
  /** Numeric identity for etcd-shaped headers. */
  clusterId: string;
  memberId: string;
  metrics: ServerMetrics;
  /** When set, every route but the status page's own files needs `Authorization: Bearer <clientToken>`. */
  clientToken?: string | null;
  /** The peer transport's counters, shown on /status (why inbound peer data was refused). */
  peerTransport: () => UwsTransportStats;
}

/** What the API serves; the server swaps in a new node and store when it restarts them after running out of space. */
export interface ApiBackend {
  readonly node: RaftNode;
  readonly store: KvStore;
  /** Why this member cannot write its data directory (a full disk), or null when it can. */
  readonly storageError: string | null;
}

/** An answer other than 200: status, stable code, message, and any extra headers. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly leader: string | null = null,
    /** For a 405: the methods the route takes (the Allow header). */
    readonly allow: readonly string[] = [],
  ) {
    super(message);
  }
}

/** The 405 for `method` on `route`, naming (and giving in Allow) the methods it takes. */
function methodNotAllowed(method: string, route: string, allow: readonly string[]): HttpError {
  return new HttpError(405, 'method_not_allowed', `${method.toUpperCase()} is not allowed on ${route}; it takes ${allow.join(', ')}`, null, allow);
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK',
  204: '204 No Content',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  406: '406 Not Acceptable',
  409: '409 Conflict',
  412: '412 Precondition Failed',
  413: '413 Payload Too Large',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
};

/** Route labels for metrics: a fixed set, whatever clients ask for. */
const V3_ROUTES = new Set(['/v3/kv/put', '/v3/kv/range', '/v3/kv/deleterange', '/v3/kv/txn']);
const ADMIN_OPS = ['members', 'add-peer', 'add-learner', 'promote', 'remove-peer', 'change-peers', 'transfer-leader', 'snapshot', 'reset-peers'];
const ADMIN_ROUTES = new Set(ADMIN_OPS.map((op) => `/v1/admin/${op}`));
/** Served without the client token: the status page and its files hold no data (the page fetches with the token). */
const PUBLIC_ROUTES = new Set(['/', '/assets']);
const NODE_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** How long transfer-leader waits for the leadership to move before answering 504. */
const TRANSFER_WAIT_MS = 10_000;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A request body that must be a JSON object (an empty body counts as {}). */
function jsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.length ? body.toString('utf8') : '{}');
  } catch {
    throw new HttpError(400, 'bad_request', 'the body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'bad_request', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

function base64(value: unknown, field: string, required: boolean): Buffer | undefined {
  if (value === undefined || value === null) {
    if (required) throw new HttpError(400, 'bad_request', `${field} is required`);
    return undefined;
  }
  if (typeof value !== 'string' || value.length % 4 !== 0 || !BASE64.test(value)) {
    throw new HttpError(400, 'bad_request', `${field} must be base64`);
  }
  return Buffer.from(value, 'base64');
}

/** A request's query parameters, decoded. */
type Query = ReadonlyMap<string, string>;

/** The query of a URL without one, shared: most requests have none. */
const NO_QUERY: Query = new Map();

/**
 * The parameters of a URL's query, form-decoded as URLSearchParams, HTML
 * forms and other languages' URL libraries encode them (`+` a space, `%2B`
 * a plus). Bad percent-encoding and a parameter given twice are refused
 * rather than passed on as they are, or one of them picked.
 */
function parseQuery(raw: string): Query {
  if (raw === '') return NO_QUERY;
  const query = new Map<string, string>();
  for (const param of raw.split('&')) {
    if (param === '') continue;
    const eq = param.indexOf('=');
    const name = decodeQueryPart(eq < 0 ? param : param.slice(0, eq));
    if (query.has(name)) throw new HttpError(400, 'bad_request', `the query parameter ${JSON.stringify(name)} is given more than once`);
    query.set(name, eq < 0 ? '' : decodeQueryPart(param.slice(eq + 1)));
  }
  return query;
}

function decodeQueryPart(text: string): string {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    throw new HttpError(400, 'bad_request', `${JSON.stringify(text)} in the query is not valid percent-encoding of UTF-8 text`);
  }
}

/** Refuses parameters a route does not read: a misspelt one (`?prefx=`) would otherwise answer another question. */
function checkQueryNames(query: Query, known: readonly string[]): void {
  for (const name of query.keys()) {
    if (known.includes(name)) continue;
    const takes = known.length === 0 ? 'no query parameters' : known.map((k) => JSON.stringify(k)).join(', ');
    throw new HttpError(400, 'bad_request', `unknown query parameter ${JSON.stringify(name)} (this request takes ${takes})`);
  }
}

/**
 * A listed key-value's key and value for /v1's JSON, as UTF-8 text or base64.
 * Bytes that are not UTF-8 would come out as text with U+FFFD in their
 * place, a different value than the one stored, which a client writing it
 * back would lose: they are refused, with the way to ask for them.
 */
function v1KeyValue(kv: KeyValue, base64: boolean): { key: string; value: string } {
  const key = kv.key;
  const value = kv.value;
  if (base64) return { key: key.toString('base64'), value: value.toString('base64') };
  const keyIsText = isUtf8(key);
  if (!keyIsText || !isUtf8(value)) {
    const what = keyIsText ? 'the value of a key' : 'a key';
    throw new HttpError(406, 'not_text', `${what} in the answer (base64 ${key.toString('base64')}) is not UTF-8 text; ask with encoding=base64`);
  }
  return { key: key.toString(), value: value.toString() };
}

/**
 * The comparison an If-Match header asks for: `*`, that the key exists;
 * otherwise its mod revision, bare or as the ETag a GET gives (`"12"`).
 */
function ifMatch(key: Buffer, header: string): Compare {
  const value = header.trim();
  if (value === '*') return { key, target: 'version', result: 'greater', number: 0 };
  const etag = /^"(\d{1,16})"$/.exec(value);
  return { key, target: 'mod', result: 'equal', number: int(etag ? etag[1] : value, 'If-Match') };
}

function int(value: unknown, field: string): number {
  if (value === undefined || value === null) return 0;
  // Decimal digits only: Number() would also take "", "0x10" and "1e3".
  const n = typeof value === 'string' ? (/^\d{1,16}$/.test(value) ? Number(value) : NaN) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new HttpError(400, 'bad_request', `${field} must be a non-negative integer`);
  return n;
}

/**
 * Refuses etcd request fields this server does not implement when they ask
 * for anything but the default: ignoring them would answer a different
 * question (an old revision, another order) or change what a put stores.
 */
function refuseUnsupported(req: Record<string, unknown>, fields: Record<string, string>): void {
  for (const [field, why] of Object.entries(fields)) {
    const v = req[field];
    if (v === undefined || v === null || v === false || v === 0 || v === '0' || v === '' || v === 'NONE' || v === 'KEY') continue;
    throw new HttpError(400, 'unsupported', `${field} is not supported: ${why}`);
  }
}

/**
 * An etcd request object with its fields under their proto names. etcd's
 * gateway also takes their JSON names (lowerCamelCase: `rangeEnd` for
 * `range_end`, `requestPut` for `request_put`); read under one name only,
 * a request spelt the other way would answer another question. As in
 * etcd, a field given both ways takes the JSON name's value.
 */
function etcdFields(req: Record<string, unknown>): Record<string, unknown> {
  const names = Object.keys(req);
  if (!names.some((name) => /[A-Z]/.test(name))) return req;
  // No prototype: a "__proto__" field is a field like any other.
  const out: Record<string, unknown> = Object.create(null);
  for (const name of names) if (!/[A-Z]/.test(name)) out[name] = req[name];
  for (const name of names) if (/[A-Z]/.test(name)) out[name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = req[name];
  return out;
}

const NO_HISTORY = 'raftline keeps only the current version of each key';
const NO_LEASES = 'raftline has no leases';
const UNSUPPORTED_RANGE_FIELDS = {
  revision: NO_HISTORY,
  min_mod_revision: 'filter the answer instead',
  max_mod_revision: 'filter the answer instead',
  min_create_revision: 'filter the answer instead',
  max_create_revision: 'filter the answer instead',
  sort_order: 'keys come in byte order',
  sort_target: 'keys come in byte order',
};
const UNSUPPORTED_PUT_FIELDS = { lease: NO_LEASES, ignore_lease: NO_LEASES, ignore_value: 'send the value to put' };

function bool(value: unknown, field: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw new HttpError(400, 'bad_request', `${field} must be a boolean`);
  return value;
}

/**
 * etcd refuses a transaction branch that puts one key twice, or puts a key
 * that a delete of the same branch covers: which write wins would depend on
 * the order of operations.
 */
function checkWritesApart(ops: Operation[]): void {
  const puts = new Map<string, Buffer>();
  for (const op of ops) {
    if (op.type !== 'put') continue;
    const key = Buffer.from(op.key);
    const text = key.toString('latin1');
    if (puts.has(text)) throw new HttpError(400, 'bad_request', 'duplicate key given in txn request');
    puts.set(text, key);
  }
  for (const op of ops) {
    if (op.type !== 'delete') continue;
    for (const key of puts.values()) if (inRange(key, op.key, op.rangeEnd)) throw new HttpError(400, 'bad_request', 'duplicate key given in txn request');
  }
}

/**
 * Bounds a transaction's size, whichever protocol brought it: every member
 * applies every comparison and operation in one piece (a comparison over a
 * range reads each key in it), and checkWritesApart pairs puts with deletes.
 * etcd's --max-txn-ops is 128 for both; puts are batched in larger
 * transactions here.
 */
function checkTxnSize(txn: Txn): void {
  const branch = Math.max(txn.success.length, txn.failure.length);
  if (txn.compare.length > MAX_TXN_COMPARES || branch > MAX_TXN_OPS) {
    throw new HttpError(
      400,
      'too_many_operations',
      `a transaction takes at most ${MAX_TXN_COMPARES} comparisons and ${MAX_TXN_OPS} operations in each branch; this one has ${txn.compare.length} comparisons and ${branch} operations in a branch`,
    );
  }
}

const MAX_TXN_COMPARES = 128;
const MAX_TXN_OPS = 1024;

/** Whether `key` is in etcd's range (exactly `from` without `end`; [from, end), or from `from` on when end is "\0"). */
function inRange(key: Buffer, from: Uint8Array, end: Uint8Array | undefined): boolean {
  if (!end || end.length === 0) return key.equals(from);
  if (Buffer.compare(key, from) < 0) return false;
  return (end.length === 1 && end[0] === 0) || Buffer.compare(key, end) < 0;
}

/** Maps runtime errors to HTTP answers. */
function fromRaft(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof NotLeaderError) return new HttpError(503, 'no_leader', err.message, err.leaderHint);
  if (err instanceof TimeoutError) return new HttpError(504, 'timeout', err.message);
  if (err instanceof BusyError || err instanceof ShutdownError) return new HttpError(503, err instanceof BusyError ? 'busy' : 'shutting_down', err.message);
  if (err instanceof OutcomeUnknownError) return new HttpError(500, 'outcome_unknown', err.message);
  if (err instanceof InvalidChangeError) return new HttpError(409, 'invalid_change', err.message);
  if (err instanceof RaftError) return new HttpError(503, err.code, err.message);
  return new HttpError(500, 'internal', (err as Error).message ?? String(err));
}

function storageUnavailable(error: string): HttpError {
  return new HttpError(503, 'storage_unavailable', `this member cannot write its data (${error}); try another member`);
}

const TARGETS = new Map<string, CompareTarget>([
  ['VERSION', 'version'],
  ['CREATE', 'create'],
  ['MOD', 'mod'],
  ['VALUE', 'value'],
]);
const RESULTS = new Map<string, CompareResult>([
  ['EQUAL', 'equal'],
  ['GREATER', 'greater'],
  ['LESS', 'less'],
  ['NOT_EQUAL', 'notEqual'],
]);

export class HttpApi {
  private readonly maxKeyBytes: number;
  private readonly maxValueBytes: number;
  private readonly maxUnreadAnswerBytes: number;
  private readonly maxBodyBytes: number;
  private readonly tokenCheck: ClientTokenCheck | null;
  /** Writes completed through this node, and their total latency, for the status page's chart. */
  private writeCount = 0;
  private writeSumMs = 0;

  constructor(
    private readonly backend: ApiBackend,
    private readonly opts: HttpApiOptions,
  ) {
    this.maxKeyBytes = opts.maxKeyBytes ?? 1536;
    this.maxValueBytes = opts.maxValueBytes ?? 1 << 20;
    this.maxUnreadAnswerBytes = opts.maxUnreadAnswerBytes ?? 256 << 20;
    this.maxBodyBytes = opts.maxBodyBytes ?? Math.max(2 << 20, 2 * this.maxValueBytes + (64 << 10));
    this.tokenCheck = opts.clientToken ? new ClientTokenCheck(opts.clientToken) : null;
  }

  private get node(): RaftNode {
    return this.backend.node;
  }

  private get store(): KvStore {
    return this.backend.store;
  }

  /** Refuses anything that needs the node while storage is unavailable: nothing is proposed, so nothing is applied. */
  private requireStorage(): void {
    const error = this.backend.storageError;
    if (error) throw storageUnavailable(error);
  }

  /**
   * Maps a runtime error to an answer. A request in flight when storage
   * failed is refused with the node's fatal error; that is storage_unavailable
   * too, except for a write, which the rest of the cluster may still commit.
   */
  private answerFor(err: unknown, write = false): HttpError {
    const error = this.backend.storageError;
    if (!error || err instanceof HttpError) return fromRaft(err);
    if (write) return new HttpError(500, 'outcome_unknown', `this member's storage failed while the write was in flight (${error}); it may still be applied`);
    return storageUnavailable(error);
  }

  attach(app: TemplatedApp): void {
    const page = statusPage();
    app.get('/', (res, req) => this.handle(res, req, '/', async () => ({ status: 200, body: page.html, headers: { 'Content-Type': 'text/html; charset=utf-8' } })));
    app.get('/assets/uplot.min.js', (res, req) => this.handle(res, req, '/assets', async () => ({ status: 200, body: page.uplotJs, headers: { 'Content-Type': 'text/javascript' } })));
    app.get('/assets/uplot.min.css', (res, req) => this.handle(res, req, '/assets', async () => ({ status: 200, body: page.uplotCss, headers: { 'Content-Type': 'text/css' } })));
    // The status page served by one member reads the others' /status; with a
    // token, the browser asks first whether it may send the Authorization header.
    app.options('/status', (res) =>
      this.respond(res, '/status', {
        status: 204,
        body: '',
        headers: { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Headers': 'Authorization', 'Access-Control-Allow-Methods': 'GET', 'Access-Control-Max-Age': '600' },
      }),
    );
    app.any('/v1/cluster', (res, req) => this.handle(res, req, '/v1/cluster', async (method) => this.cluster(method)));
    app.ws<ClientSocketData>('/v1/ws', {
      maxPayloadLength: this.maxBodyBytes,
      idleTimeout: 120,
      // Never reached: sendReplies stops handing frames to uWS at
      // REPLY_BUFFER_BYTES, above which uWS would drop them.
      maxBackpressure: 2 * REPLY_BUFFER_BYTES,
      upgrade: (res, req, context) => {
        const refused = this.unauthorized(req);
        if (refused) {
          this.respond(res, '/v1/ws', errorReply(refused));
          return;
        }
        res.upgrade<ClientSocketData>({ closed: false, replies: [], repliesBytes: 0, reservedBytes: 0, unsent: [], unsentBytes: 0, inFlight: 0, waiting: [], waitingBytes: 0 }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
      },
      message: (ws, message, isBinary) => {
        if (!isBinary) {
          ws.end(1003, 'binary frames only');
          return;
        }
        // uWS reuses the message's memory after this call.
        const { envelopes, error } = unpackFrame(Buffer.from(new Uint8Array(message)));
        const data = ws.getUserData();
        for (const request of envelopes) {
          if (data.inFlight < MAX_CLIENT_REQUESTS_IN_FLIGHT) this.startClientRequest(ws, request);
          else {
            data.waiting.push(request);
            data.waitingBytes += request.byteLength;
          }
        }
        if (error) this.reply(ws, this.clientAnswer(0, 'ws:malformed', 400, { errorCode: 'bad_request', error: `malformed frame: ${error}`, succeeded: false }));
        // As many bytes of requests as of answers may wait: a client may ask for thousands of small reads at once.
        if (data.waitingBytes > this.maxUnreadAnswerBytes) this.closeClient(ws, `more than ${this.maxUnreadAnswerBytes} bytes of requests waiting behind ${MAX_CLIENT_REQUESTS_IN_FLIGHT} in flight`);
      },
      drain: (ws) => this.sendUnsent(ws),
      close: (ws) => {
        const data = ws.getUserData();
        data.closed = true;
        data.unsent = [];
        data.unsentBytes = 0;
        data.waiting = [];
        data.waitingBytes = 0;
      },
    });
    app.any('/v1/kv/*', (res, req) =>
      this.handle(res, req, '/v1/kv/{key}', (method, url, query, headers, body) => this.v1Key(method, url, query, headers, body), ['if-match', 'if-none-match']),
    );
    app.any('/v1/kv', (res, req) => this.handle(res, req, '/v1/kv', (method, _url, query) => this.v1List(method, query)));
    app.any('/status', (res, req) => this.handle(res, req, '/status', async (method) => this.status(method)));
    app.any('/metrics', (res, req) => this.handle(res, req, '/metrics', async (method) => this.metrics(method)));
    app.any('/v1/admin/:op', (res, req) => {
      const url = req.getUrl();
      this.handle(res, req, ADMIN_ROUTES.has(url) ? url : '/v1/admin/unknown', (method, _url, _query, _headers, body) => this.admin(method, url, body));
    });
    app.any('/v3/kv/:op', (res, req) => {
      const url = req.getUrl();
      this.handle(res, req, V3_ROUTES.has(url) ? url : '/v3/kv/unknown', (method, _url, _query, _headers, body) => this.v3(method, url, body));
    });
    app.any('/*', (res, req) => this.handle(res, req, 'unknown', async (_m, url) => Promise.reject(new HttpError(404, 'not_found', `no route ${url}`))));
  }

  // ------------------------------------------------------------------ /v1

  private async v1Key(method: string, url: string, rawQuery: string, headers: Record<string, string>, body: Buffer): Promise<Reply> {
    let key: Buffer;
    try {
      key = Buffer.from(decodeURIComponent(url.slice('/v1/kv/'.length)));
    } catch {
      throw new HttpError(400, 'bad_request', 'the key is not valid percent-encoding');
    }
    this.checkKey(key);
    const query = parseQuery(rawQuery);
    switch (method) {
      case 'put': {
        checkQueryNames(query, []);
        this.checkValue(body);
        const compare: Compare[] = [];
        if (headers['if-match']) compare.push(ifMatch(key, headers['if-match']));
        if (headers['if-none-match'] === '*') compare.push({ key, target: 'create', result: 'equal', number: 0 });
        else if (headers['if-none-match']) throw new HttpError(400, 'bad_request', 'If-None-Match supports only *');
        const r = await this.write({ compare, success: [{ type: 'put', key, value: body }], failure: [] });
        if (!r.succeeded) throw new HttpError(412, 'precondition_failed', 'the key does not match the precondition');
        return json({ revision: r.revision });
      }
      case 'get': {
        checkQueryNames(query, ['consistency']);
        await this.readBarrier(query.get('consistency') ?? 'linearizable');
        const kv = this.store.get(key);
        if (!kv) throw new HttpError(404, 'key_not_found', 'no such key');
        return {
          status: 200,
          body: kv.value,
          headers: {
            'Content-Type': 'application/octet-stream',
            'X-Raftline-Revision': String(this.store.revision),
            'X-Raftline-Mod-Revision': String(kv.modRevision),
            ETag: `"${kv.modRevision}"`,
          },
        };
      }
      case 'delete': {
        checkQueryNames(query, []);
        if (headers['if-none-match']) throw new HttpError(400, 'bad_request', 'If-None-Match has no meaning for a delete (there is nothing to delete when the key is absent)');
        const compare: Compare[] = headers['if-match'] ? [ifMatch(key, headers['if-match'])] : [];
        const r = await this.write({ compare, success: [{ type: 'delete', key }], failure: [] });
        if (!r.succeeded) throw new HttpError(412, 'precondition_failed', 'the key does not match the precondition');
        const deleted = r.responses[0]?.type === 'delete' ? r.responses[0].deleted : 0;
        return json({ revision: r.revision, deleted });
      }
      default:
        throw methodNotAllowed(method, '/v1/kv/{key}', ['GET', 'PUT', 'DELETE']);
    }
  }

  private async v1List(method: string, rawQuery: string): Promise<Reply> {
    if (method !== 'get') throw methodNotAllowed(method, '/v1/kv', ['GET']);
    const query = parseQuery(rawQuery);
    checkQueryNames(query, ['prefix', 'limit', 'consistency', 'encoding']);
    const prefix = Buffer.from(query.get('prefix') ?? '');
    this.checkKey(prefix, true);
    const limit = int(query.get('limit'), 'limit');
    const encoding = query.get('encoding') ?? 'text';
    if (encoding !== 'text' && encoding !== 'base64') throw new HttpError(400, 'bad_request', 'encoding must be text or base64');
    await this.readBarrier(query.get('consistency') ?? 'linearizable');
    const r = this.store.range({ type: 'range', key: prefix.length ? prefix : Buffer.from('\0'), rangeEnd: prefixEnd(prefix), limit });
    return this.jsonAnswer({
        revision: this.store.revision,
        count: r.count,
        more: r.more,
        kvs: new Rows(r.kvs, (kv) => ({
          ...v1KeyValue(kv, encoding === 'base64'),
          createRevision: kv.createRevision,
          modRevision: kv.modRevision,
          version: kv.version,
        })),
      });
  }

  /** The node as JSON: role, term, leader, commit and applied index, configuration, and on the leader each follower's progress. */
  private async status(method: string): Promise<Reply> {
    if (method !== 'get') throw methodNotAllowed(method, '/status', ['GET']);
    const s = this.node.status();
    const storageError = this.backend.storageError;
    const t = this.opts.peerTransport();
    const reply = json({
      id: s.id,
      // A stopped node's last role would be stale: clients looking for the leader must not pick it.
      role: storageError ? 'stopped' : s.role,
      term: s.term,
      leader: storageError ? null : s.leader,
      storage: storageError ? { ok: false, error: storageError } : { ok: true },
      commitIndex: s.commit,
      appliedIndex: s.appliedIndex,
      lastIndex: s.lastIndex,
      firstIndex: s.firstIndex,
      revision: this.store.revision,
      keys: this.store.size,
      configuration: s.configuration,
      snapshot: s.snapshot ? { index: s.snapshot.index, term: s.snapshot.term } : null,
      followers: s.peers,
      writes: { count: this.writeCount, sumMs: this.writeSumMs },
      // raftline/client refuses larger requests itself: the connection would be closed on them.
      limits: { maxRequestBytes: this.maxBodyBytes, maxKeyBytes: this.maxKeyBytes, maxValueBytes: this.maxValueBytes },
      peerTransport: { peers: t.peers, framesReceived: t.framesReceived, messagesReceived: t.messagesReceived, receiverAbsentDropped: t.receiverAbsentDropped, rejected: t.rejected },
    });
    // The status page, served by any member, reads every member's status.
    reply.headers['Access-Control-Allow-Origin'] = '*';
    return reply;
  }

  /** Members as the replicated configuration and metadata know them: what the status page starts from. */
  private async cluster(method: string): Promise<Reply> {
    if (method !== 'get') throw methodNotAllowed(method, '/v1/cluster', ['GET']);
    const s = this.node.status();
    return json({ self: s.id, leader: s.leader, term: s.term, configuration: s.configuration, members: this.members() });
  }

  /**
   * Membership and maintenance (what `raftline ctl` calls). Changes run on
   * the leader (elsewhere: 503 with its id); `snapshot` and `reset-peers`
   * act on this node.
   */
  private async admin(method: string, url: string, body: Buffer): Promise<Reply> {
    const op = url.slice('/v1/admin/'.length);
    if (op === 'members') {
      if (method !== 'get') throw methodNotAllowed(method, '/v1/admin/members', ['GET']);
      const s = this.node.status();
      return json({ leader: s.leader, term: s.term, ...s.configuration, members: this.members() });
    }
    if (!ADMIN_OPS.includes(op)) throw new HttpError(404, 'not_found', `no admin operation ${op}`);
    if (method !== 'post') throw methodNotAllowed(method, `/v1/admin/${op}`, ['POST']);
    this.requireStorage();
    const req = jsonObject(body);
    const id = (field: string): string => {
      const v = req[field];
      if (typeof v !== 'string' || !NODE_ID.test(v)) throw new HttpError(400, 'bad_request', `${field} must be a node id`);
      return v;
    };
    const ids = (field: string): string[] => {
      const v = req[field];
      if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'string' || !NODE_ID.test(x))) throw new HttpError(400, 'bad_request', `${field} must be a non-empty array of node ids`);
      if (new Set(v).size !== v.length) throw new HttpError(400, 'bad_request', `${field} names a node more than once`);
      return v as string[];
    };
    const address = (): string => {
      const v = req.address;
      // The rule every member's transport applies to the address once recorded.
      if (typeof v !== 'string' || !isPeerAddress(v)) throw new HttpError(400, 'bad_request', 'address must be HOST:PORT (an IPv6 host in brackets), the port 1-65535');
      return v;
    };
    const setAddress = (member: string, peerAddress: string) =>
      this.write({ compare: [], success: [{ type: 'member', key: Buffer.from(member), address: peerAddress && encodeMemberInfo({ peer: peerAddress }) }], failure: [] });
    try {
      switch (op) {
        case 'add-peer':
        case 'add-learner': {
          const member = id('id');
          const peerAddress = address();
          await setAddress(member, peerAddress);
          await (op === 'add-peer' ? this.node.addPeer(member) : this.node.addLearner(member));
          // A leader elected between the two forgets addresses of non-members (RaftlineServer.forgetDeparted).
          if (this.members()[member]?.peer !== peerAddress) await setAddress(member, peerAddress);
          break;
        }
        case 'promote':
          await this.node.promoteLearner(id('id'));
          break;
        case 'remove-peer': {
          const member = id('id');
          const s = this.node.status();
          await (s.configuration.learners.includes(member) ? this.node.removeLearner(member) : this.node.removePeer(member));
          await setAddress(member, '').catch(() => undefined);
          break;
        }
        case 'change-peers': {
          const voters = ids('voters');
          const { configuration } = this.node.status();
          const strangers = voters.filter((v) => !configuration.voters.includes(v) && !configuration.learners.includes(v));
          // The leader would wait forever for a quorum that counts members it cannot reach.
          if (strangers.length > 0) throw new HttpError(409, 'invalid_change', `${strangers.join(', ')}: not a member; add it first (add-peer or add-learner)`);
          await this.node.changePeers(voters);
          // As remove-peer does: every member would go on dialling the ones removed.
          for (const removed of configuration.voters.filter((v) => !voters.includes(v))) await setAddress(removed, '').catch(() => undefined);
          break;
        }
        case 'transfer-leader': {
          const to = id('to');
          this.node.transferLeadership(to);
          const deadlineMs = Date.now() + TRANSFER_WAIT_MS;
          while (this.node.status().leader !== to) {
            if (Date.now() > deadlineMs) throw new HttpError(504, 'timeout', `leadership did not move to ${to} within ${TRANSFER_WAIT_MS} ms`);
            await new Promise((r) => setTimeout(r, 20));
          }
          break;
        }
        case 'snapshot': {
          const meta = await this.node.snapshot();
          return json({ index: meta.index, term: meta.term });
        }
        case 'reset-peers':
          await this.node.resetPeers(ids('voters'));
          break;
      }
    } catch (err) {
      // Membership changes are log entries that may still commit; a snapshot or a transfer is not a write.
      throw this.answerFor(err, op !== 'snapshot' && op !== 'transfer-leader');
    }
    const s = this.node.status();
    return json({ ok: true, leader: s.leader, term: s.term, ...s.configuration });
  }

  /** What is recorded about each member (peer address, client URL). */
  private members(): Record<string, MemberInfo> {
    const out: Record<string, MemberInfo> = {};
    for (const [id, text] of Object.entries(this.store.addresses)) {
      const info = parseMemberInfo(text);
      if (info) out[id] = info;
    }
    return out;
  }

  private async metrics(method: string): Promise<Reply> {
    if (method !== 'get') throw methodNotAllowed(method, '/metrics', ['GET']);
    const registry = this.opts.metrics.registry;
    return { status: 200, body: await registry.metrics(), headers: { 'Content-Type': registry.contentType } };
  }

  // ------------------------------------------------------------------ /v3

  private async v3(method: string, url: string, body: Buffer): Promise<Reply> {
    if (method !== 'post') throw methodNotAllowed(method, url, ['POST']);
    const req = jsonObject(body);
    switch (url) {
      case '/v3/kv/put':
      case '/v3/kv/deleterange': {
        const op = url === '/v3/kv/put' ? this.v3Put(req) : this.v3Delete(req);
        const r = await this.write({ compare: [], success: [op], failure: [] });
        return this.jsonAnswer({ header: this.header(r.revision), ...this.v3Response(r.responses[0]) }, r);
      }
      case '/v3/kv/range': {
        const op = this.v3Range(req);
        await this.readBarrier(bool(req.serializable, 'serializable') ? 'stale' : 'linearizable');
        const header = this.header(this.store.revision);
        return this.jsonAnswer({ header, ...this.v3Response(this.store.range(op)) });
      }
      case '/v3/kv/txn': {
        const txn = this.v3Txn(req);
        const r = await this.write(txn);
        const out: Record<string, unknown> = { header: this.header(r.revision) };
        if (r.succeeded) out.succeeded = true;
        // etcd gives each operation inside a transaction a header with the
        // revision as of that operation: its writes all take the one
        // revision after the store's, so a range before the first change
        // reads the revision before.
        const changes = (resp: OperationResult) => resp.type === 'put' || (resp.type === 'delete' && resp.deleted > 0);
        let revision = r.responses.some(changes) ? r.revision - 1 : r.revision;
        const responses = r.responses.map((resp) => {
          if (changes(resp)) revision = r.revision;
          const name = resp.type === 'put' ? 'response_put' : resp.type === 'delete' ? 'response_delete_range' : 'response_range';
          return { [name]: { header: { revision: String(revision) }, ...this.v3Response(resp) } };
        });
        if (responses.length) out.responses = responses;
        return this.jsonAnswer(out, r);
      }
      default:
        throw new HttpError(404, 'not_found', `no route ${url}`);
    }
  }

  private v3Put(request: Record<string, unknown>): Operation {
    const req = etcdFields(request);
    refuseUnsupported(req, UNSUPPORTED_PUT_FIELDS);
    const key = base64(req.key, 'key', true)!;
    const value = base64(req.value, 'value', false) ?? Buffer.alloc(0);
    this.checkKey(key);
    this.checkValue(value);
    return { type: 'put', key, value, prevKv: bool(req.prev_kv, 'prev_kv') };
  }

  private v3Range(request: Record<string, unknown>): Extract<Operation, { type: 'range' }> {
    const req = etcdFields(request);
    refuseUnsupported(req, UNSUPPORTED_RANGE_FIELDS);
    const key = base64(req.key, 'key', true)!;
    this.checkKey(key);
    return {
      type: 'range',
      key,
      rangeEnd: base64(req.range_end, 'range_end', false),
      limit: int(req.limit, 'limit'),
      countOnly: bool(req.count_only, 'count_only'),
      keysOnly: bool(req.keys_only, 'keys_only'),
    };
  }

  private v3Delete(request: Record<string, unknown>): Operation {
    const req = etcdFields(request);
    const key = base64(req.key, 'key', true)!;
    this.checkKey(key);
    return { type: 'delete', key, rangeEnd: base64(req.range_end, 'range_end', false), prevKv: bool(req.prev_kv, 'prev_kv') };
  }

  private v3Txn(req: Record<string, unknown>): Txn {
    const list = (v: unknown, field: string): Record<string, unknown>[] => {
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'object' || x === null)) throw new HttpError(400, 'bad_request', `${field} must be an array of objects`);
      return v as Record<string, unknown>[];
    };
    const compare = list(req.compare, 'compare').map(etcdFields).map((c): Compare => {
      // A Map: a name such as "constructor" is no target, where an object's prototype would give one.
      const target = TARGETS.get(String(c.target ?? 'VERSION'));
      const result = RESULTS.get(String(c.result ?? 'EQUAL'));
      if (!target) throw new HttpError(400, 'bad_request', `compare.target must be one of ${[...TARGETS.keys()].join(', ')}`);
      if (!result) throw new HttpError(400, 'bad_request', `compare.result must be one of ${[...RESULTS.keys()].join(', ')}`);
      const key = base64(c.key, 'compare.key', true)!;
      this.checkKey(key);
      const rangeEnd = base64(c.range_end, 'compare.range_end', false);
      if (target === 'value') return { key, rangeEnd, target, result, value: base64(c.value, 'compare.value', false) ?? Buffer.alloc(0) };
      const field = target === 'version' ? 'version' : target === 'create' ? 'create_revision' : 'mod_revision';
      return { key, rangeEnd, target, result, number: int(c[field], `compare.${field}`) };
    });
    const ops = (field: string) =>
      list(req[field], field).map(etcdFields).map((o): Operation => {
        if (o.request_put && typeof o.request_put === 'object') return this.v3Put(o.request_put as Record<string, unknown>);
        if (o.request_range && typeof o.request_range === 'object') return this.v3Range(o.request_range as Record<string, unknown>);
        if (o.request_delete_range && typeof o.request_delete_range === 'object') return this.v3Delete(o.request_delete_range as Record<string, unknown>);
        throw new HttpError(400, 'bad_request', `each ${field} operation needs request_put, request_range or request_delete_range`);
      });
    const txn = { compare, success: ops('success'), failure: ops('failure') };
    checkTxnSize(txn);
    checkWritesApart(txn.success);
    checkWritesApart(txn.failure);
    return txn;
  }

  /** etcd 3.4's JSON for one operation's result (int64 as strings, zero values omitted), its key-value lists as Rows for jsonInTurns. */
  private v3Response(r: OperationResult | undefined): Record<string, unknown> {
    if (!r) return {};
    switch (r.type) {
      case 'put':
        return r.prevKv ? { prev_kv: etcdKv(r.prevKv) } : {};
      case 'delete': {
        const out: Record<string, unknown> = {};
        if (r.deleted) out.deleted = String(r.deleted);
        if (r.prevKvs?.length) out.prev_kvs = new Rows(r.prevKvs, etcdKv);
        return out;
      }
      case 'range': {
        const out: Record<string, unknown> = {};
        if (r.kvs.length) out.kvs = new Rows(r.kvs, etcdKv);
        if (r.more) out.more = true;
        if (r.count) out.count = String(r.count);
        return out;
      }
      case 'member':
        return {};
    }
  }

  private header(revision: number): Record<string, string> {
    return { cluster_id: this.opts.clusterId, member_id: this.opts.memberId, revision: String(revision), raft_term: String(this.node.term) };
  }

  // ---------------------------------------------------- binary protocol

  /**
   * Queues an answer. The answers settled by one burst of work (one apply
   * batch, say) leave together once its promise chains have run, as few
   * frames as fit: a pipelining client costs one write per burst rather than
   * one per request, and no answer waits for another event-loop turn.
   */
  private reply(ws: WebSocket<ClientSocketData>, response: Uint8Array): void {
    const data = ws.getUserData();
    if (data.closed) return;
    data.replies.push(response);
    data.repliesBytes += response.byteLength;
    // Counted as each answer is built, not once the burst is over: a burst
    // of reads of large values would otherwise all be built first.
    if (this.unreadPastLimit(ws, data)) this.closeClient(ws, `more than ${this.maxUnreadAnswerBytes} bytes of answers unread`);
    else if (data.replies.length === 1) process.nextTick(() => this.sendReplies(ws));
  }

  /**
   * Works on at most MAX_CLIENT_REQUESTS_IN_FLIGHT of a connection's requests
   * at a time; the rest wait, in order, for answers to leave room.
   */
  private startClientRequest(ws: WebSocket<ClientSocketData>, request: Uint8Array): void {
    const data = ws.getUserData();
    data.inFlight++;
    let reservedBytes = 0;
    // Answers are built in one burst when many requests settle together (a
    // read barrier releasing a frame of reads of large values): each one's
    // bytes are reserved before it is built, so the connection is refused at
    // its limit instead of after the whole burst is built.
    const reserve = (bytes: number): boolean => {
      if (data.closed) return false;
      reservedBytes += bytes;
      data.reservedBytes += bytes;
      if (!this.unreadPastLimit(ws, data)) return true;
      this.closeClient(ws, `more than ${this.maxUnreadAnswerBytes} bytes of answers unread`);
      return false;
    };
    void this.clientRequest(request, reserve).then((response) => {
      data.inFlight--;
      data.reservedBytes -= reservedBytes;
      if (response) this.reply(ws, response);
      while (!data.closed && data.inFlight < MAX_CLIENT_REQUESTS_IN_FLIGHT && data.waiting.length > 0) {
        const next = data.waiting.shift()!;
        data.waitingBytes -= next.byteLength;
        this.startClientRequest(ws, next);
      }
    });
  }

  /**
   * Whether a connection's answers, built or being built, pass what may wait
   * unread; what uWS's send buffer takes at once does not wait in the server.
   */
  private unreadPastLimit(ws: WebSocket<ClientSocketData>, data: ClientSocketData): boolean {
    const bufferRoom = Math.max(0, REPLY_BUFFER_BYTES - ws.getBufferedAmount());
    return data.reservedBytes + data.repliesBytes + data.unsentBytes > this.maxUnreadAnswerBytes + bufferRoom;
  }

  /** A client that asks for far more than it reads: it learns why, and its retries go elsewhere or later. */
  private closeClient(ws: WebSocket<ClientSocketData>, reason: string): void {
    const data = ws.getUserData();
    // ws.end runs the close handler at once; a closed uWS socket throws on any further use.
    if (data.closed) return;
    data.closed = true;
    data.replies = [];
    data.repliesBytes = 0;
    data.unsent = [];
    data.unsentBytes = 0;
    data.waiting = [];
    data.waitingBytes = 0;
    ws.end(1008, reason);
  }

  private sendReplies(ws: WebSocket<ClientSocketData>): void {
    const data = ws.getUserData();
    const replies = data.replies;
    data.replies = [];
    data.repliesBytes = 0;
    if (data.closed) return;
    for (let start = 0; start < replies.length; ) {
      const end = frameEnd(replies, start);
      const reply = replies[start];
      // An answer too long to share a frame is not copied behind its length
      // prefix: the two go out as fragments of one message.
      const parts = end === start + 1 && reply.byteLength > FRAME_TARGET_BYTES ? [lengthPrefix(reply.byteLength), reply] : [packFrame(replies, start, end)];
      const bytes = parts.reduce((sum, part) => sum + part.byteLength, 0);
      data.unsent.push({ parts, bytes, sentBytes: 0 });
      data.unsentBytes += bytes;
      start = end;
    }
    this.sendUnsent(ws);
  }

  /**
   * Hands queued answer messages to uWS while its send buffer is below
   * REPLY_BUFFER_BYTES; the rest wait for `drain`. uWS would silently drop a
   * message sent past maxBackpressure, leaving its requests unanswered. A
   * long message goes a fragment at a time: given whole, uWS would copy what
   * the socket does not take at once (most of a 90 MB answer) in one piece.
   */
  private sendUnsent(ws: WebSocket<ClientSocketData>): void {
    const data = ws.getUserData();
    if (data.closed) return;
    ws.cork(() => {
      while (data.unsent.length > 0 && ws.getBufferedAmount() < REPLY_BUFFER_BYTES) {
        const message = data.unsent[0];
        if (message.parts.length === 1) {
          data.unsent.shift();
          data.unsentBytes -= message.bytes;
          ws.send(message.parts[0], true);
          continue;
        }
        const piece = nextFragment(message);
        const first = message.sentBytes === 0;
        message.sentBytes += piece.byteLength;
        data.unsentBytes -= piece.byteLength;
        if (first) ws.sendFirstFragment(piece, true);
        else if (message.sentBytes < message.bytes) ws.sendFragment(piece);
        else ws.sendLastFragment(piece);
        if (message.sentBytes === message.bytes) data.unsent.shift();
      }
    });
  }

  private clientAnswer(id: number, route: string, status: number, fields: Partial<ClientResponse>): Uint8Array {
    const response = this.clientResponse(id, fields);
    return this.withinAnswerLimit(route, status, response, encodeResponse(response));
  }

  /**
   * clientAnswer for results that may list many key-values, encoded over
   * several turns. They were taken at the read or the write: stored
   * key-values are never modified, so writes applied meanwhile do not show.
   */
  private async clientAnswerInTurns(id: number, route: string, fields: Partial<ClientResponse>, resultsDropped = false): Promise<Uint8Array> {
    const response = this.clientResponse(id, fields);
    const encoded = resultsDropped ? null : await encodeResponseInTurns(response, this.maxUnreadAnswerBytes - LENGTH_PREFIX_BYTES);
    return this.withinAnswerLimit(route, 200, response, encoded);
  }

  /**
   * `encoded`, the encoding of `response`, or an error in its place when its
   * frame is more than the connection may hold unread: sent, it would close
   * the connection, and the client would ask again on the next. A write's
   * error says that it applied.
   */
  private withinAnswerLimit(route: string, status: number, response: ClientResponse, encoded: Uint8Array | null): Uint8Array {
    const bytes = encoded && LENGTH_PREFIX_BYTES + encoded.byteLength;
    if (bytes !== null && bytes <= this.maxUnreadAnswerBytes) {
      this.opts.metrics.request(route, status);
      return encoded!;
    }
    this.opts.metrics.request(route, 413);
    const { code, message } = this.tooLarge(bytes, route === 'ws:write' ? response : undefined);
    return encodeResponse({ ...response, errorCode: code, error: message, results: [], ...(code === 'too_large' ? { succeeded: false } : {}) });
  }

  /**
   * Why an answer of `bytes` (null: more than the limit, given up while it
   * was built) is not sent: too_large for a read; for `applied`, a write's
   * result, results_too_large, saying that it applied.
   */
  private tooLarge(bytes: number | null, applied: { revision: number; succeeded: boolean } | undefined): { code: string; message: string } {
    const limit = `${bytes === null ? '' : `${bytes} bytes, `}more than the ${this.maxUnreadAnswerBytes} sent in one answer`;
    if (applied) {
      return {
        code: 'results_too_large',
        message: `the write was applied (revision ${applied.revision}, succeeded ${applied.succeeded}), but its results are ${limit}, and are not sent: ask for fewer key-values in them (previous key-values or ranges over fewer keys)`,
      };
    }
    return { code: 'too_large', message: `the answer is ${limit}: ask for less (a limit, keys only, or a smaller range)` };
  }

  /** `value` as a JSON answer, unless it is longer than a client may leave unread: then a 413 (see tooLarge). */
  private async jsonAnswer(value: unknown, applied?: Pick<TxnResult, 'revision' | 'succeeded' | 'resultsDropped'>): Promise<Reply> {
    const built = applied?.resultsDropped ? null : await jsonInTurns(value, this.maxUnreadAnswerBytes).catch((err: unknown) => {
      if (err instanceof AnswerTooLargeError) return null;
      throw err;
    });
    if (built !== null) return jsonBody(built);
    const { code, message } = this.tooLarge(null, applied);
    throw new HttpError(413, code, message);
  }

  private clientResponse(id: number, fields: Partial<ClientResponse>): ClientResponse {
    return { id, errorCode: '', error: '', leader: null, revision: this.store.revision, succeeded: true, duplicate: false, results: [], session: '', ...fields };
  }

  /**
   * The answer to one binary-protocol request (errors included; it never
   * throws), or null when `reserve` refused the bytes of its results (the
   * connection is closed). An answer over the limit alone reserves nothing:
   * it becomes a too_large error.
   */
  private async clientRequest(bytes: Uint8Array, reserve: (bytes: number) => boolean): Promise<Uint8Array | null> {
    const reserveResults = (results: readonly OperationResult[]): boolean => {
      const resultsBytes = resultsAnswerBytes(results);
      return reserve(resultsBytes > this.maxUnreadAnswerBytes ? 0 : resultsBytes);
    };
    let id = 0;
    let route = 'ws:malformed';
    const answer = (fields: Partial<ClientResponse>, status = 200): Uint8Array => this.clientAnswer(id, route, status, fields);
    try {
      let req;
      try {
        req = decodeRequest(bytes);
      } catch (err) {
        // Answered under the request's id when it could be read, so the client can match the error.
        if (err instanceof ClientFrameError) id = err.requestId;
        throw err;
      }
      id = req.id;
      route = req.command ? 'ws:write' : 'ws:read';
      if (req.command && isSessionRegistration(req.command)) {
        route = 'ws:register';
        const r = await this.propose(req.command);
        return answer({ revision: r.revision, session: r.session ?? '' });
      }
      if (req.command) {
        let command;
        try {
          command = decodeCommand(req.command);
        } catch (err) {
          throw new HttpError(400, 'bad_request', (err as Error).message);
        }
        // Every member keeps a session's id for as long as it remembers the session (up to MAX_SESSIONS).
        if (Buffer.byteLength(command.clientId) > MAX_CLIENT_ID_BYTES) throw new HttpError(400, 'bad_request', `a client id may have ${MAX_CLIENT_ID_BYTES} bytes at most`);
        checkTxnSize(command.txn);
        for (const op of [...command.txn.success, ...command.txn.failure]) {
          if (op.type === 'member') throw new HttpError(400, 'bad_request', 'member operations go through the admin API');
          this.checkKey(op.key);
          if (op.type === 'put') this.checkValue(op.value);
        }
        const r = await this.propose(req.command);
        if (!reserveResults(r.responses)) return null;
        const fields = { revision: r.revision, succeeded: r.succeeded, duplicate: r.duplicate === true, results: r.responses.map(toClientResult) };
        return await this.clientAnswerInTurns(id, route, fields, r.resultsDropped);
      }
      const read = req.read!;
      this.checkKey(read.key);
      await this.readBarrier(read.consistency === 'lease' ? 'lease' : read.consistency === 'stale' ? 'stale' : 'linearizable');
      const range = this.store.range({ type: 'range', key: read.key, rangeEnd: read.rangeEnd, limit: read.limit, keysOnly: read.keysOnly, countOnly: read.countOnly });
      if (!reserveResults([range])) return null;
      return await this.clientAnswerInTurns(id, route, { results: [toClientResult(range)] });
    } catch (err) {
      const e = err instanceof ClientFrameError ? new HttpError(400, 'bad_request', err.message) : this.answerFor(err, route === 'ws:write');
      return answer({ errorCode: e.code, error: e.message, leader: e.leader, succeeded: false }, e.status);
    }
  }

  // ------------------------------------------------------------ plumbing

  private write(txn: Txn): Promise<TxnResult> {
    return this.propose(encodeCommand({ clientId: '', sequence: 0, txn }));
  }

  private async propose(command: Uint8Array): Promise<TxnResult> {
    this.requireStorage();
    const started = performance.now();
    try {
      const r = (await this.node.apply(command, { forward: true })) as TxnResult;
      const elapsedMs = performance.now() - started;
      this.opts.metrics.write(elapsedMs / 1000);
      this.writeCount++;
      this.writeSumMs += elapsedMs;
      if (r.error === 'staleSequence') {
        throw new HttpError(
          409,
          'sequence_too_old',
          'this write is older than the last 1024 its client made: the cluster no longer remembers whether it was applied, so it was not applied now (it may have been before)',
        );
      }
      if (r.undecodable !== undefined) {
        throw new HttpError(500, 'not_applied', `the leader's state machine could not decode the command, so it was not applied (${r.undecodable}); are the members on different versions?`);
      }
      if (r.error === 'unknownSession') {
        throw new HttpError(
          409,
          'session_expired',
          "the cluster does not know this write's client session (it forgets the least recently active beyond 100,000, and knows only registered ones): it was not applied now (it may have been before); register a new session",
        );
      }
      return r;
    } catch (err) {
      throw this.answerFor(err, true);
    }
  }

  private async readBarrier(consistency: string): Promise<void> {
    this.requireStorage();
    if (consistency === 'stale') return;
    if (consistency !== 'linearizable' && consistency !== 'lease') throw new HttpError(400, 'bad_request', 'consistency must be linearizable, lease or stale');
    try {
      await this.node.readBarrier({ mode: consistency === 'lease' ? 'lease' : 'readIndex' });
    } catch (err) {
      throw this.answerFor(err);
    }
  }

  private checkKey(key: Uint8Array, allowEmpty = false): void {
    if (!allowEmpty && key.length === 0) throw new HttpError(400, 'bad_request', 'the key is empty');
    if (key.length > this.maxKeyBytes) throw new HttpError(413, 'key_too_large', `the key is ${key.length} bytes; the limit is ${this.maxKeyBytes}`);
  }

  private checkValue(value: Uint8Array): void {
    if (value.length > this.maxValueBytes) throw new HttpError(413, 'value_too_large', `the value is ${value.length} bytes; the limit is ${this.maxValueBytes}`);
  }

  /**
   * Reads what uWS only lends during the call (method, URL, headers), then
   * the body, runs `route`, and answers once — unless the client went away.
   */
  private handle(
    res: HttpResponse,
    req: HttpRequest,
    /** The metrics label: the route's pattern, never the raw URL. */
    routeName: string,
    route: (method: string, url: string, query: string, headers: Record<string, string>, body: Buffer) => Promise<Reply>,
    headerNames: string[] = [],
  ): void {
    const errorShape = routeName.startsWith('/v3/') ? 'etcd' : 'raftline';
    const refusal = PUBLIC_ROUTES.has(routeName) ? null : this.unauthorized(req);
    if (refusal) {
      const refused = errorReply(refusal, errorShape);
      // The status page reads other members' /status across origins: it must see the 401 to say why.
      if (routeName === '/status') refused.headers['Access-Control-Allow-Origin'] = '*';
      // The body is never read: uWS skips it, so it cannot pass for a next request.
      this.respond(res, routeName, refused);
      return;
    }
    const method = req.getMethod();
    const url = req.getUrl();
    const query = req.getQuery() ?? '';
    const headers: Record<string, string> = {};
    for (const name of headerNames) headers[name] = req.getHeader(name);
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const send = (reply: Reply) => this.respond(res, routeName, reply, aborted);
    const fail = (err: unknown) => send(errorReply(this.answerFor(err), errorShape));
    const parts: Buffer[] = [];
    let bytes = 0;
    res.onData((chunk, isLast) => {
      if (bytes < 0) return;
      bytes += chunk.byteLength;
      if (bytes > this.maxBodyBytes) {
        bytes = -1;
        fail(new HttpError(413, 'body_too_large', `the body exceeds ${this.maxBodyBytes} bytes`));
        return;
      }
      // uWS reuses the chunk's memory after this call.
      parts.push(Buffer.from(new Uint8Array(chunk)));
      // Most bodies come in one chunk: no second copy to join them.
      if (isLast) route(method, url, query, headers, parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes)).then(send, fail);
    });
  }

  /** The 401 error for a request without the client token (when this server has one), or null. */
  private unauthorized(req: HttpRequest): HttpError | null {
    const refusal = this.tokenCheck?.refusal(req.getHeader('authorization')) ?? null;
    return refusal === null ? null : new HttpError(401, 'unauthorized', refusal);
  }

  /** Counts the answer and writes it, unless the client went away. */
  private respond(res: HttpResponse, routeName: string, reply: Reply, aborted = false): void {
    this.opts.metrics.request(routeName, reply.status);
    if (aborted) return;
    const body = reply.body;
    const parts = typeof body === 'string' ? null : body instanceof Uint8Array ? (body.byteLength <= STREAMED_BODY_BYTES ? null : [body]) : body;
    const totalBytes = parts?.reduce((bytes, part) => bytes + part.byteLength, 0) ?? 0;
    let done = true;
    res.cork(() => {
      res.writeStatus(STATUS_TEXT[reply.status] ?? `${reply.status} Error`);
      for (const [k, v] of Object.entries(reply.headers)) res.writeHeader(k, v);
      if (parts) done = tryEndParts(res, parts, totalBytes)[1];
      else res.end(body as string | Uint8Array);
    });
    // end() copies what the socket does not take at once into uWS's own
    // buffer: 300 ms of the event loop for a 134 MB range answer. tryEnd
    // leaves the rest here, and it goes out as the client reads.
    if (!done) res.onWritable(() => tryEndParts(res, parts!, totalBytes)[0]);
  }
}

/** The status page and the charting library it uses, read once. */
function statusPage(): { html: string; uplotJs: Buffer; uplotCss: Buffer } {
  const require = createRequire(import.meta.url);
  const uplotDir = path.join(path.dirname(require.resolve('uplot/package.json')), 'dist');
  // Compiled to dist/src/server/; the page ships in src/server/page/.
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  return {
    html: readFileSync(path.join(root, 'src', 'server', 'page', 'index.html'), 'utf8'),
    uplotJs: readFileSync(path.join(uplotDir, 'uPlot.iife.min.js')),
    uplotCss: readFileSync(path.join(uplotDir, 'uPlot.min.css')),
  };
}

interface ClientSocketData {
  closed: boolean;
  /** Answers waiting for the current burst of work to finish, and their bytes. */
  replies: Uint8Array[];
  repliesBytes: number;
  /** Bytes of answers being built (see startClientRequest). */
  reservedBytes: number;
  /** Requests being worked on; those beyond MAX_CLIENT_REQUESTS_IN_FLIGHT wait, and their bytes. */
  inFlight: number;
  waiting: Uint8Array[];
  waitingBytes: number;
  /** Answer messages waiting for uWS's send buffer to drain, and their bytes not yet sent. */
  unsent: UnsentMessage[];
  unsentBytes: number;
}

/** A WebSocket message of answers: its parts, in order, and how many of its bytes are sent (as fragments, when there are several parts). */
interface UnsentMessage {
  parts: Uint8Array[];
  bytes: number;
  sentBytes: number;
}

/** The next fragment of `message`: the rest of the part its sending stands in, at most FRAME_TARGET_BYTES of it. */
function nextFragment(message: UnsentMessage): Uint8Array {
  const rest = restOfPart(message.parts, message.sentBytes);
  if (!rest) throw new Error('nextFragment: the message is sent');
  return rest.subarray(0, FRAME_TARGET_BYTES);
}

/** What is left from byte `offset` (of `parts` taken as one) to the end of the part holding it; null past the end. */
function restOfPart(parts: readonly Uint8Array[], offset: number): Uint8Array | null {
  let start = 0;
  for (const part of parts) {
    const end = start + part.byteLength;
    if (offset < end) return part.subarray(offset - start);
    start = end;
  }
  return null;
}

function lengthPrefix(bytes: number): Buffer {
  const prefix = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES);
  prefix.writeUInt32LE(bytes);
  return prefix;
}

/** An HTTP answer larger than this is written as the client reads it (HttpApi.respond). */
const STREAMED_BODY_BYTES = 1 << 20;

/**
 * uWS's tryEnd over a body in parts, from where the response's writing
 * stands: [ok, responded] as tryEnd gave them for the last part tried. It
 * stops at a part the socket did not take whole; onWritable goes on from there.
 */
function tryEndParts(res: HttpResponse, parts: readonly Uint8Array[], totalBytes: number): [boolean, boolean] {
  // One try per part at most: a part taken whole moves the write offset to the next.
  for (let tries = 0; tries < parts.length; tries++) {
    const rest = restOfPart(parts, res.getWriteOffset());
    if (!rest) break;
    const [ok, responded] = res.tryEnd(rest, totalBytes);
    if (!ok || responded) return [ok, responded];
  }
  return [true, true];
}

/** Answer bytes a client connection may hold in uWS's send buffer; more wait for it to drain. */
const REPLY_BUFFER_BYTES = 16 << 20;
/**
 * Requests of one client connection worked on at once: what a client keeps
 * in flight at 256 concurrent, several times over. Each may build an answer
 * up to --max-unread-answer-bytes, so without a bound one frame of reads of
 * a large value made the server build gigabytes before it could refuse.
 */
const MAX_CLIENT_REQUESTS_IN_FLIGHT = 1024;
/** Registered sessions are named `#<index>`; longer ids come only from other clients. */
const MAX_CLIENT_ID_BYTES = 128;

function toClientResult(r: OperationResult): ClientResult {
  const base: ClientResult = { type: r.type, deleted: 0, count: 0, more: false, kvs: [], prevKvs: [] };
  switch (r.type) {
    case 'put':
      return { ...base, prevKvs: r.prevKv ? [r.prevKv] : [] };
    case 'delete':
      return { ...base, deleted: r.deleted, prevKvs: r.prevKvs ?? [] };
    case 'range':
      return { ...base, count: r.count, more: r.more, kvs: r.kvs };
    case 'member':
      return base;
  }
}

interface Reply {
  status: number;
  /** A long answer may come in parts, written one after the other (joining them would hold the event loop). */
  body: string | Uint8Array | readonly Uint8Array[];
  headers: Record<string, string>;
}

function json(value: unknown, status = 200): Reply {
  return jsonBody(JSON.stringify(value), status);
}

function jsonBody(body: string | readonly Buffer[], status = 200): Reply {
  return { status, body, headers: { 'Content-Type': 'application/json' } };
}

/** gRPC status codes for the HTTP statuses raftline answers with, paired as etcd's JSON gateway pairs them. */
const GRPC_CODES: Record<number, number> = { 400: 3, 401: 16, 404: 5, 405: 12, 409: 9, 412: 9, 413: 3, 500: 13, 503: 14, 504: 4 };
const GRPC_UNKNOWN = 2;

/**
 * An error answer. On the etcd gateway it is shaped as etcd's: `error` and
 * `message` the text and `code` the gRPC status code (what etcd clients
 * read), with raftline's own code in `reason`; elsewhere `code` is raftline's.
 */
function errorReply(err: HttpError, shape: 'raftline' | 'etcd' = 'raftline'): Reply {
  const body =
    shape === 'etcd'
      ? { error: err.message, message: err.message, code: GRPC_CODES[err.status] ?? GRPC_UNKNOWN, reason: err.code }
      : { error: err.message, code: err.code };
  const reply = json({ ...body, ...(err.leader ? { leader: err.leader } : {}) }, err.status);
  if (err.status === 503) reply.headers['Retry-After'] = '1';
  if (err.status === 401) reply.headers['WWW-Authenticate'] = 'Bearer realm="raftline"';
  if (err.allow.length > 0) reply.headers.Allow = err.allow.join(', ');
  return reply;
}

function etcdKv(kv: KeyValue): Record<string, string> {
  const out: Record<string, string> = {
    key: kv.key.toString('base64'),
    create_revision: String(kv.createRevision),
    mod_revision: String(kv.modRevision),
    version: String(kv.version),
  };
  // Read once: a stored value becomes a Buffer on each read.
  const value = kv.value;
  if (value.length) out.value = value.toString('base64');
  return out;
}

/** The smallest key after every key with `prefix` (etcd's prefix range end); "\0" (everything) for an empty prefix. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
