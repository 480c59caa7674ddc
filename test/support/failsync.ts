// Builds the LD_PRELOAD shim of failsync.c (fdatasync and fsync fail with EIO
// while a trigger file exists) and gives the environment that loads it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPreloadShim } from './preload-shim.js';

/** The C source: tsc does not copy it to dist/, so it is read where it is checked in. */
const SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'support', 'failsync.c');

/** Compiles the shim into `dir` and returns the shared object's path (see buildPreloadShim). */
export function buildFailSync(dir: string): string {
  return buildPreloadShim(SOURCE, dir);
}

/**
 * Environment for a process whose fdatasync and fsync (or only the `only` one
 * of them) fail with EIO while `trigger` exists.
 */
export function failSyncEnv(lib: string, trigger: string, only?: 'fsync' | 'fdatasync'): Record<string, string> {
  return { LD_PRELOAD: lib, RAFTLINE_TEST_FAIL_SYNC_FILE: trigger, ...(only ? { RAFTLINE_TEST_FAIL_SYNC_ONLY: only } : {}) };
}
