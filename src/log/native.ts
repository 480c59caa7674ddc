// Loads the C++ addon built by node-gyp and describes its surface. Only
// src/log talks to it; everything else goes through SegmentLog and MetaStore.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface NativeError extends Error {
  code: string;
  file?: string;
  offset?: number;
  errno?: number;
  syncFailed?: boolean;
}

export interface NativeReadResult {
  records: Buffer;
  count: number;
}

export interface NativeRecovery {
  truncatedBytes: number;
  truncatedFile: string;
  truncatedOffset: number;
  removedSegments: number;
  replayedTruncation: boolean;
}

export interface NativeLogHandle {
  /** The op's sequence number; negated when `onCaller` found the writer idle and the append completed on this thread. */
  append(bytes: Uint8Array, seal: boolean, onCaller: boolean): number;
  truncateSuffix(lastKept: number): number;
  truncatePrefix(firstKept: number): number;
  reset(nextIndex: number): number;
  readSync(from: number, toExclusive: number, maxBytes: number): NativeReadResult;
  read(from: number, toExclusive: number, maxBytes: number): Promise<NativeReadResult>;
  firstIndex(): number;
  lastIndex(): number;
  durableIndex(): number;
  termAt(index: number): number;
  stats(): { indexMemoryBytes: number; segmentCount: number };
  close(): Promise<void>;
}

export interface NativeAddon {
  openLog(
    dir: string,
    segmentBytes: number,
    sync: boolean,
    onComplete: (seq: number, err?: NativeError) => void,
  ): Promise<{ handle: NativeLogHandle; recovery: NativeRecovery }>;
  metaLoad(dir: string, name: string): Promise<Buffer | null>;
  /** `inPlace`: the file on disk is known durable, so a block file may be rewritten in place (native/meta_store.h). */
  metaSave(dir: string, name: string, payload: Uint8Array, inPlace: boolean): Promise<void>;
  sealRecords(bytes: Uint8Array): number;
  verifyRecords(bytes: Uint8Array): number;
  crc32c(bytes: Uint8Array, seed?: number): number;
  crc32cPortable(bytes: Uint8Array, seed?: number): number;
  crc32cHardware(bytes: Uint8Array, seed?: number): number;
  crc32cHardwareName(): string;
  recordHeaderBytes: number;
  maxPayloadBytes: number;
}

// dist/src/log/native.js → package root is three levels up.
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const addonPath = path.join(packageRoot, 'build', 'Release', 'raftline_native.node');

function load(): NativeAddon {
  try {
    return createRequire(import.meta.url)(addonPath) as NativeAddon;
  } catch (err) {
    throw new Error(
      `raftline: cannot load the native log addon at ${addonPath} (was it installed with scripts disabled?); ` +
        `build it with \`npx node-gyp rebuild\` in ${packageRoot}. Cause: ${(err as Error).message}`,
    );
  }
}

export const native: NativeAddon = load();
