// Data frames: one WebSocket binary message carries one or more envelopes,
// each prefixed by its length as a little-endian u32.

/** Bytes of envelopes packed into one frame before a new frame is started. */
export const FRAME_TARGET_BYTES = 1024 * 1024;
export const LENGTH_PREFIX_BYTES = 4;

/**
 * Where the frame starting at `envelopes[start]` ends (exclusive): as many
 * envelopes as fit in `targetBytes`, and always at least one, so an envelope
 * larger than the target travels alone.
 */
export function frameEnd(envelopes: readonly Uint8Array[], start: number, targetBytes = FRAME_TARGET_BYTES): number {
  let end = start + 1;
  let bytes = LENGTH_PREFIX_BYTES + envelopes[start]!.byteLength;
  while (end < envelopes.length) {
    bytes += LENGTH_PREFIX_BYTES + envelopes[end]!.byteLength;
    if (bytes > targetBytes) break;
    end++;
  }
  return end;
}

/** One frame holding `envelopes[start..end)`. */
export function packFrame(envelopes: readonly Uint8Array[], start: number, end: number): Buffer {
  let bytes = 0;
  for (let i = start; i < end; i++) bytes += LENGTH_PREFIX_BYTES + envelopes[i]!.byteLength;
  const frame = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (let i = start; i < end; i++) {
    const e = envelopes[i]!;
    at = frame.writeUInt32LE(e.byteLength, at);
    frame.set(e, at);
    at += e.byteLength;
  }
  return frame;
}

/** `envelopes` packed into as few frames as `frameEnd` allows, in order. */
export function packFrames(envelopes: readonly Uint8Array[]): Buffer[] {
  const frames: Buffer[] = [];
  for (let start = 0; start < envelopes.length; ) {
    const end = frameEnd(envelopes, start);
    frames.push(packFrame(envelopes, start, end));
    start = end;
  }
  return frames;
}

/**
 * The fewest bytes an envelope of either protocol can take: both codecs
 * refuse anything shorter (a FlatBuffers root offset and an empty table).
 */
export const MIN_ENVELOPE_BYTES = 8;

/**
 * The most envelopes one frame may hold. A sender packs several envelopes
 * only into FRAME_TARGET_BYTES, and none is shorter than MIN_ENVELOPE_BYTES,
 * so no sender's frame holds more; a receiver decodes (and on the client
 * port answers) each envelope, so a frame of tiny ones must not be split
 * into millions.
 */
export const MAX_ENVELOPES_PER_FRAME = Math.floor(FRAME_TARGET_BYTES / (LENGTH_PREFIX_BYTES + MIN_ENVELOPE_BYTES));

/**
 * Splits a frame into its envelopes (views into `frame`). A length prefix
 * that runs past the end of the frame or is too short for an envelope (a
 * frame of zeros would otherwise be an empty envelope every 4 bytes), or a
 * frame of more than MAX_ENVELOPES_PER_FRAME envelopes, ends the walk:
 * nothing after it can be trusted, so `error` says why and the envelopes
 * before it are still returned.
 */
export function unpackFrame(frame: Uint8Array): { envelopes: Uint8Array[]; error?: string } {
  const envelopes: Uint8Array[] = [];
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  let at = 0;
  if (frame.byteLength === 0) return { envelopes, error: 'empty frame' };
  while (at < frame.byteLength) {
    if (envelopes.length === MAX_ENVELOPES_PER_FRAME) {
      return { envelopes, error: `more than ${MAX_ENVELOPES_PER_FRAME} envelopes in one frame (the rest start at offset ${at})` };
    }
    if (frame.byteLength - at < LENGTH_PREFIX_BYTES) {
      return { envelopes, error: `${frame.byteLength - at} trailing bytes at offset ${at} are too short for a length prefix` };
    }
    const length = view.getUint32(at, true);
    if (length < MIN_ENVELOPE_BYTES) {
      return { envelopes, error: `length prefix ${length} at offset ${at} is shorter than any envelope (${MIN_ENVELOPE_BYTES} bytes)` };
    }
    at += LENGTH_PREFIX_BYTES;
    if (length > frame.byteLength - at) {
      return { envelopes, error: `length prefix ${length} at offset ${at - LENGTH_PREFIX_BYTES} runs past the ${frame.byteLength}-byte frame` };
    }
    envelopes.push(frame.subarray(at, at + length));
    at += length;
  }
  return { envelopes };
}

/**
 * Whether `inner` lies within `outer`'s bytes. The generated FlatBuffers
 * accessors for byte vectors make views on the whole underlying ArrayBuffer
 * from offsets read out of the message, so a damaged offset can reach bytes
 * outside the message (its neighbours in a frame, or whatever else shares
 * the buffer); decoders check every such view with this.
 */
export function within(outer: Uint8Array, inner: Uint8Array): boolean {
  return inner.buffer === outer.buffer && inner.byteOffset >= outer.byteOffset && inner.byteOffset + inner.byteLength <= outer.byteOffset + outer.byteLength;
}
