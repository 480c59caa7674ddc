import { RaftlineServer } from '../server/server.js';
import { parseServeConfig } from './config.js';

/** `raftline serve`: runs one member until SIGTERM or SIGINT, then stops gracefully and exits 0. */
export async function serve(argv: string[]): Promise<number | never> {
  const config = parseServeConfig(argv, process.env);
  const server = await RaftlineServer.start(config);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await server.stop();
  // Idle keep-alive client connections would hold the process open (this
  // uWebSockets.js has no way to close them); everything is synced and logged.
  process.exit(0);
}
