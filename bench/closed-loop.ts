// The load shape of the cluster benchmarks: closed loops, each issuing its
// next operation as soon as the previous one settles.
import { performance } from 'node:perf_hooks';

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
