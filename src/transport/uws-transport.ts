// The peer transport over the network. Each process runs one uWebSockets.js
// server and receives Raft messages only on inbound connections; it sends only
// on its own outbound connections (PeerLink), one per peer process. Every
// connection is authenticated both ways before any Raft data crosses it.
// docs/transport.md describes the connection model and the byte layouts.
import type { NodeId } from '../core/index.js';
import { decodeEnvelope, DEFAULT_MAX_FRAME_BYTES, encodeEnvelope, FrameError } from './codec.js';
import { unpackFrame } from './frame.js';
import {
  encodeBye,
  encodeHello,
  encodeWelcome,
  protocolMismatch,
  HandshakeError,
  HANDSHAKE_TIMEOUT_MS,
  MAX_PEER_ID_BYTES,
  isPeerAddress,
  MAX_PROTOCOL_BYTES,
  newNonce,
  secretBytes,
  UPGRADE_PEER_ID_HEADER,
  UPGRADE_PROTOCOL_HEADER,
  UPGRADE_TOKEN_HEADER,
  verifyProof,
  verifyUpgradeToken,
} from './handshake.js';
import { DEFAULT_SILENCE_MS, PeerLink, type PeerLinkSettings, type PeerLinkStats } from './peer-link.js';
import { rateLimited, stderrSink, type LimitedLogger, type TransportLogEvent } from './peer-log.js';
import type { PeerMessage, Transport } from './transport.js';
import { listenExclusive, loadUws, type UwsApp, type UwsListenSocket } from './uws.js';

type UwsSocket = import('@trufflesuite/uws-js-unofficial').WebSocket<InboundData>;

export type { TransportLogEvent } from './peer-log.js';
export type { PeerLinkStats } from './peer-link.js';

export interface UwsTransportOptions {
  /** This process's node id: sent in the handshake and shown in logs. At most 256 bytes of UTF-8. */
  id: string;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; 0 picks a free one (read it back from `transport.port`). */
  port: number;
  /** Node id → 'host:port' of every peer this process sends to; change with `setPeer` / `removePeer`. */
  peers: Record<string, string>;
  /** Cluster secret shared by every peer, at least 16 bytes. It never crosses the wire. */
  secret: string | Uint8Array;
  /** Largest inbound frame; a larger one closes the connection. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Per peer and lane, the most bytes queued for sending; beyond it messages are dropped and counted. Default 64 MiB. */
  maxQueuedBytes?: number;
  /** Bulk messages are written only while the socket buffers less than this. Default 4 MiB. */
  highWaterBytes?: number;
  /**
   * First reconnect delay; doubles per attempt up to `reconnectMaxMs`, with
   * jitter, until a connection stays up for `reconnectMaxMs`. Defaults 50 and 2000.
   */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  /**
   * An outbound connection that hears nothing from its peer for this long
   * (it pings after a quarter of it; uWS answers) is presumed dead and
   * reconnected. Default 60000.
   */
  silenceMs?: number;
  /** Receives log events (already rate-limited: one per distinct event per second). Default: one line on stderr. */
  onLog?: (event: TransportLogEvent) => void;
  /**
   * What this process's Raft groups speak above the transport (their
   * commands, snapshots and rules), which every peer must share: processes
   * of versions that would decide differently on the same log must not form
   * a cluster. Named by each side of every connection, the caller in its
   * upgrade request and the server in its welcome; a caller speaking another
   * is refused (409), a server speaking another is left, and both sides log
   * the two. At most 256 printable ASCII characters, no spaces. Default: none.
   */
  protocol?: string;
  /**
   * What a peer that names no protocol (a build from before `protocol`
   * existed) is taken to speak. Default: none, so such peers are accepted
   * only by a transport without a protocol either.
   */
  unnamedProtocol?: string;
}

/** Why inbound data was refused. */
export interface RejectedCounts {
  /** Failed or abandoned handshakes, and data sent before authentication. */
  auth: number;
  /** Peers refused for speaking another protocol (UwsTransportOptions.protocol): callers at the upgrade, servers at their welcome. */
  protocol: number;
  /** Bad length prefixes and envelopes the codec refused. */
  malformed: number;
  /** Frames larger than `maxFrameBytes` (the connection is closed). */
  oversized: number;
  /** Well-formed messages for a group and node id never registered in this process. */
  unroutable: number;
}

export interface UwsTransportStats {
  peers: Record<string, PeerLinkStats>;
  /** Messages whose `to` is not a known peer (not counted under `peers`). */
  unknownPeerDropped: number;
  framesReceived: number;
  /** Messages delivered to a registered receiver. */
  messagesReceived: number;
  /**
   * Messages for a group member this process hosted but does not right now
   * (the node is stopping or restarting): dropped as Raft expects of a
   * network, and not input refused.
   */
  receiverAbsentDropped: number;
  bytesReceived: number;
  rejected: RejectedCounts;
}

/** The id a refused caller claims, for the log: URI-decoded when it can be, cut to MAX_PEER_ID_BYTES characters. */
function decodedPeerId(header: string): string {
  let id = header;
  try {
    id = decodeURIComponent(header);
  } catch {
    // Not URI-encoded: shown as sent.
  }
  return id.slice(0, MAX_PEER_ID_BYTES);
}

/** Inbound connections that have not finished the handshake; more are refused at once. */
const MAX_PENDING_HANDSHAKES = 256;
/** How long close() waits for peers to close their connections after a bye. */
const SHUTDOWN_GRACE_MS = 1000;

interface Inbound {
  remote: string;
  state: 'hello' | 'ready' | 'closed';
  nonceS: Buffer;
  /** Whether the caller named its protocol: only then does the welcome name ours. */
  namedProtocol: boolean;
  peerId?: string;
  timer?: NodeJS.Timeout;
  ws?: UwsSocket;
}

interface InboundData {
  conn: Inbound;
}

/**
 * Messages that carry data, and every append: an empty one (a probe, a
 * commit notice) names the last entry sent before it as its previous entry,
 * so it must not overtake appends still queued in this lane.
 */
function isBulk(m: PeerMessage): boolean {
  return m.type === 'append' || m.type === 'snapshotChunk' || m.type === 'forward';
}

/** Refuses what the peer's link could only fail to dial later. */
function checkPeerAddress(id: NodeId, address: string): void {
  if (!isPeerAddress(address)) throw new RangeError(`UwsTransport: the address of peer ${id} must be host:port with a port 1-65535, got ${JSON.stringify(address)}`);
}

const MIN_FRAME_BYTES = 16 << 10;

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`UwsTransport: ${name} must be a positive number, got ${value}`);
  return value;
}

/**
 * Raft peer transport over WebSockets: a uWebSockets.js server for inbound
 * messages and one `ws` client per peer for outbound ones, shared by every
 * Raft group of the process.
 *
 * ```ts
 * const t = await UwsTransport.listen({ id: 'n1', port: 7001, secret, peers: { n2: '10.0.0.2:7001' } });
 * const unregister = t.register('kv', 'n1', (m) => node.step(m));
 * t.send('kv', { type: 'heartbeat', from: 'n1', to: 'n2', term: 3, commit: 10, round: 1 });
 * await t.close();
 * ```
 */
export class UwsTransport implements Transport {
  private readonly receivers = new Map<string, (message: PeerMessage) => void>();
  private readonly links = new Map<string, PeerLink>();
  private readonly inbound = new Set<Inbound>();
  private readonly dirty = new Set<PeerLink>();
  private flushImmediate: NodeJS.Immediate | undefined;
  private readonly log: LimitedLogger;
  private readonly linkSettings: PeerLinkSettings;
  private readonly maxFrameBytes: number;

  get maxMessageBytes(): number {
    return this.maxFrameBytes;
  }
  private readonly secret: Buffer;
  private readonly counters = { unknownPeerDropped: 0, framesReceived: 0, messagesReceived: 0, receiverAbsentDropped: 0, bytesReceived: 0 };
  /** Every group member ever registered, to tell a restarting node's messages from misrouted ones. */
  private readonly everRegistered = new Set<string>();
  private readonly rejected: RejectedCounts = { auth: 0, protocol: 0, malformed: 0, oversized: 0, unroutable: 0 };
  private readonly protocol: string;
  private pendingHandshakes = 0;
  /** Held so the app is not collected while it serves. */
  private app: UwsApp | undefined;
  private listenSocket: UwsListenSocket | undefined;
  private closing: Promise<void> | undefined;
  private boundPort = 0;

  /** Starts listening; resolves once the port is bound, rejects if it cannot be. */
  static async listen(opts: UwsTransportOptions): Promise<UwsTransport> {
    const t = new UwsTransport(opts);
    await t.start(opts.host ?? '127.0.0.1', opts.port);
    return t;
  }

  private constructor(opts: UwsTransportOptions) {
    if (typeof opts.id !== 'string' || opts.id.length === 0 || Buffer.byteLength(opts.id) > MAX_PEER_ID_BYTES) {
      throw new RangeError(`UwsTransport: id must be a non-empty string of at most ${MAX_PEER_ID_BYTES} bytes`);
    }
    this.secret = secretBytes(opts.secret);
    this.maxFrameBytes = positive('maxFrameBytes', opts.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
    // A node keeps room in each message for the append around a command (RaftNode.apply).
    if (this.maxFrameBytes < MIN_FRAME_BYTES) throw new RangeError(`UwsTransport: maxFrameBytes must be at least ${MIN_FRAME_BYTES}, got ${this.maxFrameBytes}`);
    const reconnectInitialMs = positive('reconnectInitialMs', opts.reconnectInitialMs, 50);
    const reconnectMaxMs = Math.max(reconnectInitialMs, positive('reconnectMaxMs', opts.reconnectMaxMs, 2000));
    this.log = rateLimited(opts.onLog ?? stderrSink(opts.id));
    this.protocol = opts.protocol ?? '';
    for (const [name, protocol] of [['protocol', opts.protocol], ['unnamedProtocol', opts.unnamedProtocol]] as const) {
      // Printable ASCII without spaces: an HTTP header carries it unchanged.
      if (protocol !== undefined && (typeof protocol !== 'string' || protocol.length > MAX_PROTOCOL_BYTES || !/^[\x21-\x7e]*$/.test(protocol))) {
        throw new RangeError(`UwsTransport: ${name} must be at most ${MAX_PROTOCOL_BYTES} printable ASCII characters without spaces`);
      }
    }
    this.linkSettings = {
      selfId: opts.id,
      secret: this.secret,
      maxFrameBytes: this.maxFrameBytes,
      maxQueuedBytes: positive('maxQueuedBytes', opts.maxQueuedBytes, 64 * 1024 * 1024),
      highWaterBytes: positive('highWaterBytes', opts.highWaterBytes, 4 * 1024 * 1024),
      reconnectInitialMs,
      reconnectMaxMs,
      silenceMs: positive('silenceMs', opts.silenceMs, DEFAULT_SILENCE_MS),
      log: this.log,
      scheduleFlush: (link) => this.scheduleFlush(link),
      onAuthRejected: () => this.rejected.auth++,
      protocol: this.protocol,
      unnamedProtocol: opts.unnamedProtocol ?? '',
      onProtocolRejected: () => this.rejected.protocol++,
    };
    for (const [id, address] of Object.entries(opts.peers)) checkPeerAddress(id, address);
    this.initialPeers = { ...opts.peers };
  }

  private readonly initialPeers: Record<string, string>;

  /** The bound listen port. */
  get port(): number {
    return this.boundPort;
  }

  private async start(host: string, port: number): Promise<void> {
    const uws = loadUws();
    const app = uws.App();
    app.ws<InboundData>('/raft', {
      maxPayloadLength: this.maxFrameBytes,
      // uWS pings idle connections; the client presumes the server dead after a long silence (PeerLink).
      idleTimeout: 16,
      sendPingsAutomatically: true,
      maxBackpressure: 64 * 1024,
      compression: uws.DISABLED,
      upgrade: (res, req, context) => {
        try {
          const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
          const token = req.getHeader(UPGRADE_TOKEN_HEADER);
          if (!verifyUpgradeToken(this.secret, token, this.linkSettings.selfId)) {
            const claimedId = decodedPeerId(req.getHeader(UPGRADE_PEER_ID_HEADER));
            this.rejected.auth++;
            this.logRefused(
              'auth',
              token === ''
                ? 'refused a connection without a peer token (not a raftline peer)'
                : `wrong cluster secret, or a token meant for another member (from a process calling itself ${JSON.stringify(claimedId)})`,
              remote,
            );
            res.cork(() => res.writeStatus('401 Unauthorized').end('raftline peer port: the upgrade request lacks a valid x-raftline-peer token (wrong cluster secret, or meant for another member?)\n', true));
            return;
          }
          const theirs = req.getHeader(UPGRADE_PROTOCOL_HEADER) || this.linkSettings.unnamedProtocol;
          if (theirs !== this.protocol) {
            const caller = JSON.stringify(decodedPeerId(req.getHeader(UPGRADE_PEER_ID_HEADER)));
            this.rejected.protocol++;
            // A protocol name is at most 256 characters (see `protocol`); the caller's header may be anything.
            this.logRefused('protocol', `refused ${caller}: ${protocolMismatch(theirs.slice(0, 256), this.protocol)}`, remote);
            res.cork(() => res.writeStatus('409 Conflict').end('raftline peer port: this member speaks another protocol than the caller (its log names both)\n', true));
            return;
          }
          const conn: Inbound = { remote, state: 'hello', nonceS: newNonce(), namedProtocol: req.getHeader(UPGRADE_PROTOCOL_HEADER) !== '' };
          const data: InboundData = { conn };
          res.upgrade(data, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
        } catch (err) {
          this.internalError('upgrade', err);
          // uWS aborts the process when a handler returns without answering.
          try {
            res.cork(() => res.writeStatus('500 Internal Server Error').end('raftline peer port: internal error\n', true));
          } catch {
            res.close();
          }
        }
      },
      open: (ws) => this.guard('open', () => this.onOpen(ws)),
      message: (ws, message, isBinary) => this.guard('message', () => this.onInbound(ws, message, isBinary)),
      close: (ws, code, message) => this.guard('close', () => this.onInboundClose(ws, code, message)),
    });
    const socket = await listenExclusive(app, host, port);
    if (!socket) {
      throw new Error(`UwsTransport: cannot listen on ${host}:${port} (the port is in use or the address is not local)`);
    }
    this.app = app;
    this.listenSocket = socket;
    this.boundPort = uws.us_socket_local_port(socket as never);
    for (const [peer, addr] of Object.entries(this.initialPeers)) this.setPeer(peer, addr);
  }

  /** Adds a peer or changes its address (the connection is re-established). */
  setPeer(id: NodeId, address: string): void {
    checkPeerAddress(id, address);
    if (this.closing) return;
    const link = this.links.get(id);
    if (link?.address === address) return;
    if (link) void link.close();
    this.links.set(id, new PeerLink(id, address, this.linkSettings));
  }

  /** Forgets a peer and closes the connection to it. */
  removePeer(id: NodeId): void {
    const link = this.links.get(id);
    if (!link) return;
    this.links.delete(id);
    this.dirty.delete(link);
    void link.close();
  }

  /** Queues `message` for its `to` peer; written later in this event-loop turn. Never throws. */
  send(group: string, message: PeerMessage): void {
    const link = this.links.get(message.to);
    if (!link) {
      this.counters.unknownPeerDropped++;
      this.log({ level: 'warn', message: `unknown peer ${message.to}: message dropped` });
      return;
    }
    // Nothing is buffered for a disconnected peer, so there is no point encoding.
    if (!link.connected || this.closing) {
      link.drop();
      return;
    }
    let envelope: Uint8Array;
    try {
      envelope = encodeEnvelope(group, message);
    } catch (err) {
      link.drop();
      this.log({ level: 'warn', message: `cannot encode a ${message.type} message: ${(err as Error).message}`, peer: message.to });
      return;
    }
    link.enqueue(envelope, isBulk(message));
  }

  register(group: string, id: NodeId, receive: (message: PeerMessage) => void): () => void {
    const key = `${group}\0${id}`;
    // A second node would silently take the first one's messages.
    if (this.receivers.has(key)) throw new Error(`UwsTransport: ${id} of group ${group} is already registered here; shut that node down first`);
    this.receivers.set(key, receive);
    this.everRegistered.add(key);
    return () => {
      if (this.receivers.get(key) === receive) this.receivers.delete(key);
    };
  }

  stats(): UwsTransportStats {
    const peers: Record<string, PeerLinkStats> = {};
    for (const [id, link] of this.links) peers[id] = link.stats();
    return { peers, ...this.counters, rejected: { ...this.rejected } };
  }

  /** Closes the server, every connection and every timer. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.flushImmediate) clearImmediate(this.flushImmediate);
    this.flushImmediate = undefined;
    this.dirty.clear();
    const links = [...this.links.values()];
    this.links.clear();
    const closingLinks = Promise.all(links.map((l) => l.close()));
    const uws = loadUws();
    if (this.listenSocket) uws.us_listen_socket_close(this.listenSocket as never);
    this.listenSocket = undefined;
    // Ask authenticated peers to close first (see encodeBye), briefly.
    for (const conn of this.inbound) {
      if (conn.state === 'ready') conn.ws?.send(encodeBye(), true);
      else conn.ws?.close();
    }
    if (this.inbound.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, SHUTDOWN_GRACE_MS);
        this.allInboundClosed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.allInboundClosed = undefined;
    }
    for (const conn of [...this.inbound]) conn.ws?.close();
    if (this.app) this.app = undefined;
    await closingLinks;
  }

  private allInboundClosed: (() => void) | undefined;

  // --- outbound ---

  /**
   * One flush per event-loop turn for all peers: setImmediate runs after the
   * poll phase, so every message produced while handling a burst of inbound
   * frames (several uWS callbacks in one poll) lands in the same batch;
   * a microtask would flush after each callback and send smaller frames.
   */
  private scheduleFlush(link: PeerLink): void {
    this.dirty.add(link);
    this.flushImmediate ??= setImmediate(() => this.flushAll());
  }

  flush(): void {
    if (this.flushImmediate === undefined) return;
    clearImmediate(this.flushImmediate);
    this.flushAll();
  }

  private flushAll(): void {
    this.flushImmediate = undefined;
    const links = [...this.dirty];
    this.dirty.clear();
    for (const link of links) {
      try {
        link.flush();
      } catch (err) {
        this.internalError(`flush to ${link.peerId}`, err);
      }
    }
  }

  // --- inbound ---

  private onOpen(ws: UwsSocket): void {
    const conn = ws.getUserData().conn;
    conn.ws = ws;
    this.inbound.add(conn);
    if (this.closing) {
      // Took no handshake slot, so its close must not give one back.
      conn.state = 'closed';
      ws.close();
      return;
    }
    if (this.pendingHandshakes >= MAX_PENDING_HANDSHAKES) {
      conn.state = 'closed';
      this.reject(conn, 'auth', `more than ${MAX_PENDING_HANDSHAKES} handshakes in progress`);
      return;
    }
    this.pendingHandshakes++;
    conn.timer = setTimeout(() => {
      conn.timer = undefined;
      if (conn.state === 'hello') this.reject(conn, 'auth', `handshake did not complete within ${HANDSHAKE_TIMEOUT_MS} ms`);
    }, HANDSHAKE_TIMEOUT_MS);
    ws.send(encodeHello(conn.nonceS), true);
  }

  private onInbound(ws: UwsSocket, message: ArrayBuffer, isBinary: boolean): void {
    const conn = ws.getUserData().conn;
    if (conn.state === 'hello') return this.onProof(conn, message, isBinary);
    if (conn.state !== 'ready') return;
    this.counters.framesReceived++;
    this.counters.bytesReceived += message.byteLength;
    if (!isBinary) {
      this.rejected.malformed++;
      this.logRefused('malformed', 'dropped a text frame', conn.remote, conn.peerId);
      return;
    }
    // uWS reuses `message` once this callback returns; decoded entries and
    // chunks are views into the frame, so they need their own copy.
    const frame = new Uint8Array(message.slice(0));
    const { envelopes, error } = unpackFrame(frame);
    for (const bytes of envelopes) this.deliver(conn, bytes);
    if (error !== undefined) {
      this.rejected.malformed++;
      this.logRefused('malformed', `dropped the rest of a frame: ${error}`, conn.remote, conn.peerId);
    }
  }

  private onProof(conn: Inbound, message: ArrayBuffer, isBinary: boolean): void {
    try {
      if (!isBinary) throw new HandshakeError('text message before authentication');
      const { clientId, nonceC } = verifyProof(this.secret, new Uint8Array(message), conn.nonceS, this.linkSettings.selfId);
      this.handshakeDone(conn);
      conn.state = 'ready';
      conn.peerId = clientId;
      conn.ws!.send(encodeWelcome(this.secret, nonceC, conn.nonceS, conn.namedProtocol ? this.protocol : ''), true);
      this.log({ level: 'info', message: 'peer authenticated', peer: clientId, remote: conn.remote });
    } catch (err) {
      if (!(err instanceof HandshakeError)) throw err;
      this.reject(conn, 'auth', `authentication failed: ${err.reason}`);
    }
  }

  private handshakeDone(conn: Inbound): void {
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = undefined;
    if (conn.state === 'hello') this.pendingHandshakes--;
  }

  private deliver(conn: Inbound, bytes: Uint8Array): void {
    let group: string;
    let message: PeerMessage;
    try {
      ({ group, message } = decodeEnvelope(bytes, this.maxFrameBytes));
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      this.rejected.malformed++;
      this.logRefused('malformed', `dropped an envelope: ${err.reason}`, conn.remote, conn.peerId);
      return;
    }
    const key = `${group}\0${message.to}`;
    const receive = this.receivers.get(key);
    if (!receive && this.everRegistered.has(key)) {
      this.counters.receiverAbsentDropped++;
      return;
    }
    if (!receive) {
      this.rejected.unroutable++;
      this.logRefused('unroutable', `no receiver for group ${JSON.stringify(group)} node ${JSON.stringify(message.to)}: message dropped`, conn.remote, conn.peerId);
      return;
    }
    this.counters.messagesReceived++;
    try {
      receive(message);
    } catch (err) {
      this.internalError(`receiver of group ${JSON.stringify(group)}`, err);
    }
  }

  private onInboundClose(ws: UwsSocket, code: number, message: ArrayBuffer): void {
    const conn = ws.getUserData().conn;
    this.handshakeDone(conn);
    conn.state = 'closed';
    conn.ws = undefined;
    this.inbound.delete(conn);
    if (this.inbound.size === 0) this.allInboundClosed?.();
    // uWS closes the connection itself when a frame exceeds maxPayloadLength.
    if (code === 1006 && Buffer.from(message).toString().includes('too big')) {
      this.rejected.oversized++;
      this.logRefused('oversized', `closed the connection: a frame exceeded maxFrameBytes ${this.maxFrameBytes}`, conn.remote, conn.peerId);
    }
  }

  /** Counts, logs and closes. */
  private reject(conn: Inbound, why: keyof RejectedCounts, reason: string): void {
    this.rejected[why]++;
    this.logRefused(why, reason, conn.remote, conn.peerId);
    conn.ws?.end(4001, 'rejected');
  }

  /**
   * Logs refused input, rate-limited by why it was refused and by whom
   * (the remote address, and the peer once authenticated), never by the
   * message: its text comes in part from the sender (a claimed id, a
   * length), and each new text would otherwise be logged.
   */
  private logRefused(why: keyof RejectedCounts, message: string, remote: string, peer?: string): void {
    this.log({ level: 'warn', message, peer, remote }, `refused ${why}\0${remote}\0${peer ?? ''}`);
  }

  /** An exception escaping a uWS callback would crash the process; log it instead. */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.internalError(what, err);
    }
  }

  private internalError(what: string, err: unknown): void {
    this.log({ level: 'warn', message: `internal error in ${what}: ${(err as Error)?.stack ?? String(err)}` });
  }
}
