// Fault scenarios with real server processes (see harness.ts). `npm test`
// runs the short set (one round of each fault); `npm run test:faults` the long
// one (RAFTLINE_FAULTS_LONG=1: longer phases, five rounds of each fault).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { conclude, FaultCluster, summaryTable, Workload, type ScenarioReport } from './harness.js';
import { tempDir } from '../support/tmp.js';

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
  const workload = new Workload(cluster, LONG ? 16 : 6, reports.length + 1);
  try {
    workload.start(CLIENTS);
    await pause(LOAD_MS);
    for (let round = 0; round < ROUNDS; round++) {
      await inject(cluster, round);
      await pause(LOAD_MS);
    }
    await cluster.until('all members back and a leader elected', async () => cluster.ids.every((id) => cluster.running(id)) && (await cluster.leader()) !== null);
    await conclude(name, cluster, workload, reports);
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

test("a follower's log tail corrupted while it is down is cut off on restart and sent again by the leader", () =>
  scenario('torn tail', async (c) => {
    const leader = (await c.leader())!;
    const victim = c.ids.find((id) => id !== leader)!;
    await c.signal(victim, 'SIGKILL');
    const { file, lastByte } = openSegment(c, victim);
    assert.ok(lastByte > 0, `${file} holds records`);
    flipByte(file, lastByte);
    c.faults++; // the corruption, after the kill
    c.spawn(victim);
    await c.until(`${victim} reports the cut`, async () => (c.logs.get(victim) ?? []).some((l) => String(l.msg).includes('torn tail') && l.file === file));
  }));

/** The open segment of a member's log, and where its last non-zero byte is. */
function openSegment(c: FaultCluster, id: string): { file: string; lastByte: number } {
  const logDir = path.join(c.dataDir(id), 'kv', 'log');
  const name = readdirSync(logDir).find((n) => n.endsWith('.open'));
  assert.ok(name, `no open segment in ${logDir}`);
  const file = path.join(logDir, name);
  const bytes = readFileSync(file);
  let last = bytes.length - 1;
  while (last > 0 && bytes[last] === 0) last--;
  return { file, lastByte: last };
}

function flipByte(file: string, at: number): void {
  const fd = openSync(file, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] ^= 0x5a;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

test('corruption inside a follower log stops it with an error naming the file; restoring the file lets it rejoin', async () => {
  const cluster = new FaultCluster(`${dir}/corrupt-middle`);
  await cluster.start(25_000);
  try {
    for (let i = 0; i < 50; i++) assert.equal((await fetch(`${cluster.clientUrl.n1}/v1/kv/k${i}`, { method: 'PUT', body: 'x'.repeat(100) })).status, 200);
    const leader = (await cluster.leader())!;
    const victim = cluster.ids.find((id) => id !== leader)!;
    await cluster.signal(victim, 'SIGKILL');
    const { file } = openSegment(cluster, victim);
    const original = readFileSync(file);
    flipByte(file, 40); // inside the first record's payload, with intact records after it
    const result = cluster.runOnce(victim);
    assert.notEqual(result.status, 0, 'the server refuses to start');
    assert.match(result.stderr, /corrupt/i);
    assert.ok(result.stderr.includes(path.basename(file)), `the error names the file: ${result.stderr}`);
    writeFileSync(file, original);
    cluster.spawn(victim);
    await cluster.until(`${victim} rejoined`, async () => (await fetch(`${cluster.clientUrl[victim]}/v1/kv/k49?consistency=stale`)).status === 200);
  } finally {
    cluster.stopAll();
  }
});
