// npm run sim -- [--seeds N] [--from S] [--seed S]: runs the cluster simulator
// over many seeds, printing a one-line reproduction for each failure.
import { runSeed } from '../test/sim/cluster.js';

function usage(message: string): never {
  process.stderr.write(`sim: ${message}\nusage: npm run sim -- [--seeds N] [--from FIRST_SEED] | [--seed SEED]\n`);
  process.exit(2);
}

function parse(argv: string[]): { from: number; count: number; verbose: boolean } {
  let from = 1;
  let count = 1000;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < 0) usage(`${flag} needs a non-negative integer, got '${argv[i]}'`);
      return v;
    };
    if (flag === '--seeds') count = value();
    else if (flag === '--from') from = value();
    else if (flag === '--seed') {
      from = value();
      count = 1;
      verbose = true;
    } else usage(`unknown argument '${flag}'`);
  }
  return { from, count, verbose };
}

const { from, count, verbose } = parse(process.argv.slice(2));
let failures = 0;
let operations = 0;
const started = Date.now();
for (let seed = from; seed < from + count; seed++) {
  const r = runSeed(seed);
  operations += r.operations;
  if (verbose) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  if (!r.ok) {
    failures++;
    process.stdout.write(`FAIL seed ${seed}: ${r.error}\n  reproduce: npm run sim -- --seed ${seed}\n`);
  }
}
const seconds = (Date.now() - started) / 1000;
process.stdout.write(`${count} seeds, ${failures} failed, ${operations} client operations checked, ${seconds.toFixed(1)} s\n`);
process.exitCode = failures > 0 ? 1 : 0;
