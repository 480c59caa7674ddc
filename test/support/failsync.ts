// Builds the LD_PRELOAD shim of failsync.c (fdatasync and fsync fail with EIO
// while a trigger file exists) and gives the environment that loads it.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The C source: tsc does not copy it to dist/, so it is read where it is checked in. */
const SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'support', 'failsync.c');

/**
 * Compiles the shim into `dir` and returns the shared object's path. Throws
 * with the compiler's output if it cannot: a test that needs the shim must
 * fail then, not pass without having injected anything.
 */
export function buildFailSync(dir: string): string {
  const lib = path.join(dir, 'failsync.so');
  const r = spawnSync('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-Werror', '-o', lib, SOURCE, '-ldl'], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run cc to build the fdatasync shim ${SOURCE}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`cc could not build the fdatasync shim ${SOURCE} (exit ${r.status}):\n${r.stderr}`);
  return lib;
}

/** Environment for a process whose fdatasync and fsync fail with EIO while `trigger` exists. */
export function failSyncEnv(lib: string, trigger: string): Record<string, string> {
  return { LD_PRELOAD: lib, RAFTLINE_TEST_FAIL_SYNC_FILE: trigger };
}
