// The load of the cluster benchmarks (bench:cluster, bench:probe): what is
// written, and closed loops, each issuing its next operation as soon as the
// previous one settles; and the servers' CPU time, read from /proc.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export const KEYSPACE = 100_000;
export const VALUE = Buffer.alloc(256, 'v');
const VALUE_B64 = VALUE.toString('base64');
const CLK_TCK = 100;

export const randomKey = (): string => `key-${Math.floor(Math.random() * KEYSPACE)}`;

/** The body of an etcd v3 JSON put of VALUE to a random key. */
export const jsonPutBody = (): string => JSON.stringify({ key: Buffer.from(randomKey()).toString('base64'), value: VALUE_B64 });

/** The body of an etcd v3 JSON range of one random key. */
export const jsonGetBody = (): string => JSON.stringify({ key: Buffer.from(randomKey()).toString('base64') });

/** CPU seconds (user and system) the processes `pids` have used so far. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // A process that exited adds nothing more.
    }
  }
  return ticks / CLK_TCK;
}

/**
 * `concurrency` closed loops running `op` until `durationMs` has passed;
 * `record` gets each completed call's latency, or null for a failed one.
 */
export async function drive(op: () => Promise<boolean>, concurrency: number, durationMs: number, record?: (latencyMs: number | null) => void): Promise<void> {
  const stopAt = performance.now() + durationMs;
  const loop = async () => {
    while (performance.now() < stopAt) {
      const t0 = performance.now();
      const ok = await op().catch(() => false);
      record?.(ok ? performance.now() - t0 : null);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
}
