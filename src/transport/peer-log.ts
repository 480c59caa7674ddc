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

/** A rate-limited log; see rateLimited for `limitKey`. */
export type LimitedLogger = (event: TransportLogEvent, limitKey?: string) => void;

const WINDOW_MS = 1000;
/**
 * Distinct events passed on within one window, at most. Beyond it new ones
 * are suppressed, and counted, rather than old ones forgotten: forgetting
 * them would let a flood of distinct events through again at once.
 */
export const MAX_EVENTS_PER_WINDOW = 256;

/** The default sink: one line on stderr. */
export function stderrSink(selfId: string): TransportLogger {
  return (e) => {
    const where = [e.peer !== undefined ? `peer=${e.peer}` : '', e.remote !== undefined ? `remote=${e.remote}` : ''].filter(Boolean).join(' ');
    process.stderr.write(`raftline transport ${selfId} ${e.level}: ${e.message}${where ? ` (${where})` : ''}\n`);
  };
}

/**
 * Passes each distinct event to `sink` at most once per second, and at most
 * MAX_EVENTS_PER_WINDOW distinct events per second, saying how many more
 * were suppressed. An event is distinct by `limitKey` when given, else by
 * its level, message, peer and remote: a caller logging text that someone
 * else chose (an unauthenticated caller's claimed id, say) names what the
 * event is in `limitKey` instead, or every new text would be let through.
 * `nowMs` is monotonic, so a clock set back does not silence events.
 */
export function rateLimited(sink: TransportLogger, nowMs: () => number = () => performance.now()): LimitedLogger {
  // In the order events were passed on, oldest first: those whose window is over are dropped from the front.
  const passedAtMs = new Map<string, number>();
  let suppressed = 0;
  const pass = (e: TransportLogEvent): void => {
    try {
      sink(e);
    } catch {
      // A throwing log sink must not take the transport down with it.
    }
  };
  return (e, limitKey = `${e.level}\0${e.message}\0${e.peer ?? ''}\0${e.remote ?? ''}`) => {
    const t = nowMs();
    for (const [key, at] of passedAtMs) {
      if (t - at < WINDOW_MS) break;
      passedAtMs.delete(key);
    }
    if (passedAtMs.has(limitKey)) return;
    if (passedAtMs.size >= MAX_EVENTS_PER_WINDOW) {
      suppressed++;
      return;
    }
    passedAtMs.set(limitKey, t);
    if (suppressed > 0) {
      pass({ level: 'warn', message: `${suppressed} log events suppressed: more than ${MAX_EVENTS_PER_WINDOW} distinct ones within ${WINDOW_MS} ms` });
      suppressed = 0;
    }
    pass(e);
  };
}
