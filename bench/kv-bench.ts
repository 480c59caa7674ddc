// `npm run bench:kv`: what a range costs the key-value store right after a
// new key, with its ordered index (`SortedKeys`) against the baseline it
// replaced, sorting every key again. Each round adds one new key, lists the
// first 10 keys of a prefix (with the count, as a range answer carries), and
// removes the key, so the index keeps its size. Then what a snapshot of busy
// client sessions costs the store: the binary session records it writes
// against the JSON header it wrote until 2026-12-03, capture (synchronous,
// on the apply chain) and load.
import os from 'node:os';
import { Bench } from 'tinybench';
import { updateReadmeSection } from './readme.js';
import { SortedKeys } from '../src/server/sorted-keys.js';
import { encodeCommand } from '../src/server/kv-command.js';
import { KvStore, SESSION_WINDOW } from '../src/server/kv-store.js';
import { Prng } from '../test/support/prng.js';

const LIMIT = 10;

function randomKeys(count: number, rng: Prng): string[] {
  const keys = new Set<string>();
  while (keys.size < count) keys.add(`key/${rng.int(0, 0x7fffffff).toString(16).padStart(8, '0')}`);
  return [...keys];
}

/** The baseline: sort every key after a change, then binary-search the prefix. */
function sortedScan(all: Set<string>, from: string, to: string): { keys: string[]; count: number } {
  const sorted = [...all].sort();
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < from) lo = mid + 1;
    else hi = mid;
  }
  let end = lo;
  while (end < sorted.length && sorted[end] < to) end++;
  return { keys: sorted.slice(lo, Math.min(end, lo + LIMIT)), count: end - lo };
}

async function main(): Promise<void> {
  const lines: string[] = [];
  lines.push(`Run ${new Date().toISOString()} with \`npm run bench:kv\` on ${os.cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}.`);
  lines.push('');
  lines.push('| keys | new key, then a range (limit 10): SortedKeys | the same, sorting every key | speed-up |');
  lines.push('| --- | --- | --- | --- |');
  for (const size of [100_000, 1_000_000]) {
    const rng = new Prng(size);
    const keys = randomKeys(size, rng);
    const index = new SortedKeys();
    for (const k of keys) index.add(k);
    index.count('', null);
    const all = new Set(keys);
    const fresh = randomKeys(1000, rng).map((k) => `${k}/new`);
    let round = 0;
    const bench = new Bench({ time: size > 100_000 ? 4000 : 1500, warmupTime: 300 });
    bench.add('SortedKeys', () => {
      const key = fresh[round++ % fresh.length];
      index.add(key);
      const prefix = key.slice(0, 6);
      if (index.keys(prefix, `${prefix}\xff`, LIMIT).length === 0 || index.count(prefix, `${prefix}\xff`) === 0) throw new Error('the new key is missing');
      index.remove(key);
    });
    bench.add('sort every key', () => {
      const key = fresh[round++ % fresh.length];
      all.add(key);
      const prefix = key.slice(0, 6);
      if (sortedScan(all, prefix, `${prefix}\xff`).count === 0) throw new Error('the new key is missing');
      all.delete(key);
    });
    await bench.run();
    const micros = bench.tasks.map((t) => (t.result && 'throughput' in t.result ? 1e6 / t.result.throughput.mean : NaN));
    lines.push(`| ${size.toLocaleString('en-US')} | ${micros[0].toFixed(1)} µs | ${(micros[1] / 1000).toFixed(1)} ms | ${Math.round(micros[1] / micros[0]).toLocaleString('en-US')}× |`);
  }
  lines.push('');
  lines.push('Keys are 12-byte strings; the prefix is their first 6 bytes, which about 1 key in 256 shares.');
  lines.push('');
  lines.push(...(await sessionSnapshots()));
  const report = lines.join('\n');
  process.stdout.write(`${report}\n`);
  updateReadmeSection('kv', report);
}

const SESSION_CLIENTS = 2_000;

/** Each of SESSION_CLIENTS clients makes SESSION_WINDOW + 100 writes, so every session holds a full window and a floor. */
function busySessions(): { store: KvStore; mirror: Map<string, { floor: number; applied: Map<number, number> }> } {
  const store = new KvStore();
  const mirror = new Map<string, { floor: number; applied: Map<number, number> }>();
  const value = Buffer.alloc(16);
  let index = 0;
  for (let sequence = 1; sequence <= SESSION_WINDOW + 100; sequence++) {
    for (let c = 0; c < SESSION_CLIENTS; c++) {
      const clientId = `client-${c}-${'x'.repeat(28)}`;
      const data = encodeCommand({ clientId, sequence, txn: { compare: [], success: [{ type: 'put', key: Buffer.from(`k${c}`), value }], failure: [] } });
      let revision = 0;
      store.onApply({ length: 1, [Symbol.iterator]: () => [{ index: ++index, term: 1, data, awaited: true, respond: (r: unknown) => (revision = (r as { revision: number }).revision) }][Symbol.iterator]() });
      const session = mirror.get(clientId) ?? { floor: 0, applied: new Map<number, number>() };
      session.applied.set(sequence, revision);
      if (session.applied.size > SESSION_WINDOW) {
        const oldest = session.applied.keys().next().value!;
        session.applied.delete(oldest);
        session.floor = oldest;
      }
      mirror.delete(clientId);
      mirror.set(clientId, session);
    }
  }
  return { store, mirror };
}

async function sessionSnapshots(): Promise<string[]> {
  const { store, mirror } = busySessions();
  const sink = { index: 1, term: 1, write: async () => undefined } as never;
  const parts: Buffer[] = [];
  await store.onSnapshotCapture()({ write: async (c: Uint8Array) => void parts.push(Buffer.from(c)) } as never);
  const binary = Buffer.concat(parts);
  const jsonHeader = () => Buffer.from(JSON.stringify({ revision: store.revision, sessions: [...mirror].map(([id, s]) => [id, s.floor, [...s.applied].map(([seq, o]) => [seq, Math.abs(o), o > 0])]), members: [] }));
  const json = jsonHeader();
  const chunks = (bytes: Buffer) =>
    ({
      async *chunks() {
        for (let at = 0; at < bytes.length; at += 1 << 20) yield bytes.subarray(at, at + (1 << 20));
      },
    }) as never;
  const bench = new Bench({ time: 3000, warmupTime: 500, iterations: 5 });
  bench.add('capture: binary records', () => store.onSnapshotCapture()(sink));
  bench.add('capture: JSON header', () => {
    if (jsonHeader().length === 0) throw new Error('empty header');
  });
  bench.add('load: binary records', () => new KvStore().onSnapshotLoad(chunks(binary)));
  bench.add('load: JSON header', () => {
    const parsed = JSON.parse(json.toString('utf8')) as { sessions: [string, number, [number, number, boolean][]][] };
    const sessions = new Map(parsed.sessions.map(([id, floor, applied]) => [id, { floor, applied: new Map(applied.map(([seq, r, ok]) => [seq, ok ? r : -r])) }]));
    if (sessions.size !== SESSION_CLIENTS) throw new Error('sessions lost');
  });
  await bench.run();
  const ms = bench.tasks.map((t) => (t.result && 'latency' in t.result ? t.result.latency.mean : NaN));
  return [
    `Snapshot of ${SESSION_CLIENTS.toLocaleString('en-US')} client sessions, each remembering ${SESSION_WINDOW.toLocaleString('en-US')} writes (${(binary.length / 2 ** 20).toFixed(1)} MiB as binary records, ${(json.length / 2 ** 20).toFixed(1)} MiB as the JSON header):`,
    '',
    '| | binary records | JSON header | speed-up |',
    '| --- | --- | --- | --- |',
    `| capture (synchronous, on the apply chain) | ${ms[0].toFixed(0)} ms | ${ms[1].toFixed(0)} ms | ${(ms[1] / ms[0]).toFixed(1)}× |`,
    `| load (from 1 MiB chunks) | ${ms[2].toFixed(0)} ms | ${ms[3].toFixed(0)} ms | ${(ms[3] / ms[2]).toFixed(1)}× |`,
  ];
}

await main();
