import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePorts } from './support/servers.js';

const SERVERS = pathToFileURL(fileURLToPath(new URL('./support/servers.js', import.meta.url))).href;
/** Where both children start looking, whatever their pids: the region is adjusted to the offset freePorts adds. */
const START = 21_000;

/** A child process's ports; it holds them (stays alive) until `release` is called. */
function portsFromChild(): Promise<{ ports: number[]; release: () => Promise<void> }> {
  const script = `import { freePorts } from ${JSON.stringify(SERVERS)};
const ports = await freePorts(40, ${START} - (process.pid % 200) * 20);
console.log(JSON.stringify(ports));
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.endsWith('\n')) resolve({ ports: JSON.parse(out) as number[], release: () => (child.stdin.end(), exited) });
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) before answering: ${out}`)));
  });
}

test('two processes searching the same ports at once never get the same one', async () => {
  const [a, b] = await Promise.all([portsFromChild(), portsFromChild()]);
  try {
    assert.equal(a.ports.length, 40);
    assert.equal(b.ports.length, 40);
    assert.deepEqual(a.ports.filter((port) => b.ports.includes(port)), []);
  } finally {
    await Promise.all([a.release(), b.release()]);
  }
});

test('one process is never handed a port twice, even one nobody listens on yet', async () => {
  const first = await freePorts(10, 25_000);
  const second = await freePorts(10, 25_000);
  assert.deepEqual(first.filter((port) => second.includes(port)), []);
});
