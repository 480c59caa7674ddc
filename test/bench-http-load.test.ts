// The benchmark's HTTP client: its response parser, and a real exchange
// against a node:http server that answers with both kinds of body length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpLoadClient, parseResponse } from '../bench/http-load.js';

test('a response is complete once the body its length names has arrived, not before', () => {
  const whole = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}');
  for (let cut = 0; cut < whole.length; cut++) assert.equal(parseResponse(whole.subarray(0, cut)), null, `incomplete at ${cut} bytes`);
  assert.deepEqual(parseResponse(whole), { status: 200, end: whole.length });
  const chunked = Buffer.from('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n');
  for (let cut = 0; cut < chunked.length; cut++) assert.equal(parseResponse(chunked.subarray(0, cut)), null, `incomplete at ${cut} bytes`);
  assert.deepEqual(parseResponse(chunked), { status: 404, end: chunked.length });
  assert.deepEqual(parseResponse(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n')), { status: 204, end: 27 });
});

test('what is not a response of known length is refused with a reason', () => {
  assert.throws(() => parseResponse(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n')), /not an HTTP\/1.x response/);
  assert.throws(() => parseResponse(Buffer.from('HTTP/1.1 200 OK\r\n\r\nbody until close')), /neither Content-Length nor chunked/);
  assert.throws(() => parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')), /bad chunk size/);
});

test('requests reach the server whole over reused connections, answers of either length are read, and a dropped connection fails only its request', async () => {
  const bodies: string[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      bodies.push(`${req.url} ${body}`);
      if (req.url === '/drop') return req.socket.destroy();
      if (req.url === '/chunked') {
        res.write('part one, ');
        res.end('part two');
      } else res.writeHead(201, { 'Content-Length': 2 }).end('ok');
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = new HttpLoadClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const statuses = await Promise.all(Array.from({ length: 8 }, (_, i) => client.post(i % 2 ? '/chunked' : '/fixed', JSON.stringify({ i, text: 'naïve ✓' }))));
    assert.deepEqual(statuses, [201, 200, 201, 200, 201, 200, 201, 200]);
    for (let i = 0; i < 8; i++) assert.ok(bodies.includes(`${i % 2 ? '/chunked' : '/fixed'} ${JSON.stringify({ i, text: 'naïve ✓' })}`));
    const opened = connections;
    for (let i = 0; i < 20; i++) assert.equal(await client.post('/fixed', '{}'), 201);
    assert.equal(connections, opened, 'one request at a time reuses an idle connection');
    await assert.rejects(client.post('/drop', '{}'), /closed the connection/);
    assert.equal(await client.post('/fixed', '{}'), 201);
  } finally {
    client.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
