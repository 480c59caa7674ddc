// Logging for the peer transport: every event goes through one rate limiter,
// so a misbehaving peer or a storm of unroutable messages cannot flood the log.

export interface TransportLogEvent {
  level: 'info' | 'warn';
  message: string;
  /** Node id of the peer concerned, when known. */
  peer?: string;
  /** Remote IP address of an inbound connection. */
  remote?: string;
}

export type TransportLogger = (event: TransportLogEvent) => void;

const WINDOW_MS = 1000;
const MAX_TRACKED_MESSAGES = 1024;

/** The default sink: one line on stderr. */
export function stderrSink(selfId: string): TransportLogger {
  return (e) => {
    const where = [e.peer !== undefined ? `peer=${e.peer}` : '', e.remote !== undefined ? `remote=${e.remote}` : ''].filter(Boolean).join(' ');
    process.stderr.write(`raftline transport ${selfId} ${e.level}: ${e.message}${where ? ` (${where})` : ''}\n`);
  };
}

/** Passes each distinct event (level, message, peer, remote) to `sink` at most once per second. */
export function rateLimited(sink: TransportLogger, now: () => number = Date.now): TransportLogger {
  const lastMs = new Map<string, number>();
  return (e) => {
    const key = `${e.level}\0${e.message}\0${e.peer ?? ''}\0${e.remote ?? ''}`;
    const t = now();
    const last = lastMs.get(key);
    if (last !== undefined && t - last < WINDOW_MS) return;
    if (lastMs.size >= MAX_TRACKED_MESSAGES) {
      for (const [k, at] of lastMs) if (t - at >= WINDOW_MS) lastMs.delete(k);
      if (lastMs.size >= MAX_TRACKED_MESSAGES) lastMs.clear();
    }
    lastMs.set(key, t);
    try {
      sink(e);
    } catch {
      // A throwing log sink must not take the transport down with it.
    }
  };
}
