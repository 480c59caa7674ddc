// Encodes the core's messages into FlatBuffers envelopes (schema/raft.fbs) and
// back, refusing anything malformed with a FrameError that says why.
import * as flatbuffers from 'flatbuffers';
import type { Entry, NodeId, SnapshotMeta } from '../core/index.js';
import { MAX_CONFIGURATION_MEMBERS, members, type Configuration } from '../core/quorum.js';
import { decodeRecords, frameEntries, verifyRecords } from '../log/index.js';
import { Configuration as WireConfiguration } from './generated/raftline/wire/configuration.js';
import { Envelope } from './generated/raftline/wire/envelope.js';
import { MessageType } from './generated/raftline/wire/message-type.js';
import { SnapshotMeta as WireSnapshotMeta } from './generated/raftline/wire/snapshot-meta.js';
import { addSafeInteger, INT64_SLOTS, readSafeInteger, type FlatTable } from './flat-int.js';
import { MIN_ENVELOPE_BYTES, within } from './frame.js';
import type { PeerMessage } from './transport.js';

const ENVELOPE_INT64 = INT64_SLOTS.Envelope;
const SNAPSHOT_META_INT64 = INT64_SLOTS.SnapshotMeta;

/** A peer frame that cannot be decoded; `reason` is safe to log. */
export class FrameError extends Error {
  readonly code = 'ERR_RAFTLINE_FRAME';
  constructor(readonly reason: string) {
    super(`malformed peer frame: ${reason}`);
    this.name = 'FrameError';
  }
}

export interface PeerEnvelope {
  /** The Raft group the message belongs to (many groups share one connection). */
  group: string;
  message: PeerMessage;
}

export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
const MAX_ID_CHARS = 256;
/** The most UTF-8 bytes an id of MAX_ID_CHARS may take (3 per UTF-16 unit), checked before it is decoded. */
const MAX_ID_BYTES = 3 * MAX_ID_CHARS;

const TYPE_TO_WIRE: Record<PeerMessage['type'], MessageType> = {
  preVote: MessageType.PreVote,
  vote: MessageType.Vote,
  preVoteResp: MessageType.PreVoteResp,
  voteResp: MessageType.VoteResp,
  append: MessageType.Append,
  appendResp: MessageType.AppendResp,
  heartbeat: MessageType.Heartbeat,
  heartbeatResp: MessageType.HeartbeatResp,
  commit: MessageType.Commit,
  timeoutNow: MessageType.TimeoutNow,
  snapshot: MessageType.InstallSnapshot,
  readIndex: MessageType.ReadIndex,
  readIndexResp: MessageType.ReadIndexResp,
  snapshotChunk: MessageType.SnapshotChunk,
  snapshotChunkResp: MessageType.SnapshotChunkResp,
  forward: MessageType.ForwardProposal,
  forwardResp: MessageType.ForwardProposalResp,
};
const WIRE_TO_TYPE = new Map<MessageType, PeerMessage['type']>(
  Object.entries(TYPE_TO_WIRE).map(([k, v]) => [v, k as PeerMessage['type']]),
);

function strings(b: flatbuffers.Builder, ids: readonly string[]): flatbuffers.Offset[] {
  return ids.map((id) => b.createString(id));
}

function encodeConfiguration(b: flatbuffers.Builder, conf: Configuration): flatbuffers.Offset {
  const voters = WireConfiguration.createVotersVector(b, strings(b, conf.voters));
  const learners = WireConfiguration.createLearnersVector(b, strings(b, conf.learners));
  const outgoing = WireConfiguration.createOutgoingVector(b, strings(b, conf.outgoing ?? []));
  WireConfiguration.startConfiguration(b);
  WireConfiguration.addVoters(b, voters);
  WireConfiguration.addLearners(b, learners);
  WireConfiguration.addOutgoing(b, outgoing);
  WireConfiguration.addJoint(b, conf.outgoing !== undefined);
  return WireConfiguration.endConfiguration(b);
}

function encodeSnapshotMeta(b: flatbuffers.Builder, meta: SnapshotMeta): flatbuffers.Offset {
  const conf = encodeConfiguration(b, meta.configuration);
  WireSnapshotMeta.startSnapshotMeta(b);
  addSafeInteger(b, SNAPSHOT_META_INT64.index, meta.index);
  addSafeInteger(b, SNAPSHOT_META_INT64.term, meta.term);
  WireSnapshotMeta.addConfiguration(b, conf);
  return WireSnapshotMeta.endSnapshotMeta(b);
}

/**
 * One builder for every envelope, each copied out when finished: a builder per
 * message (its buffer, vtables and strings) was a good part of the garbage each
 * write made. Encoding never reenters; a builder grown by a large message is
 * dropped for a new one.
 */
let shared = new flatbuffers.Builder(4096);
const SHARED_BUILDER_MAX_BYTES = 1 << 20;

function builder(payloadBytes: number): flatbuffers.Builder {
  if (shared.dataBuffer().capacity() > SHARED_BUILDER_MAX_BYTES) shared = new flatbuffers.Builder(4096);
  // Sized for the payload up front: growing copies the whole buffer each time.
  if (shared.dataBuffer().capacity() < 256 + payloadBytes) return new flatbuffers.Builder(256 + payloadBytes);
  shared.clear();
  return shared;
}

/** Group and node ids as UTF-8, encoded once: there are few, and every message carries three. */
const idBytes = new Map<string, Uint8Array>();
const MAX_CACHED_IDS = 4096;

function utf8Id(id: string): Uint8Array {
  let bytes = idBytes.get(id);
  if (bytes === undefined) {
    if (idBytes.size >= MAX_CACHED_IDS) idBytes.clear();
    bytes = Buffer.from(id);
    idBytes.set(id, bytes);
  }
  return bytes;
}

/** One envelope carrying `message` for Raft group `group`. */
export function encodeEnvelope(group: string, m: PeerMessage): Uint8Array {
  const framed = m.type === 'append' && m.entries.length > 0 ? frameEntries(m.entries) : null;
  const payload = m.type === 'snapshotChunk' || m.type === 'forward' ? m.data : framed;
  const b = builder(payload?.length ?? 0);
  const groupOffset = b.createString(utf8Id(group));
  const from = b.createString(utf8Id(m.from));
  const to = b.createString(utf8Id(m.to));
  // createByteVector copies in one go (the generated create*Vector adds byte by byte).
  const entries = framed ? b.createByteVector(framed) : 0;
  const forwarded = m.type === 'forward' ? b.createByteVector(m.data) : 0;
  const error = m.type === 'forwardResp' ? b.createString(m.error) : 0;
  const leaderHint = m.type === 'forwardResp' && m.leaderHint ? b.createString(m.leaderHint) : 0;
  let snapshot = 0;
  let chunk = 0;
  if (m.type === 'snapshot') snapshot = encodeSnapshotMeta(b, m.snapshot);
  if (m.type === 'snapshotChunk') {
    snapshot = encodeSnapshotMeta(b, m.file.meta);
    if (m.data.length > 0) chunk = b.createByteVector(m.data);
  }
  Envelope.startEnvelope(b);
  Envelope.addGroup(b, groupOffset);
  Envelope.addFrom(b, from);
  Envelope.addTo(b, to);
  Envelope.addType(b, TYPE_TO_WIRE[m.type]);
  addSafeInteger(b, ENVELOPE_INT64.term, m.term);
  switch (m.type) {
    case 'preVote':
    case 'vote':
      addSafeInteger(b, ENVELOPE_INT64.lastLogIndex, m.lastLogIndex);
      addSafeInteger(b, ENVELOPE_INT64.lastLogTerm, m.lastLogTerm);
      Envelope.addTransfer(b, m.transfer);
      break;
    case 'preVoteResp':
    case 'voteResp':
      Envelope.addReject(b, m.reject);
      break;
    case 'append':
      addSafeInteger(b, ENVELOPE_INT64.prevIndex, m.prevIndex);
      addSafeInteger(b, ENVELOPE_INT64.prevTerm, m.prevTerm);
      addSafeInteger(b, ENVELOPE_INT64.commit, m.commit);
      if (entries) Envelope.addEntries(b, entries);
      break;
    case 'appendResp':
      addSafeInteger(b, ENVELOPE_INT64.index, m.index);
      Envelope.addReject(b, m.reject);
      addSafeInteger(b, ENVELOPE_INT64.hintIndex, m.hintIndex);
      addSafeInteger(b, ENVELOPE_INT64.hintTerm, m.hintTerm);
      break;
    case 'heartbeat':
      addSafeInteger(b, ENVELOPE_INT64.commit, m.commit);
      addSafeInteger(b, ENVELOPE_INT64.round, m.round);
      break;
    case 'heartbeatResp':
      addSafeInteger(b, ENVELOPE_INT64.round, m.round);
      addSafeInteger(b, ENVELOPE_INT64.lastLogIndex, m.lastIndex);
      break;
    case 'commit':
      addSafeInteger(b, ENVELOPE_INT64.commit, m.commit);
      break;
    case 'timeoutNow':
      break;
    case 'snapshot':
      Envelope.addSnapshot(b, snapshot);
      break;
    case 'readIndex':
      addSafeInteger(b, ENVELOPE_INT64.requestId, m.requestId);
      break;
    case 'readIndexResp':
      addSafeInteger(b, ENVELOPE_INT64.requestId, m.requestId);
      addSafeInteger(b, ENVELOPE_INT64.index, m.index);
      Envelope.addReject(b, m.reject);
      break;
    case 'snapshotChunk':
      Envelope.addSnapshot(b, snapshot);
      addSafeInteger(b, ENVELOPE_INT64.snapshotBytes, m.file.bytes);
      Envelope.addSnapshotCrc(b, m.file.crc);
      addSafeInteger(b, ENVELOPE_INT64.chunkOffset, m.offset);
      if (chunk) Envelope.addChunk(b, chunk);
      break;
    case 'snapshotChunkResp':
      addSafeInteger(b, ENVELOPE_INT64.index, m.index);
      Envelope.addSnapshotCrc(b, m.crc);
      addSafeInteger(b, ENVELOPE_INT64.chunkOffset, m.held);
      Envelope.addReject(b, m.reject);
      break;
    case 'forward':
      addSafeInteger(b, ENVELOPE_INT64.requestId, m.requestId);
      Envelope.addPayload(b, forwarded);
      break;
    case 'forwardResp':
      addSafeInteger(b, ENVELOPE_INT64.requestId, m.requestId);
      addSafeInteger(b, ENVELOPE_INT64.index, m.index);
      Envelope.addError(b, error);
      if (leaderHint) Envelope.addLeaderHint(b, leaderHint);
      break;
  }
  b.finish(Envelope.endEnvelope(b));
  return b === shared ? b.asUint8Array().slice() : b.asUint8Array();
}

/** A 64-bit field of `table`, refused when it is not a non-negative safe integer. */
function num(table: FlatTable, slot: number, field: string): number {
  const value = readSafeInteger(table, slot);
  if (value < 0) throw new FrameError(`${field} is out of range`);
  return value;
}

const utf8 = new TextDecoder();

/**
 * An id read with flatbuffers.Encoding.UTF8_BYTES (the accessors then return
 * the bytes, though typed as either): its length is checked before it is
 * decoded, so a long string costs nothing.
 */
function id(read: string | Uint8Array | null, field: string): NodeId {
  const bytes = read as Uint8Array | null;
  const value = bytes === null || bytes.length > MAX_ID_BYTES ? '' : utf8.decode(bytes);
  if (!value || value.length > MAX_ID_CHARS) throw new FrameError(`${field} is missing or longer than ${MAX_ID_CHARS} characters`);
  return value;
}

/**
 * The bytes an envelope must hold for what its configuration decodes to.
 * The accessors follow offsets without a verifier, and any number of them
 * may point at the same bytes: a 4 MB envelope of one id named 3 million
 * times made 3 million strings. encodeEnvelope writes each id's offset (4
 * bytes) and each id (its 4-byte length and bytes) once, so what is decoded
 * is charged that much, and an envelope is refused once the charges pass
 * its size. An envelope carries at most one configuration.
 */
class ConfigurationBudget {
  constructor(private bytesLeft: number) {}

  charge(bytes: number, what: string): void {
    if (bytes > this.bytesLeft) throw new FrameError(`${what} cannot fit in what is left of the envelope (${this.bytesLeft} bytes)`);
    this.bytesLeft -= bytes;
  }
}

function idList(length: number, get: (i: number) => string | Uint8Array, field: string, budget: ConfigurationBudget): NodeId[] {
  if (length > MAX_CONFIGURATION_MEMBERS) throw new FrameError(`${length} ${field}s: a configuration names at most ${MAX_CONFIGURATION_MEMBERS} members`);
  budget.charge(4 * length, `${length} ${field}s`);
  const out: NodeId[] = [];
  const seen = new Set<NodeId>();
  for (let i = 0; i < length; i++) {
    const bytes = get(i);
    budget.charge(4 + bytes.length, `${field} ${i}`);
    const value = id(bytes, field);
    if (seen.has(value)) throw new FrameError(`${field} ${JSON.stringify(value)} is listed twice`);
    seen.add(value);
    out.push(value);
  }
  return out;
}

function decodeConfiguration(c: WireConfiguration | null, envelopeBytes: number): Configuration {
  if (!c) throw new FrameError('snapshot without a configuration');
  const budget = new ConfigurationBudget(envelopeBytes);
  const utf8Bytes = flatbuffers.Encoding.UTF8_BYTES;
  const conf: Configuration = {
    voters: idList(c.votersLength(), (i) => c.voters(i, utf8Bytes), 'voter', budget),
    learners: idList(c.learnersLength(), (i) => c.learners(i, utf8Bytes), 'learner', budget),
  };
  if (c.joint()) conf.outgoing = idList(c.outgoingLength(), (i) => c.outgoing(i, utf8Bytes), 'outgoing voter', budget);
  if (members(conf).length > MAX_CONFIGURATION_MEMBERS) throw new FrameError(`a configuration names at most ${MAX_CONFIGURATION_MEMBERS} members`);
  return conf;
}

function decodeSnapshotMeta(env: Envelope, envelopeBytes: number): SnapshotMeta {
  const s = env.snapshot();
  if (!s) throw new FrameError(`${env.type() === MessageType.InstallSnapshot ? 'InstallSnapshot' : 'SnapshotChunk'} without snapshot metadata`);
  return { index: num(s, SNAPSHOT_META_INT64.index, 'snapshot index'), term: num(s, SNAPSHOT_META_INT64.term, 'snapshot term'), configuration: decodeConfiguration(s.configuration(), envelopeBytes) };
}

/** A byte vector of the envelope `bytes`, refused if a damaged offset puts it outside. */
function vector(bytes: Uint8Array, v: Uint8Array | null, what: string): Uint8Array | null {
  if (v && !within(bytes, v)) throw new FrameError(`${what} lies outside the envelope`);
  return v;
}

function decodeEntries(env: Envelope, envelope: Uint8Array): Entry[] {
  const bytes = vector(envelope, env.entriesArray(), 'entries');
  if (!bytes || bytes.length === 0) return [];
  try {
    verifyRecords(bytes);
  } catch (err) {
    throw new FrameError(`entries: ${(err as Error).message}`);
  }
  return decodeRecords(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

/**
 * Decodes one frame. Entries are checked (framing and CRC32C) before they are
 * returned; their data are views into `bytes`, which the caller must not reuse
 * while they are in use.
 */
export function decodeEnvelope(bytes: Uint8Array, maxBytes = DEFAULT_MAX_FRAME_BYTES): PeerEnvelope {
  if (bytes.byteLength < MIN_ENVELOPE_BYTES) throw new FrameError(`${bytes.byteLength} bytes is too short for an envelope`);
  if (bytes.byteLength > maxBytes) throw new FrameError(`${bytes.byteLength} bytes exceeds the ${maxBytes}-byte limit`);
  try {
    const env = Envelope.getRootAsEnvelope(new flatbuffers.ByteBuffer(bytes));
    const type = WIRE_TO_TYPE.get(env.type());
    if (type === undefined) throw new FrameError(`unknown message type ${env.type()}`);
    const group = id(env.group(flatbuffers.Encoding.UTF8_BYTES), 'group');
    // Named in each message rather than spread from a shared header object, which was copied into every one.
    const from = id(env.from(flatbuffers.Encoding.UTF8_BYTES), 'from');
    const to = id(env.to(flatbuffers.Encoding.UTF8_BYTES), 'to');
    const term = num(env, ENVELOPE_INT64.term, 'term');
    let message: PeerMessage;
    switch (type) {
      case 'preVote':
      case 'vote':
        message = {
          from,
          to,
          term,
          type,
          lastLogIndex: num(env, ENVELOPE_INT64.lastLogIndex, 'lastLogIndex'),
          lastLogTerm: num(env, ENVELOPE_INT64.lastLogTerm, 'lastLogTerm'),
          transfer: env.transfer(),
        };
        break;
      case 'preVoteResp':
      case 'voteResp':
        message = { from, to, term, type, reject: env.reject() };
        break;
      case 'append':
        message = {
          from,
          to,
          term,
          type,
          prevIndex: num(env, ENVELOPE_INT64.prevIndex, 'prevIndex'),
          prevTerm: num(env, ENVELOPE_INT64.prevTerm, 'prevTerm'),
          commit: num(env, ENVELOPE_INT64.commit, 'commit'),
          entries: decodeEntries(env, bytes),
        };
        break;
      case 'appendResp':
        message = {
          from,
          to,
          term,
          type,
          index: num(env, ENVELOPE_INT64.index, 'index'),
          reject: env.reject(),
          hintIndex: num(env, ENVELOPE_INT64.hintIndex, 'hintIndex'),
          hintTerm: num(env, ENVELOPE_INT64.hintTerm, 'hintTerm'),
        };
        break;
      case 'heartbeat':
        message = { from, to, term, type, commit: num(env, ENVELOPE_INT64.commit, 'commit'), round: num(env, ENVELOPE_INT64.round, 'round') };
        break;
      case 'heartbeatResp':
        message = { from, to, term, type, round: num(env, ENVELOPE_INT64.round, 'round'), lastIndex: num(env, ENVELOPE_INT64.lastLogIndex, 'lastLogIndex') };
        break;
      case 'commit':
        message = { from, to, term, type, commit: num(env, ENVELOPE_INT64.commit, 'commit') };
        break;
      case 'timeoutNow':
        message = { from, to, term, type };
        break;
      case 'snapshot':
        message = { from, to, term, type, snapshot: decodeSnapshotMeta(env, bytes.byteLength) };
        break;
      case 'readIndex':
        message = { from, to, term, type, requestId: num(env, ENVELOPE_INT64.requestId, 'requestId') };
        break;
      case 'readIndexResp':
        message = { from, to, term, type, requestId: num(env, ENVELOPE_INT64.requestId, 'requestId'), index: num(env, ENVELOPE_INT64.index, 'index'), reject: env.reject() };
        break;
      case 'snapshotChunk':
        message = {
          from,
          to,
          term,
          type,
          file: { meta: decodeSnapshotMeta(env, bytes.byteLength), bytes: num(env, ENVELOPE_INT64.snapshotBytes, 'snapshotBytes'), crc: env.snapshotCrc() },
          offset: num(env, ENVELOPE_INT64.chunkOffset, 'chunkOffset'),
          data: vector(bytes, env.chunkArray(), 'chunk') ?? new Uint8Array(0),
        };
        break;
      case 'snapshotChunkResp':
        message = {
          from,
          to,
          term,
          type,
          index: num(env, ENVELOPE_INT64.index, 'index'),
          crc: env.snapshotCrc(),
          held: num(env, ENVELOPE_INT64.chunkOffset, 'chunkOffset'),
          reject: env.reject(),
        };
        break;
      case 'forward':
        message = { from, to, term, type, requestId: num(env, ENVELOPE_INT64.requestId, 'requestId'), data: vector(bytes, env.payloadArray(), 'payload') ?? new Uint8Array(0) };
        break;
      case 'forwardResp': {
        const hint = env.leaderHint(flatbuffers.Encoding.UTF8_BYTES);
        message = {
          from,
          to,
          term,
          type,
          requestId: num(env, ENVELOPE_INT64.requestId, 'requestId'),
          index: num(env, ENVELOPE_INT64.index, 'index'),
          error: env.error() ?? '',
          leaderHint: hint !== null && hint.length > 0 ? id(hint, 'leaderHint') : null,
        };
        break;
      }
    }
    return { group, message };
  } catch (err) {
    if (err instanceof FrameError) throw err;
    // The FlatBuffers runtime reads offsets without a verifier: a damaged
    // frame shows up as an out-of-range read or a bad string.
    throw new FrameError(`undecodable envelope (${(err as Error).message})`);
  }
}
