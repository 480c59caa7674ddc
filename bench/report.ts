// The results file's shape, the targets from the issue, and the markdown
// that goes to stdout and into bench/README.md.
import type { OpenChildResult } from './open-child.js';
import type { CrcResult, FdatasyncProbe, LoadPoint, SequentialResult, SequentialResults, Timing } from './measure.js';

export interface BenchResults {
  /** ISO time the run started. */
  date: string;
  command: string;
  machine: {
    cpu: string;
    nproc: number;
    node: string;
    kernel: string;
    dataDir: string;
    filesystem: string;
    /** 1-minute load average when the run started. */
    loadAverage: number;
  };
  timing: Timing;
  stores: { name: string; version: string; mode: string }[];
  fdatasync: FdatasyncProbe;
  crc32c: CrcResult & { bufferBytes: number };
  payloadBytes: number;
  load: LoadPoint[];
  sequential: SequentialResults & {
    entriesPerCall: number;
    payloadBytes: number;
    inFlight: number;
  };
  open: {
    logBytes: number;
    entries: number;
    buildMs: number;
    /** null when the page cache could not be dropped (coldSkipped says why). */
    cold: OpenChildResult | null;
    coldSkipped?: string;
    warm: OpenChildResult;
  };
  targets: Target[];
}

export interface Target {
  target: string;
  measured: string;
  met: boolean;
}

export const TARGET_APPENDERS = 64;
const RAFTLINE = 'raftline';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, digits: number): string => n.toFixed(digits);
const ms = (n: number): string => (n < 10 ? n.toFixed(2) : n.toFixed(1));
const mib = (bytes: number): string => `${fixed(bytes / 2 ** 20, 1)} MiB`;
const percent = (a: SequentialResult, b: SequentialResult): string => `${fixed((a.mbPerSec / b.mbPerSec) * 100, 0)}%`;

function point(load: LoadPoint[], store: string, appenders: number): LoadPoint {
  const found = load.find((p) => p.store === store && p.appenders === appenders);
  if (!found) throw new Error(`no result for ${store} with ${appenders} appenders`);
  return found;
}

/** The targets, judged against this run's own baselines; shown, never asserted. */
export function evaluateTargets(r: Omit<BenchResults, 'targets'>): Target[] {
  const ours = point(r.load, RAFTLINE, TARGET_APPENDERS);
  const others = r.load.filter((p) => p.store !== RAFTLINE && p.appenders === TARGET_APPENDERS);
  const best = others.reduce((a, b) => (b.opsPerSec > a.opsPerSec ? b : a));
  // The unit is a growing file's fdatasync, the same kind of write a log makes.
  const fsync = r.fdatasync.append.p50Ms;
  const fsyncBudget = 3 * fsync;
  const seqRatio = r.sequential.raftline.mbPerSec / r.sequential.raw.mbPerSec;
  const openMs = (r.open.cold ?? r.open.warm).openMs;
  const openWhich = r.open.cold ? 'cold cache' : 'warm cache only';
  return [
    {
      target: `${TARGET_APPENDERS} appenders: ≥ 5× the durable entries/s of the best peer`,
      measured: `${fixed(ours.opsPerSec / best.opsPerSec, 1)}× (best: ${best.store}, ${int(best.opsPerSec)}/s)`,
      met: ours.opsPerSec >= 5 * best.opsPerSec,
    },
    {
      target: `${TARGET_APPENDERS} appenders: p99 ≤ 3 fdatasync times`,
      measured: `p99 ${ms(ours.p99Ms)} ms vs 3 × ${ms(fsync)} = ${ms(fsyncBudget)} ms`,
      met: ours.p99Ms <= fsyncBudget,
    },
    {
      target: '1 MiB batches, one at a time: ≥ 80% of raw write + fdatasync bandwidth',
      measured: `${fixed(seqRatio * 100, 0)}% (${fixed(r.sequential.raftline.mbPerSec, 0)} of ${fixed(r.sequential.raw.mbPerSec, 0)} MB/s)`,
      met: seqRatio >= 0.8,
    },
    {
      target: 'open (recover) a 1 GiB log: < 2 s',
      measured: `${fixed(openMs / 1000, 2)} s (${openWhich})`,
      met: openMs < 2000,
    },
  ];
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function renderMarkdown(r: BenchResults): string {
  const m = r.machine;
  const names = r.stores.map((s) => s.name);
  const appenderCounts = [...new Set(r.load.map((p) => p.appenders))];
  const throughputRows = appenderCounts.map((n) => {
    const ours = point(r.load, RAFTLINE, n).opsPerSec;
    return [
      String(n),
      ...names.map((name) => {
        const theirs = point(r.load, name, n).opsPerSec;
        return name === RAFTLINE ? `**${int(ours)}**` : `${int(theirs)} (${fixed(ours / theirs, 1)}×)`;
      }),
    ];
  });
  const latencyRows = appenderCounts.map((n) => [
    String(n),
    ...names.map((name) => {
      const p = point(r.load, name, n);
      return `${ms(p.p50Ms)} / ${ms(p.p99Ms)}`;
    }),
  ]);
  const seq = r.sequential;
  const open = r.open;
  const warm = open.warm;
  const crc = r.crc32c;

  return [
    `Run ${r.date} with \`${r.command}\` on ${m.cpu}, nproc ${m.nproc}, Node ${m.node}, Linux ${m.kernel}; ` +
      `data in \`${m.dataDir}\` on ${m.filesystem}. Each point: ${r.timing.warmupMs / 1000} s warm-up, ` +
      `${r.timing.measureMs / 1000} s measured, fresh store directory. ` +
      `1-minute load average at the start: ${fixed(m.loadAverage, 2)}.`,
    '',
    `fdatasync on this disk (${r.fdatasync.samples} samples each): after a 4 KiB append ` +
      `p50 ${ms(r.fdatasync.append.p50Ms)} ms, p99 ${ms(r.fdatasync.append.p99Ms)} ms; ` +
      `after rewriting one 4 KiB block p50 ${ms(r.fdatasync.overwrite.p50Ms)} ms, p99 ${ms(r.fdatasync.overwrite.p99Ms)} ms.`,
    '',
    '### Targets',
    '',
    table(
      ['target', 'measured', 'met'],
      r.targets.map((t) => [t.target, t.measured, t.met ? 'yes' : '**no**']),
    ),
    '',
    `### Durable ${r.payloadBytes}-byte appends: entries/s (raftline ÷ store)`,
    '',
    'Each appender is an async loop: put one entry, await it, repeat.',
    '',
    table(['appenders', ...names], throughputRows),
    '',
    '### Latency per append, p50 / p99 (ms)',
    '',
    table(['appenders', ...names], latencyRows),
    '',
    table(
      ['store', 'version', 'durable mode'],
      r.stores.map((s) => [s.name, s.version, s.mode]),
    ),
    '',
    '### Sequential 1 MiB appends',
    '',
    `Each call writes ${int(seq.bytesPerCall)} bytes: raftline appends ${seq.entriesPerCall} entries of ` +
      `${seq.payloadBytes / 1024} KiB (framed), the plain file gets the same number of bytes. ` +
      'The writers take turns in 0.5 s slices.',
    '',
    table(
      ['writer', 'MB/s', '÷ plain file'],
      [
        ['plain file: write + fdatasync, one call at a time', fixed(seq.raw.mbPerSec, 0), ''],
        ['raftline `append`, one call at a time', fixed(seq.raftline.mbPerSec, 0), percent(seq.raftline, seq.raw)],
        [
          `raftline \`append\`, ${seq.inFlight} calls in flight`,
          fixed(seq.raftlinePipelined.mbPerSec, 0),
          percent(seq.raftlinePipelined, seq.raw),
        ],
      ],
    ),
    '',
    '### Opening a 1 GiB log',
    '',
    table(
      ['', ''],
      [
        [
          'log',
          `${mib(open.logBytes)} of records: ${int(open.entries)} entries of ${r.payloadBytes} bytes in ` +
            `${warm.segmentCount} segments, written with sync 'none' in ${fixed(open.buildMs / 1000, 1)} s`,
        ],
        [
          '`SegmentLog.open`, cold page cache',
          open.cold ? `${fixed(open.cold.openMs / 1000, 2)} s` : `not measured: ${open.coldSkipped ?? 'unknown'}`,
        ],
        ['`SegmentLog.open`, warm page cache', `${fixed(warm.openMs / 1000, 2)} s`],
        [
          'index memory',
          `${fixed(warm.indexMemoryBytes / warm.entries, 2)} bytes/entry (${mib(warm.indexMemoryBytes)})`,
        ],
        ['process RSS growth across open', mib((open.cold ?? warm).rssDeltaBytes)],
      ],
    ),
    '',
    `### CRC32C over 1 MiB (tinybench, median)`,
    '',
    table(
      ['path', 'GB/s'],
      [
        [`hardware (${crc.hardwareName})`, crc.hardwareGBps === null ? 'n/a' : fixed(crc.hardwareGBps, 2)],
        ['portable', fixed(crc.portableGBps, 2)],
      ],
    ),
  ].join('\n');
}
