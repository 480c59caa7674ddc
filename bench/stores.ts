// One small adapter per store under test, all behind the same interface, each
// in its durable mode: a put resolves only once the value would survive a
// power loss, as far as the store promises.
import { open as openFile } from 'node:fs/promises';
import path from 'node:path';
import { SegmentLog } from '../src/log/index.js';
import type { Peers } from './peers.js';

export interface Store {
  /** Stores `value` under `seq` (1, 2, 3, … in call order); resolves once durable. */
  put(seq: number, value: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface StoreKind {
  name: string;
  version: string;
  /** What "durable" means for this store, for the report. */
  mode: string;
  open(dir: string): Promise<Store>;
}

export const raftlineStore: StoreKind = {
  name: 'raftline',
  version: 'this tree',
  mode: "SegmentLog, sync: 'batch' (group commit)",
  async open(dir) {
    const log = await SegmentLog.open(dir);
    return {
      // `seq` is lastIndex + 1: the driver hands out sequence numbers in the
      // order it calls put, and append takes its index synchronously.
      put: (seq, value) => log.append([{ index: seq, term: 1, type: 0, data: value }]),
      close: () => log.close(),
    };
  },
};

export const fsStore: StoreKind = {
  name: 'fs',
  version: `node ${process.version}`,
  mode: 'write + fdatasync per put on one shared fd, no group commit',
  async open(dir) {
    const file = await openFile(path.join(dir, 'wal'), 'w');
    return {
      async put(seq, value) {
        await file.write(value, 0, value.byteLength, (seq - 1) * value.byteLength);
        await file.datasync();
      },
      close: () => file.close(),
    };
  },
};

// The slices of the peers' APIs used here; they ship no types into this project.
interface LmdbCommit extends Promise<boolean> {
  flushed: Promise<void>;
}
interface LmdbDatabase {
  put(key: number, value: Uint8Array): LmdbCommit;
  close(): Promise<void>;
}
interface LmdbModule {
  open(options: { path: string; encoding: 'binary'; separateFlushed: true }): LmdbDatabase;
}

interface SqliteStatement {
  run(...params: unknown[]): unknown;
}
interface SqliteDatabase {
  pragma(source: string): unknown;
  exec(source: string): unknown;
  prepare(source: string): SqliteStatement;
  close(): void;
}
type SqliteModule = new (file: string) => SqliteDatabase;

interface LevelDatabase {
  open(): Promise<void>;
  put(key: Uint8Array, value: Uint8Array, options: { sync: true }): Promise<void>;
  close(): Promise<void>;
}
interface ClassicLevelModule {
  ClassicLevel: new (location: string, options: { keyEncoding: 'view'; valueEncoding: 'view' }) => LevelDatabase;
}

/** Big-endian so that LevelDB's byte order is insertion order, as for an append-only log. */
function keyBytes(seq: number): Uint8Array {
  const key = new Uint8Array(8);
  new DataView(key.buffer).setBigUint64(0, BigInt(seq));
  return key;
}

export function peerStores(peers: Peers): StoreKind[] {
  const lmdb = peers.require('lmdb') as LmdbModule;
  const Sqlite = peers.require('better-sqlite3') as SqliteModule;
  const { ClassicLevel } = peers.require('classic-level') as ClassicLevelModule;
  return [
    {
      name: 'lmdb',
      version: peers.versions['lmdb'],
      mode: 'put, awaiting the commit and its flush (overlappingSync default)',
      async open(dir) {
        // lmdb-js documents that with overlappingSync (its default on Linux)
        // a write's promise stands for the commit and a separate promise for
        // the flush to disk; separateFlushed hangs the latter on the put as
        // `.flushed`, and awaiting both is the durable write by its docs.
        const db = lmdb.open({ path: dir, encoding: 'binary', separateFlushed: true });
        return {
          async put(seq, value) {
            const commit = db.put(seq, value);
            await commit;
            await commit.flushed;
          },
          close: () => db.close(),
        };
      },
    },
    {
      name: 'better-sqlite3',
      version: peers.versions['better-sqlite3'],
      mode: 'journal_mode=WAL, synchronous=FULL, one INSERT (autocommit) per put',
      async open(dir) {
        const db = new Sqlite(path.join(dir, 'log.db'));
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        db.exec('CREATE TABLE log (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)');
        const insert = db.prepare('INSERT INTO log (idx, data) VALUES (?, ?)');
        return {
          // better-sqlite3 is synchronous: the commit (and its fsync) happens
          // inside run() on the JS thread, so concurrent appenders queue behind it.
          async put(seq, value) {
            insert.run(seq, value);
          },
          async close() {
            db.close();
          },
        };
      },
    },
    {
      name: 'classic-level',
      version: peers.versions['classic-level'],
      mode: 'put with { sync: true }',
      async open(dir) {
        const db = new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view' });
        await db.open();
        return {
          put: (seq, value) => db.put(keyBytes(seq), value, { sync: true }),
          close: () => db.close(),
        };
      },
    },
  ];
}
