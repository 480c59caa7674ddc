// The log, the meta store and the snapshot store on a full disk (a small
// tmpfs): the write that runs out of space fails with ENOSPC, nothing
// acknowledged is lost, nothing half-written is left holding space, and
// reopening after space frees carries on. Needs root to mount the tmpfs;
// without it every test here is reported as skipped, naming why.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { constants as osConstants } from 'node:os';
import { mkdirSync, readdirSync, rmSync, statfsSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LogClosedError, LogIOError, MetaStore, outOfSpaceError, SegmentLog, type LogEntry } from '../src/log/index.js';
import { RaftError } from '../src/node/index.js';
import { SnapshotStore } from '../src/node/snapshot-store.js';
import { tempDir } from './support/tmp.js';
import { fillUp, mountTmpfs, unmount } from './support/tmpfs.js';

const TMPFS_BYTES = 1 << 20;
const { dir: root, cleanup } = tempDir('log-disk-full');
const mnt = path.join(root, 'tmpfs');
const cannotMount = mountTmpfs(mnt, TMPFS_BYTES);
if (cannotMount) console.error(`\n*** disk-full storage tests NOT RUN: ${cannotMount}\n`);
const skip = cannotMount ? `NOT RUN: no tmpfs to fill (${cannotMount})` : false;
after(() => {
  if (!cannotMount) unmount(mnt);
  cleanup();
});

function entries(from: number, count: number, bytes: number): LogEntry[] {
  return Array.from({ length: count }, (_, i) => ({ index: from + i, term: 1, type: 0, data: Buffer.alloc(bytes, (from + i) % 251) }));
}

/** A fresh directory on the tmpfs, removed with everything beside it when the test ends. */
function area(t: TestContext, name: string): string {
  const dir = path.join(mnt, name);
  mkdirSync(dir);
  t.after(() => {
    for (const n of readdirSync(mnt)) rmSync(path.join(mnt, n), { recursive: true, force: true });
  });
  return dir;
}

/** A filler file that leaves about `freeBytes` of the tmpfs free: the space to give back later. */
function squeeze(freeBytes: number): string {
  const filler = path.join(mnt, 'filler');
  const { bavail, bsize } = statfsSync(mnt);
  writeFileSync(filler, Buffer.alloc(Math.max(0, bavail * bsize - freeBytes)));
  return filler;
}

function assertOutOfSpace(err: unknown, dir: string): void {
  const io = outOfSpaceError(err);
  assert.ok(io, `an out-of-space error: ${String(err)}`);
  assert.equal(io.errno, osConstants.errno.ENOSPC);
  assert.match(io.message, /No space left on device/);
  assert.ok(io.file?.startsWith(dir), `names a file in ${dir}: ${io.file}`);
}

async function assertIntact(log: SegmentLog, bytes: number): Promise<void> {
  const got = await log.read(1, log.lastIndex + 1);
  assert.equal(got.length, log.lastIndex);
  for (const e of got) assert.ok(Buffer.from(e.data).equals(Buffer.alloc(bytes, e.index % 251)), `entry ${e.index} reads back as written`);
}

test('an append that runs out of space fails with ENOSPC; reopening keeps every acknowledged entry and resumes once space frees', { skip }, async (t) => {
  const dir = area(t, 'log');
  const filler = squeeze(192 * 1024);
  const log = await SegmentLog.open(dir, { segmentBytes: 16 * 1024 });
  let acked = 0;
  let failure: unknown;
  // Several appends in flight at once, as group commit sees them.
  while (failure === undefined) {
    const from = log.lastIndex + 1;
    const results = await Promise.allSettled([0, 1, 2, 3].map((k) => log.append(entries(from + k * 4, 4, 900))));
    results.forEach((r, k) => {
      if (r.status === 'fulfilled') acked = Math.max(acked, from + k * 4 + 3);
      else failure ??= r.reason;
    });
  }
  assertOutOfSpace(failure, dir);
  assert.ok(acked > 0, 'some appends fit before the disk filled');
  // The log stays stopped: a retry on the same descriptors could not be trusted.
  const again = await log.append(entries(log.lastIndex + 1, 1, 10)).then(() => null, (err: unknown) => err);
  assert.ok(again instanceof LogClosedError, String(again));
  assertOutOfSpace(again, dir);
  await log.close();
  const halfMade = readdirSync(dir).filter((n) => n.endsWith('.tmp') || n.endsWith('.prealloc') || (n.endsWith('.open') && statSync(path.join(dir, n)).size === 0));
  assert.deepEqual(halfMade, [], 'no half-made files left holding space');

  const full = await SegmentLog.open(dir, { segmentBytes: 16 * 1024 });
  assert.ok(full.lastIndex >= acked, `reopened on the full disk: last index ${full.lastIndex}, acknowledged ${acked}`);
  await assertIntact(full, 900);
  await full.close();

  unlinkSync(filler);
  const freed = await SegmentLog.open(dir, { segmentBytes: 16 * 1024 });
  const next = freed.lastIndex + 1;
  await freed.append(entries(next, 40, 900));
  assert.equal(freed.lastIndex, next + 39);
  await assertIntact(freed, 900);
  await freed.close();
});

test('appends asking for the calling thread (onCallerIfIdle) on a disk that fills up: the roll that finds no space fails the same way, and nothing acknowledged is lost', { skip }, async (t) => {
  const dir = area(t, 'on-caller');
  squeeze(160 * 1024);
  const log = await SegmentLog.open(dir, { segmentBytes: 16 * 1024 });
  let acked = 0;
  let onCaller = 0;
  let failure: unknown;
  // One at a time, so the writer is always idle: every append that fits the
  // open segment is done here; one that starts a segment goes to the writer,
  // and that is where a full disk shows (the segment cannot be preallocated).
  while (failure === undefined) {
    const batch = entries(log.lastIndex + 1, 4, 900);
    const appended = log.append(batch, { onCallerIfIdle: true });
    if (log.durableIndex === batch[3].index) onCaller++;
    await appended.then(
      () => {
        assert.equal(log.durableIndex, batch[3].index, 'an acknowledged append is durable');
        acked = batch[3].index;
      },
      (err: unknown) => void (failure = err),
    );
  }
  assertOutOfSpace(failure, dir);
  assert.ok(acked > 0, 'some appends fit before the disk filled');
  assert.ok(onCaller > 0, 'some appends were written on the calling thread');
  const again = await log.append(entries(log.lastIndex + 1, 1, 10), { onCallerIfIdle: true }).then(() => null, (err: unknown) => err);
  assert.ok(again instanceof LogClosedError, String(again));
  await log.close();
  const reopened = await SegmentLog.open(dir, { segmentBytes: 16 * 1024 });
  assert.ok(reopened.lastIndex >= acked, `reopened: last index ${reopened.lastIndex}, acknowledged ${acked}`);
  await assertIntact(reopened, 900);
  await reopened.close();
});

test('a record cut short by a full disk is a torn tail: reopening cuts it off and keeps everything acknowledged', { skip }, async (t) => {
  const dir = area(t, 'torn');
  squeeze(96 * 1024);
  // The record is bigger than a segment, so it goes past the preallocated space and is cut short mid-write.
  const log = await SegmentLog.open(dir, { segmentBytes: 4096 });
  await log.append(entries(1, 3, 100));
  const failure = await log.append(entries(4, 1, 300 * 1024)).then(() => null, (err: unknown) => err);
  assertOutOfSpace(failure, dir);
  await log.close();

  const reopened = await SegmentLog.open(dir, { segmentBytes: 4096 });
  assert.equal(reopened.lastIndex, 3);
  assert.ok(reopened.recovery.truncatedBytes > 0, `the torn record was cut off: ${JSON.stringify(reopened.recovery)}`);
  await assertIntact(reopened, 100);
  await reopened.close();
});

test('on a full disk a meta store still saves a term and vote (in place), and a bigger state fails with ENOSPC, keeping the old one and no temporary file', { skip }, async (t) => {
  const dir = area(t, 'meta');
  const meta = await MetaStore.open(dir);
  await meta.save({ term: 1, vote: 'n1' });
  const { file: filler } = fillUp(mnt);
  await meta.save({ term: 2, vote: 'n2' });
  assert.deepEqual((await MetaStore.open(dir)).state, { term: 2, vote: 'n2' });
  const failure = await meta.save({ term: 3, vote: 'n3', padding: 'x'.repeat(8192) }).then(() => null, (err: unknown) => err);
  assertOutOfSpace(failure, dir);
  assert.deepEqual(readdirSync(dir), ['meta']);
  assert.deepEqual((await MetaStore.open(dir)).state, { term: 2, vote: 'n2' });
  unlinkSync(filler);
  await meta.save({ term: 3, vote: 'n3' });
  assert.deepEqual((await MetaStore.open(dir)).state, { term: 3, vote: 'n3' });
});

test('a snapshot save on a full disk fails with ENOSPC, keeps the previous snapshot and removes its partial file', { skip }, async (t) => {
  const dir = area(t, 'snapshots');
  const store = await SnapshotStore.open(dir);
  const meta = (index: number) => ({ index, term: 1, configuration: { voters: ['n1'], learners: [] } });
  const first = await store.save(meta(10), (w) => w.write(Buffer.alloc(1000, 1)));
  const { file: filler } = fillUp(mnt);
  const failure = await store.save(meta(20), (w) => w.write(Buffer.alloc(64 * 1024, 2))).then(() => null, (err: unknown) => err);
  assert.equal((failure as NodeJS.ErrnoException).code, 'ENOSPC', String(failure));
  assert.deepEqual(readdirSync(dir), [path.basename(first.path)]);
  assert.equal(store.latest?.meta.index, 10);
  unlinkSync(filler);
  assert.equal((await store.save(meta(20), (w) => w.write(Buffer.alloc(64 * 1024, 2)))).meta.index, 20);
});

test('only a write that ran out of space counts as out of space; a failed fsync never does, whatever its errno', () => {
  const { ENOSPC, EIO } = osConstants.errno;
  const full = new LogIOError('write f: No space left on device', 'f', ENOSPC);
  const stopped = (cause: Error) => new RaftError('raft node stopped', 'ERR_RAFTLINE_FATAL', { cause });
  assert.equal(outOfSpaceError(stopped(new LogClosedError('the log stopped after a write failure', full))), full);
  assert.equal(outOfSpaceError(stopped(new LogIOError('fdatasync f: No space left on device', 'f', ENOSPC, true))), null);
  assert.equal(outOfSpaceError(stopped(new LogIOError('write f: Input/output error', 'f', EIO))), null);
});
