// `npm run bench:probe -- [--plan json:1,native:256] [--measure-ms N] [--node-arg FLAG]...`:
// one 3-node raftline cluster on loopback (no etcd), driven by the same load
// as `npm run bench:cluster`, for trying a change quickly. Each plan item runs
// one after the other on the same cluster (`json:C` puts through the etcd
// JSON API, `native:C` through raftline/client, at concurrency C, `idle:0`
// nothing) and prints throughput, latency, CPU per operation of each server
// process and of this one, and the leader's peer messages per operation.
// `--node-arg` passes a flag to the servers' Node (`--cpu-prof`, say). Two
// builds compare fairly only when run in turns, several times: this
// machine's speed drifts by tens of percent within minutes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { RaftlineClient } from '../src/client/index.js';
import { clusterArgs, freePorts, spawnServer } from '../test/support/servers.js';
import { cpuSeconds, drive, jsonPutBody, randomKey, VALUE } from './cluster-load.js';
import { HttpLoadClient } from './http-load.js';
import { percentiles } from './measure.js';

const WARMUP_MS = 1000;

const { values } = parseArgs({
  options: {
    plan: { type: 'string', default: 'json:64,json:1,native:256,json:256' },
    'measure-ms': { type: 'string', default: '5000' },
    'node-arg': { type: 'string', multiple: true, default: [] },
  },
});
const measureMs = Number(values['measure-ms']);
if (!Number.isFinite(measureMs) || measureMs <= 0) throw new Error(`--measure-ms takes a positive number of milliseconds, not ${values['measure-ms']}`);
const plan = values.plan.split(',').map((item) => {
  const [kind, c] = item.split(':');
  const concurrency = Number(c);
  if (!['json', 'native', 'idle'].includes(kind) || !Number.isInteger(concurrency) || concurrency < 0) {
    throw new Error(`--plan items are json:C, native:C or idle:0 (C a concurrency); got ${JSON.stringify(item)}`);
  }
  return { kind, concurrency };
});

interface PeerCounters {
  peerTransport: { peers: Record<string, { messagesSent: number; bytesSent: number }> };
}

const root = mkdtempSync(path.join(os.tmpdir(), 'raftline-probe-'));
const secretFile = path.join(root, 'secret');
writeFileSync(secretFile, 'bench-probe-secret-0123456789');
const ids = ['n1', 'n2', 'n3'];
const { args, clientUrl } = clusterArgs(ids, await freePorts(6, 20_000), root, secretFile, false);
const children = ids.map((id) => spawnServer([...args[id], '--log-level', 'warn'], [], {}, values['node-arg']).child);
try {
  let leader = -1;
  for (const deadline = Date.now() + 30_000; leader < 0; ) {
    if (Date.now() > deadline) throw new Error('no leader within 30 s');
    await new Promise((r) => setTimeout(r, 200));
    const roles = await Promise.all(ids.map((id) => fetch(`${clientUrl[id]}/status`).then((r) => r.json() as Promise<{ role: string }>, () => ({ role: '' }))));
    leader = roles.findIndex((s) => s.role === 'leader');
  }
  const leaderUrl = clientUrl[ids[leader]];
  const counters = async () => (await (await fetch(`${leaderUrl}/status`)).json()) as PeerCounters;
  const http = new HttpLoadClient(leaderUrl);
  const client = await RaftlineClient.connect({ endpoints: [leaderUrl] });
  const ops: Record<string, () => Promise<boolean>> = {
    json: async () => (await http.post('/v3/kv/put', jsonPutBody())) === 200,
    native: async () => (await client.put(randomKey(), VALUE), true),
  };
  const label = (i: number) => `${ids[i]}${i === leader ? ' (leader)' : ''}`;
  for (const { kind, concurrency } of plan) {
    if (kind === 'idle') {
      const cpu0 = children.map((c) => cpuSeconds([c.pid!]));
      await new Promise((r) => setTimeout(r, measureMs));
      console.log(`idle: % of a core ${children.map((c, i) => `${label(i)} ${(((cpuSeconds([c.pid!]) - cpu0[i]) * 1000 * 100) / measureMs).toFixed(1)}`).join(', ')}`);
      continue;
    }
    await drive(ops[kind], concurrency, WARMUP_MS);
    const latencies: number[] = [];
    let errors = 0;
    const before = await counters();
    const serverCpu0 = children.map((c) => cpuSeconds([c.pid!]));
    const generator0 = process.cpuUsage();
    const t0 = performance.now();
    await drive(ops[kind], concurrency, measureMs, (latencyMs) => {
      if (latencyMs === null) errors++;
      else latencies.push(latencyMs);
    });
    const seconds = (performance.now() - t0) / 1000;
    const generator = process.cpuUsage(generator0);
    const n = latencies.length;
    const after = await counters();
    const p = percentiles(latencies);
    const perOpUs = (s: number) => ((s / n) * 1e6).toFixed(1);
    console.log(
      `${kind} c=${concurrency}: ${Math.round(n / seconds)} ops/s, p50 ${p.p50Ms.toFixed(2)} ms, p99 ${p.p99Ms.toFixed(2)} ms, errors ${errors}; ` +
        `CPU µs/op ${children.map((c, i) => `${label(i)} ${perOpUs(cpuSeconds([c.pid!]) - serverCpu0[i])}`).join(', ')}, generator ${perOpUs((generator.user + generator.system) / 1e6)}`,
    );
    for (const [id, peer] of Object.entries(after.peerTransport.peers)) {
      const was = before.peerTransport.peers[id];
      console.log(`  leader -> ${id}: ${((peer.messagesSent - was.messagesSent) / n).toFixed(3)} messages/op, ${((peer.bytesSent - was.bytesSent) / n).toFixed(0)} bytes/op`);
    }
  }
  http.close();
  await client.close();
} finally {
  await Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve(null) : (c.once('exit', resolve), c.kill('SIGTERM'))))));
  rmSync(root, { recursive: true, force: true });
}
