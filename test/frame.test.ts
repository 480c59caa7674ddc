// Data frames (src/transport/frame.ts), shared by the peer transport and the
// binary client protocol: a frame is split into envelopes only as far as its
// length prefixes can be trusted, and never into more than any sender packs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRequest } from '../src/transport/client-codec.js';
import { LENGTH_PREFIX_BYTES, MAX_ENVELOPES_PER_FRAME, MIN_ENVELOPE_BYTES, packFrame, packFrames, unpackFrame } from '../src/transport/frame.js';

const envelope = (byte: number, length = 16) => new Uint8Array(length).fill(byte);

test('a frame of zero bytes is one framing error, not half a million empty envelopes', () => {
  const { envelopes, error } = unpackFrame(Buffer.alloc(2 * 1024 * 1024));
  assert.equal(envelopes.length, 0);
  assert.match(String(error), /length prefix 0 at offset 0 is shorter than any envelope/);
});

test('a length prefix too short for an envelope ends the frame; the envelopes before it are kept', () => {
  for (const length of [0, 1, MIN_ENVELOPE_BYTES - 1]) {
    const frame = Buffer.concat([packFrame([envelope(1)], 0, 1), Buffer.alloc(LENGTH_PREFIX_BYTES + 64)]);
    frame.writeUInt32LE(length, LENGTH_PREFIX_BYTES + 16);
    const { envelopes, error } = unpackFrame(frame);
    assert.deepEqual(envelopes.map((e) => Array.from(e)), [Array.from(envelope(1))], `length ${length}`);
    assert.match(String(error), new RegExp(`length prefix ${length} at offset 20 is shorter than any envelope`));
  }
  const smallest = unpackFrame(packFrame([envelope(2, MIN_ENVELOPE_BYTES)], 0, 1));
  assert.equal(smallest.error, undefined);
  assert.equal(smallest.envelopes.length, 1);
});

test('a frame of more envelopes than any sender packs is cut at MAX_ENVELOPES_PER_FRAME, with one error', () => {
  const tiny = Array.from({ length: MAX_ENVELOPES_PER_FRAME + 1000 }, () => envelope(3, MIN_ENVELOPE_BYTES));
  const { envelopes, error } = unpackFrame(packFrame(tiny, 0, tiny.length));
  assert.equal(envelopes.length, MAX_ENVELOPES_PER_FRAME);
  assert.match(String(error), new RegExp(`more than ${MAX_ENVELOPES_PER_FRAME} envelopes in one frame`));
});

test('every frame packFrames makes unpacks whole, even of the smallest requests a client sends', () => {
  const request = encodeRequest({ id: 0, command: new Uint8Array(0) });
  const requests = Array.from({ length: 3 * MAX_ENVELOPES_PER_FRAME }, () => request);
  let unpacked = 0;
  for (const frame of packFrames(requests)) {
    const { envelopes, error } = unpackFrame(frame);
    assert.equal(error, undefined);
    unpacked += envelopes.length;
  }
  assert.equal(unpacked, requests.length);
});
