// `npm run bench:kv`: what a range costs the key-value store right after a
// new key, with its ordered index (`SortedKeys`) against the baseline it
// replaced, sorting every key again. Each round adds one new key, lists the
// first 10 keys of a prefix (with the count, as a range answer carries), and
// removes the key, so the index keeps its size.
import os from 'node:os';
import { Bench } from 'tinybench';
import { updateReadmeSection } from './readme.js';
import { SortedKeys } from '../src/server/sorted-keys.js';
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
  const report = lines.join('\n');
  process.stdout.write(`${report}\n`);
  updateReadmeSection('kv', report);
}

await main();
