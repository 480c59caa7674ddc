// Streams the leader's latest snapshot file to one follower (braft's
// SnapshotCopier seen from the sending side). The transfer starts with an
// offer (offset 0, no data); the follower answers with how many bytes of that
// same file it already holds, so a broken transfer resumes instead of
// restarting. At most `windowBytes` are unacknowledged at any time, which
// bounds memory and keeps the connection free for heartbeats.
import fs from 'node:fs/promises';
import type { NodeId } from '../core/index.js';
import type { SnapshotChunk, SnapshotChunkResponse } from '../transport/transport.js';
import type { SnapshotFile } from './snapshot-store.js';

export interface SnapshotSenderOptions {
  from: NodeId;
  to: NodeId;
  term: number;
  file: SnapshotFile;
  chunkBytes: number;
  windowBytes: number;
  send(chunk: SnapshotChunk): void;
  /** Called once: the follower holds the whole file (true) or the transfer was abandoned (false). */
  done(ok: boolean): void;
}

export class SnapshotSender {
  /** Bytes the follower acknowledged holding. */
  private acked = 0;
  /** Next byte to send. */
  private next = 0;
  private offered = false;
  /** Where a rejection last moved us back to: later rejections of the same window say nothing new. */
  private rewoundTo = -1;
  /** The most the follower ever held: only passing it counts as progress, so a transfer that keeps starting over is abandoned. */
  private highestHeld = 0;
  private finished = false;
  private handle: fs.FileHandle | null = null;
  private reading = false;
  /** Tick of the last progress, and of the last (re)offer, for the runtime's stall checks. */
  lastProgressTick: number;
  lastOfferTick: number;

  constructor(
    private readonly opts: SnapshotSenderOptions,
    nowTick: number,
  ) {
    this.lastProgressTick = nowTick;
    this.lastOfferTick = nowTick;
  }

  get index(): number {
    return this.opts.file.meta.index;
  }

  get progress(): { sentBytes: number; ackedBytes: number; totalBytes: number } {
    return { sentBytes: this.next, ackedBytes: this.acked, totalBytes: this.opts.file.bytes };
  }

  async start(): Promise<void> {
    let handle: fs.FileHandle;
    try {
      // Our own descriptor: a newer snapshot may replace (unlink) the file mid-transfer.
      handle = await fs.open(this.opts.file.path, 'r');
    } catch {
      this.finish(false);
      return;
    }
    if (this.finished) {
      await handle.close();
      return;
    }
    this.handle = handle;
    this.sendChunk(0, new Uint8Array(0));
  }

  /** Handles the follower's answer; `nowTick` marks progress. */
  onResponse(m: SnapshotChunkResponse, nowTick: number): void {
    if (this.finished || m.index !== this.opts.file.meta.index || m.crc >>> 0 !== this.opts.file.crc >>> 0) return;
    if (m.held > this.opts.file.bytes) {
      this.finish(false);
      return;
    }
    if (!this.offered || m.reject) {
      if (this.offered && m.held === this.rewoundTo) return;
      // Answer to the offer, or a chunk went missing: continue from what the
      // follower actually holds.
      this.offered = true;
      this.rewoundTo = m.held;
      this.acked = m.held;
      this.next = m.held;
    } else if (m.held > this.acked) {
      this.acked = m.held;
      this.rewoundTo = -1;
    } else {
      return;
    }
    if (this.acked > this.highestHeld) {
      this.highestHeld = this.acked;
      this.lastProgressTick = nowTick;
    }
    if (this.acked === this.opts.file.bytes) {
      this.finish(true);
      return;
    }
    void this.pump();
  }

  /** Stops without reporting (leadership lost, node stopping). */
  cancel(): void {
    this.finished = true;
    void this.handle?.close().catch(() => undefined);
  }

  /** Nothing heard for a while (lost chunks or answers): offer again, which resumes at what the follower holds. */
  retransmit(nowTick: number): void {
    if (this.finished) return;
    this.offered = false;
    this.lastOfferTick = nowTick;
    this.sendChunk(0, new Uint8Array(0));
  }

  /** Gives up (stalled transfer): reports failure so the core retries later. */
  abandon(): void {
    this.finish(false);
  }

  private async pump(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      while (!this.finished && this.next < this.opts.file.bytes && this.next - this.acked < this.opts.windowBytes) {
        const offset = this.next;
        const length = Math.min(this.opts.chunkBytes, this.opts.file.bytes - offset);
        const data = Buffer.allocUnsafe(length);
        const { bytesRead } = await this.handle!.read(data, 0, length, offset);
        if (this.finished) return;
        if (bytesRead !== length) {
          this.finish(false);
          return;
        }
        // A rejection may have moved `next` back while we were reading.
        if (this.next !== offset) continue;
        this.next = offset + length;
        this.sendChunk(offset, data);
      }
    } catch {
      this.finish(false);
    } finally {
      this.reading = false;
    }
  }

  private sendChunk(offset: number, data: Uint8Array): void {
    const { from, to, term, file } = this.opts;
    this.opts.send({ type: 'snapshotChunk', from, to, term, file: { meta: file.meta, bytes: file.bytes, crc: file.crc }, offset, data });
  }

  private finish(ok: boolean): void {
    if (this.finished) return;
    this.cancel();
    this.opts.done(ok);
  }
}
