import { native } from './native.js';

/** CRC32C (Castagnoli) of `bytes`, continuing from `seed`; uses the CPU instruction when present. */
export function crc32c(bytes: Uint8Array, seed = 0): number {
  return native.crc32c(bytes, seed);
}

/** The portable table implementation, for comparison with the hardware path. */
export function crc32cPortable(bytes: Uint8Array, seed = 0): number {
  return native.crc32cPortable(bytes, seed);
}

/** The CPU instruction path; throws where the CPU has none (see `crc32cHardwareName`). */
export function crc32cHardware(bytes: Uint8Array, seed = 0): number {
  return native.crc32cHardware(bytes, seed);
}

/** `"sse4.2"`, `"armv8-crc"`, or `"none"` when the portable path is in use. */
export function crc32cHardwareName(): string {
  return native.crc32cHardwareName();
}
