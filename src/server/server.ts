// One raftline server process: the peer transport, the Raft node of the
// key-value group, and the client HTTP listener.
import { createHash } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type { TemplatedApp, us_listen_socket } from '@trufflesuite/uws-js-unofficial';
import { pino, type Logger } from 'pino';
import { outOfSpaceError } from '../log/index.js';
import { members } from '../core/quorum.js';
import { RaftNode, type NodeEvent, type RaftError } from '../node/index.js';
import { listenExclusive, loadUws } from '../transport/uws.js';
import { UwsTransport } from '../transport/index.js';
import { HttpApi, type ApiBackend } from './http-api.js';
import { encodeCommand, KV_PROTOCOL, UNNAMED_KV_PROTOCOL } from './kv-command.js';
import { KvStore } from './kv-store.js';
import { encodeMemberInfo, parseMemberInfo } from './members.js';
import { ServerMetrics } from './metrics.js';

export interface Address {
  host: string;
  port: number;
}

export interface ServerConfig {
  id: string;
  dataDir: string;
  peerListen: Address;
  clientListen: Address;
  /** Every member's peer address, this one included. */
  peers: Record<string, string>;
  secret: string;
  /** When set, every client request but the status page's own files needs `Authorization: Bearer <clientToken>`. */
  clientToken: string | null;
  /** Start as a node joining an existing cluster (added by `ctl add-peer`) rather than as one of the initial members. */
  join: boolean;
  electionTimeoutMs: number;
  heartbeatIntervalMs: number;
  maxKeyBytes: number;
  maxValueBytes: number;
  /** Binary-protocol answers a client connection may leave unread; a larger single answer is refused as too_large. */
  maxUnreadAnswerBytes: number;
  /** Log segment size; also the free space a restart after a full disk waits for (the next segment is preallocated). */
  segmentBytes: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
}

const GROUP = 'kv';
const STORAGE_RETRY_MS = 1000;
/** A storage outage logs its retries at most this often. */
const STORAGE_RETRY_LOG_MS = 10_000;

/** Why the data directory cannot be written, while it cannot. */
interface StorageOutage {
  error: string;
  sinceMs: number;
  attempts: number;
  loggedMs: number;
}

/** etcd reports 64-bit ids as decimal strings; ours are stable hashes of the names. */
function numericId(text: string): string {
  return BigInt(`0x${createHash('sha256').update(text).digest('hex').slice(0, 16)}`).toString();
}

/** One log line per event that matters; nothing per request or per entry, so info stays quiet under load. */
function logNodeEvent(log: Logger, e: NodeEvent): void {
  switch (e.type) {
    case 'roleChanged':
      log.info({ role: e.role, leader: e.leader, term: e.term }, e.role === 'leader' ? 'became leader' : e.leader ? `following ${e.leader}` : 'no leader');
      break;
    case 'snapshotSaved':
      log.info({ index: e.index, bytes: e.bytes, ms: Math.round(e.durationMs) }, 'snapshot saved, log compacted');
      break;
    case 'snapshotInstalled':
      log.info({ index: e.index, from: e.from, ms: Math.round(e.durationMs) }, 'snapshot installed from the leader');
      break;
    case 'logRepaired': {
      const r = e.recovery;
      log.warn(
        { truncatedBytes: r.truncatedBytes, file: r.truncatedFile, offset: r.truncatedOffset, removedSegments: r.removedSegments, finishedTruncation: r.replayedTruncation },
        r.truncatedBytes > 0 ? 'log recovery cut off a torn tail (the last write, cut short by a crash); the leader sends those entries again' : 'log recovery finished an interrupted truncation',
      );
      break;
    }
    case 'appended':
      if (e.durationMs > 1000) log.warn({ entries: e.entries, ms: Math.round(e.durationMs) }, 'slow log append (disk)');
      break;
    case 'applied':
      break;
  }
}

export class RaftlineServer implements ApiBackend {
  readonly metrics: ServerMetrics;
  /** Settles with the error when a fatal error stops this server; the process should then exit and be restarted. */
  readonly failed: Promise<Error>;
  private reportFatal!: (err: Error) => void;
  private current!: { node: RaftNode; store: KvStore };
  private outage: StorageOutage | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private restarting: Promise<void> | null = null;
  private stopping = false;
  private listenSocket: us_listen_socket | null = null;
  private announcer: NodeJS.Timeout | null = null;
  private announcing = false;
  /** The last term in which this member, as leader, forgot the addresses of departed members. */
  private departedCheckedTerm = 0;
  private readonly app: TemplatedApp = loadUws().App();

  private constructor(
    readonly log: Logger,
    readonly config: ServerConfig,
    readonly transport: UwsTransport,
  ) {
    // A node stopped by a full disk keeps its last role; it must not be reported as a leader.
    this.metrics = new ServerMetrics(() => (this.outage ? null : (this.current?.node ?? null)), () => this.outage === null, () => transport.stats());
    this.failed = new Promise((resolve) => (this.reportFatal = resolve));
  }

  static async start(config: ServerConfig): Promise<RaftlineServer> {
    const log = pino({ level: config.logLevel, base: { node: config.id } });
    const peers = Object.fromEntries(Object.entries(config.peers).filter(([id]) => id !== config.id));
    const transport = await UwsTransport.listen({
      id: config.id,
      host: config.peerListen.host,
      port: config.peerListen.port,
      peers,
      secret: config.secret,
      onLog: (e) => log[e.level]({ component: 'transport', peer: e.peer, remote: e.remote }, e.message),
      protocol: KV_PROTOCOL,
      unnamedProtocol: UNNAMED_KV_PROTOCOL,
    });
    const server = new RaftlineServer(log, config, transport);
    try {
      await server.startNode();
      const api = new HttpApi(server, {
        maxKeyBytes: config.maxKeyBytes,
        maxValueBytes: config.maxValueBytes,
        maxUnreadAnswerBytes: config.maxUnreadAnswerBytes,
        clusterId: numericId(Object.keys(config.peers).sort().join(',')),
        memberId: numericId(config.id),
        metrics: server.metrics,
        clientToken: config.clientToken,
        peerTransport: () => transport.stats(),
      });
      api.attach(server.app);
      await server.listen();
    } catch (err) {
      // A member no client can reach must not go on voting, leading and
      // replicating: the process ends here, with the reason.
      if (server.current !== undefined) await server.node.shutdown();
      await transport.close();
      throw err;
    }
    server.announcer = setInterval(() => {
      void server.announce();
      void server.forgetDeparted();
    }, 1000);
    log.info({ peerListen: config.peerListen, clientListen: config.clientListen, peers: config.peers, join: config.join }, 'serving');
    return server;
  }

  /** The running Raft node; replaced by a fresh one when the node restarts after running out of space. */
  get node(): RaftNode {
    return this.current.node;
  }

  /** The key-value state machine of `node`. */
  get store(): KvStore {
    return this.current.store;
  }

  get storageError(): string | null {
    return this.outage?.error ?? null;
  }

  /** Where clients reach this server. */
  get clientUrl(): string {
    return `http://${this.config.clientListen.host}:${this.config.clientListen.port}`;
  }

  /** Opens the data directory as a process start does (recovery included) and runs a node with a fresh state machine on it. */
  private async startNode(): Promise<void> {
    const { config, log, transport } = this;
    const store = new KvStore({ maxResultBytes: config.maxUnreadAnswerBytes });
    store.onError = (err) => this.nodeError(err);
    store.onMemberAddress = (member, text) => {
      if (member === config.id) return;
      const info = text ? parseMemberInfo(text) : null;
      if (!info) transport.removePeer(member);
      else {
        try {
          transport.setPeer(member, info.peer);
        } catch (err) {
          // Recorded in the log, so applied on every member: refused here, never fatal.
          this.log.warn({ member, address: info.peer }, `cannot dial the address recorded for ${member}: ${(err as Error).message}`);
        }
      }
    };
    store.onConfigurationCommitted = (conf) => log.info({ voters: conf.voters, learners: conf.learners, joint: conf.outgoing !== undefined }, 'configuration committed');
    const node = await RaftNode.start({
      groupId: GROUP,
      id: config.id,
      peers: config.join ? [] : Object.keys(config.peers),
      dataDir: path.join(config.dataDir, GROUP),
      fsm: store,
      transport,
      electionTimeoutMs: config.electionTimeoutMs,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      segmentBytes: config.segmentBytes,
      onEvent: (e) => {
        this.metrics.onNodeEvent(e);
        logNodeEvent(log, e);
      },
    });
    // In the same turn as the start resolves, so no failure of this node can come before.
    this.current = { node, store };
  }

  /**
   * The state machine's `onError`. Errors that did not stop the node (a
   * failed snapshot) are only logged. Running out of space stops this
   * member's storage until space frees; anything else stops the server.
   */
  private nodeError(err: RaftError): void {
    if (err !== this.current.node.failure) {
      this.log.error({ code: err.code }, err.message);
      return;
    }
    const full = outOfSpaceError(err);
    if (full) this.storageFailed(full.message, full.file, full.errno);
    else this.fatal(err);
  }

  /**
   * The node stopped because the disk (or quota) is full. Nothing it had not
   * made durable was acknowledged. Clients get 503 storage_unavailable, and
   * every second the server tries to start a fresh node from the data
   * directory, exactly as a restarted process would.
   */
  private storageFailed(message: string, file: string | undefined, errno: number | undefined): void {
    // Stopping closes the node anyway; a retry timer now would outlive stop().
    if (this.stopping) return;
    const what = errno === osConstants.errno.EDQUOT ? 'disk quota exceeded' : 'no space left on device';
    this.outage = { error: `${what} in ${this.config.dataDir}: ${message}`, sinceMs: Date.now(), attempts: 0, loggedMs: Date.now() };
    this.log.error(
      { dataDir: this.config.dataDir, path: file, errno },
      `storage unavailable: ${what} in ${this.config.dataDir} (${message}); the node stopped without acknowledging anything not on disk; answering 503 storage_unavailable and restarting the node from disk once space frees`,
    );
    this.retryTimer ??= setInterval(() => {
      this.restarting ??= this.restartNode().finally(() => (this.restarting = null));
    }, STORAGE_RETRY_MS);
  }

  /** One attempt to bring storage back: release the failed node, wait for room for a segment, start a new node on the same transport. */
  private async restartNode(): Promise<void> {
    const outage = this.outage;
    if (!outage || this.stopping) return;
    outage.attempts++;
    const dir = path.join(this.config.dataDir, GROUP);
    try {
      await this.current.node.shutdown();
      const { bavail, bsize } = await statfs(dir);
      const freeBytes = bavail * bsize;
      // Room for the next segment and the one preallocated behind it, so that a
      // disk with barely a segment free does not fail again at once, over and over.
      const neededBytes = 2 * this.config.segmentBytes;
      if (freeBytes < neededBytes) {
        this.stillUnavailable(outage, `${freeBytes} bytes free in ${dir}; restarting needs room for two log segments, ${neededBytes} bytes`);
        return;
      }
      await this.startNode();
    } catch (err) {
      const full = outOfSpaceError(err);
      if (full) this.stillUnavailable(outage, full.message);
      else this.fatal(err as Error);
      return;
    }
    this.outage = null;
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = null;
    // At warn, like the retries: whoever sees the outage sees its end.
    this.log.warn({ dataDir: this.config.dataDir, attempts: outage.attempts, unavailableMs: Date.now() - outage.sinceMs }, 'storage available again: the node restarted from its data directory');
  }

  private stillUnavailable(outage: StorageOutage, reason: string): void {
    if (Date.now() - outage.loggedMs < STORAGE_RETRY_LOG_MS) return;
    outage.loggedMs = Date.now();
    this.log.warn({ dataDir: this.config.dataDir, attempts: outage.attempts }, `storage still unavailable (${reason}); retrying every second`);
  }

  /**
   * An I/O error other than a full disk (EIO, a failed fdatasync): the page
   * cache may now disagree with the disk, so nothing in this process is
   * trusted any more. Only a new process, recovering from what is on disk,
   * may carry on.
   */
  private fatal(err: Error): void {
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = null;
    this.log.fatal({ dataDir: this.config.dataDir, code: (err as RaftError).code }, `fatal error, exiting so that the server restarts from what is on disk: ${err.message}`);
    this.log.flush();
    this.reportFatal(err);
  }

  /**
   * Records this member's addresses in the replicated metadata until they
   * are there, so every member (and the status page) can find it.
   */
  private async announce(): Promise<void> {
    const status = this.node.status();
    const self = this.config.id;
    if (this.announcing || status.leader === null || ![...status.configuration.voters, ...status.configuration.learners].includes(self)) return;
    const wanted = encodeMemberInfo({ peer: this.config.peers[self], client: this.clientUrl });
    if (this.store.addresses[self] === wanted) return;
    this.announcing = true;
    try {
      const command = encodeCommand({ clientId: '', sequence: 0, txn: { compare: [], success: [{ type: 'member', key: Buffer.from(self), address: wanted }], failure: [] } });
      await this.node.apply(command, { forward: true });
    } catch {
      // No leader right now: the next tick tries again.
    } finally {
      this.announcing = false;
    }
  }

  /**
   * Once per term as leader, forgets the recorded addresses of ids that are
   * not members: remove-peer forgets the member it removes, but a leader
   * removing itself cannot write once out, and the others would dial it
   * until restarted. An address recorded for a member about to be added is
   * forgotten only if its add failed: add-peer records it again once the
   * change is in.
   */
  private async forgetDeparted(): Promise<void> {
    const { role, term } = this.node.status();
    if (role !== 'leader' || this.departedCheckedTerm === term) return;
    this.departedCheckedTerm = term;
    try {
      // Applied up to the commit point of this term: the configuration and addresses are current.
      await this.node.readBarrier();
      const status = this.node.status();
      if (status.role !== 'leader' || status.term !== term) return;
      const current = new Set(members(status.configuration));
      const departed = Object.keys(this.store.addresses).filter((id) => !current.has(id));
      if (departed.length === 0) return;
      const success = departed.map((id) => ({ type: 'member' as const, key: Buffer.from(id), address: '' }));
      await this.node.apply(encodeCommand({ clientId: '', sequence: 0, txn: { compare: [], success, failure: [] } }));
      this.log.info({ members: departed }, 'forgot the addresses of departed members');
    } catch {
      // Leadership lost meanwhile: the next leader does it.
    }
  }

  private async listen(): Promise<void> {
    const { host, port } = this.config.clientListen;
    const socket = await listenExclusive(this.app, host, port);
    if (!socket) throw new Error(`cannot listen for clients on ${host}:${port} (in use or not permitted)`);
    this.listenSocket = socket;
  }

  /**
   * Graceful stop: no new connections, leadership handed to another voter if
   * this node leads, then the node and its log close (everything synced).
   */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.retryTimer) clearInterval(this.retryTimer);
    await this.restarting;
    if (this.announcer) clearInterval(this.announcer);
    if (this.listenSocket) {
      loadUws().us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
    const status = this.node.status();
    if (status.role === 'leader' && !this.outage) {
      const target = Object.entries(status.peers)
        .filter(([id]) => status.configuration.voters.includes(id))
        .sort((a, b) => b[1].match - a[1].match)[0]?.[0];
      if (target) {
        try {
          this.node.transferLeadership(target);
          const deadline = Date.now() + this.config.electionTimeoutMs;
          while (this.node.status().role === 'leader' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        } catch {
          // Shutting down anyway: the others elect a leader after a timeout.
        }
      }
    }
    await this.node.shutdown();
    await this.transport.close();
    this.log.info('stopped');
    this.log.flush();
  }
}
