// A failed fdatasync (EIO), with real server processes. Every member runs with
// the failsync shim (test/support/failsync.c), whose fdatasync and fsync fail
// with EIO while that member's trigger file exists. Under load the trigger is
// created for one member (the leader, then in the second test a follower).
// After a failed flush the kernel may have dropped the dirty pages or marked
// them clean, so the member must fail-stop: log the failed sync at fatal and
// exit 1. The other two go on acknowledging writes; once the trigger is gone
// the member is started again (still with the shim), rejoins and catches up,
// and the whole history must stay linearizable: no acknowledged write lost or
// duplicated around the failure.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { conclude, FaultCluster, summaryTable, Workload, type ScenarioReport } from './harness.js';
import { buildFailSync, failSyncEnv } from '../support/failsync.js';
import { tempDir } from '../support/tmp.js';

const LONG = process.env.RAFTLINE_FAULTS_LONG === '1';
const ROUNDS = LONG ? 5 : 1;
const LOAD_MS = LONG ? 3000 : 1000;
const CLIENTS = 4;
/** One stuck request must not use up the whole wait of `until`. */
const REQUEST_TIMEOUT_MS = 5000;
/** pino's level number for `fatal`. */
const FATAL = 60;

const { dir, cleanup } = tempDir('disk-eio');
const reports: ScenarioReport[] = [];
let shim = '';
// A failure here fails every test in the file: without the shim none could inject anything.
before(() => {
  shim = buildFailSync(dir);
});

after(() => {
  console.log(`\nFailed-sync scenarios (${LONG ? 'long' : 'short'} set):\n\n${summaryTable(reports)}\n`);
  cleanup();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Makes `victim`'s syncs fail; asserts that it logs the failed sync at fatal and exits 1, while the others carry on. */
async function failSync(cluster: FaultCluster, workload: Workload, victim: string, trigger: string): Promise<void> {
  const dataDir = cluster.dataDir(victim);
  writeFileSync(trigger, '');
  cluster.faults++;
  await cluster.until(`${victim} exits`, async () => cluster.exit(victim) !== null);
  assert.deepEqual(cluster.exit(victim), { code: 1, signal: null }, `${victim} exits with status 1`);
  // The log line travels through a pipe, which may still hold it when the exit is reported.
  const fatalLine = () => cluster.logs.get(victim)!.find((l) => l.level === FATAL);
  await cluster.until(`${victim} logs a fatal line`, async () => fatalLine() !== undefined);
  const line = fatalLine()!;
  const msg = String(line.msg);
  // The node may stop on the failed batch itself or on an append refused after it ("the log stopped after a write failure (…)"): both name the sync.
  const failed = /^fatal error, exiting so that the server restarts from what is on disk: .*\b(fdatasync|fsync|fsync directory) (\S+): Input\/output error\b/.exec(msg);
  assert.ok(failed, `the fatal line names the failed sync: ${msg}`);
  assert.ok(failed[2].startsWith(dataDir + path.sep), `names a file of ${victim}'s data directory: ${msg}`);
  assert.equal(line.dataDir, dataDir);

  // A majority is left: it elects a leader among itself if need be and goes on.
  await cluster.until('a leader among the other two', async () => {
    const l = await cluster.leader();
    return l !== null && l !== victim;
  });
  const acknowledged = workload.acknowledged;
  await cluster.until('the others acknowledge more writes', async () => workload.acknowledged > acknowledged + 20);
}

/** Starts `victim` again with its trigger gone; asserts that it rejoins and catches up. */
async function recover(cluster: FaultCluster, victim: string, trigger: string, marker: string): Promise<void> {
  unlinkSync(trigger);
  cluster.spawn(victim);
  const other = cluster.ids.find((id) => id !== victim)!;
  await cluster.until(`a write through ${other}`, async () => (await fetch(`${cluster.clientUrl[other]}/v1/kv/after-eio`, { method: 'PUT', body: marker, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).status === 200);
  // Linearizable: answered only once it has applied everything committed before the read.
  await cluster.until(`${victim} serves the latest value linearizably`, async () => {
    const r = await fetch(`${cluster.clientUrl[victim]}/v1/kv/after-eio`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    return r.status === 200 && (await r.text()) === marker;
  });
}

async function scenario(name: string, region: number, pick: 'leader' | 'follower'): Promise<void> {
  const trigger = (id: string) => path.join(dir, `${pick}-${id}.fail-sync`);
  const cluster = new FaultCluster(path.join(dir, pick), 3, [], (id) => failSyncEnv(shim, trigger(id)));
  await cluster.start(region);
  const workload = new Workload(cluster, LONG ? 16 : 6, region);
  try {
    workload.start(CLIENTS);
    await pause(LOAD_MS);
    for (let round = 0; round < ROUNDS; round++) {
      let leader: string | null = null;
      await cluster.until('a leader', async () => (leader = await cluster.leader()) !== null);
      const victim = pick === 'leader' ? leader! : cluster.ids.find((id) => id !== leader)!;
      await failSync(cluster, workload, victim, trigger(victim));
      await recover(cluster, victim, trigger(victim), `${name} ${round}`);
      await pause(LOAD_MS);
    }
    await conclude(name, cluster, workload, reports);
  } finally {
    await workload.stop();
    cluster.stopAll();
  }
}

test('fdatasync fails with EIO on the leader: it logs it and exits 1, a new leader goes on; restarted, it catches up', () =>
  scenario('fsync EIO: leader', 1_100, 'leader'));

test('fdatasync fails with EIO on a follower: it logs it and exits 1, the others go on; restarted, it catches up', () =>
  scenario('fsync EIO: follower', 5_100, 'follower'));
