import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CorruptLogError, InvalidLogOperationError, MetaStore } from '../src/log/index.js';
import { tempDir } from './support/tmp.js';

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
    bytes[bytes.length - 3] ^= 0x10;
    writeFileSync(file, bytes);
    await assert.rejects(MetaStore.open(dir), (err: Error) => {
      assert.ok(err instanceof CorruptLogError);
      assert.equal(err.file, file);
      assert.match(err.message, /checksum mismatch/);
      return true;
    });
    writeFileSync(file, bytes.subarray(0, 10));
    await assert.rejects(MetaStore.open(dir), /shorter than its header/);
  } finally {
    cleanup();
  }
});
