// One raftline server process: the peer transport, the Raft node of the
// key-value group, and the client HTTP listener.
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { TemplatedApp, us_listen_socket } from '@trufflesuite/uws-js-unofficial';
import { pino, type Logger } from 'pino';
import { RaftNode, type NodeEvent } from '../node/index.js';
import { loadUws } from '../transport/uws.js';
import { UwsTransport } from '../transport/index.js';
import { HttpApi } from './http-api.js';
import { encodeCommand } from './kv-command.js';
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
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
}

const GROUP = 'kv';

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
    case 'appended':
      if (e.durationMs > 1000) log.warn({ entries: e.entries, ms: Math.round(e.durationMs) }, 'slow log append (disk)');
      break;
    case 'applied':
      break;
  }
}

export class RaftlineServer {
  private listenSocket: us_listen_socket | null = null;
  private announcer: NodeJS.Timeout | null = null;
  private announcing = false;

  private constructor(
    readonly log: Logger,
    readonly config: ServerConfig,
    readonly transport: UwsTransport,
    readonly node: RaftNode,
    readonly store: KvStore,
    private readonly app: TemplatedApp,
  ) {}

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
    });
    const store = new KvStore();
    store.onError = (err) => log.error({ code: err.code }, err.message);
    store.onMemberAddress = (member, text) => {
      if (member === config.id) return;
      const info = text ? parseMemberInfo(text) : null;
      if (info) transport.setPeer(member, info.peer);
      else transport.removePeer(member);
    };
    store.onConfigurationCommitted = (conf) => log.info({ voters: conf.voters, learners: conf.learners, joint: conf.outgoing !== undefined }, 'configuration committed');
    let node: RaftNode | null = null;
    const metrics = new ServerMetrics(() => node, () => transport.stats());
    try {
      node = await RaftNode.start({
        groupId: GROUP,
        id: config.id,
        peers: config.join ? [] : Object.keys(config.peers),
        dataDir: path.join(config.dataDir, GROUP),
        fsm: store,
        transport,
        electionTimeoutMs: config.electionTimeoutMs,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        onEvent: (e) => {
          metrics.onNodeEvent(e);
          logNodeEvent(log, e);
        },
      });
    } catch (err) {
      await transport.close();
      throw err;
    }
    const app = loadUws().App();
    const api = new HttpApi(node, store, {
      maxKeyBytes: config.maxKeyBytes,
      maxValueBytes: config.maxValueBytes,
      clusterId: numericId(Object.keys(config.peers).sort().join(',')),
      memberId: numericId(config.id),
      metrics,
      clientToken: config.clientToken,
      peerTransport: () => transport.stats(),
    });
    api.attach(app);
    const server = new RaftlineServer(log, config, transport, node, store, app);
    await server.listen();
    server.announcer = setInterval(() => void server.announce(), 1000);
    log.info({ peerListen: config.peerListen, clientListen: config.clientListen, peers: config.peers, join: config.join }, 'serving');
    return server;
  }

  /** Where clients reach this server. */
  get clientUrl(): string {
    return `http://${this.config.clientListen.host}:${this.config.clientListen.port}`;
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

  private listen(): Promise<void> {
    const { host, port } = this.config.clientListen;
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (socket) => {
        if (!socket) {
          reject(new Error(`cannot listen for clients on ${host}:${port} (in use or not permitted)`));
          return;
        }
        this.listenSocket = socket;
        resolve();
      });
    });
  }

  /**
   * Graceful stop: no new connections, leadership handed to another voter if
   * this node leads, then the node and its log close (everything synced).
   */
  async stop(): Promise<void> {
    if (this.announcer) clearInterval(this.announcer);
    if (this.listenSocket) {
      loadUws().us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
    const status = this.node.status();
    if (status.role === 'leader') {
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
