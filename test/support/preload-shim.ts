// Compiles an LD_PRELOAD shim (a C file beside the code that uses it) with cc.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

/**
 * Compiles `source` into `dir` and returns the shared object's path. Throws
 * with the compiler's output if it cannot: whatever needs the shim must fail
 * then, not run without having injected anything.
 */
export function buildPreloadShim(source: string, dir: string): string {
  const lib = path.join(dir, `${path.basename(source, '.c')}.so`);
  const r = spawnSync('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-Werror', '-o', lib, source, '-ldl'], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run cc to build the shim ${source}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`cc could not build the shim ${source} (exit ${r.status}):\n${r.stderr}`);
  return lib;
}
