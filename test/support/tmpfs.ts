// A small tmpfs for disk-full tests: mounting needs root (or CAP_SYS_ADMIN),
// so callers get the reason it failed and report their test as not run.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';

/** Mounts a tmpfs of `sizeBytes` on `dir` (created); returns null on success, else why it could not. */
export function mountTmpfs(dir: string, sizeBytes: number): string | null {
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error) return `cannot run mount: ${r.error.message}`;
  if (r.status !== 0) return `mount -t tmpfs failed (exit ${r.status}; root is needed): ${r.stderr.trim()}`;
  return null;
}

export function unmount(dir: string): void {
  // Lazy: a server killed a moment ago may still hold files open.
  spawnSync('umount', ['-l', dir]);
}

/** Writes a filler file in `dir` until the filesystem is full; returns its path and size. */
export function fillUp(dir: string, name = 'filler'): { file: string; bytes: number } {
  const file = path.join(dir, name);
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0xee);
  let bytes = 0;
  try {
    for (;;) {
      // Shrinking chunks take the last free pages too.
      let length = chunk.length;
      for (;;) {
        try {
          bytes += writeSync(fd, chunk, 0, length);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          if (length === 1) return { file, bytes };
          length = Math.max(1, length >> 2);
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}
