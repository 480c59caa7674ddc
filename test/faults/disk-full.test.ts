// Disk full, with real server processes: every member's data directory is a
// small tmpfs; under load a filler file takes all the space on one member
// (a follower, then the leader). That member must say so clearly (log line,
// /status, /metrics), keep running and answer 503 storage_unavailable, while
// the others go on acknowledging writes; once the filler is deleted it must
// restart its node from disk on its own, catch up and serve linearizable
// reads, and the whole history must stay linearizable with no acknowledged
// write lost. Mounting needs root: without it the scenarios are reported as
// not run, never as passed.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { unlinkSync } from 'node:fs';
import path from 'node:path';
import { RaftlineClient } from '../../src/client/index.js';
import { conclude, FaultCluster, summaryTable, Workload, type ScenarioReport } from './harness.js';
import { tempDir } from '../support/tmp.js';
import { fillUp, mountTmpfs, unmount } from '../support/tmpfs.js';

const TMPFS_BYTES = 2 << 20;
// Small segments roll (and so need new space) every second or so under this load.
const SEGMENT_BYTES = 8192;
const LOAD_MS = 1000;
const CLIENTS = 4;

const { dir, cleanup } = tempDir('disk-full');
const reports: ScenarioReport[] = [];
const mounts: string[] = [];
const probe = path.join(dir, 'probe');
const cannotMount = mountTmpfs(probe, TMPFS_BYTES);
if (cannotMount) console.error(`\n*** disk-full fault scenarios NOT RUN: ${cannotMount}\n`);
else mounts.push(probe);
const skip = cannotMount ? `NOT RUN: cannot mount a tmpfs for the data directories (${cannotMount})` : false;

after(() => {
  console.log(`\nDisk-full scenarios:\n\n${cannotMount ? `not run: ${cannotMount}` : summaryTable(reports)}\n`);
  for (const m of mounts) unmount(m);
  cleanup();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Status {
  role: string;
  storage: { ok: boolean; error?: string };
  appliedIndex: number;
}

async function status(c: FaultCluster, id: string): Promise<Status> {
  return (await fetch(`${c.clientUrl[id]}/status`)).json() as Promise<Status>;
}

async function scenario(t: TestContext, name: string, region: number, pick: 'leader' | 'follower'): Promise<void> {
  const cluster = new FaultCluster(path.join(dir, pick), 3, ['--segment-bytes', String(SEGMENT_BYTES)]);
  for (const id of cluster.ids) {
    const why = mountTmpfs(cluster.dataDir(id), TMPFS_BYTES);
    assert.equal(why, null, `mount a tmpfs for ${id}`);
    mounts.push(cluster.dataDir(id));
  }
  await cluster.start(region);
  const workload = new Workload(cluster, 6, region);
  try {
    workload.start(CLIENTS);
    await pause(LOAD_MS);
    const leader = (await cluster.leader())!;
    const victim = pick === 'leader' ? leader : cluster.ids.find((id) => id !== leader)!;
    const others = cluster.ids.filter((id) => id !== victim);
    const dataDir = cluster.dataDir(victim);
    // Connected to the leader: in the second case, the member whose disk fills.
    const client = await RaftlineClient.connect({ endpoints: cluster.ids.map((id) => cluster.clientUrl[id]) });
    t.after(() => client.close());

    const { file: filler } = fillUp(dataDir);
    cluster.faults++;
    await cluster.until(`${victim} reports its storage unavailable`, async () => !(await status(cluster, victim)).storage.ok);

    // Said clearly, in the log and in /status, by a process that keeps running.
    // The log line travels through a pipe, /status through a socket: either may arrive first.
    const errorLine = () => cluster.logs.get(victim)!.find((l) => l.level === 50 && String(l.msg).startsWith('storage unavailable'));
    await cluster.until(`${victim} logs an error line`, async () => errorLine() !== undefined);
    const line = errorLine()!;
    assert.match(String(line.msg), /no space left on device/);
    assert.ok(String(line.msg).includes(dataDir), `names the data directory: ${String(line.msg)}`);
    assert.ok(String(line.path).startsWith(dataDir), `names the file: ${String(line.path)}`);
    const down = await status(cluster, victim);
    assert.equal(down.role, 'stopped');
    assert.match(down.storage.error ?? '', /no space left on device/);
    assert.ok(cluster.running(victim), 'the member keeps running');
    assert.match(await (await fetch(`${cluster.clientUrl[victim]}/metrics`)).text(), /^raftline_storage_available 0$/m);
    for (const [method, body] of [['PUT', 'x'], ['GET', undefined]] as const) {
      const r = await fetch(`${cluster.clientUrl[victim]}/v1/kv/k0`, { method, body });
      assert.equal(r.status, 503, `${method} on the full member`);
      assert.equal(((await r.json()) as { code: string }).code, 'storage_unavailable');
    }

    // The others still form a majority and acknowledge writes; the client finds them.
    await client.put('during-client', name);
    const acknowledged = workload.acknowledged;
    await cluster.until('the others acknowledge more writes', async () => workload.acknowledged > acknowledged + 20);
    await cluster.until('a write through another member', async () => (await fetch(`${cluster.clientUrl[others[0]]}/v1/kv/during`, { method: 'PUT', body: name })).status === 200);

    unlinkSync(filler);
    cluster.faults++;
    await cluster.until(`${victim} resumes on its own`, async () => (await status(cluster, victim)).storage.ok);
    await cluster.until(`${victim} logs that storage is available again`, async () =>
      cluster.logs.get(victim)!.some((l) => l.msg === 'storage available again: the node restarted from its data directory'));
    await cluster.until('a write through another member', async () => (await fetch(`${cluster.clientUrl[others[0]]}/v1/kv/after`, { method: 'PUT', body: name })).status === 200);
    await cluster.until(`${victim} serves the latest values linearizably`, async () => {
      const [during, after] = await Promise.all(['during', 'after'].map((k) => fetch(`${cluster.clientUrl[victim]}/v1/kv/${k}`)));
      return during.status === 200 && after.status === 200 && (await during.text()) === name && (await after.text()) === name;
    });
    assert.match(await (await fetch(`${cluster.clientUrl[victim]}/metrics`)).text(), /^raftline_storage_available 1$/m);
    await pause(LOAD_MS);

    await conclude(name, cluster, workload, reports);
  } finally {
    await workload.stop();
    cluster.stopAll();
  }
}

test('disk full on a follower: it says so, answers 503, the others go on; it resumes once space frees', { skip }, (t) =>
  scenario(t, 'disk full: follower', 15_000, 'follower'));

test('disk full on the leader: it says so, answers 503, a new leader goes on; it resumes once space frees', { skip }, (t) =>
  scenario(t, 'disk full: leader', 20_000, 'leader'));
