// `npm run bench:election [-- --delays 0,100,200,400,700 --rounds 3]`: how
// long a 3-node cluster of real `raftline serve` processes takes to elect a
// leader when every fsync and fdatasync of every member is slow, as on an
// overloaded disk: each sync first sleeps a fixed delay (an LD_PRELOAD shim,
// bench/slowsync.c). Per round: the time from starting the servers on empty
// data directories to the first leader; once every member has heard from a
// leader, the writes acknowledged under a load of LOAD_WRITERS closed-loop
// writers (through every member) in LOAD_MS, and the terms that passed
// meanwhile; then the time from kill -9 of the leader to a new one among the
// other two. Election timeout 500 ms, heartbeat 50 ms. The
// delays take turns within each round, and each is also given as a multiple
// of the run's own no-delay times.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { buildPreloadShim } from '../test/support/preload-shim.js';
import { clusterArgs, freePorts, spawnServer } from '../test/support/servers.js';
import { updateReadmeSection } from './readme.js';

const IDS = ['n1', 'n2', 'n3'];
/** How long a round waits for a leader before it reports none. */
const LIMIT_MS = 20_000;
const POLL_MS = 50;
const LOAD_WRITERS = 8;
const LOAD_MS = 10_000;
const LOAD_VALUE = 'v'.repeat(100);

const { values } = parseArgs({
  options: {
    delays: { type: 'string', default: '0,100,200,400,700' },
    rounds: { type: 'string', default: '3' },
  },
});
const delays = values.delays.split(',').map(Number);
const rounds = Number(values.rounds);
if (delays.some((d) => !Number.isInteger(d) || d < 0) || !delays.includes(0)) {
  throw new Error(`--delays takes comma-separated whole milliseconds, 0 (the baseline) among them; got ${values.delays}`);
}
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds takes a positive whole number, not ${values.rounds}`);

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench');

interface MemberStatus {
  role: string;
  term: number;
  leader: string | null;
}

async function status(url: string): Promise<MemberStatus | null> {
  try {
    const r = await fetch(`${url}/status`, { signal: AbortSignal.timeout(1000) });
    return r.ok ? ((await r.json()) as MemberStatus) : null;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls each of `ids` on its own, so that a member whose event loop is
 * blocked in a sync holds up no other, until one reports itself leader in a
 * term above `aboveTerm`: that member, when it was seen, and the highest
 * term seen meanwhile.
 */
async function awaitLeader(clientUrl: Record<string, string>, ids: string[], aboveTerm: number): Promise<{ leader: string | null; term: number; atMs: number }> {
  let term = aboveTerm;
  let found = null as { leader: string; term: number; atMs: number } | null;
  const deadline = performance.now() + LIMIT_MS;
  await Promise.all(
    ids.map(async (id) => {
      while (found === null && performance.now() < deadline) {
        const s = await status(clientUrl[id]);
        if (found !== null) return;
        if (s) {
          term = Math.max(term, s.term);
          if (s.role === 'leader' && s.term > aboveTerm) found = { leader: id, term: s.term, atMs: performance.now() };
        }
        await sleep(POLL_MS);
      }
    }),
  );
  return found ?? { leader: null, term, atMs: performance.now() };
}

/** The highest term any of the members reports. */
async function maxTerm(clientUrl: Record<string, string>): Promise<number> {
  return Math.max(0, ...(await Promise.all(IDS.map((id) => status(clientUrl[id])))).map((s) => s?.term ?? 0));
}

interface RoundResult {
  delayMs: number;
  /** From spawning the servers to a leader; null when none came within LIMIT_MS. */
  firstLeaderMs: number | null;
  firstTerm: number;
  /** Writes acknowledged (200) in LOAD_MS, and the others (refused or timed out); null without a leader to load. */
  loadWrites: number | null;
  loadFailures: number | null;
  /** Terms that passed during the load: leaders lost to slow syncs. */
  loadTerms: number | null;
  /** From kill -9 of the leader (once every member has heard of one) to a new one; null when none came, or no leader to kill. */
  failoverMs: number | null;
  /** The term the failover reached, minus the killed leader's. */
  failoverTerms: number | null;
}

/** LOAD_WRITERS closed loops of puts, spread over the members (followers forward them), counted for LOAD_MS. */
async function writeLoad(clientUrl: Record<string, string>): Promise<{ loadWrites: number; loadFailures: number; loadTerms: number }> {
  const termBefore = await maxTerm(clientUrl);
  let loadWrites = 0;
  let loadFailures = 0;
  const stopAt = performance.now() + LOAD_MS;
  // Read when the window closes, not once the writes still in flight then have settled.
  const termAfter = sleep(LOAD_MS).then(() => maxTerm(clientUrl));
  await Promise.all(
    Array.from({ length: LOAD_WRITERS }, async (_, i) => {
      const url = `${clientUrl[IDS[i % IDS.length]]}/v1/kv/load-${i}`;
      while (performance.now() < stopAt) {
        const ok = await fetch(url, { method: 'PUT', body: LOAD_VALUE, signal: AbortSignal.timeout(5000) }).then(
          (r) => r.status === 200,
          () => false,
        );
        if (performance.now() > stopAt) break;
        if (ok) loadWrites++;
        else {
          loadFailures++;
          // No leader for the moment: do not spin on the refusals.
          await sleep(100);
        }
      }
    }),
  );
  return { loadWrites, loadFailures, loadTerms: (await termAfter) - termBefore };
}

async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(null) : (c.once('exit', resolve), c.kill('SIGKILL'))))),
  );
}

async function round(delayMs: number, shim: string): Promise<RoundResult> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'raftline-election-'));
  const secretFile = path.join(root, 'secret');
  writeFileSync(secretFile, 'bench-election-secret-0123456789');
  const { args, clientUrl } = clusterArgs(IDS, await freePorts(6, 20_000), root, secretFile, true);
  const env = { LD_PRELOAD: shim, RAFTLINE_BENCH_SYNC_DELAY_MS: String(delayMs) };
  const started = performance.now();
  const children: ChildProcess[] = [];
  try {
    for (const id of IDS) children.push(spawnServer([...args[id], '--log-level', 'warn'], [], env).child);
    const first = await awaitLeader(clientUrl, IDS, 0);
    const firstLeaderMs = first.leader ? first.atMs - started : null;
    const none = { loadWrites: null, loadFailures: null, loadTerms: null, failoverMs: null, failoverTerms: null };
    if (!first.leader) return { delayMs, firstLeaderMs, firstTerm: first.term, ...none };
    // A member that has never heard from a leader may still be starting: the
    // failover would measure its start. Leaders may come and go meanwhile
    // (a follower syncing longer than the election timeout misses heartbeats).
    const heard = new Set<string>();
    for (const deadline = performance.now() + LIMIT_MS; heard.size < IDS.length; ) {
      if (performance.now() > deadline) return { delayMs, firstLeaderMs, firstTerm: first.term, ...none };
      const all = await Promise.all(IDS.map((id) => status(clientUrl[id])));
      all.forEach((s, i) => s?.leader && heard.add(IDS[i]));
      await sleep(POLL_MS);
    }
    const load = await writeLoad(clientUrl);
    // The leader of the newest term: one deposed during the load may still think it leads.
    const current = await awaitLeader(clientUrl, IDS, (await maxTerm(clientUrl)) - 1);
    if (!current.leader) return { delayMs, firstLeaderMs, firstTerm: first.term, ...load, failoverMs: null, failoverTerms: null };
    const killed = performance.now();
    children[IDS.indexOf(current.leader)].kill('SIGKILL');
    const second = await awaitLeader(clientUrl, IDS.filter((id) => id !== current.leader), current.term);
    return {
      delayMs,
      firstLeaderMs,
      firstTerm: first.term,
      ...load,
      failoverMs: second.leader ? second.atMs - killed : null,
      failoverTerms: second.term - current.term,
    };
  } finally {
    await stopAll(children);
    rmSync(root, { recursive: true, force: true });
  }
}

/** The median (the lower middle one of an even count), a missing time (no leader) counting as longer than any. */
function median(times: (number | null)[]): number | null {
  const sorted = times.map((t) => t ?? Infinity).sort((a, b) => a - b);
  const m = sorted[Math.floor((sorted.length - 1) / 2)];
  return Number.isFinite(m) ? m : null;
}

const seconds = (ms: number | null): string => (ms === null ? `none in ${LIMIT_MS / 1000} s` : `${(ms / 1000).toFixed(2)} s`);
const ratio = (value: number | null, base: number | null): string => (value === null || !base ? '—' : `${Number((value / base).toPrecision(2))}×`);

const shimDir = mkdtempSync(path.join(os.tmpdir(), 'raftline-slowsync-'));
try {
  const shim = buildPreloadShim(path.join(benchDir, 'slowsync.c'), shimDir);
  const results: RoundResult[] = [];
  for (let r = 0; r < rounds; r++) {
    // Turns within a round, the order reversed every other round, so the machine's drift spreads over the delays.
    for (const delayMs of r % 2 === 0 ? delays : [...delays].reverse()) {
      const result = await round(delayMs, shim);
      results.push(result);
      console.log(JSON.stringify({ round: r + 1, ...result }));
    }
  }
  const byDelay = delays.map((delayMs) => {
    const mine = results.filter((x) => x.delayMs === delayMs);
    return {
      delayMs,
      mine,
      first: median(mine.map((x) => x.firstLeaderMs)),
      writes: median(mine.map((x) => x.loadWrites ?? 0)),
      failover: median(mine.map((x) => x.failoverMs)),
    };
  });
  const base = byDelay.find((d) => d.delayMs === 0)!;
  const list = (xs: (number | null)[]) => xs.map((x) => (x === null ? '—' : (x / 1000).toFixed(2))).join(', ');
  const date = new Date().toISOString();
  const lines = [
    `Run ${date} with \`npm run bench:election\` on ${os.cpus()[0]?.model ?? 'unknown CPU'}, nproc ${os.availableParallelism()}, Node ${process.version}. ` +
      `${rounds} rounds; each round starts a fresh 3-node cluster per delay (500 ms election timeout, 50 ms heartbeat, fsync on), every sync of every member delayed as shown. ` +
      `Cells: the median over the rounds (each round in brackets; — for no leader within ${LIMIT_MS / 1000} s), and that median as a multiple of the no-delay one. ` +
      `Load: ${LOAD_WRITERS} closed-loop writers of 100-byte values, spread over the three members, for ${LOAD_MS / 1000} s.`,
    '',
    '| delay per sync | first leader after start | ÷ no delay | writes acknowledged under load | ÷ no delay | terms passed under load | new leader after kill -9 of the leader | ÷ no delay | terms the failover took |',
    '|---|---|---|---|---|---|---|---|---|',
    ...byDelay.map(
      (d) =>
        `| ${d.delayMs} ms | ${seconds(d.first)} (${list(d.mine.map((x) => x.firstLeaderMs))}) | ${ratio(d.first, base.first)} | ` +
        `${d.writes ?? '—'} (${d.mine.map((x) => x.loadWrites ?? '—').join(', ')}) | ${ratio(d.writes, base.writes)} | ${d.mine.map((x) => x.loadTerms ?? '—').join(', ')} | ` +
        `${seconds(d.failover)} (${list(d.mine.map((x) => x.failoverMs))}) | ${ratio(d.failover, base.failover)} | ${d.mine.map((x) => x.failoverTerms ?? '—').join(', ')} |`,
    ),
  ];
  console.log(`\n${lines.join('\n')}`);
  mkdirSync(path.join(benchDir, 'results'), { recursive: true });
  writeFileSync(path.join(benchDir, 'results', `election-${date.slice(0, 10)}.json`), `${JSON.stringify({ date, limitMs: LIMIT_MS, results }, null, 2)}\n`);
  updateReadmeSection('election', lines.join('\n'));
} finally {
  rmSync(shimDir, { recursive: true, force: true });
}
