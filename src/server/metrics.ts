// Prometheus metrics of one server (prom-client, on a registry of its own so
// several servers can share a process in tests).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { NodeEvent, RaftNode } from '../node/index.js';
import type { UwsTransportStats } from '../transport/index.js';

const LATENCY_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

export class ServerMetrics {
  readonly registry = new Registry();
  /**
   * Requests by route and status, counted here and handed to prom-client only
   * when scraped: its inc() hashes the label set on every call, labelled
   * children included, and a busy server counts every request.
   */
  private readonly requestCounts = new Map<string, { route: string; status: string; count: number }>();
  private readonly writeSeconds = new Histogram({ name: 'raftline_write_duration_seconds', help: 'Time from receiving a write to its being applied (commit latency seen by clients)', buckets: LATENCY_BUCKETS_S, registers: [this.registry] });
  private readonly appendSeconds = new Histogram({ name: 'raftline_log_append_duration_seconds', help: 'Log appends until durable (write and fdatasync)', buckets: LATENCY_BUCKETS_S, registers: [this.registry] });
  private readonly appendEntries = new Histogram({ name: 'raftline_log_append_entries', help: 'Entries per durable log append (group commit)', buckets: SIZE_BUCKETS, registers: [this.registry] });
  private readonly applyEntries = new Histogram({ name: 'raftline_apply_batch_entries', help: 'Entries per batch handed to the state machine', buckets: SIZE_BUCKETS, registers: [this.registry] });
  private readonly leaderChanges = new Counter({ name: 'raftline_leader_changes_total', help: 'Times this node learned of a new leader (a leader of a new term)', registers: [this.registry] });
  /** The term of the last leader counted: role changes without a new leader (candidacies, losing the leader) are not. */
  private leaderTerm = -1;
  private readonly snapshotSeconds = new Histogram({ name: 'raftline_snapshot_duration_seconds', help: 'Snapshots saved here or installed from the leader', labelNames: ['kind'], buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60], registers: [this.registry] });

  constructor(node: () => RaftNode | null, storageAvailable: () => boolean, peerTransport: () => UwsTransportStats) {
    const status = () => node()?.status();
    const requestCounts = this.requestCounts;
    new Counter({
      name: 'raftline_http_requests_total',
      help: 'Client HTTP requests by route and status',
      labelNames: ['route', 'status'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { route, status, count } of requestCounts.values()) this.inc({ route, status }, count);
      },
    });
    new Gauge({ name: 'raftline_storage_available', help: '1 while the data directory takes writes; 0 from running out of space until the node restarted on it', registers: [this.registry], collect() { this.set(storageAvailable() ? 1 : 0); } });
    new Gauge({ name: 'raftline_term', help: 'Current Raft term', registers: [this.registry], collect() { const s = status(); if (s) this.set(s.term); } });
    new Gauge({ name: 'raftline_is_leader', help: '1 on the leader', registers: [this.registry], collect() { const s = status(); if (s) this.set(s.role === 'leader' ? 1 : 0); } });
    new Gauge({ name: 'raftline_commit_index', help: 'Commit index', registers: [this.registry], collect() { const s = status(); if (s) this.set(s.commit); } });
    new Gauge({ name: 'raftline_applied_index', help: 'Index applied to the state machine', registers: [this.registry], collect() { const s = status(); if (s) this.set(s.appliedIndex); } });
    new Gauge({ name: 'raftline_apply_lag_entries', help: 'Committed entries not yet applied', registers: [this.registry], collect() { const s = status(); if (s) this.set(Math.max(0, s.commit - s.appliedIndex)); } });
    new Gauge({
      name: 'raftline_follower_lag_entries',
      help: 'On the leader: entries each follower is behind',
      labelNames: ['follower'],
      registers: [this.registry],
      collect() {
        this.reset();
        const s = status();
        if (s?.role === 'leader') for (const [id, p] of Object.entries(s.peers)) this.set({ follower: id }, p.lag);
      },
    });
    new Counter({
      name: 'raftline_peer_frames_rejected_total',
      help: 'Inbound peer data refused, by reason (auth: failed handshakes; malformed, oversized, unroutable: frames or messages)',
      labelNames: ['reason'],
      registers: [this.registry],
      collect() {
        // The transport keeps the counts; this mirrors them at scrape time.
        this.reset();
        for (const [reason, count] of Object.entries(peerTransport().rejected)) this.inc({ reason }, count);
      },
    });
  }

  /** The RaftNode's `onEvent`. */
  readonly onNodeEvent = (e: NodeEvent): void => {
    switch (e.type) {
      case 'roleChanged':
        if (e.leader !== null && e.term !== this.leaderTerm) {
          this.leaderTerm = e.term;
          this.leaderChanges.inc();
        }
        break;
      case 'appended':
        this.appendSeconds.observe(e.durationMs / 1000);
        this.appendEntries.observe(e.entries);
        break;
      case 'applied':
        this.applyEntries.observe(e.entries);
        break;
      case 'snapshotSaved':
        this.snapshotSeconds.observe({ kind: 'saved' }, e.durationMs / 1000);
        break;
      case 'snapshotInstalled':
        this.snapshotSeconds.observe({ kind: 'installed' }, e.durationMs / 1000);
        break;
    }
  };

  request(route: string, status: number): void {
    const key = `${route} ${status}`;
    const counted = this.requestCounts.get(key);
    if (counted) counted.count++;
    else this.requestCounts.set(key, { route, status: String(status), count: 1 });
  }

  write(seconds: number): void {
    this.writeSeconds.observe(seconds);
  }
}
