// The outbound half of the peer transport: one `ws` client connection to one
// peer process, which this process only ever writes Raft messages to. It
// authenticates, keeps two lanes of queued envelopes (control before bulk),
// applies backpressure to the bulk lane and reconnects with backoff.
import WebSocket from 'ws';
import { FRAME_TARGET_BYTES, frameEnd, packFrame, LENGTH_PREFIX_BYTES } from './frame.js';
import {
  decodeHello,
  encodeProof,
  HandshakeError,
  HANDSHAKE_TIMEOUT_MS,
  isBye,
  newNonce,
  UPGRADE_PEER_ID_HEADER,
  UPGRADE_PROTOCOL_HEADER,
  UPGRADE_TOKEN_HEADER,
  upgradeToken,
  protocolMismatch,
  verifyWelcome,
} from './handshake.js';
import type { TransportLogger } from './peer-log.js';
import { zeroMask } from './ws-mask.js';

/** Largest message the server may send us: handshake messages only. */
const MAX_SERVER_MESSAGE_BYTES = 1024;
/** How `ws` reports a server that answered the upgrade with 401 (its token check failed). */
const UPGRADE_REFUSED_MESSAGE = 'Unexpected server response: 401';
const PROTOCOL_REFUSED_MESSAGE = 'Unexpected server response: 409';
/** Default silence after which a connection is presumed dead (PeerLinkSettings.silenceMs). */
export const DEFAULT_SILENCE_MS = 60_000;

export interface PeerLinkSettings {
  selfId: string;
  secret: Buffer;
  maxFrameBytes: number;
  maxQueuedBytes: number;
  highWaterBytes: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  /**
   * Without anything from the server for this long (a message, a ping, or a
   * pong to the pings this link sends after a quarter of it) the connection
   * is presumed dead. The server's own pings are not enough: uWS pings only
   * connections it has received nothing on, and this link sends all the time.
   */
  silenceMs: number;
  log: TransportLogger;
  /** Asks the transport to call `flush()` once, later in this event-loop turn. */
  scheduleFlush: (link: PeerLink) => void;
  /** The server failed to prove it holds the cluster secret. */
  onAuthRejected: () => void;
  /** Named to the server with every connection, and required of it (UwsTransportOptions.protocol); empty: none. */
  protocol: string;
  /** What a server that names no protocol is taken to speak. */
  unnamedProtocol: string;
  /** The server speaks another protocol. */
  onProtocolRejected: () => void;
}

export interface PeerLinkStats {
  connected: boolean;
  framesSent: number;
  messagesSent: number;
  bytesSent: number;
  queuedBytes: number;
  dropped: number;
  reconnects: number;
}

type State = 'connecting' | 'awaitHello' | 'awaitWelcome' | 'ready' | 'waiting' | 'closed';

/** A FIFO of encoded envelopes with a byte count; dequeues by advancing `head`. */
class Lane {
  items: Uint8Array[] = [];
  head = 0;
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(e: Uint8Array): void {
    this.items.push(e);
    this.bytes += e.byteLength;
  }

  /** Removes the first frame's worth of envelopes (at most `maxBytes`, or one envelope) and returns them packed. */
  takeFrame(maxBytes: number): { frame: Buffer; messages: number } {
    const end = frameEnd(this.items, this.head, maxBytes);
    const frame = packFrame(this.items, this.head, end);
    const messages = end - this.head;
    for (let i = this.head; i < end; i++) this.bytes -= this.items[i]!.byteLength;
    this.head = end;
    if (this.head === this.items.length) this.clear();
    else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return { frame, messages };
  }

  /** Empties the lane; returns how many envelopes were discarded. */
  clear(): number {
    const n = this.length;
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    return n;
  }
}

export class PeerLink {
  private state: State = 'connecting';
  private ws: WebSocket | undefined;
  private nonceC: Buffer = newNonce();
  private handshakeTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  private heardAtMs = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Connections tried since one last stayed up for reconnectMaxMs: the exponent of the backoff. */
  private attempt = 0;
  private readyAtMs = 0;
  private lastError = '';
  private readonly control = new Lane();
  private readonly bulk = new Lane();
  private closeWaiters: (() => void)[] = [];
  private readonly counters = { framesSent: 0, messagesSent: 0, bytesSent: 0, dropped: 0, reconnects: 0 };

  constructor(
    readonly peerId: string,
    readonly address: string,
    private readonly settings: PeerLinkSettings,
  ) {
    this.connect();
  }

  get connected(): boolean {
    return this.state === 'ready';
  }

  stats(): PeerLinkStats {
    return { connected: this.connected, queuedBytes: this.control.bytes + this.bulk.bytes, ...this.counters };
  }

  /** Counts a message dropped before it reached the queue (disconnected, too large). */
  drop(): void {
    this.counters.dropped++;
  }

  /**
   * Queues one encoded envelope. Returns false (and counts a drop) when the
   * peer is not connected or the lane is full; Raft retransmits.
   */
  enqueue(envelope: Uint8Array, bulk: boolean): boolean {
    const s = this.settings;
    if (this.state !== 'ready') {
      this.counters.dropped++;
      return false;
    }
    if (LENGTH_PREFIX_BYTES + envelope.byteLength > s.maxFrameBytes) {
      this.counters.dropped++;
      s.log({ level: 'warn', message: `dropped a ${envelope.byteLength}-byte message: larger than maxFrameBytes ${s.maxFrameBytes}`, peer: this.peerId });
      return false;
    }
    const lane = bulk ? this.bulk : this.control;
    if (lane.bytes + envelope.byteLength > s.maxQueuedBytes) {
      this.counters.dropped++;
      s.log({ level: 'warn', message: `${bulk ? 'bulk' : 'control'} queue full (${s.maxQueuedBytes} bytes): dropping messages`, peer: this.peerId });
      return false;
    }
    lane.push(envelope);
    s.scheduleFlush(this);
    return true;
  }

  /**
   * Writes every queued control envelope, then bulk frames while the socket's
   * buffered bytes stay under `highWaterBytes`. Bulk left over is written from
   * the completion callback of an earlier write (see `written`).
   */
  flush(): void {
    const ws = this.ws;
    if (this.state !== 'ready' || !ws) {
      this.dropQueued();
      return;
    }
    // The peer's uWS closes the connection on a message over maxFrameBytes.
    const frameBytes = Math.min(FRAME_TARGET_BYTES, this.settings.maxFrameBytes);
    while (this.control.length > 0) this.write(ws, this.control.takeFrame(frameBytes));
    while (this.bulk.length > 0 && ws.bufferedAmount < this.settings.highWaterBytes) this.write(ws, this.bulk.takeFrame(frameBytes));
    // A peer that reads nothing would otherwise let control frames pile up
    // in the socket without bound.
    if (ws.bufferedAmount > this.settings.highWaterBytes + this.settings.maxQueuedBytes) {
      this.fail(`peer is not reading: ${ws.bufferedAmount} bytes buffered`);
    }
  }

  private write(ws: WebSocket, { frame, messages }: { frame: Buffer; messages: number }): void {
    this.counters.framesSent++;
    this.counters.messagesSent += messages;
    this.counters.bytesSent += frame.byteLength;
    ws.send(frame, { binary: true }, (err) => this.written(ws, err));
  }

  /**
   * ws has no drain event; instead every write's callback runs once its
   * bytes are handed to the kernel. While bulk waits, bufferedAmount is at
   * or above the high-water mark, so some write is still pending and its
   * callback is the moment to look again.
   */
  private written(ws: WebSocket, err: Error | undefined): void {
    if (err || ws !== this.ws || this.state !== 'ready') return;
    if (this.bulk.length > 0 && ws.bufferedAmount < this.settings.highWaterBytes) this.settings.scheduleFlush(this);
  }

  private dropQueued(): void {
    this.counters.dropped += this.control.clear() + this.bulk.clear();
  }

  private connect(): void {
    this.reconnectTimer = undefined;
    this.state = 'connecting';
    this.nonceC = newNonce();
    let ws: WebSocket;
    try {
      ws = new WebSocket(`ws://${this.address}/raft`, {
        maxPayload: MAX_SERVER_MESSAGE_BYTES,
        perMessageDeflate: false,
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        followRedirects: false,
        generateMask: zeroMask,
        headers: {
          [UPGRADE_TOKEN_HEADER]: upgradeToken(this.settings.secret, this.peerId),
          [UPGRADE_PEER_ID_HEADER]: encodeURIComponent(this.settings.selfId),
          ...(this.settings.protocol ? { [UPGRADE_PROTOCOL_HEADER]: this.settings.protocol } : {}),
        },
      });
    } catch (err) {
      // A malformed address throws synchronously.
      this.lastError = (err as Error).message;
      this.settings.log({ level: 'warn', message: `cannot connect to ${this.address}: ${this.lastError}`, peer: this.peerId });
      this.retry();
      return;
    }
    this.ws = ws;
    this.handshakeTimer = setTimeout(() => this.fail(`handshake did not complete within ${HANDSHAKE_TIMEOUT_MS} ms`), HANDSHAKE_TIMEOUT_MS);
    ws.on('open', () => {
      if (ws === this.ws && this.state === 'connecting') this.state = 'awaitHello';
    });
    ws.on('message', (data, isBinary) => {
      if (ws !== this.ws) return;
      try {
        this.onMessage(ws, data, isBinary);
      } catch (err) {
        this.fail(err instanceof HandshakeError ? err.reason : `internal error: ${(err as Error).message}`);
      }
    });
    ws.on('ping', () => {
      if (ws === this.ws) this.heardFromServer();
    });
    ws.on('pong', () => {
      if (ws === this.ws) this.heardFromServer();
    });
    ws.on('error', (err) => {
      if (ws !== this.ws) return;
      if (err.message === UPGRADE_REFUSED_MESSAGE) {
        this.settings.onAuthRejected();
        this.lastError = 'refused our peer token (401): its cluster secret is not ours';
        this.settings.log({ level: 'warn', message: `${this.address} ${this.lastError}`, peer: this.peerId });
      } else if (err.message === PROTOCOL_REFUSED_MESSAGE) {
        this.settings.onProtocolRejected();
        const ours = this.settings.protocol ? `does not speak ${this.settings.protocol}` : 'wants a protocol named';
        this.lastError = `refused us (409): it ${ours}, so it runs another version (its log names both)`;
        this.settings.log({ level: 'warn', message: `${this.address} ${this.lastError}`, peer: this.peerId });
      } else {
        this.lastError = err.message;
      }
    });
    ws.on('close', (code) => this.onClose(ws, code));
  }

  private onMessage(ws: WebSocket, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    this.heardFromServer();
    if (!isBinary) throw new HandshakeError('server sent a text message');
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    switch (this.state) {
      case 'awaitHello': {
        const nonceS = decodeHello(bytes);
        ws.send(encodeProof(this.settings.secret, this.settings.selfId, this.peerId, nonceS, this.nonceC), { binary: true });
        this.nonceS = nonceS;
        this.state = 'awaitWelcome';
        return;
      }
      case 'awaitWelcome': {
        let theirs: string;
        try {
          theirs = verifyWelcome(this.settings.secret, bytes, this.nonceC, this.nonceS!) || this.settings.unnamedProtocol;
        } catch (err) {
          this.settings.onAuthRejected();
          throw err;
        }
        if (theirs !== this.settings.protocol) {
          this.settings.onProtocolRejected();
          throw new HandshakeError(protocolMismatch(theirs, this.settings.protocol));
        }
        clearTimeout(this.handshakeTimer);
        this.handshakeTimer = undefined;
        this.livenessTimer = setInterval(() => this.checkLiveness(ws), this.settings.silenceMs / 4);
        this.state = 'ready';
        this.readyAtMs = Date.now();
        this.settings.log({ level: 'info', message: `connected to ${this.address}`, peer: this.peerId });
        return;
      }
      case 'ready':
        if (!isBye(bytes)) throw new HandshakeError(`unexpected ${bytes.length}-byte message from the server`);
        this.settings.log({ level: 'info', message: `${this.address} is shutting down`, peer: this.peerId });
        this.lastError = 'peer shut down';
        ws.terminate();
        return;
      default:
        throw new HandshakeError(`unexpected ${bytes.length}-byte message from the server in state ${this.state}`);
    }
  }

  private nonceS: Buffer | undefined;

  private heardFromServer(): void {
    this.heardAtMs = Date.now();
  }

  /** Runs every quarter of silenceMs while ready: pings a quiet server, gives up on a silent one. */
  private checkLiveness(ws: WebSocket): void {
    if (ws !== this.ws) return;
    const quietMs = Date.now() - this.heardAtMs;
    if (quietMs >= this.settings.silenceMs) this.fail(`nothing from the server (not even a pong) for ${quietMs} ms`);
    else if (quietMs >= this.settings.silenceMs / 4) ws.ping();
  }

  /** Abandons the current connection; its close event schedules the retry. */
  private fail(reason: string): void {
    this.settings.log({ level: 'warn', message: `closing connection to ${this.address}: ${reason}`, peer: this.peerId });
    this.lastError = reason;
    this.ws?.terminate();
  }

  private onClose(ws: WebSocket, code: number): void {
    if (ws !== this.ws) return;
    const wasReady = this.state === 'ready';
    this.ws = undefined;
    this.nonceS = undefined;
    clearTimeout(this.handshakeTimer);
    clearInterval(this.livenessTimer);
    this.handshakeTimer = this.livenessTimer = undefined;
    this.dropQueued();
    if (this.state === 'closed') {
      for (const w of this.closeWaiters.splice(0)) w();
      return;
    }
    // Only a connection that lasted resets the backoff: one the peer closes
    // as soon as it is used (a message it refuses) must not be retried every 50 ms.
    if (wasReady && Date.now() - this.readyAtMs >= this.settings.reconnectMaxMs) this.attempt = 0;
    if (wasReady) this.settings.log({ level: 'warn', message: `disconnected from ${this.address} (code ${code})`, peer: this.peerId });
    else this.settings.log({ level: 'info', message: `cannot reach ${this.address}: ${this.lastError || `closed with code ${code}`}`, peer: this.peerId });
    this.retry();
  }

  /** Exponential backoff with jitter: the next delay is drawn from [d/2, d]. */
  private retry(): void {
    this.state = 'waiting';
    const { reconnectInitialMs, reconnectMaxMs } = this.settings;
    const ceilingMs = Math.min(reconnectMaxMs, reconnectInitialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    this.counters.reconnects++;
    this.lastError = '';
    this.reconnectTimer = setTimeout(() => this.connect(), ceilingMs / 2 + Math.random() * (ceilingMs / 2));
  }

  /** Closes the connection for good; resolves once its socket is closed. */
  close(): Promise<void> {
    const alreadyClosed = this.state === 'closed';
    this.state = 'closed';
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    if (!alreadyClosed) this.dropQueued();
    const ws = this.ws;
    if (!ws) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    ws.terminate();
    return closed;
  }
}
