import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CorruptLogError, crc32c, InvalidLogOperationError, MetaStore } from '../src/log/index.js';
import { buildFailSync, runWithFailSync } from './support/failsync.js';
import { tempDir } from './support/tmp.js';

const BLOCK_BYTES = 512;

test('starts at term 0 with no vote and persists saves across reopen', async () => {
  const { dir, cleanup } = tempDir('meta');
  try {
    const meta = await MetaStore.open(path.join(dir, 'nested', 'node'));
    assert.equal(meta.term, 0);
    assert.equal(meta.vote, null);
    await meta.save({ term: 5, vote: 'n2' });
    await meta.save({ appliedIndex: 42 });
    assert.deepEqual(meta.state, { term: 5, vote: 'n2', appliedIndex: 42 });
    const again = await MetaStore.open(path.join(dir, 'nested', 'node'));
    assert.deepEqual(again.state, { term: 5, vote: 'n2', appliedIndex: 42 });
    assert.equal(existsSync(path.join(dir, 'nested', 'node', 'meta.tmp')), false);
  } finally {
    cleanup();
  }
});

test('concurrent saves apply in call order and the last one wins on disk', async () => {
  const { dir, cleanup } = tempDir('meta-order');
  try {
    const meta = await MetaStore.open(dir);
    await Promise.all(Array.from({ length: 20 }, (_, i) => meta.save({ term: i + 1, vote: `n${i}` })));
    assert.equal(meta.term, 20);
    assert.equal((await MetaStore.open(dir)).vote, 'n19');
  } finally {
    cleanup();
  }
});

test('idle() waits for every save begun, past one that failed', async () => {
  const { dir, cleanup } = tempDir('meta-idle');
  try {
    const meta = await MetaStore.open(dir);
    const failed = meta.save({ term: -1 });
    const saves = Array.from({ length: 5 }, (_, i) => meta.save({ term: i + 1, vote: `n${i}` }));
    await assert.rejects(failed, InvalidLogOperationError);
    // The failed save settles first; the five after it are still to run.
    assert.notEqual(meta.term, 5);
    await meta.idle();
    assert.equal(meta.term, 5);
    assert.equal((await MetaStore.open(dir)).vote, 'n4');
    await Promise.all(saves);
  } finally {
    cleanup();
  }
});

test('an invalid save is rejected and leaves the state unchanged', async () => {
  const { dir, cleanup } = tempDir('meta-invalid');
  try {
    const meta = await MetaStore.open(dir);
    await meta.save({ term: 3, vote: null });
    await assert.rejects(meta.save({ term: -1 }), InvalidLogOperationError);
    await assert.rejects(meta.save({ vote: 7 as unknown as string }), InvalidLogOperationError);
    assert.equal(meta.term, 3);
    assert.equal((await MetaStore.open(dir)).term, 3);
  } finally {
    cleanup();
  }
});

test('a leftover temp file from a crash mid-save is discarded; the last complete save loads', async () => {
  const { dir, cleanup } = tempDir('meta-crash');
  try {
    const meta = await MetaStore.open(dir);
    await meta.save({ term: 8, vote: 'n1' });
    writeFileSync(path.join(dir, 'meta.tmp'), 'half-written');
    const again = await MetaStore.open(dir);
    assert.equal(again.term, 8);
    assert.equal(existsSync(path.join(dir, 'meta.tmp')), false);
  } finally {
    cleanup();
  }
});

test('a damaged meta file is reported, not replaced with defaults', async () => {
  const { dir, cleanup } = tempDir('meta-corrupt');
  try {
    const meta = await MetaStore.open(dir);
    await meta.save({ term: 9, vote: 'n3' });
    const file = path.join(dir, 'meta');
    const bytes = readFileSync(file);
    // One byte of the state itself (the payload starts after the 16-byte header), then one of the padding.
    for (const at of [16 + 3, bytes.length - 3]) {
      const damaged = Buffer.from(bytes);
      damaged[at] ^= 0x10;
      writeFileSync(file, damaged);
      await assert.rejects(MetaStore.open(dir), (err: Error) => {
        assert.ok(err instanceof CorruptLogError);
        assert.equal(err.file, file);
        assert.match(err.message, /checksum mismatch/);
        return true;
      });
    }
    writeFileSync(file, bytes.subarray(0, 10));
    await assert.rejects(MetaStore.open(dir), /shorter than its header/);
  } finally {
    cleanup();
  }
});

test('a state that fits a 512-byte block is rewritten in place: the same file, one block', async () => {
  const { dir, cleanup } = tempDir('meta-block');
  try {
    const file = path.join(dir, 'meta');
    const meta = await MetaStore.open(dir);
    await meta.save({ term: 1, vote: 'n1' });
    const first = statSync(file);
    assert.equal(first.size, BLOCK_BYTES);
    // Held open, the file keeps its inode number (a replaced file's could be
    // reused by the next replacement) and shows whether it is still linked.
    const held = openSync(file, 'r');
    try {
      for (let term = 2; term <= 5; term++) await meta.save({ term, vote: `n${term}` });
      assert.equal(fstatSync(held).nlink, 1, 'rewritten in place, not replaced');
    } finally {
      closeSync(held);
    }
    const last = statSync(file);
    assert.equal(last.ino, first.ino);
    assert.equal(last.size, BLOCK_BYTES);
    // The largest state a block holds: 496 bytes of JSON.
    const fill = 'x'.repeat(BLOCK_BYTES - 16 - JSON.stringify({ term: 6, vote: 'n6', fill: '' }).length);
    await meta.save({ term: 6, vote: 'n6', fill });
    assert.equal(statSync(file).ino, first.ino);
    assert.deepEqual((await MetaStore.open(dir)).state, { term: 6, vote: 'n6', fill });
  } finally {
    cleanup();
  }
});

test('a state too big for a block replaces the file; a smaller one afterwards is a block again', async () => {
  const { dir, cleanup } = tempDir('meta-big');
  try {
    const file = path.join(dir, 'meta');
    const meta = await MetaStore.open(dir);
    await meta.save({ term: 1, vote: 'n1' });
    const block = statSync(file);
    const fill = 'y'.repeat(2000);
    await meta.save({ fill });
    const big = statSync(file);
    assert.notEqual(big.ino, block.ino);
    assert.equal(big.size, 16 + JSON.stringify({ term: 1, vote: 'n1', fill }).length);
    assert.deepEqual((await MetaStore.open(dir)).state, { term: 1, vote: 'n1', fill });
    await meta.save({ term: 2, fill: '' });
    assert.equal(statSync(file).size, BLOCK_BYTES);
    assert.deepEqual((await MetaStore.open(dir)).state, { term: 2, vote: 'n1', fill: '' });
  } finally {
    cleanup();
  }
});

test('a meta file in the earlier layout (version 1) loads, and the next save makes it a block', async () => {
  const { dir, cleanup } = tempDir('meta-v1');
  try {
    const file = path.join(dir, 'meta');
    const payload = Buffer.from(JSON.stringify({ term: 4, vote: 'n2' }));
    const header = Buffer.alloc(16);
    header.writeUInt32LE(0x544d4c52, 0);
    header.writeUInt32LE(1, 4);
    header.writeUInt32LE(payload.length, 8);
    header.writeUInt32LE(crc32c(payload), 12);
    writeFileSync(file, Buffer.concat([header, payload]));
    const meta = await MetaStore.open(dir);
    assert.deepEqual(meta.state, { term: 4, vote: 'n2' });
    await meta.save({ term: 5 });
    assert.equal(statSync(file).size, BLOCK_BYTES);
    assert.equal(readFileSync(file).readUInt32LE(4), 2);
    assert.deepEqual((await MetaStore.open(dir)).state, { term: 5, vote: 'n2' });
  } finally {
    cleanup();
  }
});

test('a block with damaged padding, or not one block long, is reported', async () => {
  const { dir, cleanup } = tempDir('meta-block-damage');
  try {
    const file = path.join(dir, 'meta');
    await (await MetaStore.open(dir)).save({ term: 3, vote: 'n1' });
    const bytes = readFileSync(file);
    const padding = Buffer.from(bytes);
    padding[BLOCK_BYTES - 1] = 1;
    writeFileSync(file, padding);
    await assert.rejects(MetaStore.open(dir), (err: Error) => err instanceof CorruptLogError && /checksum mismatch/.test(err.message));
    writeFileSync(file, Buffer.concat([bytes, Buffer.alloc(1)]));
    await assert.rejects(MetaStore.open(dir), /513 bytes is not one 512-byte block/);
  } finally {
    cleanup();
  }
});

test('a failed sync fails the save and the open, and the save after a failure replaces the file', async () => {
  const { dir, cleanup } = tempDir('meta-eio');
  try {
    const lib = buildFailSync(dir);
    const trigger = path.join(dir, 'fail-sync');
    const data = path.join(dir, 'data');
    const logIndex = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'log', 'index.js');
    // In a child process: the shim makes its fdatasync and fsync fail while the trigger exists.
    const script = `
      import { statSync, unlinkSync, writeFileSync } from 'node:fs';
      import { MetaStore } from ${JSON.stringify(logIndex)};
      const data = ${JSON.stringify(data)}, trigger = ${JSON.stringify(trigger)}, file = data + '/meta';
      const outcome = (p) => p.then(() => 'ok', (err) => err.code + ' ' + err.syncFailed);
      const meta = await MetaStore.open(data);
      await meta.save({ term: 1, vote: 'n1' });
      const created = statSync(file).ino;
      writeFileSync(trigger, '');
      const failedSave = await outcome(meta.save({ term: 2, vote: 'n2' }));
      const failedOpen = await outcome(MetaStore.open(data));
      unlinkSync(trigger);
      await meta.save({ term: 3, vote: 'n3' });
      const replaced = statSync(file).ino !== created;
      const afterReplace = statSync(file).ino;
      await meta.save({ term: 4, vote: 'n3' });
      const inPlaceAgain = statSync(file).ino === afterReplace;
      console.log(JSON.stringify({ failedSave, failedOpen, replaced, inPlaceAgain, term: meta.term }));
    `;
    assert.deepEqual(runWithFailSync(script, lib, trigger), { failedSave: 'ERR_RAFTLINE_IO true', failedOpen: 'ERR_RAFTLINE_IO true', replaced: true, inPlaceAgain: true, term: 4 });
    assert.deepEqual((await MetaStore.open(data)).state, { term: 4, vote: 'n3' });
  } finally {
    cleanup();
  }
});

test('opening syncs what a killed process may have left unsynced: the directory of a state file, and the parent of an empty directory', async () => {
  const { dir, cleanup } = tempDir('meta-dir-sync');
  try {
    const lib = buildFailSync(dir);
    const trigger = path.join(dir, 'fail-sync');
    const data = path.join(dir, 'data');
    await (await MetaStore.open(data)).save({ term: 2, vote: 'n1' });
    // Empty, as a process killed between its mkdir and the sync of the parent leaves them.
    const freshMeta = path.join(dir, 'fresh-meta');
    const freshLog = path.join(dir, 'fresh-log');
    mkdirSync(freshMeta);
    mkdirSync(freshLog);
    writeFileSync(trigger, '');
    const logIndex = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'log', 'index.js');
    // Only fsync fails, which the log uses for directories alone (files get fdatasync).
    const script = `
      import { MetaStore, SegmentLog } from ${JSON.stringify(logIndex)};
      const failure = (p) => p.then(() => 'opened', (err) => ({ code: err.code, syncFailed: err.syncFailed, file: err.file }));
      console.log(JSON.stringify({
        meta: await failure(MetaStore.open(${JSON.stringify(data)})),
        freshMeta: await failure(MetaStore.open(${JSON.stringify(freshMeta)})),
        freshLog: await failure(SegmentLog.open(${JSON.stringify(freshLog)})),
      }));
    `;
    const failedDirSync = (file: string) => ({ code: 'ERR_RAFTLINE_IO', syncFailed: true, file });
    assert.deepEqual(runWithFailSync(script, lib, trigger, 'fsync'), {
      meta: failedDirSync(data),
      freshMeta: failedDirSync(dir),
      freshLog: failedDirSync(dir),
    });
  } finally {
    cleanup();
  }
});
