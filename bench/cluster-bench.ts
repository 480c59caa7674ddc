// `npm run bench:cluster`: raftline against etcd on this machine, taking
// turns in rounds, each a fresh 3-member cluster on loopback with fsync on.
//
// The same Node load generator (keep-alive HTTP/1.1, bench/http-load.ts) drives both through the etcd
// v3 JSON API: puts of 256-byte values to random keys of a 100k keyspace, then
// linearizable single-key ranges, at concurrency 1, 16, 64 and 256. Then each
// system's best path from Node: etcd's gRPC client (etcd3) against etcd, and
// raftline/client (binary WebSocket) against raftline. For every point:
// ops/s, latency percentiles, errors, and CPU seconds per 1,000 operations of
// the servers and of the generator (from /proc and process.cpuUsage), so a
// client-bound run shows.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { RaftlineClient } from '../src/client/index.js';
import { clusterArgs, freePorts, spawnServer } from '../test/support/servers.js';
import { cpuSeconds, drive, jsonGetBody, jsonPutBody, KEYSPACE, randomKey, VALUE } from './cluster-load.js';
import { HttpLoadClient } from './http-load.js';
import { percentiles } from './measure.js';
import { updateReadmeSection } from './readme.js';

const CONCURRENCY = [1, 16, 64, 256];
const WARMUP_MS = 1000;
// Before a path's first point, puts at this concurrency for this long: a
// Node process runs its code unoptimized until V8 has seen it often enough,
// and at concurrency 1 that took several seconds (raftline's p50 there went
// 2.4 -> 1.2 ms from the first 6 s to the third). Both systems get the same.
const PATH_WARMUP_CONCURRENCY = 64;
const PATH_WARMUP_MS = Number(process.env.BENCH_PATH_WARMUP_MS ?? 5000);
const MEASURE_MS = Number(process.env.BENCH_MEASURE_MS ?? 5000);
// This machine's speed drifts by tens of percent over minutes, and one system
// measured after the other took that drift as a difference between them. So
// the systems take turns, each round on fresh clusters, the order swapped
// every round; the tables give each point's median over the rounds, and
// each ratio the median of the rounds' own ratios.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ETCD = '/usr/bin/etcd';

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench');

interface Cluster {
  name: 'etcd' | 'raftline';
  pids: number[];
  endpoints: string[];
  leader: string;
  stop(): Promise<void>;
}

interface Point {
  /** 1-based; 0 in the medians over all rounds. */
  round: number;
  system: 'etcd' | 'raftline';
  path: 'json' | 'native';
  op: 'put' | 'get';
  concurrency: number;
  opsPerS: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  errors: number;
  serverCpuSPer1k: number;
  generatorCpuSPer1k: number;
}

function ensureEtcd(): void {
  if (existsSync(ETCD)) return;
  console.error('installing etcd-server and etcd-client from Debian…');
  for (const args of [['update'], ['install', '-y', 'etcd-server', 'etcd-client']]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 2, 2], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed; install etcd-server yourself`);
  }
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`not within 60 s: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const post = (url: string, body: unknown) => fetch(url, { method: 'POST', body: JSON.stringify(body) });

/** One JSON request through the generator's HTTP client; true for a 200. */
async function jsonRequest(client: HttpLoadClient, path: string, body: string): Promise<boolean> {
  return (await client.post(path, body)) === 200;
}

async function startEtcd(root: string): Promise<Cluster> {
  const ports = await freePorts(6, 25_000);
  const names = ['e1', 'e2', 'e3'];
  const peerUrl = (i: number) => `http://127.0.0.1:${ports[i]}`;
  const clientUrls = names.map((_, i) => `http://127.0.0.1:${ports[3 + i]}`);
  const initial = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
  const children: ChildProcess[] = names.map((name, i) =>
    spawn(ETCD, ['--name', name, '--data-dir', path.join(root, name), '--listen-client-urls', clientUrls[i], '--advertise-client-urls', clientUrls[i],
      '--listen-peer-urls', peerUrl(i), '--initial-advertise-peer-urls', peerUrl(i), '--initial-cluster', initial, '--initial-cluster-state', 'new'], { stdio: 'ignore' }),
  );
  let leader = '';
  await until('etcd elects a leader', async () => {
    const statuses = await Promise.all(clientUrls.map(async (u) => (await (await post(`${u}/v3/maintenance/status`, {})).json()) as { header: { member_id: string }; leader: string }));
    const i = statuses.findIndex((s) => s.leader && s.header.member_id === s.leader);
    if (i >= 0) leader = clientUrls[i];
    return i >= 0;
  });
  return { name: 'etcd', pids: children.map((c) => c.pid!), endpoints: clientUrls, leader, stop: () => stopAll(children) };
}

async function startRaftline(root: string): Promise<Cluster> {
  const ports = await freePorts(6, 20_000);
  const ids = ['n1', 'n2', 'n3'];
  const secretFile = path.join(root, 'secret');
  mkdirSync(root, { recursive: true });
  writeFileSync(secretFile, 'bench-cluster-secret-0123456789');
  const { args, clientUrl } = clusterArgs(ids, ports, root, secretFile, false);
  const children = ids.map((id) => spawnServer([...args[id], '--log-level', 'warn']).child);
  const endpoints = ids.map((id) => clientUrl[id]);
  let leader = '';
  await until('raftline elects a leader', async () => {
    const statuses = await Promise.all(endpoints.map(async (u) => (await (await fetch(`${u}/status`)).json()) as { role: string }));
    const i = statuses.findIndex((s) => s.role === 'leader');
    if (i >= 0) leader = endpoints[i];
    return i >= 0;
  });
  return { name: 'raftline', pids: children.map((c) => c.pid!), endpoints, leader, stop: () => stopAll(children) };
}

async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        }),
    ),
  );
}

/** `concurrency` closed loops running `op` for the warm-up and then the measured window. */
async function run(cluster: Cluster, op: () => Promise<boolean>, concurrency: number): Promise<Omit<Point, 'round' | 'system' | 'path' | 'op' | 'concurrency'>> {
  await drive(op, concurrency, WARMUP_MS);
  const latencies: number[] = [];
  let errors = 0;
  const cpu0 = cpuSeconds(cluster.pids);
  const gen0 = process.cpuUsage();
  const t0 = performance.now();
  await drive(op, concurrency, MEASURE_MS, (latencyMs) => {
    if (latencyMs === null) errors++;
    else latencies.push(latencyMs);
  });
  const seconds = (performance.now() - t0) / 1000;
  const gen = process.cpuUsage(gen0);
  const ops = latencies.length;
  const p = percentiles(latencies);
  latencies.sort((a, b) => a - b);
  return {
    opsPerS: ops / seconds,
    p50Ms: p.p50Ms,
    p99Ms: p.p99Ms,
    p999Ms: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.999))] ?? 0,
    errors,
    serverCpuSPer1k: ops ? ((cpuSeconds(cluster.pids) - cpu0) / ops) * 1000 : 0,
    generatorCpuSPer1k: ops ? ((gen.user + gen.system) / 1e6 / ops) * 1000 : 0,
  };
}

async function measure(cluster: Cluster, round: number): Promise<Point[]> {
  const points: Point[] = [];
  const url = cluster.leader;
  const http = new HttpLoadClient(url);
  const jsonPut = () => jsonRequest(http, '/v3/kv/put', jsonPutBody());
  const jsonGet = () => jsonRequest(http, '/v3/kv/range', jsonGetBody());
  await drive(jsonPut, PATH_WARMUP_CONCURRENCY, PATH_WARMUP_MS);
  for (const [op, fn] of [['put', jsonPut], ['get', jsonGet]] as const) {
    for (const concurrency of CONCURRENCY) {
      const r = await run(cluster, fn, concurrency);
      points.push({ round, system: cluster.name, path: 'json', op, concurrency, ...r });
      console.error(`round ${round}: ${cluster.name} json ${op} c=${concurrency}: ${Math.round(r.opsPerS)} ops/s, p50 ${r.p50Ms.toFixed(2)} ms, errors ${r.errors}`);
    }
  }
  http.close();
  let native: { put: () => Promise<boolean>; get: () => Promise<boolean>; close: () => Promise<void> };
  if (cluster.name === 'etcd') {
    const require = createRequire(path.join(benchDir, 'etcd-client', 'package.json'));
    if (!existsSync(path.join(benchDir, 'etcd-client', 'node_modules'))) {
      const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: path.join(benchDir, 'etcd-client'), stdio: ['ignore', 2, 2] });
      if (npm.status !== 0) throw new Error('npm install in bench/etcd-client failed');
    }
    const { Etcd3 } = require('etcd3') as { Etcd3: new (o: { hosts: string[] }) => { put(k: string): { value(v: Buffer): Promise<unknown> }; get(k: string): { buffer(): Promise<unknown> }; close(): void } };
    const client = new Etcd3({ hosts: [url] });
    native = {
      put: async () => (await client.put(randomKey()).value(VALUE), true),
      get: async () => (await client.get(randomKey()).buffer(), true),
      close: async () => client.close(),
    };
  } else {
    const client = await RaftlineClient.connect({ endpoints: [url] });
    native = {
      put: async () => (await client.put(randomKey(), VALUE), true),
      get: async () => (await client.get(randomKey()), true),
      close: () => client.close(),
    };
  }
  await drive(native.put, PATH_WARMUP_CONCURRENCY, PATH_WARMUP_MS);
  for (const op of ['put', 'get'] as const) {
    for (const concurrency of CONCURRENCY) {
      const r = await run(cluster, native[op], concurrency);
      points.push({ round, system: cluster.name, path: 'native', op, concurrency, ...r });
      console.error(`round ${round}: ${cluster.name} native ${op} c=${concurrency}: ${Math.round(r.opsPerS)} ops/s, p50 ${r.p50Ms.toFixed(2)} ms, errors ${r.errors}`);
    }
  }
  await native.close();
  return points;
}

/** Throughput and p99 against concurrency, one line per system and path, as SVG. */
function chart(points: Point[], op: 'put' | 'get'): string {
  const W = 420;
  const H = 260;
  const pad = 48;
  const lines = [
    ['etcd', 'json', '#888', '6 3'],
    ['raftline', 'json', '#2a6', '6 3'],
    ['etcd', 'native', '#555', ''],
    ['raftline', 'native', '#163', ''],
  ] as const;
  const panel = (x0: number, metric: 'opsPerS' | 'p99Ms', title: string) => {
    const sel = points.filter((p) => p.op === op);
    const max = Math.max(...sel.map((p) => p[metric]), 1);
    const xs = (c: number) => x0 + pad + (CONCURRENCY.indexOf(c) / (CONCURRENCY.length - 1)) * (W - 2 * pad);
    const ys = (v: number) => H - pad + -(v / max) * (H - 2 * pad);
    const paths = lines.map(([system, p, color, dash]) => {
      const pts = sel.filter((q) => q.system === system && q.path === p).map((q) => `${xs(q.concurrency).toFixed(1)},${ys(q[metric]).toFixed(1)}`);
      return `<polyline fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''} points="${pts.join(' ')}"/>`;
    });
    const ticks = CONCURRENCY.map((c) => `<text x="${xs(c)}" y="${H - pad + 16}" font-size="11" text-anchor="middle">${c}</text>`);
    return [
      `<text x="${x0 + W / 2}" y="20" font-size="13" text-anchor="middle">${title}</text>`,
      `<line x1="${x0 + pad}" y1="${H - pad}" x2="${x0 + W - pad}" y2="${H - pad}" stroke="#000"/>`,
      `<line x1="${x0 + pad}" y1="${pad}" x2="${x0 + pad}" y2="${H - pad}" stroke="#000"/>`,
      `<text x="${x0 + pad - 4}" y="${pad}" font-size="11" text-anchor="end">${Math.round(max)}</text>`,
      `<text x="${x0 + W / 2}" y="${H - 8}" font-size="11" text-anchor="middle">concurrency</text>`,
      ...ticks,
      ...paths,
    ].join('\n');
  };
  const legend = lines
    .map(([system, p, color, dash], i) => `<line x1="${20 + i * 200}" y1="${H + 14}" x2="${50 + i * 200}" y2="${H + 14}" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''}/><text x="${56 + i * 200}" y="${H + 18}" font-size="12">${system} ${p === 'json' ? 'JSON API' : 'native client'}</text>`)
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 30}" font-family="sans-serif">\n${panel(0, 'opsPerS', `${op}: ops/s`)}\n${panel(W, 'p99Ms', `${op}: p99 ms`)}\n${legend}\n</svg>\n`;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Each point's median over the rounds, metric by metric; errors are summed. */
function medians(points: Point[]): Point[] {
  const groups = new Map<string, Point[]>();
  for (const p of points) {
    const key = `${p.system} ${p.path} ${p.op} ${p.concurrency}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  return [...groups.values()].map((g) => ({
    ...g[0],
    round: 0,
    opsPerS: median(g.map((p) => p.opsPerS)),
    p50Ms: median(g.map((p) => p.p50Ms)),
    p99Ms: median(g.map((p) => p.p99Ms)),
    p999Ms: median(g.map((p) => p.p999Ms)),
    errors: g.reduce((sum, p) => sum + p.errors, 0),
    serverCpuSPer1k: median(g.map((p) => p.serverCpuSPer1k)),
    generatorCpuSPer1k: median(g.map((p) => p.generatorCpuSPer1k)),
  }));
}

async function main(): Promise<void> {
  if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`BENCH_ROUNDS must be a whole number of rounds, at least 1; got ${JSON.stringify(process.env.BENCH_ROUNDS)}`);
  ensureEtcd();
  const etcdVersion = spawnSync(ETCD, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
  const dataRoot = path.join(benchDir, '.data', 'cluster');
  rmSync(dataRoot, { recursive: true, force: true });
  const rounds: Point[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? [startEtcd, startRaftline] : [startRaftline, startEtcd];
      for (const start of order) {
        const cluster = await start(path.join(dataRoot, `${start === startEtcd ? 'etcd' : 'raftline'}-${round}`));
        try {
          rounds.push(...(await measure(cluster, round)));
        } finally {
          await cluster.stop();
        }
      }
    }
  } finally {
    rmSync(dataRoot, { recursive: true, force: true });
  }
  const points = medians(rounds);
  const date = new Date().toISOString();
  mkdirSync(path.join(benchDir, 'results'), { recursive: true });
  writeFileSync(path.join(benchDir, 'results', `cluster-${date.slice(0, 10)}.json`), `${JSON.stringify({ date, etcdVersion, rounds: ROUNDS, medians: points, points: rounds }, null, 2)}\n`);
  for (const op of ['put', 'get'] as const) writeFileSync(path.join(benchDir, 'results', `cluster-${op}.svg`), chart(points, op));
  const find = (system: string, p: string, op: string, c: number, round = 0) =>
    (round ? rounds : points).find((x) => x.round === round && x.system === system && x.path === p && x.op === op && x.concurrency === c)!;
  /**
   * raftline's value over etcd's for one point in each round, and the median
   * of those: within a round the two were measured minutes apart, so their
   * ratio is what the machine's drift disturbs least.
   */
  const ratios = (p: 'json' | 'native', op: 'put' | 'get', c: number, metric: 'opsPerS' | 'p50Ms') => {
    const rounds = Array.from({ length: ROUNDS }, (_, i) => find('raftline', p, op, c, i + 1)[metric] / find('etcd', p, op, c, i + 1)[metric]);
    return { median: median(rounds), rounds };
  };
  const spread = (r: { rounds: number[] }) => (ROUNDS > 1 ? ` (rounds: ${r.rounds.map((x) => `${x.toFixed(2)}×`).join(', ')})` : '');
  const rows: string[] = [];
  for (const p of ['json', 'native'] as const) {
    for (const op of ['put', 'get'] as const) {
      for (const c of CONCURRENCY) {
        const e = find('etcd', p, op, c);
        const r = find('raftline', p, op, c);
        rows.push(
          `| ${p === 'json' ? 'etcd JSON API' : 'native client'} | ${op} | ${c} | ${fmt(e.opsPerS)} | ${fmt(r.opsPerS)} | **${ratios(p, op, c, 'opsPerS').median.toFixed(2)}×** | ${e.p50Ms.toFixed(2)} / ${e.p99Ms.toFixed(2)} / ${e.p999Ms.toFixed(2)} | ${r.p50Ms.toFixed(2)} / ${r.p99Ms.toFixed(2)} / ${r.p999Ms.toFixed(2)} | ${e.errors} / ${r.errors} | ${e.serverCpuSPer1k.toFixed(2)} / ${r.serverCpuSPer1k.toFixed(2)} | ${e.generatorCpuSPer1k.toFixed(2)} / ${r.generatorCpuSPer1k.toFixed(2)} |`,
        );
      }
    }
  }
  const jsonPut256 = ratios('json', 'put', 256, 'opsPerS');
  const nativePut256 = ratios('native', 'put', 256, 'opsPerS');
  const p50Ratio = ratios('json', 'put', 1, 'p50Ms');
  const report = [
    `Run ${date} with \`npm run bench:cluster\` on ${os.cpus()[0]?.model ?? 'unknown CPU'}, nproc ${os.availableParallelism()}, Node ${process.version}, ${etcdVersion}. ` +
      `${ROUNDS} round${ROUNDS === 1 ? '' : 's'}, the systems taking turns (the order swapped each round), each round on a fresh 3-member cluster of each on loopback, fsync on; every cell is the median over the rounds (errors: the sum), and every ratio the median of the rounds' ratios. The generator talks to the leader. Each path (JSON, native client) starts with ${PATH_WARMUP_MS / 1000} s of puts at concurrency ${PATH_WARMUP_CONCURRENCY}, unmeasured; each point: ${WARMUP_MS / 1000} s warm-up, ${MEASURE_MS / 1000} s measured; ` +
      `puts of 256-byte values to random keys of a ${fmt(KEYSPACE)}-key space, gets of random keys (linearizable). Native clients: etcd3 (gRPC) and raftline/client (binary WebSocket).`,
    '',
    '| path | op | concurrency | etcd ops/s | raftline ops/s | raftline ÷ etcd | etcd p50/p99/p999 ms | raftline p50/p99/p999 ms | errors etcd / raftline | server CPU s per 1k ops etcd / raftline | generator CPU s per 1k ops etcd / raftline |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    '| target | result | met? |',
    '|---|---|---|',
    `| JSON API puts at 256 concurrent ≥ 5× etcd | ${jsonPut256.median.toFixed(2)}×${spread(jsonPut256)} | ${jsonPut256.median >= 5 ? 'yes' : 'no'} |`,
    `| best native client puts at 256 concurrent ≥ 10× etcd | ${nativePut256.median.toFixed(2)}×${spread(nativePut256)} | ${nativePut256.median >= 10 ? 'yes' : 'no'} |`,
    `| p50 put latency at concurrency 1 ≤ half of etcd's | ${p50Ratio.median.toFixed(2)}× etcd's${spread(p50Ratio)} | ${p50Ratio.median <= 0.5 ? 'yes' : 'no'} |`,
    '',
    'Charts: [puts](results/cluster-put.svg), [gets](results/cluster-get.svg).',
  ].join('\n');
  console.log(report);
  updateReadmeSection('cluster', report);
}

await main();
