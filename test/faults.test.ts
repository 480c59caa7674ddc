// Fault scenarios with real server processes (see test/faults/harness.ts).
// `npm test` runs each once, briefly; `npm run test:faults` sets
// RAFTLINE_FAULTS_LONG=1 for longer runs and several rounds of each fault.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { FaultCluster, summaryTable, verify, Workload, type ScenarioReport } from './faults/harness.js';
import { tempDir } from './support/tmp.js';

const LONG = process.env.RAFTLINE_FAULTS_LONG === '1';
const ROUNDS = LONG ? 5 : 1;
const LOAD_MS = LONG ? 3000 : 1000;
const CLIENTS = 4;

const { dir, cleanup } = tempDir('faults');
const reports: ScenarioReport[] = [];
after(() => {
  console.log(`\nFault scenarios (${LONG ? 'long' : 'short'} set):\n\n${summaryTable(reports)}\n`);
  cleanup();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `inject` ROUNDS times under load on a fresh cluster, then checks the history. */
async function scenario(name: string, inject: (c: FaultCluster, round: number) => Promise<void>): Promise<void> {
  const cluster = new FaultCluster(`${dir}/${name.replace(/\W+/g, '-')}`);
  await cluster.start(10_000 + (reports.length % 3) * 5000);
  const workload = new Workload(cluster, 6, reports.length + 1);
  try {
    workload.start(CLIENTS);
    await pause(LOAD_MS);
    for (let round = 0; round < ROUNDS; round++) {
      await inject(cluster, round);
      await pause(LOAD_MS);
    }
    await cluster.until('all members back and a leader elected', async () => cluster.ids.every((id) => cluster.running(id)) && (await cluster.leader()) !== null);
    await workload.stop();
    const report = await verify(name, cluster, workload);
    reports.push(report);
    assert.ok(report.acknowledged > 0, 'writes were acknowledged during the scenario');
    assert.equal(report.anomalies, 0, report.detail);
  } finally {
    await workload.stop();
    cluster.stopAll();
  }
}

async function killAndRestart(c: FaultCluster, pick: 'leader' | 'follower'): Promise<void> {
  const leader = (await c.leader())!;
  const victim = pick === 'leader' ? leader : c.ids.find((id) => id !== leader)!;
  await c.signal(victim, 'SIGKILL');
  await pause(LOAD_MS);
  c.spawn(victim);
}

test('kill -9 of the leader under load, then restart', () => scenario('kill -9 leader', (c) => killAndRestart(c, 'leader')));

test('kill -9 of a follower under load, then restart', () => scenario('kill -9 follower', (c) => killAndRestart(c, 'follower')));

test('kill -9 of every node under load, then restart them all', () =>
  scenario('kill -9 all', async (c) => {
    for (const id of c.ids) await c.signal(id, 'SIGKILL');
    await pause(300);
    for (const id of c.ids) c.spawn(id);
  }));

test('SIGSTOP of the leader beyond the election timeout, then SIGCONT: no stale reads, nothing lost', () =>
  scenario('SIGSTOP leader', async (c) => {
    const leader = (await c.leader())!;
    await c.signal(leader, 'SIGSTOP');
    await c.until('the others elect a new leader', async () => {
      const l = await c.leader();
      return l !== null && l !== leader;
    });
    await pause(LOAD_MS);
    await c.signal(leader, 'SIGCONT');
  }));

test('rolling restart under load', () =>
  scenario('rolling restart', async (c) => {
    for (const id of c.ids) {
      await c.signal(id, 'SIGTERM');
      c.spawn(id);
      await c.until(`${id} back`, async () => (await fetch(`${c.clientUrl[id]}/status`)).ok && (await c.leader()) !== null);
    }
  }));

test('leadership transfer under load', () =>
  scenario('leadership transfer', async (c) => {
    const leader = (await c.leader())!;
    const to = c.ids.find((id) => id !== leader)!;
    const r = await fetch(`${c.clientUrl[leader]}/v1/admin/transfer-leader`, { method: 'POST', body: JSON.stringify({ to }) });
    assert.equal(r.status, 200);
    c.faults++;
    await c.until(`${to} leads`, async () => (await c.leader()) === to);
  }));

test('membership change while a member is down: remove it, restart it, add it back', () =>
  scenario('membership while down', async (c) => {
    const leader = (await c.leader())!;
    const down = c.ids.find((id) => id !== leader)!;
    await c.signal(down, 'SIGKILL');
    const admin = async (op: string, body: unknown) => {
      let status = 0;
      await c.until(`${op} ${down}`, async () => {
        const l = await c.leader();
        if (!l) return false;
        status = (await fetch(`${c.clientUrl[l]}/v1/admin/${op}`, { method: 'POST', body: JSON.stringify(body) })).status;
        return status === 200;
      });
    };
    await admin('remove-peer', { id: down });
    await pause(LOAD_MS);
    c.spawn(down);
    const peer = c.peerAddress(down);
    await admin('add-peer', { id: down, address: peer });
  }));
