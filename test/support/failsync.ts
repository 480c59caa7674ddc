// Builds the LD_PRELOAD shim of failsync.c (fdatasync and fsync fail with EIO
// while a trigger file exists) and gives the environment that loads it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
 * of them) fail with EIO while `trigger` exists, but for the first `passes` of them.
 */
export function failSyncEnv(lib: string, trigger: string, only?: 'fsync' | 'fdatasync', passes = 0): Record<string, string> {
  return {
    LD_PRELOAD: lib,
    RAFTLINE_TEST_FAIL_SYNC_FILE: trigger,
    RAFTLINE_TEST_FAIL_SYNC_PASSES: String(passes),
    ...(only ? { RAFTLINE_TEST_FAIL_SYNC_ONLY: only } : {}),
  };
}

/**
 * Runs the ES module `script` in a child process with the shim loaded (see
 * failSyncEnv) and returns the JSON it printed, once it exited 0.
 */
export function runWithFailSync(script: string, lib: string, trigger: string, only?: 'fsync' | 'fdatasync', passes = 0): unknown {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...failSyncEnv(lib, trigger, only, passes) },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}
