// The peer stores live in bench/peers with their own package.json so that
// none of them enters raftline's dependency tree. They are installed on first
// use and loaded with createRequire from there.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export const PEER_PACKAGES = ['lmdb', 'better-sqlite3', 'classic-level'] as const;
export type PeerPackage = (typeof PEER_PACKAGES)[number];

export interface Peers {
  require: NodeJS.Require;
  /** Installed version of each peer, read from its own package.json. */
  versions: Record<PeerPackage, string>;
}

/**
 * Installs bench/peers if its node_modules is missing, then requires every
 * peer so that a missing or broken install stops the run here with its own
 * error. (better-sqlite3 loads its addon lazily; the smoke pass in
 * log-bench.ts, which opens every store once, covers that.)
 */
export function loadPeers(peersDir: string): Peers {
  if (!existsSync(path.join(peersDir, 'node_modules'))) {
    console.error(`installing benchmark peers in ${peersDir} (better-sqlite3 compiles from source, ~80 s)…`);
    // npm's own output goes to stderr so stdout stays the report. Which
    // install scripts may run (the native builds) is recorded in
    // bench/peers/package.json under allowScripts.
    const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: peersDir, stdio: ['ignore', 2, 2] });
    if (npm.status !== 0) {
      throw new Error(`npm install in ${peersDir} failed (${npm.error?.message ?? `exit ${npm.status}`})`);
    }
  }
  const require = createRequire(path.join(peersDir, 'package.json'));
  const versions = {} as Record<PeerPackage, string>;
  for (const name of PEER_PACKAGES) {
    try {
      require(name);
    } catch (err) {
      throw new Error(
        `benchmark peer ${name} does not load: ${(err as Error).message}\n` +
          `Remove ${path.join(peersDir, 'node_modules')} and rerun to reinstall it.`,
      );
    }
    const manifest = path.join(peersDir, 'node_modules', name, 'package.json');
    versions[name] = (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  }
  return { require, versions };
}
