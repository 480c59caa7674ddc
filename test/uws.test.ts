import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { loadUws, uwsBinaryName } from '../src/transport/uws.js';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

test('uWebSockets.js loads its native build and serves a request', async () => {
  const uws = loadUws();
  assert.equal(typeof uws.App, 'function');
  let port = 0;
  let listening: unknown;
  const app = uws.App().get('/ping', (res) => {
    res.end('pong');
  });
  await new Promise<void>((resolve, reject) => {
    app.listen('127.0.0.1', 0, (socket) => {
      if (!socket) return reject(new Error('listen failed'));
      listening = socket;
      port = uws.us_socket_local_port(socket as never);
      resolve();
    });
  });
  try {
    const res = await fetch(`http://127.0.0.1:${port}/ping`);
    assert.equal(await res.text(), 'pong');
  } finally {
    uws.us_listen_socket_close(listening as never);
  }
});

test('the CLI refuses to run on the pure-JS fallback', () => {
  const result = spawnSync(process.execPath, [cli, 'check'], {
    env: { ...process.env, UWS_USE_FALLBACK: 'true' },
    encoding: 'utf8',
  });
  assert.equal(result.status, 1);
  assert.match(result.stderr, /requires the native uWebSockets\.js build/);
});

test('raftline check reports the native pieces', () => {
  const result = spawnSync(process.execPath, [cli, 'check'], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /native log addon: ok/);
  assert.ok(result.stdout.includes(`uWebSockets.js: native (${uwsBinaryName()})`));
});

test('raftline rejects unknown commands and arguments with usage', () => {
  const unknown = spawnSync(process.execPath, [cli, 'serve-everything'], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command 'serve-everything'/);
  const extra = spawnSync(process.execPath, [cli, 'check', '--now'], { encoding: 'utf8' });
  assert.equal(extra.status, 2);
  assert.match(extra.stderr, /unexpected argument '--now'/);
});
