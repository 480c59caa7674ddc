#!/usr/bin/env node
// The `raftline` command. Every run first checks that the native pieces
// (the log addon, uWebSockets.js) loaded natively, and says what is wrong if not.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const USAGE = `Usage: raftline <command>

Commands:
  dev         run a local cluster of raftline servers (see raftline dev --help)
  serve       run one raftline server (see raftline serve --help)
  ctl         administer a running cluster (see raftline ctl --help)
  check       verify the native log addon, CRC32C hardware and uWebSockets.js load natively
  version     print the raftline version

Options:
  -h, --help     show this help
  -v, --version  print the raftline version
`;

function packageVersion(): string {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

async function check(): Promise<number> {
  const { crc32cHardwareName } = await import('../log/index.js');
  const { loadUws, uwsBinaryName } = await import('../transport/uws.js');
  loadUws();
  const crc = crc32cHardwareName();
  process.stdout.write(
    `native log addon: ok\n` +
      `crc32c: ${crc === 'none' ? 'portable table (no CPU instruction found)' : crc}\n` +
      `uWebSockets.js: native (${uwsBinaryName()})\n`,
  );
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '-v' || command === '--version' || command === 'version') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (command === 'serve' || command === 'dev' || command === 'ctl') {
    const { ConfigError, SERVE_USAGE } = await import('./config.js');
    const { DEV_USAGE } = await import('./dev.js');
    const { CTL_USAGE } = await import('./ctl.js');
    const usage = command === 'serve' ? SERVE_USAGE : command === 'dev' ? DEV_USAGE : CTL_USAGE;
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(usage);
      return 0;
    }
    try {
      if (command === 'serve') return await (await import('./serve.js')).serve(rest);
      if (command === 'dev') return await (await import('./dev.js')).dev(rest);
      return await (await import('./ctl.js')).ctl(rest);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`raftline ${command}: ${err.message}\n\n${usage}`);
      return 2;
    }
  }
  if (rest.length > 0) {
    process.stderr.write(`raftline ${command}: unexpected argument '${rest[0]}'\n\n${USAGE}`);
    return 2;
  }
  if (command === 'check') return check();
  process.stderr.write(`raftline: unknown command '${command}'\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`raftline: ${err.message}\n`);
    process.exitCode = 1;
  },
);
