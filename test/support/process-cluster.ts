// Parent side of the multi-process tests and the cluster benchmark: forks one
// test/fixtures/raft-process per node, tells each where the others listen,
// and sends requests over IPC.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RaftNodeOptions } from '../../src/node/index.js';
import type { ProcessConfig, Request } from '../fixtures/raft-process.js';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'raft-process.js');

type Body<R = Request> = R extends unknown ? Omit<R, 'id'> : never;

/** An error a process answered with, keeping the RaftError code and leader hint. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly leaderHint: string | null,
  ) {
    super(message);
  }
}

interface Running {
  child: ChildProcess;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
  exited: Promise<void>;
}

export interface ProcessClusterOptions {
  root: string;
  ids: string[];
  groups: string[];
  secret?: string;
  /** Voters every group starts with; default all ids. */
  voters?: string[];
  node?: Partial<RaftNodeOptions>;
}

export class ProcessCluster {
  private readonly running = new Map<string, Running>();
  private readonly ports = new Map<string, number>();
  private requestIds = 0;

  constructor(readonly opts: ProcessClusterOptions) {}

  get ids(): string[] {
    return [...this.running.keys()];
  }

  async startAll(): Promise<void> {
    for (const id of this.opts.ids) await this.spawn(id, this.opts.voters ?? this.opts.ids);
    await this.announcePeers();
    await Promise.all(this.opts.ids.map((id) => this.request(id, { op: 'start' })));
  }

  /** Starts (or restarts) one process; `voters` empty makes it join. */
  async start(id: string, voters: string[] = this.opts.voters ?? this.opts.ids): Promise<void> {
    await this.spawn(id, voters);
    await this.announcePeers();
    await this.request(id, { op: 'start' });
  }

  /** kill -9 (or another signal) and wait for the exit. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const r = this.running.get(id);
    if (!r) return;
    r.child.kill(signal);
    await r.exited;
  }

  /** Graceful stop: the process shuts its nodes down and exits. */
  async stop(id: string): Promise<void> {
    const r = this.running.get(id);
    if (!r) return;
    r.child.disconnect();
    await r.exited;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.stop(id)));
  }

  request<T = unknown>(id: string, body: Body): Promise<T> {
    const r = this.running.get(id);
    if (!r) return Promise.reject(new RemoteError(`${id} is not running`, 'ERR_TEST_DOWN', null));
    const reqId = ++this.requestIds;
    return new Promise<T>((resolve, reject) => {
      r.pending.set(reqId, { resolve: resolve as (v: unknown) => void, reject });
      // A process just killed may not have reported its exit yet: the send fails (EPIPE) instead.
      r.child.send({ ...body, id: reqId }, (err) => {
        if (!err || !r.pending.delete(reqId)) return;
        reject(new RemoteError(`${id} is gone (${err.message})`, 'ERR_TEST_DOWN', null));
      });
    });
  }

  /** The id of the process leading `group`, once exactly one running process claims it and the others agree. */
  async leader(group: string, boundMs = 20_000): Promise<string> {
    const deadline = Date.now() + boundMs;
    for (;;) {
      const statuses = await Promise.all(
        this.ids.map((id) =>
          this.request<{ role: string; leader: string | null; term: number; configuration: { voters: string[]; learners: string[] } }>(id, { op: 'status', group }).catch(() => null),
        ),
      );
      const leaders = statuses.filter((s) => s?.role === 'leader');
      if (leaders.length === 1) {
        const { term, configuration } = leaders[0]!;
        const leader = this.ids[statuses.indexOf(leaders[0])];
        // A member removed (or not yet added) hears from no leader: it need not agree.
        const members = new Set([...configuration.voters, ...configuration.learners]);
        if (statuses.every((s, i) => s === null || !members.has(this.ids[i]) || s.leader === leader || s.term < term)) return leader;
      }
      if (Date.now() > deadline) {
        const seen = statuses.map((s, i) => `${this.ids[i]}: ${s ? `${s.role} term ${s.term} leader ${s.leader}` : 'no answer'}`);
        throw new Error(`no single leader of ${group} within ${boundMs} ms (${seen.join('; ')})`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async spawn(id: string, voters: string[]): Promise<void> {
    if (this.running.has(id)) throw new Error(`${id} is already running`);
    const config: ProcessConfig = {
      id,
      port: this.ports.get(id) ?? 0,
      dataDir: path.join(this.opts.root, id),
      secret: this.opts.secret ?? 'test-cluster-secret-0123456789',
      groups: this.opts.groups,
      voters,
      node: this.opts.node,
    };
    const child = fork(FIXTURE, [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        this.running.delete(id);
        for (const p of pending.values()) p.reject(new RemoteError(`${id} exited`, 'ERR_TEST_DOWN', null));
        pending.clear();
        resolve();
      });
    });
    const port = await new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`${id} exited with ${code} before it was ready`)));
      child.on('message', (m: { ready?: boolean; port?: number; id?: number; ok?: boolean; result?: unknown; error?: { message: string; code?: string; leaderHint: string | null } }) => {
        if (m.ready) {
          resolve(m.port!);
          return;
        }
        const p = pending.get(m.id!);
        if (!p) return;
        pending.delete(m.id!);
        if (m.ok) p.resolve(m.result);
        else p.reject(new RemoteError(m.error!.message, m.error!.code, m.error!.leaderHint));
      });
    });
    this.ports.set(id, port);
    this.running.set(id, { child, pending, exited });
  }

  private async announcePeers(): Promise<void> {
    const peers = Object.fromEntries([...this.ports].map(([id, port]) => [id, `127.0.0.1:${port}`]));
    await Promise.all(this.ids.map((id) => this.request(id, { op: 'peers', peers })));
  }
}
