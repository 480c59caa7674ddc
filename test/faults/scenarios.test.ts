// Fault scenarios with real server processes (see harness.ts). `npm test`
// runs the short set (one round of each fault); `npm run test:faults` the long
// one (RAFTLINE_FAULTS_LONG=1: longer phases, five rounds of each fault).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { conclude, FaultCluster, summaryTable, Workload, type ScenarioReport } from './harness.js';
import { tempDir } from '../support/tmp.js';
import { RECORD_HEADER_BYTES } from '../../src/log/index.js';

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
async function scenario(name: string, inject: (c: FaultCluster, round: number, workload: Workload) => Promise<void>): Promise<void> {
  const cluster = new FaultCluster(`${dir}/${name.replace(/\W+/g, '-')}`);
  await cluster.start(10_000 + (reports.length % 3) * 5000);
  const workload = new Workload(cluster, LONG ? 16 : 6, reports.length + 1);
  try {
    workload.start(CLIENTS);
    await pause(LOAD_MS);
    for (let round = 0; round < ROUNDS; round++) {
      await inject(cluster, round, workload);
      await pause(LOAD_MS);
    }
    await cluster.until('all members serving and a leader elected', async () => (await cluster.allServing()) && (await cluster.leader()) !== null);
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
  scenario('SIGSTOP leader', async (c, _round, workload) => {
    const leader = (await c.leader())!;
    await c.signal(leader, 'SIGSTOP');
    await c.until('the others elect a new leader', async () => {
      const l = await c.leader();
      return l !== null && l !== leader;
    });
    // The history must hold writes the old leader missed, or a stale read from it after SIGCONT would go unseen.
    const acknowledged = workload.acknowledged;
    await c.until('the new leader acknowledges writes while the old one is stopped', async () => workload.acknowledged >= acknowledged + 10);
    await pause(LOAD_MS);
    await c.signal(leader, 'SIGCONT');
    // Straight to the deposed leader, before it hears of the new term: the moment a stale read would come from.
    await workload.readAllFrom(leader);
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

test("a follower's last write torn at a sector boundary while it is down is cut off on restart and sent again by the leader", () =>
  scenario('torn tail', async (c) => {
    const leader = (await c.leader())!;
    const victim = c.ids.find((id) => id !== leader)!;
    await c.signal(victim, 'SIGKILL');
    const { file, bytes } = openSegment(c, victim);
    // What a power loss in the middle of the last write leaves: the sectors
    // from a boundary inside one of the last records on were never written,
    // so they hold the preallocation's zeros. (Those records were synced and
    // maybe acknowledged; the leader and the third member still hold them.)
    // The part past the boundary must hold a non-zero byte: a record whose
    // bytes there are zeros already (a command ending in a zero count, say)
    // would come through the tear intact.
    const torn = recordSpans(bytes)
      .filter(([start, end]) => sectorAfter(start) < end && bytes.subarray(sectorAfter(start), end).some((b) => b !== 0))
      .pop();
    assert.ok(torn, `${file} holds a record across a sector boundary`);
    const from = sectorAfter(torn[0]);
    bytes.fill(0, from);
    writeFileSync(file, bytes);
    c.faults++; // the tear, after the kill
    c.spawn(victim);
    await c.until(`${victim} reports the cut`, async () =>
      (c.logs.get(victim) ?? []).some((l) => String(l.msg).includes('torn tail') && l.file === file && l.offset === torn[0]),
    );
  }));

const SECTOR_BYTES = 512;

/** The first sector boundary after byte `at`. */
function sectorAfter(at: number): number {
  return (Math.floor(at / SECTOR_BYTES) + 1) * SECTOR_BYTES;
}

/** [start, end) of each record in a segment's bytes, up to the zero-filled space (docs/log-format.md). */
function recordSpans(bytes: Buffer): [number, number][] {
  const spans: [number, number][] = [];
  for (let at = 0; at + RECORD_HEADER_BYTES <= bytes.length && bytes.readUInt16LE(at) !== 0; ) {
    const end = at + RECORD_HEADER_BYTES + bytes.readUInt32LE(at + 4);
    spans.push([at, end]);
    at = end;
  }
  return spans;
}

/** The open segment of a member's log, and its bytes. */
function openSegment(c: FaultCluster, id: string): { file: string; bytes: Buffer } {
  const logDir = path.join(c.dataDir(id), 'kv', 'log');
  const name = readdirSync(logDir).find((n) => n.endsWith('.open'));
  assert.ok(name, `no open segment in ${logDir}`);
  const file = path.join(logDir, name);
  return { file, bytes: readFileSync(file) };
}

/** Offset of the last non-zero byte: inside the last record, before the zero-filled space. */
function lastNonZero(bytes: Buffer): number {
  let last = bytes.length - 1;
  while (last > 0 && bytes[last] === 0) last--;
  return last;
}

test('damage to data a follower wrote in full, inside its log or in its last record, stops it with an error naming the file; restoring the file lets it rejoin', async () => {
  const cluster = new FaultCluster(`${dir}/corrupt`);
  await cluster.start(25_000);
  const put = async (key: string) => {
    const leader = (await cluster.leader())!;
    assert.equal((await fetch(`${cluster.clientUrl[leader]}/v1/kv/${key}`, { method: 'PUT', body: 'x'.repeat(100) })).status, 200);
  };
  // Where the flipped byte goes, and what the refusal says.
  const damages: [string, (bytes: Buffer) => number, RegExp][] = [
    ['inside the first record, with intact records after it', () => 40, /followed by an intact record/],
    ['in the last record: not a torn write, so it may have been acknowledged', lastNonZero, /not a torn write/],
  ];
  try {
    for (let i = 0; i < 50; i++) await put(`k${i}`);
    for (const [where, at, refusal] of damages) {
      const leader = (await cluster.leader())!;
      const victim = cluster.ids.find((id) => id !== leader)!;
      await cluster.signal(victim, 'SIGKILL');
      const { file, bytes } = openSegment(cluster, victim);
      const damaged = Buffer.from(bytes);
      damaged[at(bytes)] ^= 0x5a;
      writeFileSync(file, damaged);
      const result = cluster.runOnce(victim);
      assert.notEqual(result.status, 0, `the server refuses to start with a flipped byte ${where}`);
      assert.match(result.stderr, /corrupt/i);
      assert.match(result.stderr, refusal);
      assert.ok(result.stderr.includes(path.basename(file)), `the error names the file: ${result.stderr}`);
      // Written while the victim is down, so reading it there shows it caught up.
      const key = `while-down-${victim}-${at(bytes)}`;
      await put(key);
      writeFileSync(file, bytes);
      cluster.spawn(victim);
      await cluster.until(`${victim} rejoined`, async () => (await fetch(`${cluster.clientUrl[victim]}/v1/kv/${key}?consistency=stale`)).status === 200);
    }
  } finally {
    cluster.stopAll();
  }
});
