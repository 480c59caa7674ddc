import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c, crc32cHardware, crc32cHardwareName, crc32cPortable } from '../src/log/index.js';
import { Prng } from './support/prng.js';

const hasHardware = crc32cHardwareName() !== 'none';

test('the standard check value of "123456789" is 0xE3069283 on every path', () => {
  const check = Buffer.from('123456789');
  assert.equal(crc32c(check), 0xe3069283);
  assert.equal(crc32cPortable(check), 0xe3069283);
  if (hasHardware) assert.equal(crc32cHardware(check), 0xe3069283);
});

test('known vectors from RFC 3720 (iSCSI) appendix B.4', () => {
  assert.equal(crc32cPortable(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32cPortable(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32cPortable(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32cPortable(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
});

test('hardware and portable paths agree on every length, alignment and seed', () => {
  // The hardware path runs three interleaved streams above 1536 bytes and
  // byte-wise steps to reach 8-byte alignment; sizes straddle both.
  const rng = new Prng(7);
  const buf = rng.bytes(20_000);
  const lengths = [0, 1, 7, 8, 9, 63, 64, 1535, 1536, 1537, 3072, 4607, 4608, 4609, 10_000, 19_990];
  for (const length of lengths) {
    for (const offset of [0, 1, 3, 5]) {
      const view = buf.subarray(offset, offset + length);
      const seed = rng.int(0, 0xffffffff);
      const portable = crc32cPortable(view, seed);
      assert.equal(crc32c(view, seed), portable, `length ${length} offset ${offset}`);
      if (hasHardware) assert.equal(crc32cHardware(view, seed), portable, `hardware, length ${length} offset ${offset}`);
    }
  }
});

test('a checksum can be extended piece by piece', () => {
  const data = new Prng(11).bytes(5000);
  const whole = crc32c(data);
  assert.equal(crc32c(data.subarray(1700), crc32c(data.subarray(0, 1700))), whole);
  assert.equal(crc32cPortable(data.subarray(3), crc32cPortable(data.subarray(0, 3))), whole);
});

test('reports which instruction it uses on this CPU', () => {
  const expected = process.arch === 'x64' ? ['sse4.2', 'none'] : process.arch === 'arm64' ? ['armv8-crc', 'none'] : ['none'];
  assert.ok(expected.includes(crc32cHardwareName()), crc32cHardwareName());
  if (!hasHardware) assert.throws(() => crc32cHardware(new Uint8Array(1)), /no CRC32C instruction/);
});
