export type { Transport, PeerMessage, SnapshotChunk, SnapshotChunkResponse, SnapshotFileId } from './transport.js';
export { MemoryNetwork } from './memory.js';
export { encodeEnvelope, decodeEnvelope, FrameError, DEFAULT_MAX_FRAME_BYTES } from './codec.js';
export type { PeerEnvelope } from './codec.js';
export { loadUws } from './uws.js';
export { UwsTransport } from './uws-transport.js';
export type { UwsTransportOptions, UwsTransportStats, RejectedCounts, TransportLogEvent, PeerLinkStats } from './uws-transport.js';
