import { RaftlineServer } from '../server/server.js';
import { parseServeConfig } from './config.js';

/** `raftline serve`: runs one member until SIGTERM or SIGINT, then stops gracefully and exits 0. */
export async function serve(argv: string[]): Promise<number> {
  const config = parseServeConfig(argv, process.env);
  const server = await RaftlineServer.start(config);
  const { peerListen: p, clientListen: c } = config;
  process.stdout.write(`raftline ${config.id}: peers on ${p.host}:${p.port}, clients on http://${c.host}:${c.port}\n`);
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
  process.stdout.write(`raftline ${config.id}: stopped\n`);
  return 0;
}
