// The challenge-response that authenticates a peer connection in both
// directions before any Raft message crosses it. Both sides prove they hold
// the cluster secret by an HMAC over fresh nonces; the secret itself never
// travels. The client's token and proof name the member it means to reach,
// so an endpoint that is not that member (a stale address now someone
// else's) cannot pass them on to another member as its own. Byte layouts are
// documented in docs/transport.md.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const HANDSHAKE_MAGIC = Buffer.from('RLH1', 'latin1');
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
export const MAX_PEER_ID_BYTES = 256;
/** The longest protocol name (UwsTransportOptions.protocol: printable ASCII, one byte a character). */
export const MAX_PROTOCOL_BYTES = 256;
export const MIN_SECRET_BYTES = 16;
/** A handshake not finished within this is abandoned, on both sides. */
export const HANDSHAKE_TIMEOUT_MS = 5000;

export const enum HandshakeKind {
  Hello = 1,
  Proof = 2,
  Welcome = 3,
  /** Server → client after the handshake: the server is shutting down; the client should close the connection. */
  Bye = 4,
}

const HEADER_BYTES = HANDSHAKE_MAGIC.length + 1;
const HELLO_BYTES = HEADER_BYTES + NONCE_BYTES;
const WELCOME_BYTES = HEADER_BYTES + MAC_BYTES;
const CLIENT_LABEL = Buffer.from('raftline-peer-client', 'latin1');
const UPGRADE_LABEL = Buffer.from('raftline-peer-upgrade', 'latin1');
const UPGRADE_NONCE_BYTES = 16;
const UPGRADE_TOKEN_PATTERN = new RegExp(`^([0-9a-f]{${UPGRADE_NONCE_BYTES * 2}})\\.([0-9a-f]{${MAC_BYTES * 2}})$`);
/** The upgrade request's header that carries `upgradeToken`. */
export const UPGRADE_TOKEN_HEADER = 'x-raftline-peer';
/** The upgrade request's header naming the caller's node id (URI-encoded, unproven): it tells an operator which misconfigured process is knocking. */
export const UPGRADE_PEER_ID_HEADER = 'x-raftline-peer-id';
/** The upgrade request's header naming the protocol the caller's Raft groups speak (UwsTransportOptions.protocol). */
export const UPGRADE_PROTOCOL_HEADER = 'x-raftline-protocol';
const SERVER_LABEL = Buffer.from('raftline-peer-server', 'latin1');

/** A handshake message that is not what the protocol expects at this point; `reason` is safe to log. */
export class HandshakeError extends Error {
  constructor(readonly reason: string) {
    super(`peer handshake failed: ${reason}`);
    this.name = 'HandshakeError';
  }
}

/** Why a peer that speaks `theirs` is refused by a member that speaks `ours`, for the log. */
export function protocolMismatch(theirs: string, ours: string): string {
  const speaks = (protocol: string) => (protocol ? `speaks ${protocol}` : 'names no protocol');
  return `it ${speaks(theirs)} and this member ${speaks(ours)}; members of different versions must not run together`;
}

/** The cluster secret as bytes; throws if it is too short to be a secret. */
export function secretBytes(secret: string | Uint8Array): Buffer {
  if (typeof secret !== 'string' && !(secret instanceof Uint8Array)) {
    throw new TypeError('UwsTransport: `secret` is required (a string or Uint8Array shared by every peer of the cluster)');
  }
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new RangeError(
      `UwsTransport: the cluster secret is ${bytes.length} bytes; use at least ${MIN_SECRET_BYTES} random bytes ` +
        '(for example `openssl rand -hex 32`)',
    );
  }
  return bytes;
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

function header(kind: HandshakeKind, bodyBytes: number): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + bodyBytes);
  HANDSHAKE_MAGIC.copy(out, 0);
  out[HANDSHAKE_MAGIC.length] = kind;
  return out;
}

/** Checks magic and kind; returns the body. */
function body(bytes: Uint8Array, kind: HandshakeKind, name: string): Buffer {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < HEADER_BYTES || !b.subarray(0, HANDSHAKE_MAGIC.length).equals(HANDSHAKE_MAGIC)) {
    throw new HandshakeError(`expected a ${name} handshake message, got ${b.length} bytes without the handshake magic`);
  }
  const got = b[HANDSHAKE_MAGIC.length];
  if (got !== kind) throw new HandshakeError(`expected a ${name} handshake message, got kind ${got}`);
  return b.subarray(HEADER_BYTES);
}

/** A node id as it enters a MAC: u16 LE length, then its UTF-8 bytes, so that two ids in a row cannot be read another way. */
function idField(id: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(2 + id.length);
  out.writeUInt16LE(id.length, 0);
  out.set(id, 2);
  return out;
}

function clientMac(secret: Buffer, nonceS: Buffer, nonceC: Buffer, clientId: Uint8Array, serverId: string): Buffer {
  return createHmac('sha256', secret)
    .update(CLIENT_LABEL)
    .update(nonceS)
    .update(nonceC)
    .update(idField(clientId))
    .update(idField(Buffer.from(serverId, 'utf8')))
    .digest();
}

function serverMac(secret: Buffer, nonceC: Buffer, nonceS: Buffer, protocol: Buffer): Buffer {
  return createHmac('sha256', secret).update(SERVER_LABEL).update(nonceC).update(nonceS).update(protocol).digest();
}

/** Server → client, on open: the server's challenge. */
export function encodeHello(nonceS: Buffer): Buffer {
  const out = header(HandshakeKind.Hello, NONCE_BYTES);
  nonceS.copy(out, HEADER_BYTES);
  return out;
}

export function decodeHello(bytes: Uint8Array): Buffer {
  const b = body(bytes, HandshakeKind.Hello, 'hello');
  if (b.length !== NONCE_BYTES) throw new HandshakeError(`hello of ${bytes.byteLength} bytes, expected ${HELLO_BYTES}`);
  return Buffer.from(b);
}

/** Client → server: who the client is, its own challenge, and its answer to the server's, for the member `serverId` alone. */
export function encodeProof(secret: Buffer, clientId: string, serverId: string, nonceS: Buffer, nonceC: Buffer): Buffer {
  const id = Buffer.from(clientId, 'utf8');
  if (id.length === 0 || id.length > MAX_PEER_ID_BYTES) {
    throw new RangeError(`node id must be 1..${MAX_PEER_ID_BYTES} bytes of UTF-8, got ${id.length}`);
  }
  const out = header(HandshakeKind.Proof, 2 + id.length + NONCE_BYTES + MAC_BYTES);
  let at = HEADER_BYTES;
  at = out.writeUInt16LE(id.length, at);
  at += id.copy(out, at);
  at += nonceC.copy(out, at);
  clientMac(secret, nonceS, nonceC, id, serverId).copy(out, at);
  return out;
}

/**
 * Verifies a proof made for the member `selfId` against the challenge
 * `nonceS`; returns the client's node id and nonce, or throws HandshakeError
 * (a wrong secret, or a proof made for another member, included).
 */
export function verifyProof(secret: Buffer, bytes: Uint8Array, nonceS: Buffer, selfId: string): { clientId: string; nonceC: Buffer } {
  const b = body(bytes, HandshakeKind.Proof, 'proof');
  if (b.length < 2) throw new HandshakeError('proof too short for its id length');
  const idBytes = b.readUInt16LE(0);
  if (idBytes === 0 || idBytes > MAX_PEER_ID_BYTES) throw new HandshakeError(`proof names an id of ${idBytes} bytes`);
  if (b.length !== 2 + idBytes + NONCE_BYTES + MAC_BYTES) throw new HandshakeError(`proof of ${bytes.byteLength} bytes does not match its id length`);
  const id = b.subarray(2, 2 + idBytes);
  const nonceC = Buffer.from(b.subarray(2 + idBytes, 2 + idBytes + NONCE_BYTES));
  const mac = b.subarray(2 + idBytes + NONCE_BYTES);
  // The id is unproven, but naming it tells an operator which misconfigured process is knocking.
  if (!timingSafeEqual(mac, clientMac(secret, nonceS, nonceC, id, selfId))) {
    throw new HandshakeError(`wrong cluster secret, or a proof meant for another member (from a process calling itself ${JSON.stringify(id.toString('utf8'))})`);
  }
  return { clientId: id.toString('utf8'), nonceC };
}

/**
 * Server → client: the server's answer to the client's challenge, and the
 * protocol the server speaks ('' for none: a client that named none gets
 * none, as builds from before protocols expect a welcome of 37 bytes).
 */
export function encodeWelcome(secret: Buffer, nonceC: Buffer, nonceS: Buffer, protocol: string): Buffer {
  const named = Buffer.from(protocol, 'utf8');
  const out = header(HandshakeKind.Welcome, MAC_BYTES + named.length);
  serverMac(secret, nonceC, nonceS, named).copy(out, HEADER_BYTES);
  named.copy(out, HEADER_BYTES + MAC_BYTES);
  return out;
}

/** Checks the server's answer to our challenge; returns the protocol it names ('' for none). */
export function verifyWelcome(secret: Buffer, bytes: Uint8Array, nonceC: Buffer, nonceS: Buffer): string {
  const b = body(bytes, HandshakeKind.Welcome, 'welcome');
  if (b.length < MAC_BYTES || b.length > MAC_BYTES + MAX_PROTOCOL_BYTES) {
    throw new HandshakeError(`welcome of ${bytes.byteLength} bytes, expected ${WELCOME_BYTES} to ${WELCOME_BYTES + MAX_PROTOCOL_BYTES}`);
  }
  const named = b.subarray(MAC_BYTES);
  if (!timingSafeEqual(b.subarray(0, MAC_BYTES), serverMac(secret, nonceC, nonceS, named))) throw new HandshakeError('server does not hold the cluster secret');
  return named.toString('utf8');
}

/** Server → client: "I am shutting down; close this connection". Sent so that the
 * client, not the server, closes the TCP connection first: this uWS build sets
 * no SO_REUSEADDR, and TIME_WAIT on the server's side would keep a restarted
 * process from listening on its port again for a minute. */
export function encodeBye(): Buffer {
  return header(HandshakeKind.Bye, 0);
}

export function isBye(bytes: Uint8Array): boolean {
  return bytes.byteLength === HEADER_BYTES && body(bytes, HandshakeKind.Bye, 'bye').length === 0;
}

function upgradeMac(secret: Buffer, nonce: Buffer, serverId: string): Buffer {
  return createHmac('sha256', secret).update(UPGRADE_LABEL).update(nonce).update(idField(Buffer.from(serverId, 'utf8'))).digest();
}

/**
 * A token for the WebSocket upgrade request to the member `serverId`: a fresh
 * nonce and its HMAC under the cluster secret. The server checks it before it
 * accepts the connection, so a process without the secret cannot open one
 * and make uWS buffer frames of up to maxFrameBytes, nor hold a handshake
 * slot. Whoever sees the traffic can replay it to that member; the
 * challenge-response after it is what authenticates.
 */
export function upgradeToken(secret: Buffer, serverId: string): string {
  const nonce = randomBytes(UPGRADE_NONCE_BYTES);
  return `${nonce.toString('hex')}.${upgradeMac(secret, nonce, serverId).toString('hex')}`;
}

export function verifyUpgradeToken(secret: Buffer, token: string, selfId: string): boolean {
  const m = UPGRADE_TOKEN_PATTERN.exec(token);
  if (!m) return false;
  return timingSafeEqual(Buffer.from(m[2], 'hex'), upgradeMac(secret, Buffer.from(m[1], 'hex'), selfId));
}

/** Whether `address` is one a peer can be dialled at: host:port (no scheme; an IPv6 host in brackets), a port 1-65535. */
export function isPeerAddress(address: string): boolean {
  const m = /^[^/:\s\[\]]+:(\d{1,5})$|^\[[0-9a-fA-F:.]+\]:(\d{1,5})$/.exec(address);
  const port = Number(m?.[1] ?? m?.[2]);
  return port >= 1 && port <= 65535;
}
