import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SnapshotCorruptError, SnapshotStore } from '../src/node/snapshot-store.js';
import { buildFailSync, runWithFailSync } from './support/failsync.js';
import { Prng } from './support/prng.js';
import { tempDir } from './support/tmp.js';

const { dir: root, cleanup } = tempDir('snapshot-store');
after(cleanup);

const meta = { index: 1000, term: 3, configuration: { voters: ['n1', 'n2', 'n3'], learners: [] } };

async function saved(dir: string, data: Buffer) {
  const store = await SnapshotStore.open(dir);
  const file = await store.save(meta, async (w) => {
    for (let at = 0; at < data.length; at += 7000) await w.write(data.subarray(at, at + 7000));
  });
  return { store, file };
}

function payload(bytes: number, seed: number): Buffer {
  const rng = new Prng(seed);
  return Buffer.from(Array.from({ length: bytes }, () => rng.int(0, 255)));
}

test('a saved snapshot reads back identically after reopening, and replaces the older one', async () => {
  const dir = path.join(root, 'roundtrip');
  const data = payload(50_000, 1);
  const { store, file } = await saved(dir, data);
  const pinned = await store.reader(file);
  const newer = await store.save({ ...meta, index: 2000 }, (w) => w.write(Buffer.from('newer')));
  assert.deepEqual(await pinned.readAll(), data, 'a reader opened before a newer snapshot replaced the file still reads it');
  await pinned.close();
  const reopened = await SnapshotStore.open(dir);
  assert.equal(reopened.latest?.meta.index, 2000);
  const latest = await reopened.reader(reopened.latest!);
  assert.equal((await latest.readAll()).toString(), 'newer');
  await latest.close();
  assert.deepEqual((await fs.readdir(dir)).filter((n) => n.endsWith('.snap')), [path.basename(newer.path)]);
  const older = await store.save(meta, (w) => w.write(data));
  assert.equal(older.meta.index, 2000, 'an older snapshot finishing late does not replace a newer one');
});

test('a transfer interrupted by a restart resumes from the bytes already held', async () => {
  const data = payload(30_000, 2);
  const { file } = await saved(path.join(root, 'source'), data);
  const bytes = await fs.readFile(file.path);
  const id = { meta: file.meta, bytes: file.bytes, crc: file.crc };
  const dir = path.join(root, 'receiver');
  const first = await SnapshotStore.open(dir);
  assert.equal(await first.offer(id), 0);
  assert.equal(await first.receive(id, 0, bytes.subarray(0, 10_000)), 10_000);
  assert.equal(await first.receive(id, 20_000, bytes.subarray(20_000, 21_000)), 10_000, 'a chunk that does not start at the held offset is refused');
  await first.close();
  const second = await SnapshotStore.open(dir);
  assert.equal(await second.offer(id), 10_000, 'the partial file survives the restart');
  assert.equal(await second.receive(id, 10_000, bytes.subarray(10_000)), bytes.length);
  const done = await second.completeIncoming(id);
  assert.equal(done.meta.index, meta.index);
  const reader = await second.reader(done);
  assert.deepEqual(await reader.readAll(), data);
  await reader.close();
});

test('a partial transfer of a snapshot no newer than the latest is deleted, when a newer one is saved and at open', async () => {
  const { file } = await saved(path.join(root, 'source3'), payload(20_000, 4));
  const bytes = await fs.readFile(file.path);
  const id = { meta: file.meta, bytes: file.bytes, crc: file.crc };
  const dir = path.join(root, 'receiver3');
  const parts = async () => (await fs.readdir(dir)).filter((n) => n.endsWith('.part'));
  const store = await SnapshotStore.open(dir);
  await store.receive(id, 0, bytes.subarray(0, 5000));
  assert.equal((await parts()).length, 1);
  await store.save({ ...meta, index: 999 }, (w) => w.write(Buffer.from('older')));
  assert.equal((await parts()).length, 1, 'a partial transfer of a newer snapshot is kept');
  await store.save({ ...meta, index: 1000, term: 4 }, (w) => w.write(Buffer.from('as new')));
  assert.deepEqual(await parts(), [], 'a snapshot at its index made it useless');
  assert.equal(await store.offer({ ...id, meta: { ...id.meta, index: 1001 } }), 0);
  await store.close();
  await fs.writeFile(path.join(dir, 'incoming-7-1-100-5.part'), 'left by a transfer of an old snapshot');
  const reopened = await SnapshotStore.open(dir);
  assert.deepEqual(await parts(), [`incoming-1001-3-${id.bytes}-${id.crc >>> 0}.part`], 'at open only the partial transfer newer than the latest stays');
  await reopened.close();
});

test('a received file whose bytes differ from the announced checksum is refused and discarded', async () => {
  const { file } = await saved(path.join(root, 'source2'), payload(5000, 3));
  const bytes = Buffer.from(await fs.readFile(file.path));
  bytes[100] ^= 1;
  const id = { meta: file.meta, bytes: file.bytes, crc: file.crc };
  const store = await SnapshotStore.open(path.join(root, 'receiver2'));
  await store.receive(id, 0, bytes);
  await assert.rejects(store.completeIncoming(id), SnapshotCorruptError);
  assert.equal(await store.offer(id), 0, 'the transfer starts over');
  assert.equal(store.latest, null);
  await store.close();
});

test('a damaged snapshot on disk stops the open with the file named', async () => {
  const dir = path.join(root, 'damaged');
  const { file } = await saved(dir, payload(5000, 4));
  const handle = await fs.open(file.path, 'r+');
  await handle.write(Buffer.from([0xff]), 0, 1, 2000);
  await handle.close();
  await assert.rejects(SnapshotStore.open(dir), (err: Error) => err instanceof SnapshotCorruptError && err.message.includes(file.path) && /checksum/.test(err.message));
});

test('an aborted save rejects without waiting for the writer, deletes its partial file and keeps the previous snapshot', async () => {
  const dir = path.join(root, 'abort');
  const { store, file } = await saved(dir, payload(1000, 4));
  const abort = new AbortController();
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let lateWrite: Promise<void> | null = null;
  const saving = store.save(
    { ...meta, index: 2000 },
    async (w) => {
      await w.write(Buffer.from('partial'));
      await held;
      lateWrite = w.write(Buffer.from('after the abort'));
      await lateWrite;
    },
    abort.signal,
  );
  await new Promise((r) => setTimeout(r, 50));
  abort.abort(new Error('stopping'));
  await assert.rejects(saving, /stopping/);
  assert.equal(store.latest?.path, file.path);
  assert.deepEqual(await fs.readdir(dir), [path.basename(file.path)], 'no partial file is left');
  release();
  await new Promise((r) => setTimeout(r, 10));
  await assert.rejects(lateWrite!, /stopping/, 'the writer is refused once aborted');
  assert.equal((await SnapshotStore.open(dir)).latest?.meta.index, 1000);
});

test('opening a snapshot directory syncs a directory: a new or empty one its parent (the directory must outlast a power loss), one holding files itself (a rename a killed process never synced)', async () => {
  const dir = path.join(root, 'dir-sync');
  await fs.mkdir(dir);
  const lib = buildFailSync(dir);
  const trigger = path.join(dir, 'fail-sync');
  await fs.writeFile(trigger, '');
  const full = path.join(dir, 'full');
  await fs.mkdir(full);
  await fs.writeFile(path.join(full, 'unrelated'), '');
  const storeModule = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'node', 'snapshot-store.js');
  // Directories are synced with fsync, which fails here: each open must report it.
  const script = `
    const { SnapshotStore } = await import(${JSON.stringify(storeModule)});
    const outcome = (p) => p.then(() => 'opened', (err) => err.code);
    console.log(JSON.stringify({
      created: await outcome(SnapshotStore.open(${JSON.stringify(path.join(dir, 'new'))})),
      notEmpty: await outcome(SnapshotStore.open(${JSON.stringify(full)})),
    }));
  `;
  assert.deepEqual(runWithFailSync(script, lib, trigger, 'fsync'), { created: 'EIO', notEmpty: 'EIO' });
});

test('a transfer larger than the free disk space is refused before its first byte, and a smaller one still starts', async () => {
  const dir = path.join(root, 'receiver-full');
  const store = await SnapshotStore.open(dir);
  const { blocks, bsize } = await fs.statfs(dir);
  const diskBytes = blocks * bsize;
  const huge = { meta, bytes: 2 * diskBytes, crc: 1 };
  await assert.rejects(
    store.offer(huge),
    (err: Error & { code?: string }) => err.code === 'ERR_RAFTLINE_NO_SPACE' && err.message.includes(`${2 * diskBytes} more bytes to receive`) && err.message.includes(dir),
  );
  await assert.rejects(store.receive(huge, 0, Buffer.alloc(100)), { code: 'ERR_RAFTLINE_NO_SPACE' });
  assert.deepEqual(await fs.readdir(dir), [], 'no partial file was started');
  const { file } = await saved(path.join(root, 'source-full'), payload(2000, 4));
  const id = { meta: file.meta, bytes: file.bytes, crc: file.crc };
  assert.equal(await store.offer(id), 0);
  assert.equal(await store.receive(id, 0, await fs.readFile(file.path)), file.bytes);
  assert.equal((await store.completeIncoming(id)).meta.index, meta.index);
  await store.close();
});
