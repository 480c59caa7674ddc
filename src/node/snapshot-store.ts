// Snapshot files of one node (braft's SnapshotStorage). A snapshot is one file:
//
//   "RLSN" u8 version, 3 zero bytes, u32 metaBytes, meta (JSON: index, term,
//   configuration), the state machine's data, then a 16-byte trailer:
//   u64 dataBytes, u32 CRC32C of every byte before it, "RLSE".
//
// All integers little-endian. Files are written under a temporary name,
// fsynced, renamed to `<index>-<term>.snap` and the directory fsynced, so a
// crash leaves either the old snapshot or the new one. The same bytes travel
// to lagging followers, which keep a partial file (named by the snapshot's
// identity) so an interrupted transfer resumes where it stopped.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { SnapshotMeta } from '../core/index.js';
import { crc32c } from '../log/index.js';
import type { SnapshotFileId } from '../transport/transport.js';
import { RaftError } from './errors.js';

const HEAD_MAGIC = 'RLSN';
const TAIL_MAGIC = 'RLSE';
const VERSION = 1;
const HEAD_BYTES = 12;
const TRAILER_BYTES = 16;
const MAX_META_BYTES = 1 << 20;
const READ_CHUNK_BYTES = 1 << 20;

/** Streams the state machine's data into a new snapshot (handed to `onSnapshotSave`). */
export interface SnapshotWriter {
  /** The last log index the snapshot covers: the state machine's applied index. */
  readonly index: number;
  readonly term: number;
  /** Appends bytes; await it before the next write to bound memory. */
  write(data: Uint8Array): Promise<void>;
}

/** Reads a snapshot's data back (handed to `onSnapshotLoad`). */
export interface SnapshotReader {
  readonly index: number;
  readonly term: number;
  /** Length of the state machine's data in bytes. */
  readonly bytes: number;
  /** The data in order, in chunks of at most 1 MiB. */
  chunks(): AsyncIterable<Uint8Array>;
  /** All the data at once, for small state machines. */
  readAll(): Promise<Buffer>;
}

/** A complete, checked snapshot file. */
export interface SnapshotFile extends SnapshotFileId {
  path: string;
  /** Where the state machine's data starts in the file. */
  dataOffset: number;
  dataBytes: number;
}

export class SnapshotCorruptError extends RaftError {
  constructor(file: string, reason: string) {
    // The log below the snapshot is compacted away: without the file the node cannot start.
    super(
      `snapshot ${file} is damaged: ${reason}; put back an intact copy of it, or rebuild this member (remove it from the group, empty its data directory, add it back)`,
      'ERR_RAFTLINE_SNAPSHOT_CORRUPT',
    );
  }
}

function snapshotName(index: number, term: number): string {
  return `${String(index).padStart(20, '0')}-${String(term).padStart(20, '0')}.snap`;
}

function incomingName(id: SnapshotFileId): string {
  return `incoming-${id.meta.index}-${id.meta.term}-${id.bytes}-${id.crc >>> 0}.part`;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function header(meta: SnapshotMeta): Buffer {
  const json = Buffer.from(JSON.stringify({ index: meta.index, term: meta.term, configuration: meta.configuration }));
  const head = Buffer.alloc(HEAD_BYTES);
  head.write(HEAD_MAGIC, 0, 'latin1');
  head[4] = VERSION;
  head.writeUInt32LE(json.length, 8);
  return Buffer.concat([head, json]);
}

/** Reads and checks a whole snapshot file: magic, version, metadata and CRC32C. */
async function inspect(file: string): Promise<SnapshotFile> {
  const handle = await fs.open(file, 'r');
  try {
    const size = (await handle.stat()).size;
    if (size < HEAD_BYTES + TRAILER_BYTES) throw new SnapshotCorruptError(file, `${size} bytes is too short`);
    const head = Buffer.alloc(HEAD_BYTES);
    await handle.read(head, 0, HEAD_BYTES, 0);
    if (head.toString('latin1', 0, 4) !== HEAD_MAGIC) throw new SnapshotCorruptError(file, 'bad magic');
    if (head[4] !== VERSION) throw new SnapshotCorruptError(file, `unsupported version ${head[4]}`);
    const metaBytes = head.readUInt32LE(8);
    if (metaBytes > MAX_META_BYTES || HEAD_BYTES + metaBytes + TRAILER_BYTES > size) {
      throw new SnapshotCorruptError(file, `metadata length ${metaBytes} does not fit the file`);
    }
    let crc = 0;
    const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    const crcEnd = size - 8;
    for (let at = 0; at < crcEnd; ) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, crcEnd - at), at);
      if (bytesRead === 0) throw new SnapshotCorruptError(file, 'file shrank while being read');
      crc = crc32c(buffer.subarray(0, bytesRead), crc);
      at += bytesRead;
    }
    const trailer = Buffer.alloc(TRAILER_BYTES);
    await handle.read(trailer, 0, TRAILER_BYTES, size - TRAILER_BYTES);
    if (trailer.toString('latin1', 12, 16) !== TAIL_MAGIC) throw new SnapshotCorruptError(file, 'bad trailer magic (incomplete file?)');
    if (trailer.readUInt32LE(8) !== crc) throw new SnapshotCorruptError(file, 'checksum mismatch');
    const dataOffset = HEAD_BYTES + metaBytes;
    const dataBytes = Number(trailer.readBigUInt64LE(0));
    if (dataOffset + dataBytes + TRAILER_BYTES !== size) throw new SnapshotCorruptError(file, 'data length does not match the file size');
    const metaBuffer = Buffer.alloc(metaBytes);
    await handle.read(metaBuffer, 0, metaBytes, HEAD_BYTES);
    let meta: SnapshotMeta;
    try {
      meta = JSON.parse(metaBuffer.toString('utf8')) as SnapshotMeta;
    } catch {
      throw new SnapshotCorruptError(file, 'metadata is not JSON');
    }
    if (!Number.isSafeInteger(meta.index) || !Number.isSafeInteger(meta.term) || !Array.isArray(meta.configuration?.voters)) {
      throw new SnapshotCorruptError(file, 'metadata lacks index, term or configuration');
    }
    return { path: file, meta, bytes: size, crc, dataOffset, dataBytes };
  } finally {
    await handle.close();
  }
}

class FileWriter implements SnapshotWriter {
  private crc = 0;
  private offset = 0;
  private dataBytes = 0;

  constructor(
    private readonly handle: fs.FileHandle,
    readonly meta: SnapshotMeta,
    private readonly signal: AbortSignal | undefined,
  ) {}

  get index(): number {
    return this.meta.index;
  }

  get term(): number {
    return this.meta.term;
  }

  async start(): Promise<void> {
    await this.put(header(this.meta));
  }

  async write(data: Uint8Array): Promise<void> {
    this.signal?.throwIfAborted();
    await this.put(data);
    this.dataBytes += data.length;
  }

  /** Writes the trailer and syncs; returns the file's identity. */
  async finish(): Promise<{ bytes: number; crc: number; dataBytes: number }> {
    const lengthField = Buffer.alloc(8);
    lengthField.writeBigUInt64LE(BigInt(this.dataBytes));
    await this.put(lengthField);
    const crc = this.crc;
    const tail = Buffer.alloc(8);
    tail.writeUInt32LE(crc, 0);
    tail.write(TAIL_MAGIC, 4, 'latin1');
    await this.handle.write(tail, 0, tail.length, this.offset);
    this.offset += tail.length;
    await this.handle.sync();
    return { bytes: this.offset, crc, dataBytes: this.dataBytes };
  }

  private async put(data: Uint8Array): Promise<void> {
    this.crc = crc32c(data, this.crc);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, this.offset + done);
      done += bytesWritten;
    }
    this.offset += data.length;
  }
}

/** Reads through its own descriptor, so a newer snapshot replacing the file does not pull it away. */
class FileReader implements SnapshotReader {
  constructor(
    private readonly file: SnapshotFile,
    private readonly handle: fs.FileHandle,
  ) {}

  get index(): number {
    return this.file.meta.index;
  }

  get term(): number {
    return this.file.meta.term;
  }

  get bytes(): number {
    return this.file.dataBytes;
  }

  async *chunks(): AsyncIterable<Uint8Array> {
    if (this.file.dataBytes === 0) return;
    const stream = this.handle.createReadStream({
      start: this.file.dataOffset,
      end: this.file.dataOffset + this.file.dataBytes - 1,
      highWaterMark: READ_CHUNK_BYTES,
      autoClose: false,
    });
    for await (const chunk of stream) yield chunk as Buffer;
  }

  async readAll(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this.chunks()) parts.push(Buffer.from(chunk));
    return Buffer.concat(parts, this.file.dataBytes);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** The `snapshots` directory of a node: the latest snapshot, one being written, one being received. */
export class SnapshotStore {
  private latestFile: SnapshotFile | null = null;
  private incoming: { id: SnapshotFileId; handle: fs.FileHandle; held: number } | null = null;

  private constructor(readonly dir: string) {}

  /**
   * Opens the directory, checks the newest complete snapshot and removes
   * older ones and leftovers of interrupted writes. A damaged newest snapshot
   * throws SnapshotCorruptError rather than silently falling back.
   */
  static async open(dir: string): Promise<SnapshotStore> {
    await fs.mkdir(dir, { recursive: true });
    const store = new SnapshotStore(dir);
    const names = (await fs.readdir(dir)).sort();
    // New, or left empty by a process killed before it synced the parent: the
    // directory's entry must be durable before a snapshot in it lets the log
    // be compacted (as the log's own directory, native/fs_util.cc MakeDirs).
    if (names.length === 0) await fsyncDir(path.dirname(dir));
    // A process killed between renaming a snapshot into place and syncing
    // the directory left a rename the disk may not hold yet; this start is
    // about to trust it (the log may be reset past it), and to delete the
    // snapshot it replaced, which must not reach the disk first.
    else await fsyncDir(dir);
    const snapshots = names.filter((n) => n.endsWith('.snap'));
    for (const n of names) if (n.endsWith('.tmp')) await fs.rm(path.join(dir, n), { force: true });
    const newest = snapshots.pop();
    if (newest) store.latestFile = await inspect(path.join(dir, newest));
    for (const n of snapshots) await fs.rm(path.join(dir, n), { force: true });
    await store.removeOutdatedIncoming(names);
    return store;
  }

  get latest(): SnapshotFile | null {
    return this.latestFile;
  }

  /**
   * Opens a reader of `file`'s data now: it keeps working if the file is
   * replaced or deleted before it is read. Close it when done.
   */
  async reader(file: SnapshotFile): Promise<SnapshotReader & { close(): Promise<void> }> {
    return new FileReader(file, await fs.open(file.path, 'r'));
  }

  /**
   * Writes a snapshot through `meta.index`; `fill` streams the state
   * machine's data into the writer. Aborting `signal` abandons the write
   * without waiting for `fill` (whose later writes reject): the partial file
   * is deleted and the save rejects with the signal's reason. Once the file
   * is complete and about to be renamed, the save finishes regardless.
   */
  async save(meta: SnapshotMeta, fill: (writer: SnapshotWriter) => Promise<void>, signal?: AbortSignal): Promise<SnapshotFile> {
    signal?.throwIfAborted();
    const final = path.join(this.dir, snapshotName(meta.index, meta.term));
    const tmp = `${final}.tmp`;
    const handle = await fs.open(tmp, 'w');
    let identity: { bytes: number; crc: number; dataBytes: number };
    try {
      try {
        const writer = new FileWriter(handle, meta, signal);
        await writer.start();
        await unlessAborted(fill(writer), signal);
        signal?.throwIfAborted();
        identity = await writer.finish();
      } finally {
        await handle.close();
      }
      signal?.throwIfAborted();
      await fs.rename(tmp, final);
    } catch (err) {
      // On a full disk the partial file would keep holding the space.
      await fs.rm(tmp, { force: true });
      throw err;
    }
    await fsyncDir(this.dir);
    return this.install({ path: final, meta, bytes: identity.bytes, crc: identity.crc, dataOffset: header(meta).length, dataBytes: identity.dataBytes });
  }

  /**
   * How many bytes of snapshot `id` this node holds from an earlier, broken
   * transfer; starts a new partial file (dropping any other) when none.
   * Throws (ERR_RAFTLINE_NO_SPACE) when the rest does not fit on the disk.
   */
  async offer(id: SnapshotFileId): Promise<number> {
    if (this.latestFile && sameFile(this.latestFile, id)) return id.bytes;
    if (this.incoming && sameFile(this.incoming.id, id)) return this.incoming.held;
    await this.dropIncoming();
    const file = path.join(this.dir, incomingName(id));
    const held = await fs.stat(file).then(
      (s) => Math.min(s.size, id.bytes),
      () => 0,
    );
    for (const n of await fs.readdir(this.dir)) {
      if (n.startsWith('incoming-') && n !== incomingName(id)) await fs.rm(path.join(this.dir, n), { force: true });
    }
    // Refused up front: a transfer that cannot fit would fill the disk the
    // log needs, and fail only after the leader sent everything that fits.
    const { bavail, bsize } = await fs.statfs(this.dir);
    const freeBytes = bavail * bsize;
    if (id.bytes - held > freeBytes) {
      throw new RaftError(
        `no room in ${this.dir} for snapshot ${id.meta.index}@${id.meta.term}: ${id.bytes - held} more bytes to receive, ${freeBytes} free`,
        'ERR_RAFTLINE_NO_SPACE',
      );
    }
    const handle = await fs.open(file, held > 0 ? 'r+' : 'w');
    this.incoming = { id, handle, held };
    return held;
  }

  /** Appends a received chunk at `offset`; returns the bytes now held, unchanged when the chunk does not start there. */
  async receive(id: SnapshotFileId, offset: number, data: Uint8Array): Promise<number> {
    const held = await this.offer(id);
    const incoming = this.incoming!;
    if (offset !== held || held + data.length > id.bytes) return held;
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await incoming.handle.write(data, done, data.length - done, held + done);
      done += bytesWritten;
    }
    incoming.held = held + data.length;
    return incoming.held;
  }

  /**
   * Completes the received snapshot `id` once every byte is held: syncs,
   * checks it end to end and makes it the latest. A file that fails the
   * check is deleted (the transfer restarts) and the error thrown.
   */
  async completeIncoming(id: SnapshotFileId): Promise<SnapshotFile> {
    if (this.latestFile && sameFile(this.latestFile, id)) return this.latestFile;
    const incoming = this.incoming;
    if (!incoming || !sameFile(incoming.id, id) || incoming.held !== id.bytes) throw new RaftError('snapshot transfer is incomplete', 'ERR_RAFTLINE_SNAPSHOT');
    await incoming.handle.sync();
    await incoming.handle.close();
    this.incoming = null;
    const partial = path.join(this.dir, incomingName(id));
    try {
      const file = await inspect(partial);
      if (file.crc !== id.crc >>> 0 || file.meta.index !== id.meta.index || file.meta.term !== id.meta.term) {
        throw new SnapshotCorruptError(partial, 'contents do not match what the leader announced');
      }
      const final = path.join(this.dir, snapshotName(id.meta.index, id.meta.term));
      await fs.rename(partial, final);
      await fsyncDir(this.dir);
      return this.install({ ...file, path: final });
    } catch (err) {
      await fs.rm(partial, { force: true });
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.dropIncoming();
  }

  /**
   * Makes `file` the latest and deletes the previous one (open readers keep
   * their handle). A file older than the latest (a local snapshot that
   * finished after a newer one arrived from the leader) is dropped instead.
   */
  private async install(file: SnapshotFile): Promise<SnapshotFile> {
    const previous = this.latestFile;
    if (previous && previous.path !== file.path && previous.meta.index >= file.meta.index) {
      await fs.rm(file.path, { force: true });
      return previous;
    }
    this.latestFile = file;
    if (previous && previous.path !== file.path) await fs.rm(previous.path, { force: true });
    await this.removeOutdatedIncoming(await fs.readdir(this.dir));
    return file;
  }

  /**
   * Deletes partial transfers of snapshots no newer than the latest: a
   * follower that caught up another way would otherwise keep one (as large as
   * a whole snapshot) until some later transfer replaced it.
   */
  private async removeOutdatedIncoming(names: string[]): Promise<void> {
    const latestIndex = this.latestFile?.meta.index ?? 0;
    if (this.incoming && this.incoming.id.meta.index <= latestIndex) await this.dropIncoming();
    for (const n of names) {
      const index = /^incoming-(\d+)-/.exec(n)?.[1];
      if (index !== undefined && Number(index) <= latestIndex) await fs.rm(path.join(this.dir, n), { force: true });
    }
  }

  /** Whether a transfer's partial file is open. */
  get receiving(): boolean {
    return this.incoming !== null;
  }

  /**
   * Closes the file of a transfer the sender stopped sending, keeping what it
   * holds: an offer of the same snapshot reopens it and resumes there.
   */
  async closeIncoming(): Promise<void> {
    await this.dropIncoming();
  }

  /** Forgets a partial transfer (after a write error), so the next offer starts from nothing. */
  async discardIncoming(): Promise<void> {
    const incoming = this.incoming;
    await this.dropIncoming();
    if (incoming) await fs.rm(path.join(this.dir, incomingName(incoming.id)), { force: true });
  }

  private async dropIncoming(): Promise<void> {
    const incoming = this.incoming;
    this.incoming = null;
    if (incoming) await incoming.handle.close();
  }
}

/** `work`, or a rejection with the signal's reason as soon as it aborts (leaving `work` to settle unobserved). */
function unlessAborted(work: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return work;
  return new Promise<void>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

function sameFile(a: SnapshotFileId | SnapshotFile, b: SnapshotFileId): boolean {
  return a.meta.index === b.meta.index && a.meta.term === b.meta.term && a.bytes === b.bytes && a.crc >>> 0 === b.crc >>> 0;
}
