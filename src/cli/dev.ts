// `raftline dev`: a local cluster of real `raftline serve` processes on fixed
// loopback ports, with its data (and a generated cluster secret) under one
// directory, so the next run resumes where this one stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from './config.js';

export const DEV_USAGE = `Usage: raftline dev [--nodes N] [--dir DIR]

Starts N (1-7, default 3) raftline servers on this machine: peers on 127.0.0.1:7101..,
clients on 127.0.0.1:7201... Data and the cluster secret live in DIR (default ./.raftline);
running it again resumes from them (with the same N). The servers take no client token and
ignore RAFTLINE_* settings in the environment. Ctrl-C stops every server cleanly; a server
that exits (or is killed) stops the others, so to try failover run raftline serve per node.
`;

const PEER_BASE_PORT = 7101;
const CLIENT_BASE_PORT = 7201;
// Generous for a cold start on a loaded machine: the servers open their logs and hold an election.
const START_DEADLINE_MS = 60_000;
const POLL_INTERVAL_MS = 100;
const REQUEST_TIMEOUT_MS = 2_000;

function checkDeadline(deadline: number, what: string): void {
  if (Date.now() > deadline) throw new Error(`${what} within ${START_DEADLINE_MS / 1000} s; the servers' logs above say why`);
}

function parse(argv: string[]): { nodes: number; dir: string } {
  let nodes = 3;
  let dir = '.raftline';
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].split(/=(.*)/s, 2);
    if (name !== '--nodes' && name !== '--dir') throw new ConfigError(`unknown argument '${argv[i]}'`);
    const value = inline ?? argv[++i];
    if (name === '--nodes') {
      nodes = Number(value);
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 7) throw new ConfigError(`--nodes must be an integer from 1 to 7, got '${value}'`);
    } else {
      if (!value) throw new ConfigError('--dir needs a value');
      dir = value;
    }
  }
  return { nodes, dir: path.resolve(dir) };
}

/** A child killed by a signal keeps exitCode null. */
function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function ready(port: number, child: ChildProcess, deadline: number): Promise<void> {
  for (;;) {
    if (hasExited(child)) throw new Error(`a server exited (${child.exitCode ?? child.signalCode}) while starting`);
    checkDeadline(deadline, `the server on port ${port} did not answer`);
    const ok = await fetch(`http://127.0.0.1:${port}/v1/kv?limit=1&consistency=stale&encoding=base64`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
  }
}

/** Waits until every node names the same leader, so the first request the user sends is served. */
async function electedLeader(ports: number[], children: ChildProcess[], deadline: number): Promise<void> {
  for (;;) {
    if (children.some(hasExited)) throw new Error('a server exited before a leader was elected');
    checkDeadline(deadline, 'the servers did not agree on a leader');
    const leaders = await Promise.all(
      ports.map((port) =>
        fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).then(
          (r) => r.json() as Promise<{ leader: string | null }>,
          () => ({ leader: null }),
        ),
      ),
    );
    if (leaders[0].leader !== null && leaders.every((s) => s.leader === leaders[0].leader)) return;
    await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
  }
}

/**
 * A directory that holds another size of cluster would start nodes that are
 * not members (or leave members out), and never elect a leader.
 */
function checkClusterSize(dir: string, nodes: number): void {
  if (!existsSync(dir)) return;
  const existing = readdirSync(dir).filter((name) => /^n[1-9]$/.test(name)).length;
  if (existing > 0 && existing !== nodes) {
    throw new ConfigError(`${dir} holds a ${existing}-node cluster; run with --nodes ${existing}, or give another --dir for ${nodes} node(s)`);
  }
}

/**
 * Refuses ports another process listens on: a server there (another
 * raftline dev, say) would answer the readiness checks for the one that
 * failed to start.
 */
async function checkPortsFree(ports: number[]): Promise<void> {
  for (const port of ports) {
    const taken = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(true));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(false)));
    });
    if (taken) throw new Error(`127.0.0.1:${port} is in use (another raftline dev?); stop what listens there first`);
  }
}

/** How a server process ended, for messages. */
function exitOf(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `code ${code}`;
}

export async function dev(argv: string[]): Promise<number> {
  const { nodes, dir } = parse(argv);
  checkClusterSize(dir, nodes);
  await checkPortsFree(Array.from({ length: nodes }, (_, i) => [PEER_BASE_PORT + i, CLIENT_BASE_PORT + i]).flat());
  mkdirSync(dir, { recursive: true });
  const secretFile = path.join(dir, 'secret');
  if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const ids = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const peers = ids.map((id, i) => `${id}=127.0.0.1:${PEER_BASE_PORT + i}`).join(',');
  const main = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
  // Every setting is on the command line. A local cluster to try things with
  // takes no client token (its own readiness checks send none), and a config
  // file or token the shell holds for serve must not reach its servers.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('RAFTLINE_')));
  const children = ids.map((id, i) =>
    spawn(
      process.execPath,
      [main, 'serve', '--id', id, '--data', path.join(dir, id), '--peer-listen', `127.0.0.1:${PEER_BASE_PORT + i}`,
        '--client-listen', `127.0.0.1:${CLIENT_BASE_PORT + i}`, '--peers', peers, '--secret-file', secretFile],
      { stdio: ['ignore', 'inherit', 'inherit'], env },
    ),
  );
  const exited = children.map((c) => new Promise<string>((resolve) => c.once('exit', (code, signal) => resolve(exitOf(code, signal)))));
  let stopping = false;
  let stoppedByUser = false;
  const stopAll = () => {
    stopping = true;
    for (const c of children) if (!hasExited(c)) c.kill('SIGTERM');
  };
  const userStop = () => {
    stoppedByUser = true;
    stopAll();
  };
  process.on('SIGINT', userStop);
  process.on('SIGTERM', userStop);
  const deadline = Date.now() + START_DEADLINE_MS;
  try {
    await Promise.all(children.map((c, i) => ready(CLIENT_BASE_PORT + i, c, deadline)));
    await electedLeader(ids.map((_, i) => CLIENT_BASE_PORT + i), children, deadline);
  } catch (err) {
    stopAll();
    await Promise.all(exited);
    if (stoppedByUser) {
      process.stderr.write('raftline dev: stopped before the cluster was ready\n');
      return 130;
    }
    throw err;
  }
  const endpoints = ids.map((id, i) => `  ${id}  http://127.0.0.1:${CLIENT_BASE_PORT + i}`).join('\n');
  process.stdout.write(
    `\nraftline dev: ${nodes} node(s) running, data in ${dir}\n${endpoints}\n\n` +
      `Try:\n  curl -X PUT --data-binary hello http://127.0.0.1:${CLIENT_BASE_PORT}/v1/kv/greeting\n` +
      `  curl http://127.0.0.1:${CLIENT_BASE_PORT + nodes - 1}/v1/kv/greeting\n\nCtrl-C stops the cluster.\n`,
  );
  const first = await Promise.race(exited);
  if (!stopping) {
    process.stderr.write(`raftline dev: a server exited unexpectedly (${first}); stopping the others (run raftline serve for each node to try failover)\n`);
    stopAll();
  }
  const ends = await Promise.all(exited);
  ends.forEach((end, i) => {
    if (end !== exitOf(0, null)) process.stderr.write(`raftline dev: ${ids[i]} did not stop cleanly (${end})\n`);
  });
  return stopping && ends.every((end) => end === exitOf(0, null)) ? 0 : 1;
}
