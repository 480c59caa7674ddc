import { RaftlineServer } from '../server/server.js';
import { parseServeConfig } from './config.js';

/**
 * `raftline serve`: runs one member until SIGTERM or SIGINT, then stops
 * gracefully and exits 0; exits 1 after a fatal error, which only a new
 * process recovering from the disk can get past.
 */
export async function serve(argv: string[]): Promise<number | never> {
  const config = parseServeConfig(argv, process.env);
  const server = await RaftlineServer.start(config);
  const fatal = await new Promise<boolean>((resolve) => {
    // Later signals are taken and ignored while the server stops: a
    // terminal's Ctrl-C reaches raftline dev and its servers together, and
    // dev's own SIGTERM right after would otherwise kill them mid-stop.
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      process.on('SIGTERM', () => undefined);
      process.on('SIGINT', () => undefined);
      resolve(false);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    void server.failed.then(() => resolve(true));
  });
  // Idle keep-alive client connections would hold the process open (this
  // uWebSockets.js has no way to close them); everything is synced and logged.
  if (fatal) process.exit(1);
  await server.stop();
  process.exit(0);
}
