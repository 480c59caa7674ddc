// Fault scenarios against real `raftline serve` processes: clients run a
// put / get / compare-and-set workload on a few keys through random members,
// recording when each operation was invoked and when it returned, while the
// scenario injects faults; afterwards the history must be linearizable
// (the simulator's checker) and every acknowledged write must be present.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { checkLinearizable, type HistoryOp, type KvOp } from '../sim/linearizability.js';
import { Prng } from '../support/prng.js';
import { clusterArgs, freePorts, serveCommand, spawnServer } from '../support/servers.js';
import type { NetnsLab } from '../support/netns.js';

export interface ScenarioReport {
  scenario: string;
  operations: number;
  /** Writes acknowledged to clients. */
  acknowledged: number;
  faults: number;
  /** Linearizability violations and acknowledged writes missing at the end: must be 0. */
  anomalies: number;
  detail: string;
}

interface Answer {
  status: number;
  body: string;
}

const THINK_MS = 20;
/** Writes and reads the workload must complete after a scenario's last fault. */
const WORK_AFTER_FAULTS = 10;
/** The cluster secret of every FaultCluster. */
export const CLUSTER_SECRET = 'fault-tests-secret-0123456789';

/** Codes after which a write certainly did not take effect (refused before or instead of being proposed). */
const NOT_APPLIED = new Set(['no_leader', 'busy', 'bad_request', 'precondition_failed', 'connection_refused', 'storage_unavailable']);

export class FaultCluster {
  readonly ids: string[];
  private readonly children = new Map<string, ChildProcess>();
  /** Each member's JSON log lines (warn and above), since it was last spawned. */
  readonly logs = new Map<string, Record<string, unknown>[]>();
  private args: Record<string, string[]> = {};
  private lab: NetnsLab | undefined;
  clientUrl: Record<string, string> = {};
  faults = 0;
  /** Members stopped by SIGSTOP and not yet continued. */
  private readonly paused = new Set<string>();
  private readonly hidden = new Set<string>();

  constructor(
    private readonly dir: string,
    size = 3,
    /** More `serve` flags for every member. */
    private readonly extraArgs: string[] = [],
    /** More environment variables for a member's processes. */
    private readonly env: (id: string) => Record<string, string> = () => ({}),
  ) {
    this.ids = Array.from({ length: size }, (_, i) => `n${i + 1}`);
  }

  /** Starts every member on loopback, on free ports from `region` (see freePorts). */
  async start(region: number): Promise<void> {
    await this.launch(await freePorts(this.ids.length * 2, region));
  }

  /** Starts each member in its own network namespace of `lab`, where the ports are its own. */
  async startIn(lab: NetnsLab): Promise<void> {
    this.lab = lab;
    await this.launch([...this.ids.map(() => 7000), ...this.ids.map(() => 8000)], this.ids.map((id) => lab.address(id)));
  }

  private async launch(ports: number[], hosts?: string[]): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const secretFile = path.join(this.dir, 'secret');
    writeFileSync(secretFile, CLUSTER_SECRET);
    ({ args: this.args, clientUrl: this.clientUrl } = clusterArgs(this.ids, ports, this.dir, secretFile, true, hosts));
    for (const id of this.ids) this.spawn(id);
    try {
      await this.until('a leader', async () => (await this.leader()) !== null);
    } catch (err) {
      // The caller's cleanup has no cluster to stop yet.
      this.stopAll();
      throw err;
    }
  }

  /** Each member's process state, role and latest warnings, for an error message. */
  private async describe(): Promise<string> {
    const parts = await Promise.all(this.ids.map(async (id) => {
      const exit = this.exit(id);
      if (exit) return `${id} exited (${exit.signal ?? `status ${exit.code}`})`;
      const status = await fetch(`${this.clientUrl[id]}/status`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.text())
        .catch((e: Error) => `no /status (${e.message})`);
      const warnings = (this.logs.get(id) ?? []).slice(-5).map((l) => JSON.stringify(l));
      return `${id} running, ${status}${warnings.length ? `, last warnings: ${warnings.join(' ')}` : ''}`;
    }));
    return parts.join('; ');
  }

  spawn(id: string): void {
    const { child, logs } = spawnServer([...this.args[id], ...this.extraArgs, '--log-level', 'warn'], this.lab?.exec(id), this.env(id));
    this.children.set(id, child);
    this.logs.set(id, logs);
  }

  /** A member's --data directory. */
  dataDir(id: string): string {
    return path.join(this.dir, id);
  }

  /** Starts a member and waits for it to exit on its own (for starts expected to fail): its exit status and stderr. */
  runOnce(id: string): { status: number | null; stderr: string } {
    const r = spawnSync(...serveCommand([...this.args[id], ...this.extraArgs, '--log-level', 'warn'], this.lab?.exec(id)), { encoding: 'utf8', timeout: 20_000 });
    return { status: r.status, stderr: r.stderr };
  }

  /** HOST:PORT of a member's peer transport. */
  peerAddress(id: string): string {
    const args = this.args[id];
    return args[args.indexOf('--peer-listen') + 1];
  }

  running(id: string): boolean {
    const c = this.children.get(id);
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  /**
   * Whether the workload should send to a member: running and not stopped
   * by SIGSTOP. A stopped process still counts as running, and clients sent
   * to it would all hang there while the others elect a new leader and take
   * writes, leaving the history blind to what a deposed leader does next.
   */
  reachable(id: string): boolean {
    return this.running(id) && !this.paused.has(id) && !this.hidden.has(id);
  }

  /** Keeps the workload away from a member (one cut off by a partition: writes to it would hang in doubt) until `showAll`. */
  hide(id: string): void {
    this.hidden.add(id);
  }

  showAll(): void {
    this.hidden.clear();
  }

  /** How a member's last process ended; null while it runs. */
  exit(id: string): { code: number | null; signal: NodeJS.Signals | null } | null {
    const c = this.children.get(id);
    return c === undefined || this.running(id) ? null : { code: c.exitCode, signal: c.signalCode };
  }

  async signal(id: string, signal: NodeJS.Signals): Promise<void> {
    const c = this.children.get(id)!;
    this.faults++;
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
      c.kill(signal);
      if (signal === 'SIGSTOP') this.paused.add(id);
      else this.paused.delete(id);
      return;
    }
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await exited;
  }

  /** Each running member's /status, or null where it does not answer. */
  private async statuses(): Promise<({ role: string; id: string } | null)[]> {
    return Promise.all(
      this.ids.filter((id) => this.running(id)).map((id) =>
        fetch(`${this.clientUrl[id]}/status`, { signal: AbortSignal.timeout(500) })
          .then((r) => r.json() as Promise<{ role: string; id: string }>)
          .catch(() => null),
      ),
    );
  }

  /** The member every reachable member names as leader, if they agree. */
  async leader(): Promise<string | null> {
    const leaders = (await this.statuses()).filter((s) => s?.role === 'leader');
    return leaders.length === 1 ? leaders[0]!.id : null;
  }

  /**
   * Whether every member runs and answers on its client port. A restarted
   * member's process runs before it listens: it recovers its log first.
   */
  async allServing(): Promise<boolean> {
    return this.ids.every((id) => this.running(id)) && (await this.statuses()).every((s) => s !== null);
  }

  async until(what: string, check: () => Promise<boolean>, boundMs = 30_000): Promise<void> {
    const deadline = Date.now() + boundMs;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`not within ${boundMs} ms: ${what}; the members: ${await this.describe()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  stopAll(): void {
    for (const c of this.children.values()) {
      if (c.signalCode === 'SIGSTOP') c.kill('SIGCONT');
      if (c.exitCode === null) c.kill('SIGKILL');
    }
  }
}

/**
 * Closed-loop clients doing puts, linearizable gets and compare-and-sets on
 * `keys` keys through random running members, each operation timestamped.
 */
export class Workload {
  readonly history: HistoryOp[] = [];
  private readonly agent = new http.Agent({ keepAlive: true });
  private stopped = false;
  private loops: Promise<void>[] = [];
  private counter = 0;

  constructor(
    private readonly cluster: FaultCluster,
    private readonly keys = 4,
    private readonly seed = 1,
  ) {}

  start(clients: number): void {
    this.loops = Array.from({ length: clients }, (_, c) => this.loop(c, new Prng(this.seed * 1000 + c)));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    this.agent.destroy();
  }

  /** Acknowledged writes (puts and successful compare-and-sets). */
  get acknowledged(): number {
    return this.history.filter((h) => h.ret !== Infinity && (h.op.kind === 'put' || (h.op.kind === 'cas' && h.op.result))).length;
  }

  /** Reads that completed with an answer. */
  get completedReads(): number {
    return this.history.filter((h) => h.ret !== Infinity && h.op.kind === 'get').length;
  }

  /** Reads every key of the workload from one member at once, into the history (as client -2). */
  async readAllFrom(id: string): Promise<void> {
    const base = this.cluster.clientUrl[id];
    await Promise.all(Array.from({ length: this.keys }, (_, k) => this.get(base, -2, `k${k}`, performance.now())));
  }

  private async loop(client: number, rng: Prng): Promise<void> {
    while (!this.stopped) {
      const live = this.cluster.ids.filter((id) => this.cluster.reachable(id));
      if (live.length === 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const base = this.cluster.clientUrl[live[rng.int(0, live.length - 1)]];
      const key = `k${rng.int(0, this.keys - 1)}`;
      const roll = rng.next();
      const call = performance.now();
      if (roll < 0.4) await this.put(base, client, key, call);
      else if (roll < 0.75) await this.get(base, client, key, call);
      else await this.cas(base, client, key, call, rng);
      // A paced workload keeps each key's history within what the checker can search.
      await new Promise((r) => setTimeout(r, THINK_MS));
    }
  }

  private async put(base: string, client: number, key: string, call: number): Promise<void> {
    const value = `c${client}-${++this.counter}`;
    const a = await this.request(base, 'PUT', `/v1/kv/${key}`, value);
    this.record(client, key, { kind: 'put', value }, call, a, a?.status === 200);
  }

  private async get(base: string, client: number, key: string, call: number): Promise<void> {
    const a = await this.request(base, 'GET', `/v1/kv/${key}`);
    if (a?.status === 200) this.history.push({ client, key, op: { kind: 'get', result: a.body }, call, ret: performance.now() });
    else if (a?.status === 404 && (JSON.parse(a.body || '{}') as { code?: string }).code === 'key_not_found') {
      this.history.push({ client, key, op: { kind: 'get', result: null }, call, ret: performance.now() });
    }
  }

  private async cas(base: string, client: number, key: string, call: number, rng: Prng): Promise<void> {
    // Expect the value this client last saw on the key, or absence.
    const seen = [...this.history].reverse().find((h) => h.key === key && h.op.kind === 'get');
    const expected = seen && seen.op.kind === 'get' && rng.chance(0.8) ? seen.op.result : null;
    const value = `c${client}-${++this.counter}`;
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const compare = expected === null
      ? { key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }
      : { key: b64(key), target: 'VALUE', result: 'EQUAL', value: b64(expected) };
    const a = await this.request(base, 'POST', '/v3/kv/txn', JSON.stringify({ compare: [compare], success: [{ request_put: { key: b64(key), value: b64(value) } }] }));
    let result = false;
    if (a?.status === 200) result = (JSON.parse(a.body) as { succeeded?: boolean }).succeeded === true;
    this.record(client, key, { kind: 'cas', expected, value, result }, call, a, a?.status === 200);
  }

  /** Known outcome: returned now. Refused: not recorded (it had no effect). Anything else: outcome unknown. */
  private record(client: number, key: string, op: KvOp, call: number, a: Answer | null, known: boolean): void {
    if (known) {
      this.history.push({ client, key, op, call, ret: performance.now() });
      return;
    }
    // raftline's code: `code` on /v1, `reason` on the etcd gateway (whose `code` is gRPC's number).
    const body = a ? (JSON.parse(a.body || '{}') as { code?: string | number; reason?: string }) : {};
    const code = body.reason ?? body.code;
    if (typeof code === 'string' && NOT_APPLIED.has(code)) return;
    // A compare-and-set whose outcome is unknown may have applied either way.
    const unknown: KvOp = op.kind === 'cas' ? { ...op, result: true } : op;
    this.history.push({ client, key, op: unknown, call, ret: Infinity });
  }

  private request(base: string, method: string, path: string, body?: string): Promise<Answer | null> {
    const u = new URL(base);
    return new Promise((resolve) => {
      const req = http.request(
        { agent: this.agent, host: u.hostname, port: u.port, path, method, timeout: 15_000, headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body) } },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
          res.on('error', () => resolve(null));
        },
      );
      req.on('timeout', () => req.destroy());
      // Refused means the request never reached a server, so it took no effect.
      req.on('error', (err: NodeJS.ErrnoException) =>
        resolve(err.code === 'ECONNREFUSED' ? { status: 0, body: JSON.stringify({ code: 'connection_refused' }) } : null),
      );
      req.end(body);
    });
  }
}

/**
 * A key's value read linearizably once the fault is over. Only a 200 or 404
 * is an answer; anything else (a member still learning who leads) is asked
 * again, within a bound.
 */
async function finalRead(base: string, key: string): Promise<string | null> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await fetch(`${base}/v1/kv/${key}`, { signal: AbortSignal.timeout(15_000) });
    const body = await r.text();
    if (r.status === 200) return body;
    if (r.status === 404) return null;
    if (Date.now() > deadline) throw new Error(`the final read of ${key} from ${base} got ${r.status} ${body} for 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Checks the history and the final state; counts anomalies. */
export async function verify(scenario: string, cluster: FaultCluster, workload: Workload): Promise<ScenarioReport> {
  const history = workload.history;
  const lin = checkLinearizable(history);
  let anomalies = lin.ok ? 0 : 1;
  const details: string[] = lin.ok ? [] : [`history not linearizable on ${lin.key}`];
  // Every key's final value, read linearizably from every member in turn
  // (one that restarted or rejoined must agree too), must be one that some
  // write could have left.
  const live = cluster.ids.filter((id) => cluster.reachable(id));
  for (const key of new Set(history.map((h) => h.key))) {
    const finals: HistoryOp[] = [];
    for (const id of live) {
      const call = performance.now();
      const value = await finalRead(cluster.clientUrl[id], key);
      finals.push({ client: -1, key, op: { kind: 'get', result: value }, call, ret: performance.now() });
    }
    const withFinal = checkLinearizable([...history.filter((h) => h.key === key), ...finals]);
    if (!withFinal.ok) {
      anomalies++;
      details.push(`final values of ${key} (${finals.map((f, i) => `${live[i]}: ${f.op.kind === 'get' ? f.op.result : ''}`).join(', ')}) contradict the history`);
    }
  }
  return { scenario, operations: history.length, acknowledged: workload.acknowledged, faults: cluster.faults, anomalies, detail: details.join('; ') };
}

/** Stops the workload, checks the history, adds the report to `reports`, and asserts that writes were acknowledged and nothing anomalous happened. */
export async function conclude(scenario: string, cluster: FaultCluster, workload: Workload, reports: ScenarioReport[]): Promise<void> {
  // The history must show the cluster working after the last fault, not only before the first.
  const writes = workload.acknowledged;
  const reads = workload.completedReads;
  await cluster.until('the workload completes writes and reads after the last fault', async () => workload.acknowledged >= writes + WORK_AFTER_FAULTS && workload.completedReads >= reads + WORK_AFTER_FAULTS);
  await workload.stop();
  const report = await verify(scenario, cluster, workload);
  reports.push(report);
  assert.ok(report.acknowledged > 0, 'writes were acknowledged during the scenario');
  assert.equal(report.anomalies, 0, report.detail);
}

export function summaryTable(reports: readonly ScenarioReport[]): string {
  return [
    '| scenario | operations | acknowledged writes | faults | anomalies |',
    '|---|---|---|---|---|',
    ...reports.map((r) => `| ${r.scenario} | ${r.operations} | ${r.acknowledged} | ${r.faults} | ${r.anomalies}${r.detail ? ` (${r.detail})` : ''} |`),
  ].join('\n');
}
