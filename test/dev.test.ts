// `raftline dev`: the README's first command. It uses the fixed ports
// 127.0.0.1:7101.. and :7201.., which no other test touches.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { eventually } from './support/eventually.js';
import { MAIN } from './support/servers.js';
import { tempDir } from './support/tmp.js';

const { dir, cleanup } = tempDir('dev');
after(cleanup);

async function runDev(dataDir: string, body: () => Promise<void>): Promise<string> {
  // A client token or config file left in the shell for `serve` must not
  // reach dev's servers: the token would lock them away from dev's own checks
  // and the user.
  const tokenFile = path.join(dir, 'serve-token');
  writeFileSync(tokenFile, 'a-file-token-meant-for-serve-0123456789');
  const configFile = path.join(dir, 'serve-config.json');
  writeFileSync(configFile, JSON.stringify({ clientTokenFile: tokenFile }));
  const env = { ...process.env, RAFTLINE_CLIENT_TOKEN: 'a-token-meant-for-serve-0123456789', RAFTLINE_CONFIG: configFile };
  // In a process group of its own, as a terminal runs it: Ctrl-C signals dev and its servers together.
  const child = spawn(process.execPath, [MAIN, 'dev', '--nodes', '3', '--dir', dataDir], { stdio: ['ignore', 'pipe', 'inherit'], env, detached: true });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await eventually('the endpoints are printed', () => out.includes('Ctrl-C stops the cluster'), 60_000);
    await body();
  } finally {
    process.kill(-child.pid!, 'SIGINT');
  }
  assert.equal(await exited, 0, 'Ctrl-C stops the cluster cleanly');
  assert.equal(out.split('"msg":"stopped"').length - 1, 3, 'every server stopped gracefully (dev\'s SIGTERM after the terminal\'s SIGINT did not kill them)');
  return out;
}

test('raftline dev starts a 3-node cluster, prints its endpoints and a curl example, stops on Ctrl-C, and resumes from its data', async () => {
  const data = path.join(dir, 'cluster');
  const out = await runDev(data, async () => {
    const r = await fetch('http://127.0.0.1:7201/v1/kv/greeting', { method: 'PUT', body: 'hello' });
    assert.equal(r.status, 200);
    assert.equal(await (await fetch('http://127.0.0.1:7203/v1/kv/greeting')).text(), 'hello');
    const second = spawnSync(process.execPath, [MAIN, 'dev', '--dir', path.join(dir, 'second')], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(second.status, 1, 'a second dev on the same ports is refused before any server starts');
    assert.match(second.stderr, /127\.0\.0\.1:7101 is in use \(another raftline dev\?\)/);
  });
  for (const port of [7201, 7202, 7203]) assert.ok(out.includes(`http://127.0.0.1:${port}`), `endpoint ${port} printed`);
  assert.match(out, /curl -X PUT --data-binary hello http:\/\/127\.0\.0\.1:7201\/v1\/kv\/greeting/);
  const resized = spawnSync(process.execPath, [MAIN, 'dev', '--nodes', '2', '--dir', data], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(resized.status, 2, 'another cluster size on the same directory is refused before any server starts');
  assert.match(resized.stderr, /holds a 3-node cluster; run with --nodes 3/);
  await runDev(data, async () => {
    await eventually('the data survived the restart', async () => (await (await fetch('http://127.0.0.1:7202/v1/kv/greeting')).text()) === 'hello');
  });
});

test('Ctrl-C while the servers start stops them all and exits 130', async () => {
  const child = spawn(process.execPath, [MAIN, 'dev', '--nodes', '3', '--dir', path.join(dir, 'interrupted')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (t: string) => (out += t));
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // The first server serving means dev is waiting for them (its handlers are
  // in place); no leader can be elected before an election timeout (1 s) has passed.
  await eventually('a server serves', () => out.includes('"msg":"serving"'), 60_000);
  child.kill('SIGINT');
  assert.equal(await exited, 130);
  assert.match(err, /stopped before the cluster was ready/);
  assert.ok(!out.includes('Ctrl-C stops the cluster'), 'never announced as ready');
  for (const port of [7201, 7202, 7203]) {
    await assert.rejects(fetch(`http://127.0.0.1:${port}/status`), `nothing serves on ${port} any more`);
  }
});
