import { RaftlineServer } from '../server/server.js';
import { parseServeConfig } from './config.js';

/** How long after the first stop signal later ones are taken as copies of it. */
const REPEAT_SIGNAL_GRACE_MS = 2_000;

/**
 * `raftline serve`: runs one member until SIGTERM or SIGINT, then stops
 * gracefully and exits 0; exits 1 after a fatal error, which only a new
 * process recovering from the disk can get past.
 */
export async function serve(argv: string[]): Promise<number | never> {
  const config = parseServeConfig(argv, process.env);
  const server = await RaftlineServer.start(config);
  const fatal = await new Promise<boolean>((resolve) => {
    // A signal right after the first is ignored: a terminal's Ctrl-C reaches
    // raftline dev and its servers together, and dev's own SIGTERM follows
    // at once. One later (a second Ctrl-C on a stop that hangs) exits now;
    // every acknowledged write is already synced. The listener stays: while
    // a signal has none, Node restores its default action, and a SIGTERM
    // landing then killed the server mid-stop.
    let firstStopMs: number | null = null;
    const onStopSignal = () => {
      if (firstStopMs === null) {
        firstStopMs = Date.now();
        resolve(false);
      } else if (Date.now() - firstStopMs > REPEAT_SIGNAL_GRACE_MS) {
        process.exit(130);
      }
    };
    process.on('SIGTERM', onStopSignal);
    process.on('SIGINT', onStopSignal);
    void server.failed.then(() => resolve(true));
  });
  // Idle keep-alive client connections would hold the process open (this
  // uWebSockets.js has no way to close them); everything is synced and logged.
  if (fatal) process.exit(1);
  await server.stop();
  process.exit(0);
}
