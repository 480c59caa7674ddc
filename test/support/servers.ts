// Spawning `raftline serve` processes for the tests, on ports picked so that
// concurrently running test files do not collide.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from './eventually.js';

/** The compiled CLI. */
export const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');

/** Ports handed out by freePorts, claimed by a file each holding the claiming process's pid. */
const CLAIMS_DIR = path.join(os.tmpdir(), 'raftline-test-ports');
const claimed: string[] = [];
/** Every server this process spawned. */
const servers = new Set<ChildProcess>();
process.once('exit', () => {
  for (const file of claimed) rmSync(file, { force: true });
  // A test that failed or timed out before stopping its servers must not leave them running for the rest of the suite.
  for (const child of servers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims `port` for this process unless another live process (or this one,
 * earlier) has: a port that is free now may still be on its way to a server
 * that another test file is about to start.
 */
function claim(port: number): boolean {
  const file = path.join(CLAIMS_DIR, String(port));
  mkdirSync(CLAIMS_DIR, { recursive: true });
  for (;;) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      claimed.push(file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner: number;
    try {
      owner = Number(readFileSync(file, 'utf8'));
    } catch (err) {
      // Released (or stolen as stale) since: try again.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    // A file still being written reads empty: treat it as taken.
    if (!owner || owner === process.pid || alive(owner)) return false;
    rmSync(file, { force: true });
  }
}

/**
 * Free loopback ports below Linux's ephemeral range (32768+), so nothing the
 * kernel hands out takes them meanwhile. Callers pass a `region` (a multiple
 * of 5000 from 10000 to 25000) and the search starts at an offset from the
 * process id within it, so files running at once usually start 20 ports
 * apart; a port is handed out only if it is free and no other live test
 * process has claimed it (see `claim`), and never twice to one process.
 */
export async function freePorts(count: number, region: number): Promise<number[]> {
  const ports: number[] = [];
  for (let port = region + (process.pid % 200) * 20; ports.length < count; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer().once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free && claim(port)) ports.push(port);
  }
  return ports;
}

/** The command line of `raftline serve args`, run through `prefix` (such as `ip netns exec NS`), with `nodeArgs` for Node itself. */
export function serveCommand(args: string[], prefix: readonly string[] = [], nodeArgs: readonly string[] = []): [string, string[]] {
  const command = [...prefix, process.execPath, ...nodeArgs, MAIN, 'serve', ...args];
  return [command[0], command.slice(1)];
}

/** A `raftline serve` child with its JSON log lines parsed as they arrive; `env` is added to this process's environment. */
export function spawnServer(
  args: string[],
  prefix: readonly string[] = [],
  env: Record<string, string> = {},
  nodeArgs: readonly string[] = [],
): { child: ChildProcess; logs: Record<string, unknown>[] } {
  const child = spawn(...serveCommand(args, prefix, nodeArgs), { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  servers.add(child);
  child.once('exit', () => servers.delete(child));
  const logs: Record<string, unknown>[] = [];
  let rest = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    const parts = (rest + text).split('\n');
    rest = parts.pop()!;
    for (const line of parts) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  return { child, logs };
}

/**
 * `serve` arguments for a local cluster of `ids` on `ports` (peer ports
 * first, then client ports) at `hosts` (loopback by default);
 * `fastElections` shortens the timeouts for tests.
 */
export function clusterArgs(
  ids: string[],
  ports: number[],
  dir: string,
  secretFile: string,
  fastElections = true,
  hosts: readonly string[] = ids.map(() => '127.0.0.1'),
): { args: Record<string, string[]>; clientUrl: Record<string, string> } {
  const peers = ids.map((id, i) => `${id}=${hosts[i]}:${ports[i]}`).join(',');
  const args: Record<string, string[]> = {};
  const clientUrl: Record<string, string> = {};
  ids.forEach((id, i) => {
    const clientPort = ports[ids.length + i];
    args[id] = ['--id', id, '--data', path.join(dir, id), '--peer-listen', `${hosts[i]}:${ports[i]}`, '--client-listen', `${hosts[i]}:${clientPort}`,
      '--peers', peers, '--secret-file', secretFile, ...(fastElections ? ['--election-timeout-ms', '500', '--heartbeat-interval-ms', '50'] : [])];
    clientUrl[id] = `http://${hosts[i]}:${clientPort}`;
  });
  return { args, clientUrl };
}

/**
 * Waits until a write through each of `clientUrls` succeeds: a cluster is
 * ready for tests once every node does, as one started last may not have
 * heard from the leader yet when another already takes writes.
 */
export async function writableThroughEvery(clientUrls: Record<string, string>, headers: Record<string, string> = {}): Promise<void> {
  for (const [id, url] of Object.entries(clientUrls)) {
    await eventually(`a write through ${id}`, async () => (await fetch(`${url}/v1/kv/ready`, { method: 'PUT', body: id, headers })).status === 200);
  }
}
