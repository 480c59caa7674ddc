// Damaged log directories: each test builds a real log with small segments,
// closes it, damages its files the way crashes, bad disks and operators do,
// and reopens it. A torn write at the tail of the open segment (a last record
// cut short by the end of the file or holding a zero-filled 512-byte sector)
// is repaired and reported; any other damage, a bad last record written in
// full included, must be refused with an error naming the file and byte
// offset, without changing a single file (bad input loses nothing), and the
// log must open intact once the damage is undone.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CorruptLogError,
  MetaStore,
  frameEntries,
  RECORD_HEADER_BYTES,
  SegmentLog,
  type LogEntry,
  type RecoveryReport,
} from '../src/log/index.js';
import { buildFailSync, runWithFailSync } from './support/failsync.js';

// The minimum segment size, so 60 entries of 50..399 bytes fill several
// closed segments and leave a handful of records in the open one.
const SEGMENT_BYTES = 4096;
const ENTRY_COUNT = 60;
const OPTIONS = { segmentBytes: SEGMENT_BYTES };
const OPEN_LOG = fileURLToPath(new URL('./fixtures/open-log.js', import.meta.url));
/** What a disk writes atomically; a write cut short leaves whole sectors unwritten. */
const SECTOR_BYTES = 512;

/**
 * Payload of `bytes` bytes for the entry at `index`. Its bytes are never
 * zero, so a damaged record is never mistaken for preallocated space and its
 * exact size is what a repair must report.
 */
function payload(index: number, bytes: number): Buffer {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < data.length; i++) data[i] = ((index * 7 + i) % 255) + 1;
  return data;
}

/** The entry at `index`. */
function sampleEntry(index: number): LogEntry {
  return { index, term: 1 + Math.floor((index - 1) / 10), type: index % 7, data: payload(index, 50 + ((index * 37) % 350)) };
}

function recordBytes(index: number): number {
  return RECORD_HEADER_BYTES + sampleEntry(index).data.length;
}

interface SegmentFile {
  name: string;
  path: string;
  first: number;
  last: number;
  closed: boolean;
  /** Byte offset of each record: offsets[index - first]. */
  offsets: number[];
}

interface Fixture {
  dir: string;
  closed: SegmentFile[];
  open: SegmentFile;
}

const CLOSED_NAME = /^(\d{20})-(\d{20})\.seg$/;
const OPEN_NAME = /^(\d{20})\.open$/;

/** Segment files in index order, with record offsets computed from the framing (records are laid out back to back). */
function layout(dir: string, lastIndex: number): SegmentFile[] {
  const segments: SegmentFile[] = [];
  for (const name of readdirSync(dir).sort()) {
    const closed = CLOSED_NAME.exec(name);
    const open = OPEN_NAME.exec(name);
    if (closed === null && open === null) continue;
    const first = Number((closed ?? open)![1]);
    const last = closed !== null ? Number(closed[2]) : lastIndex;
    const offsets: number[] = [];
    for (let i = first, at = 0; i <= last; at += recordBytes(i), i++) offsets.push(at);
    segments.push({ name, path: path.join(dir, name), first, last, closed: closed !== null, offsets });
  }
  return segments;
}

function endOf(seg: SegmentFile): number {
  return seg.offsets[seg.offsets.length - 1] + recordBytes(seg.last);
}

/** Runs `body` against a freshly built, cleanly closed log of ENTRY_COUNT entries. */
async function withLog(body: (fx: Fixture) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'raftline-corrupt-'));
  try {
    await buildLog(dir);
    await body(fixtureFor(dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function buildLog(dir: string): Promise<void> {
  const log = await SegmentLog.open(dir, OPTIONS);
  const appends: Promise<void>[] = [];
  for (let i = 1; i <= ENTRY_COUNT; i++) appends.push(log.append([sampleEntry(i)]));
  await Promise.all(appends);
  await log.close();
}

/** The layout of a built log, with the shape every test relies on checked up front. */
function fixtureFor(dir: string): Fixture {
  const segments = layout(dir, ENTRY_COUNT);
  const open = segments[segments.length - 1];
  const closed = segments.slice(0, -1);
  assert.ok(!open.closed, 'the last segment is the open one');
  assert.ok(
    closed.length >= 3 && closed.every((s) => s.closed),
    `at least 3 closed segments: ${segments.map((s) => s.name)}`,
  );
  assert.ok(open.offsets.length >= 4, `at least 4 records in the open segment, got ${open.offsets.length}`);
  assert.equal(segments[0].first, 1);
  for (const seg of closed) assert.equal(statSync(seg.path).size, endOf(seg), `${seg.name} holds exactly its records`);
  assert.ok(statSync(open.path).size >= endOf(open), 'the open segment holds its records');
  return { dir, closed, open };
}

/** Name and content hash of every entry in `dir`: equal snapshots mean nothing was created, removed or changed. */
function snapshot(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .map((d) =>
      d.isFile()
        ? `${d.name} ${createHash('sha256').update(readFileSync(path.join(dir, d.name))).digest('hex')}`
        : `${d.name}/`,
    )
    .sort();
}

function flipBit(file: string, offset: number, mask = 0x10): void {
  const fd = openSync(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    assert.equal(readSync(fd, byte, 0, 1, offset), 1, `byte ${offset} of ${file} exists`);
    byte[0] ^= mask;
    writeSync(fd, byte, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

function overwrite(file: string, offset: number, bytes: Uint8Array): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Byte after the last non-zero byte of `file`: where its data ends and the zero-filled space begins. */
function dataEnd(file: string): number {
  const bytes = readFileSync(file);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return end;
}

/**
 * What a write cut short at `from`, a sector boundary, leaves: none of it
 * from there on reached the disk, so those sectors still hold the zeros of
 * the preallocation.
 */
function tearAt(file: string, from: number): void {
  assert.equal(from % SECTOR_BYTES, 0, `a tear at byte ${from} falls on a sector boundary`);
  const end = dataEnd(file);
  assert.ok(from < end, `the tear at byte ${from} cuts into the data, which ends at byte ${end}`);
  overwrite(file, from, Buffer.alloc(end - from));
}

/** Byte to damage inside the record of `index` at `offset`: in its header (the index field) or mid-payload. */
function damageAt(where: 'header' | 'payload', index: number, offset: number): number {
  return where === 'header' ? offset + 16 : offset + RECORD_HEADER_BYTES + (sampleEntry(index).data.length >> 1);
}

function assertEntries(log: SegmentLog, from: number, toExclusive: number): void {
  const got = log.readSync(from, toExclusive);
  assert.equal(got.length, toExclusive - from);
  for (const e of got) {
    const want = sampleEntry(e.index);
    assert.deepEqual([e.index, e.term, e.type], [want.index, want.term, want.type]);
    assert.ok(Buffer.from(e.data).equals(want.data), `payload of index ${e.index}`);
  }
  assert.deepEqual(got.map((e) => e.index), Array.from({ length: toExclusive - from }, (_, k) => from + k));
}

/** Opens `dir` expecting an untouched log: every entry present, nothing repaired. */
async function assertIntact(dir: string): Promise<void> {
  const log = await SegmentLog.open(dir, OPTIONS);
  try {
    assert.equal(log.recovery.truncatedBytes, 0);
    assert.equal(log.recovery.removedSegments, 0);
    assert.equal(log.firstIndex, 1);
    assert.equal(log.lastIndex, ENTRY_COUNT);
    assertEntries(log, 1, ENTRY_COUNT + 1);
  } finally {
    await log.close();
  }
}

/** Opens `dir` expecting CorruptLogError at `file`/`offset`, and checks that the attempt changed nothing. */
async function assertOpenRefused(dir: string, want: { file: string; offset: number; message?: RegExp }): Promise<void> {
  const before = snapshot(dir);
  await assert.rejects(SegmentLog.open(dir, OPTIONS), (err: unknown) => {
    assert.ok(err instanceof CorruptLogError, `expected CorruptLogError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_RAFTLINE_CORRUPT');
    assert.equal(err.file, want.file);
    assert.equal(err.offset, want.offset);
    assert.ok(err.message.includes(path.basename(want.file)), `message names the file: ${err.message}`);
    if (want.message) assert.match(err.message, want.message);
    return true;
  });
  assert.deepEqual(snapshot(dir), before, 'the failed open changed the log directory');
}

/**
 * After recovery dropped the last record, appends continue right after what
 * is left, with new content, and everything survives a clean reopen.
 */
async function appendAfterRecovery(dir: string, log: SegmentLog): Promise<void> {
  const next = log.lastIndex + 1;
  const rewritten = [next, next + 1].map((i) => ({
    index: i,
    term: sampleEntry(i).term,
    type: 200,
    data: Buffer.from(`rewritten ${i}`),
  }));
  await log.append(rewritten);
  await log.close();
  const reopened = await SegmentLog.open(dir, OPTIONS);
  try {
    assert.equal(reopened.recovery.truncatedBytes, 0, 'a clean reopen repairs nothing');
    assert.equal(reopened.lastIndex, next + 1);
    assertEntries(reopened, 1, next);
    const got = reopened.readSync(next, next + 2);
    assert.deepEqual(
      got.map((e) => [e.index, e.term, e.type, Buffer.from(e.data).toString()]),
      rewritten.map((e) => [e.index, e.term, e.type, e.data.toString()]),
    );
  } finally {
    await reopened.close();
  }
}

describe('damaged tail of the open segment is dropped and appends continue', () => {
  test('a last record cut short (torn write) is cut off and reported', () =>
    withLog(async ({ dir, open }) => {
      const at = open.offsets[ENTRY_COUNT - open.first];
      const cut = recordBytes(ENTRY_COUNT) - 5;
      truncateSync(open.path, at + cut);
      const log = await SegmentLog.open(dir, OPTIONS);
      assert.deepEqual(
        [log.recovery.truncatedFile, log.recovery.truncatedOffset, log.recovery.truncatedBytes],
        [open.path, at, cut],
      );
      assert.equal(log.lastIndex, ENTRY_COUNT - 1);
      assertEntries(log, 1, ENTRY_COUNT);
      await appendAfterRecovery(dir, log);
    }));

  test('a zero-filled last record (lost write after power failure) is dropped', () =>
    withLog(async ({ dir, open }) => {
      overwrite(open.path, open.offsets[ENTRY_COUNT - open.first], Buffer.alloc(recordBytes(ENTRY_COUNT)));
      const log = await SegmentLog.open(dir, OPTIONS);
      assert.equal(log.lastIndex, ENTRY_COUNT - 1);
      assertEntries(log, 1, ENTRY_COUNT);
      await appendAfterRecovery(dir, log);
    }));
});

/**
 * Runs `body` against a log whose open segment holds one record per entry of
 * `payloadBytes`, from index 1 on, written as one batch: each record sits
 * where the test needs it relative to the 512-byte sectors. `offsets[k]` is
 * the offset of index k + 1.
 */
async function withRecords(
  payloadBytes: number[],
  body: (dir: string, file: string, offsets: number[]) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'raftline-sectors-'));
  try {
    const log = await SegmentLog.open(dir, OPTIONS);
    await log.append(payloadBytes.map((bytes, k) => ({ index: k + 1, term: 1, type: 0, data: payload(k + 1, bytes) })));
    await log.close();
    const file = path.join(dir, '00000000000000000001.open');
    const segments = readdirSync(dir).filter((n) => CLOSED_NAME.test(n) || OPEN_NAME.test(n));
    assert.deepEqual(segments, [path.basename(file)], 'one open segment holds every record');
    const offsets = payloadBytes.map((_, k) => payloadBytes.slice(0, k).reduce((at, bytes) => at + RECORD_HEADER_BYTES + bytes, 0));
    const bytes = readFileSync(file);
    offsets.forEach((at, k) => assert.equal(Number(bytes.readBigUInt64LE(at + 16)), k + 1, `index ${k + 1} is at byte ${at}`));
    await body(dir, file, offsets);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Opens and closes `dir` expecting exactly entries 1..`lastIndex` of `withRecords(payloadBytes)`; what it repaired. */
async function reopenRecords(dir: string, payloadBytes: number[], lastIndex: number): Promise<RecoveryReport> {
  const log = await SegmentLog.open(dir, OPTIONS);
  try {
    assert.equal(log.lastIndex, lastIndex);
    const got = log.readSync(1, lastIndex + 1);
    assert.deepEqual(
      got.map((e) => [e.index, Buffer.from(e.data).equals(payload(e.index, payloadBytes[e.index - 1]))]),
      got.map((_, k) => [k + 1, true]),
    );
    return log.recovery;
  } finally {
    await log.close();
  }
}

describe('a write cut short at a sector boundary is a torn tail: cut off and reported', () => {
  // Each case: payload sizes, the record the tear falls in, and the sector
  // boundary it falls on.
  const cases: [string, number[], number, number][] = [
    // Record 2 spans bytes 432..1664; sectors from byte 1024 on never written.
    ["the last record's final sectors zero-filled", [400, 1200], 2, 1024],
    // Record 2's header spans bytes 496..528: its checksum fails, its length cannot be trusted.
    ['the last record torn inside its header', [464, 100], 2, 512],
    // Record 3 spans bytes 464..796; records 4 and 5, after the tear, never reached the disk.
    ['a batch torn in its third record, the records after it all zero', [100, 300, 300, 50, 50], 3, 512],
  ];
  for (const [what, payloadBytes, torn, boundary] of cases) {
    test(what, () =>
      withRecords(payloadBytes, async (dir, file, offsets) => {
        const at = offsets[torn - 1];
        assert.ok(at < boundary && boundary < at + RECORD_HEADER_BYTES + payloadBytes[torn - 1], `the tear falls inside record ${torn}`);
        tearAt(file, boundary);
        // Up to the record's last non-zero byte before the tear (its header's
        // integer fields end in zeros).
        const cut = dataEnd(file) - at;
        const repaired = await reopenRecords(dir, payloadBytes, torn - 1);
        assert.deepEqual([repaired.truncatedFile, repaired.truncatedOffset, repaired.truncatedBytes], [file, at, cut]);
        assert.equal(dataEnd(file), at, 'the torn bytes are zeroed');
        assert.equal((await reopenRecords(dir, payloadBytes, torn - 1)).truncatedBytes, 0, 'a second open repairs nothing');
      }));
  }

  // The start of the last record never reached the disk while later parts of
  // it did: a flush out of order, or recovery's own zeroing of an earlier cut,
  // interrupted. Its start shares a sector with the record before, which was
  // written, so only the bytes from the record on say whether it was.
  const unwrittenStarts: [string, number[], number][] = [
    // Record 2 spans bytes 432..1664; bytes 432..1024 (its header) still zero.
    ['a last record whose header was never written, though its later sectors were', [400, 1200], 1024],
    // Record 2's header spans bytes 496..528; its part before the sector boundary still zero.
    ['a last record whose header start was never written, the rest of it was', [464, 100], 512],
  ];
  for (const [what, payloadBytes, writtenFrom] of unwrittenStarts) {
    test(what, () =>
      withRecords(payloadBytes, async (dir, file, offsets) => {
        const at = offsets[1];
        overwrite(file, at, new Uint8Array(writtenFrom - at));
        const cut = dataEnd(file) - at;
        const repaired = await reopenRecords(dir, payloadBytes, 1);
        assert.deepEqual([repaired.truncatedFile, repaired.truncatedOffset, repaired.truncatedBytes], [file, at, cut]);
        assert.equal(dataEnd(file), at, 'the unwritten record is zeroed');
      }));
  }
});

describe("records inside the payload of a torn last record (a client's value) do not make the tear look like damage", () => {
  // Record 2 spans bytes 432..2464 of the open segment; its value holds
  // framed records from byte 100 of the payload on (record 2's byte 132).
  const firstBytes = 400;
  const valueBytes = 2000;

  async function withEmbedded(embedded: LogEntry[], body: (dir: string, file: string, at: number) => Promise<void>): Promise<void> {
    const dir = mkdtempSync(path.join(tmpdir(), 'raftline-embedded-'));
    try {
      const value = payload(2, valueBytes);
      frameEntries(embedded).copy(value, 100);
      const log = await SegmentLog.open(dir, OPTIONS);
      await log.append([
        { index: 1, term: 1, type: 0, data: payload(1, firstBytes) },
        { index: 2, term: 1, type: 0, data: value },
      ]);
      await log.close();
      await body(dir, path.join(dir, '00000000000000000001.open'), RECORD_HEADER_BYTES + firstBytes);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Opens `dir` expecting entry 1 alone, record 2 at `at` cut off up to its last non-zero byte. */
  async function assertCut(dir: string, file: string, at: number): Promise<void> {
    const cut = dataEnd(file) - at;
    const log = await SegmentLog.open(dir, OPTIONS);
    try {
      assert.equal(log.lastIndex, 1);
      assert.deepEqual([log.recovery.truncatedFile, log.recovery.truncatedOffset, log.recovery.truncatedBytes], [file, at, cut]);
    } finally {
      await log.close();
    }
    assert.equal(dataEnd(file), at, 'the torn record, the records in its value with it, is zeroed');
  }

  // Records that would pass for the ones after record 2: index 3 on, term 1.
  const successors = [3, 4].map((index) => ({ index, term: 1, type: 0, data: payload(index, 30) }));

  test('the record torn after the records in its value: they lie inside its length, which its header vouches for', () =>
    withEmbedded(successors, async (dir, file, at) => {
      tearAt(file, 1536);
      await assertCut(dir, file, at);
    }));

  test('the record cut short by the end of the file after the records in its value (a file that was not preallocated)', () =>
    withEmbedded(successors, async (dir, file, at) => {
      truncateSync(file, 1536);
      await assertCut(dir, file, at);
    }));

  test('recovery zeroes the torn record\'s header last, after a sync: cut short before it, it leaves the header spanning a zeroed payload', () =>
    withEmbedded(successors, async (dir, file, at) => {
      tearAt(file, 1536);
      const header = readFileSync(file).subarray(at, at + RECORD_HEADER_BYTES);
      const lib = buildFailSync(dir);
      const trigger = path.join(dir, 'fail-sync');
      writeFileSync(trigger, '');
      const logIndex = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'log', 'index.js');
      // The open syncs the open segment before its scan, then after zeroing the payload: that second sync fails.
      const script = `
        import { SegmentLog } from ${JSON.stringify(logIndex)};
        const failed = await SegmentLog.open(${JSON.stringify(dir)}, { segmentBytes: ${SEGMENT_BYTES} }).then(() => null, (err) => err.message);
        console.log(JSON.stringify({ failed }));
      `;
      const { failed } = runWithFailSync(script, lib, trigger, 'fdatasync', 1) as { failed: string | null };
      assert.match(failed ?? 'opened', /fdatasync.*00000000000000000001\.open/);
      rmSync(trigger);
      const bytes = readFileSync(file);
      assert.deepEqual(bytes.subarray(at, at + RECORD_HEADER_BYTES), header, 'the header is as written');
      assert.equal(dataEnd(file), at + RECORD_HEADER_BYTES, 'everything after it is zero');
      await assertCut(dir, file, at);
    }));

  test('the torn record\'s header never written: records in its value of indexes this log could not hold there prove nothing', () =>
    withEmbedded([{ index: 100_000, term: 7, type: 0, data: payload(9, 30) }], async (dir, file, at) => {
      overwrite(file, at, new Uint8Array(512 - at));
      await assertCut(dir, file, at);
    }));

});

describe('a bad last record written in full may have been acknowledged: it is refused, changing nothing', () => {
  const notTorn = /not a torn write.*acknowledged/;

  for (const where of ['header', 'payload'] as const) {
    test(`a bit flip in the ${where} of the last record, inside one sector with the record before`, () =>
      withLog(async ({ dir, open }) => {
        const at = open.offsets[ENTRY_COUNT - open.first];
        assert.equal(Math.floor(at / SECTOR_BYTES), Math.floor((endOf(open) - 1) / SECTOR_BYTES), 'the last record lies inside one sector');
        assert.notEqual(at % SECTOR_BYTES, 0, 'the record before shares its sector');
        const damaged = damageAt(where, ENTRY_COUNT, at);
        flipBit(open.path, damaged);
        await assertOpenRefused(dir, { file: open.path, offset: at, message: notTorn });
        flipBit(open.path, damaged);
        await assertIntact(dir);
      }));

    test(`a bit flip in the ${where} of a last record over several sectors, its header across a boundary`, () => {
      const payloadBytes = [464, 1200];
      return withRecords(payloadBytes, async (dir, file, offsets) => {
        // Record 2 spans bytes 496..1728; its header crosses byte 512.
        const damaged = where === 'header' ? offsets[1] + 20 : offsets[1] + 900;
        flipBit(file, damaged);
        await assertOpenRefused(dir, { file, offset: offsets[1], message: notTorn });
        flipBit(file, damaged);
        assert.equal((await reopenRecords(dir, payloadBytes, 2)).truncatedBytes, 0);
      });
    });
  }

  test('a bit flip that stretches the last record\'s length over zero-filled sectors', () => {
    const payloadBytes = [400, 30];
    return withRecords(payloadBytes, async (dir, file, offsets) => {
      // Record 2 spans bytes 432..494; with its length + 512 it would span
      // the zero-filled sector from byte 512 and look torn, were the damaged
      // length believed.
      flipBit(file, offsets[1] + 5, 0x02);
      await assertOpenRefused(dir, { file, offset: offsets[1], message: notTorn });
      flipBit(file, offsets[1] + 5, 0x02);
      assert.equal((await reopenRecords(dir, payloadBytes, 2)).truncatedBytes, 0);
    });
  });
});

describe('damage elsewhere is refused with the file and offset, changing nothing', () => {
  for (const where of ['header', 'payload'] as const) {
    test(`a bit flip in the ${where} of an open-segment record followed by intact records`, () =>
      withLog(async ({ dir, open }) => {
        const index = open.first + 1;
        const at = open.offsets[1];
        const damaged = damageAt(where, index, at);
        flipBit(open.path, damaged);
        await assertOpenRefused(dir, { file: open.path, offset: at });
        flipBit(open.path, damaged);
        await assertIntact(dir);
      }));

    test(`a bit flip in the ${where} of a record in the middle of a closed segment`, () =>
      withLog(async ({ dir, closed }) => {
        const seg = closed[1];
        const k = seg.offsets.length >> 1;
        const damaged = damageAt(where, seg.first + k, seg.offsets[k]);
        flipBit(seg.path, damaged);
        await assertOpenRefused(dir, { file: seg.path, offset: seg.offsets[k], message: /closed segment/ });
        flipBit(seg.path, damaged);
        await assertIntact(dir);
      }));
  }

  test('a closed segment cut in the middle of a record', () =>
    withLog(async ({ dir, closed }) => {
      const seg = closed[1];
      const k = seg.offsets.length >> 1;
      const original = readFileSync(seg.path);
      truncateSync(seg.path, seg.offsets[k] + 10);
      await assertOpenRefused(dir, { file: seg.path, offset: seg.offsets[k] });
      writeFileSync(seg.path, original);
      await assertIntact(dir);
    }));

  test('a closed segment cut at a record boundary, short of the last index its name promises', () =>
    withLog(async ({ dir, closed }) => {
      const seg = closed[1];
      const lastAt = seg.offsets[seg.offsets.length - 1];
      const original = readFileSync(seg.path);
      truncateSync(seg.path, lastAt);
      await assertOpenRefused(dir, { file: seg.path, offset: lastAt, message: new RegExp(String(seg.last)) });
      writeFileSync(seg.path, original);
      await assertIntact(dir);
    }));

  for (const [what, fill] of [['garbage', 0xa5], ['zero', 0]] as const) {
    test(`${what} bytes after the last record of a closed segment`, () =>
      withLog(async ({ dir, closed }) => {
        const seg = closed[1];
        const original = readFileSync(seg.path);
        overwrite(seg.path, original.length, Buffer.alloc(40, fill));
        await assertOpenRefused(dir, { file: seg.path, offset: original.length });
        writeFileSync(seg.path, original);
        await assertIntact(dir);
      }));
  }

  test('a missing segment in the middle names the gap', () =>
    withLog(async ({ dir, closed }) => {
      const gone = closed[1];
      const saved = readFileSync(gone.path);
      unlinkSync(gone.path);
      await assertOpenRefused(dir, {
        file: closed[2].path,
        offset: 0,
        message: new RegExp(`missing segment: no file holds indexes ${gone.first}\\.\\.${gone.last}\\b`),
      });
      writeFileSync(gone.path, saved);
      await assertIntact(dir);
    }));

  test('a missing first segment names where the log starts', () =>
    withLog(async ({ dir, closed }) => {
      const gone = closed[0];
      const saved = readFileSync(gone.path);
      unlinkSync(gone.path);
      await assertOpenRefused(dir, {
        file: closed[1].path,
        offset: 0,
        message: new RegExp(`missing segment.*\\b${closed[1].first}\\b`),
      });
      writeFileSync(gone.path, saved);
      await assertIntact(dir);
    }));

  test('a closed segment overwritten with garbage', () =>
    withLog(async ({ dir, closed }) => {
      const seg = closed[1];
      const original = readFileSync(seg.path);
      writeFileSync(seg.path, Buffer.alloc(original.length, 0x5a));
      await assertOpenRefused(dir, { file: seg.path, offset: 0 });
      writeFileSync(seg.path, original);
      await assertIntact(dir);
    }));

  test('a stray second open segment with garbage content', () =>
    withLog(async ({ dir }) => {
      const name = `${String(ENTRY_COUNT + 100).padStart(20, '0')}.open`;
      const stray = path.join(dir, name);
      writeFileSync(stray, Buffer.alloc(1000, 0x5a));
      const before = snapshot(dir);
      await assert.rejects(SegmentLog.open(dir, OPTIONS), (err: unknown) => {
        assert.ok(err instanceof CorruptLogError, `expected CorruptLogError, got ${String(err)}`);
        assert.ok(err.file === stray || err.message.includes(name), `the error names ${name}: ${err.message}`);
        return true;
      });
      assert.deepEqual(snapshot(dir), before, 'the failed open changed the log directory');
      unlinkSync(stray);
      await assertIntact(dir);
    }));

  test('a file with a segment suffix but a name this log never writes', () =>
    withLog(async ({ dir }) => {
      const names = [
        'foo.seg',
        '1-5.seg',
        '00000000000000000005-00000000000000000001.seg',
        '0000000000000000000x.open',
        '00000000000000000001.seg',
      ];
      for (const name of names) {
        const stray = path.join(dir, name);
        writeFileSync(stray, 'not a segment');
        await assertOpenRefused(dir, { file: stray, offset: 0 });
        unlinkSync(stray);
      }
      await assertIntact(dir);
    }));

  test('an unreadable log directory fails with LogIOError EACCES', async () => {
    // The child runs as nobody when we are root (root ignores permissions),
    // so everything above the log directory must be traversable by it.
    const base = mkdtempSync(path.join(tmpdir(), 'raftline-eacces-'));
    chmodSync(base, 0o755);
    const dir = path.join(base, 'log');
    try {
      await buildLog(dir);
      const before = snapshot(dir);
      chmodSync(dir, 0o000);
      const asRoot = process.getuid?.() === 0;
      const child = spawnSync(process.execPath, [OPEN_LOG, dir], {
        encoding: 'utf8',
        ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      });
      assert.equal(child.status, 0, `the opening child failed: ${child.stderr}`);
      const result = JSON.parse(child.stdout) as Record<string, unknown>;
      assert.deepEqual(
        { ok: result.ok, name: result.name, code: result.code, errno: result.errno },
        { ok: false, name: 'LogIOError', code: 'ERR_RAFTLINE_IO', errno: 13 },
      );
      assert.ok(String(result.message).includes(dir), `the message names the directory: ${String(result.message)}`);
      chmodSync(dir, 0o755);
      assert.deepEqual(snapshot(dir), before, 'the failed open changed the log directory');
      await assertIntact(dir);
    } finally {
      chmodSync(dir, 0o755);
      rmSync(base, { recursive: true, force: true });
    }
  });
});

test('unrelated files and directories beside the segments are ignored and left alone', () =>
  withLog(async ({ dir }) => {
    writeFileSync(path.join(dir, 'notes.txt'), 'operator notes');
    writeFileSync(path.join(dir, 'README'), 'do not delete');
    writeFileSync(path.join(dir, '00000000000000000001.open.bak'), 'a backup');
    mkdirSync(path.join(dir, 'lost+found'));
    const unrelated = (): string[] =>
      snapshot(dir).filter((line) => /^(notes\.txt|README|00000000000000000001\.open\.bak|lost\+found\/)/.test(line));
    const before = unrelated();
    assert.equal(before.length, 4);
    await assertIntact(dir);
    assert.deepEqual(unrelated(), before);
  }));

test('reads verify checksums: a closed segment damaged after open fails the reads that touch it', () =>
  withLog(async ({ dir, closed }) => {
    const log = await SegmentLog.open(dir, OPTIONS);
    try {
      const seg = closed[1];
      const k = seg.offsets.length >> 1;
      const index = seg.first + k;
      for (const where of ['header', 'payload'] as const) {
        // Written through the page cache, which is what the log's preads see.
        const damaged = damageAt(where, index, seg.offsets[k]);
        flipBit(seg.path, damaged);
        const isDamage = (err: unknown): boolean => {
          assert.ok(err instanceof CorruptLogError, `expected CorruptLogError, got ${String(err)}`);
          assert.deepEqual([err.file, err.offset], [seg.path, seg.offsets[k]]);
          return true;
        };
        assert.throws(() => log.readSync(index, index + 1), isDamage);
        assert.throws(() => log.readSync(seg.first, seg.last + 1), isDamage);
        await assert.rejects(log.read(1, ENTRY_COUNT + 1), isDamage);
        // Ranges that stop short of the damaged record are unaffected.
        assertEntries(log, 1, index);
        assertEntries(log, index + 1, ENTRY_COUNT + 1);
        flipBit(seg.path, damaged);
        assertEntries(log, 1, ENTRY_COUNT + 1);
      }
    } finally {
      await log.close();
    }
  }));

describe('MetaStore', () => {
  async function withMeta(body: (dir: string, file: string) => Promise<void>): Promise<void> {
    const dir = mkdtempSync(path.join(tmpdir(), 'raftline-meta-'));
    try {
      const meta = await MetaStore.open(dir);
      await meta.save({ term: 7, vote: 'n2' });
      await body(dir, meta.file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  async function assertLoads(dir: string, term: number, vote: string | null): Promise<void> {
    const meta = await MetaStore.open(dir);
    assert.deepEqual([meta.term, meta.vote], [term, vote]);
  }

  const damages: [string, (file: string) => void][] = [
    ['a bit flip in its state', (file) => flipBit(file, 16 + 3)],
    ['a bit flip in its padding', (file) => flipBit(file, statSync(file).size - 3)],
    ['a bit flip in its magic', (file) => flipBit(file, 0)],
    ['a bit flip in its length field', (file) => flipBit(file, 8)],
    ['its last bytes cut off', (file) => truncateSync(file, statSync(file).size - 3)],
    ['no bytes at all', (file) => truncateSync(file, 0)],
  ];
  for (const [what, damage] of damages) {
    test(`a meta file with ${what} is refused with CorruptLogError, changing nothing`, () =>
      withMeta(async (dir, file) => {
        const original = readFileSync(file);
        damage(file);
        const before = snapshot(dir);
        await assert.rejects(MetaStore.open(dir), (err: unknown) => {
          assert.ok(err instanceof CorruptLogError, `expected CorruptLogError, got ${String(err)}`);
          assert.equal(err.file, file);
          return true;
        });
        assert.deepEqual(snapshot(dir), before, 'the failed open changed the directory');
        writeFileSync(file, original);
        await assertLoads(dir, 7, 'n2');
      }));
  }

  test('a leftover meta.tmp from a save cut short by a crash is ignored: the previous state loads', () =>
    withMeta(async (dir, file) => {
      // One partial write, and one complete but never renamed into place:
      // neither save returned, so neither state may appear.
      const otherDir = mkdtempSync(path.join(tmpdir(), 'raftline-meta-other-'));
      try {
        const other = await MetaStore.open(otherDir);
        await other.save({ term: 9, vote: 'n3' });
        for (const leftover of [Buffer.from('{"term":9,"vo'), readFileSync(other.file)]) {
          writeFileSync(`${file}.tmp`, leftover);
          await assertLoads(dir, 7, 'n2');
        }
      } finally {
        rmSync(otherDir, { recursive: true, force: true });
      }
      const meta = await MetaStore.open(dir);
      await meta.save({ term: 8, vote: null });
      await assertLoads(dir, 8, null);
    }));
});

// Every damage above is aimed with offsets computed from the framing; this
// checks those offsets against the files, so a test cannot pass by hitting
// the wrong bytes.
test('the computed record offsets match the segment files', () =>
  withLog(async ({ closed, open }) => {
    for (const seg of [...closed, open]) {
      const bytes = readFileSync(seg.path);
      seg.offsets.forEach((at, k) => {
        assert.equal(bytes.readUInt16LE(at), 0x4c52, `magic of index ${seg.first + k} in ${seg.name}`);
        assert.equal(Number(bytes.readBigUInt64LE(at + 16)), seg.first + k, `index field at byte ${at} of ${seg.name}`);
      });
    }
  }));
