// Security scenarios with real servers. A process without the cluster secret
// (impersonating a member at that member's address, or a new node that
// campaigns with very short election timeouts, or one that asks to join) gets
// no vote, sends no message and receives none, while the cluster serves a
// workload and says why it refused. With a client token, every client route
// refuses requests without it, and ctl, raftline/client and the status page
// work with it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { chromium } from 'playwright-core';
import { RaftlineClient, RaftlineClientError } from '../../src/client/index.js';
import { clusterArgs, freePorts, MAIN, spawnServer, writableThroughEvery } from '../support/servers.js';
import { tempDir } from '../support/tmp.js';
import { membersShown } from '../support/status-page.js';
import { FaultCluster, summaryTable, verify, Workload, type ScenarioReport } from './harness.js';

const { dir, cleanup } = tempDir('security');
const reports: ScenarioReport[] = [];
const children: ChildProcess[] = [];
after(() => {
  console.log(`\nSecurity scenarios:\n\n${summaryTable(reports)}\n`);
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  cleanup();
});

interface Status {
  id: string;
  role: string;
  term: number;
  leader: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  keys: number;
  peerTransport: {
    peers: Record<string, { connected: boolean; messagesSent: number; dropped: number }>;
    framesReceived: number;
    messagesReceived: number;
    rejected: { auth: number };
  };
}

async function status(url: string, headers: Record<string, string> = {}): Promise<Status> {
  return (await fetch(`${url}/status`, { headers })).json() as Promise<Status>;
}

/** A `raftline serve` that holds the wrong cluster secret and campaigns every few milliseconds. */
function impostor(id: string, peerListen: string, clientPort: number, peers: string, secretFile: string, extra: string[] = []): { url: string; logs: Record<string, unknown>[] } {
  const { child, logs } = spawnServer([
    '--id', id, '--data', path.join(dir, `impostor-${id}-${clientPort}`), '--peer-listen', peerListen, '--client-listen', `127.0.0.1:${clientPort}`,
    '--peers', peers, '--secret-file', secretFile, '--election-timeout-ms', '40', '--heartbeat-interval-ms', '10', ...extra,
  ]);
  children.push(child);
  return { url: `http://127.0.0.1:${clientPort}`, logs };
}

const port = (url: string) => Number(new URL(url).port);

test('a process with the wrong cluster secret cannot join, vote or receive appends, under its own id or a member\'s', async () => {
  const cluster = new FaultCluster(`${dir}/wrong-secret`);
  await cluster.start(25_000);
  const workload = new Workload(cluster, 4, 7);
  const wrongSecret = path.join(dir, 'wrong-secret-file');
  writeFileSync(wrongSecret, 'not-the-cluster-secret-0123456789');
  const [spare1, spare2, spare3, spare4] = await freePorts(4, 25_000 + 1000);
  try {
    workload.start(2);
    const leader = (await cluster.leader())!;
    const { term } = await status(cluster.clientUrl[leader]!);
    let termMoved = false;
    const peers = cluster.ids.map((id) => `${id}=${cluster.peerAddress(id)}`).join(',');

    /**
     * Lets impostors knock until every member in `refusers` has refused each
     * of them a few times, then checks that they got nowhere and the cluster
     * did not notice beyond refusing them.
     */
    const withstand = async (impostors: { id: string; url: string; campaigns: boolean }[], refusers: string[]) => {
      const authBefore = new Map(await Promise.all(refusers.map(async (id) => [id, (await status(cluster.clientUrl[id]!)).peerTransport.rejected.auth] as const)));
      const acknowledgedBefore = workload.acknowledged;
      await cluster.until('the members refuse every impostor several times', async () => {
        for (const id of refusers) {
          const refused = (await status(cluster.clientUrl[id]!)).peerTransport.rejected.auth - authBefore.get(id)!;
          if (refused < 3 * impostors.length) return false;
          const lines = cluster.logs.get(id)!.map((l) => String(l.msg));
          if (!impostors.every((imp) => lines.some((m) => m.includes(`wrong cluster secret, or a token meant for another member (from a process calling itself "${imp.id}")`)))) return false;
        }
        for (const imp of impostors) {
          const s = await status(imp.url);
          // Its pre-votes were attempted (and dropped: no connection ever authenticated).
          if (imp.campaigns && !Object.values(s.peerTransport.peers).every((p) => p.dropped > 0)) return false;
        }
        return true;
      });
      for (const imp of impostors) {
        const s = await status(imp.url);
        assert.equal(s.leader, null, `${imp.id} (impostor) never learns a leader`);
        assert.deepEqual([s.lastIndex, s.commitIndex, s.keys], [0, 0, 0], `${imp.id} (impostor) receives no entries`);
        if (imp.campaigns) assert.ok(['preCandidate', 'candidate'].includes(s.role), `${imp.id} (impostor) keeps campaigning: ${s.role}`);
        for (const [peer, p] of Object.entries(s.peerTransport.peers)) {
          assert.deepEqual([p.connected, p.messagesSent], [false, 0], `${imp.id} (impostor) never sends to ${peer}`);
        }
        assert.equal(s.peerTransport.messagesReceived, 0, `${imp.id} (impostor) receives no message`);
      }
      // On a quiet machine nothing moves at all; on a loaded one an election
      // may happen, but never in an impostor's favour.
      await cluster.until('the members agree on a leader among themselves', async () => {
        const led = await Promise.all(refusers.map(async (id) => (await status(cluster.clientUrl[id]!)).leader));
        return led.every((l) => l === led[0] && refusers.includes(l!));
      });
      termMoved ||= (await status(cluster.clientUrl[refusers[0]!]!)).term !== term;
      await cluster.until('writes are acknowledged meanwhile', async () => workload.acknowledged > acknowledgedBefore);
      cluster.faults += impostors.length;
    };

    // (a) A follower's id and both its addresses, while it is down: the
    // members keep dialling it there, and its proofs and theirs both fail.
    const victim = cluster.ids.find((id) => id !== leader)!;
    const others = cluster.ids.filter((id) => id !== victim);
    await cluster.signal(victim, 'SIGKILL');
    const twin = impostor(victim, cluster.peerAddress(victim), port(cluster.clientUrl[victim]!), peers, wrongSecret);
    await cluster.until('the impostor serves its status', async () => (await fetch(`${twin.url}/status`)).ok);
    await withstand([{ id: victim, url: twin.url, campaigns: true }], others);
    // The members redial a lost peer with a backoff of up to 2 s: their first try at the impostor may come after the wait above.
    await cluster.until('the impostor refuses the members that dial it', async () => (await status(twin.url)).peerTransport.rejected.auth > 0);
    const twinChild = children[children.length - 1]!;
    const twinExited = new Promise((r) => twinChild.once('exit', r));
    twinChild.kill('SIGKILL');
    await twinExited;
    cluster.spawn(victim);
    const { commitIndex } = await status(cluster.clientUrl[leader]!);
    await cluster.until(`the real ${victim} catches up`, async () => (await status(cluster.clientUrl[victim]!)).appliedIndex >= commitIndex);

    // (b) New ids: one that lists itself as a fourth voter and campaigns, one that asks to join.
    const voter = impostor('n4', `127.0.0.1:${spare1}`, spare2!, `${peers},n4=127.0.0.1:${spare1}`, wrongSecret);
    const joiner = impostor('n5', `127.0.0.1:${spare3}`, spare4!, `${peers},n5=127.0.0.1:${spare3}`, wrongSecret, ['--join']);
    await cluster.until('the impostors serve their status', async () => (await fetch(`${voter.url}/status`)).ok && (await fetch(`${joiner.url}/status`)).ok);
    await withstand([{ id: 'n4', url: voter.url, campaigns: true }, { id: 'n5', url: joiner.url, campaigns: false }], cluster.ids);

    await workload.stop();
    const report = await verify('wrong cluster secret', cluster, workload);
    reports.push({ ...report, detail: [report.detail, termMoved ? 'the term moved (an election under load, not an impostor)' : ''].filter(Boolean).join('; ') });
    assert.equal(report.anomalies, 0, report.detail);
  } finally {
    await workload.stop();
    cluster.stopAll();
  }
});

test('with a client token, every client route refuses requests without it or with a wrong one; ctl, raftline/client and the status page work with it', async () => {
  const ids = ['n1', 'n2', 'n3'];
  const ports = await freePorts(6, 20_000);
  const secretFile = path.join(dir, 'secret');
  const tokenFile = path.join(dir, 'token');
  const token = 'the-client-token-0123456789abcdef';
  writeFileSync(secretFile, 'security-test-secret-0123456789');
  writeFileSync(tokenFile, `${token}\n`);
  const { args, clientUrl } = clusterArgs(ids, ports, path.join(dir, 'token-cluster'), secretFile);

  // Settings first: a token too short or unreadable stops the server with a message naming it.
  const serve = (extra: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [MAIN, 'serve', ...args.n1!, ...extra], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
  const shortFile = path.join(dir, 'short-token');
  writeFileSync(shortFile, 'short');
  for (const [r, pattern] of [
    [serve(['--client-token-file', shortFile]), /client token must be at least 16 bytes; the one from --client-token-file \(.*short-token\) is 5/],
    [serve(['--client-token-file', path.join(dir, 'missing')]), /--client-token-file: cannot read .*missing/],
    [serve([], { RAFTLINE_CLIENT_TOKEN: 'short' }), /client token must be at least 16 bytes; the one from RAFTLINE_CLIENT_TOKEN is 5/],
  ] as const) {
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, pattern);
  }

  const logs: Record<string, unknown>[][] = [];
  for (const id of ids) {
    const server = spawnServer([...args[id]!, '--client-token-file', tokenFile]);
    children.push(server.child);
    logs.push(server.logs);
  }
  const auth = { Authorization: `Bearer ${token}` };
  let operations = 0;
  let acknowledged = 0;
  let unauthorized = 0;
  let anomalies = 0;
  const details: string[] = [];
  await writableThroughEvery(clientUrl, auth);

  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const routes: [string, string, string | undefined, number][] = [
    ['GET', '/status', undefined, 200],
    ['GET', '/metrics', undefined, 200],
    ['GET', '/v1/cluster', undefined, 200],
    ['PUT', '/v1/kv/secure', 'value', 200],
    ['GET', '/v1/kv/secure', undefined, 200],
    ['GET', '/v1/kv?prefix=sec', undefined, 200],
    ['DELETE', '/v1/kv/secure', undefined, 200],
    ['POST', '/v3/kv/put', JSON.stringify({ key: b64('secure'), value: b64('v3') }), 200],
    ['POST', '/v3/kv/range', JSON.stringify({ key: b64('secure') }), 200],
    ['POST', '/v3/kv/txn', JSON.stringify({ success: [{ request_put: { key: b64('secure'), value: b64('t') } }] }), 200],
    ['POST', '/v3/kv/deleterange', JSON.stringify({ key: b64('secure') }), 200],
    ['GET', '/v1/admin/members', undefined, 200],
    ['POST', '/v1/admin/snapshot', '{}', 200],
    ['GET', '/no/such/route', undefined, 404],
  ];
  const refusals: [string, Record<string, string>][] = [
    ['no token', {}],
    ['a wrong token of the same length', { Authorization: `Bearer ${token.replace(/.$/, 'X')}` }],
    ['a wrong token of another length', { Authorization: 'Bearer guess' }],
    ['another scheme', { Authorization: `Basic ${b64(`user:${token}`)}` }],
  ];
  for (const [method, url, body, expected] of routes) {
    for (const [what, headers] of refusals) {
      const r = await fetch(`${clientUrl.n2}${url}`, { method, body, headers });
      const answer = (await r.json()) as { code?: string | number; reason?: string; error?: string };
      // The etcd gateway answers as etcd does: gRPC's Unauthenticated (16) in code, raftline's code in reason.
      const refusedAs = url.startsWith('/v3/') ? (answer.code === 16 ? answer.reason : `code ${answer.code}`) : answer.code;
      operations++;
      unauthorized++;
      // The status page must see /status refusals across origins to show why.
      const corsMissing = url === '/status' && r.headers.get('access-control-allow-origin') !== '*';
      if (r.status !== 401 || refusedAs !== 'unauthorized' || !r.headers.get('www-authenticate')?.startsWith('Bearer') || !answer.error || corsMissing) {
        anomalies++;
        details.push(`${method} ${url} with ${what}: ${r.status} ${refusedAs}`);
      }
    }
    const r = await fetch(`${clientUrl.n2}${url}`, { method, body, headers: { Authorization: `bearer ${token}` } });
    operations++;
    if (method !== 'GET' && r.status === 200) acknowledged++;
    assert.equal(r.status, expected, `${method} ${url} with the token: ${await r.text()}`);
  }

  // The page and its files need no token; a browser may ask before sending one to /status.
  for (const url of ['/', '/assets/uplot.min.js', '/assets/uplot.min.css']) assert.equal((await fetch(`${clientUrl.n1}${url}`)).status, 200, url);
  const preflight = await fetch(`${clientUrl.n1}/status`, { method: 'OPTIONS' });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get('access-control-allow-headers'), 'Authorization');

  // The binary protocol's upgrade.
  const upgrade = (headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${clientUrl.n3!.replace('http', 'ws')}/v1/ws`, { headers });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
      ws.on('error', reject);
    });
  assert.equal(await upgrade({}), 401);
  assert.equal(await upgrade({ Authorization: 'Bearer guess' }), 401);
  assert.equal(await upgrade(auth), 101);
  operations += 3;
  unauthorized += 2;

  const endpoints = ids.map((id) => clientUrl[id]!);
  for (const opts of [{}, { token: 'a-wrong-token-0123456789' }]) {
    await assert.rejects(
      RaftlineClient.connect({ endpoints, ...opts, requestTimeoutMs: 5000 }),
      (err: unknown) => err instanceof RaftlineClientError && err.code === 'unauthorized' && /token/.test(err.message),
    );
    operations++;
    unauthorized++;
  }
  // As read from the token file, newline included.
  const client = await RaftlineClient.connect({ endpoints, token: readFileSync(tokenFile, 'utf8') });
  try {
    await client.put('binary', 'yes');
    assert.equal(Buffer.from((await client.get('binary'))!.value).toString(), 'yes');
    operations += 2;
    acknowledged++;
  } finally {
    await client.close();
  }

  const ctl = (argv: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [MAIN, 'ctl', '--endpoints', endpoints.join(','), ...argv], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
  const refused = ctl(['status']);
  assert.equal(refused.status, 1);
  assert.match(refused.stdout, /  refused: .*\(unauthorized\)/, 'refused, not unreachable');
  const change = ctl(['transfer-leader', 'n2']);
  assert.equal(change.status, 1);
  assert.match(change.stderr, /every endpoint refused: .*\(unauthorized\)/, 'says why, rather than that none is the leader');
  const withFile = ctl(['--token-file', tokenFile, 'status']);
  assert.equal(withFile.status, 0, withFile.stderr);
  assert.equal(withFile.stdout.match(/  leader  term /g)?.length, 1, withFile.stdout);
  const withEnv = ctl(['members'], { RAFTLINE_CLIENT_TOKEN: token });
  assert.equal(withEnv.status, 0, withEnv.stderr);
  assert.match(withEnv.stdout, /voters: n1/);
  operations += 3;
  unauthorized++;

  // The status page reads the token from its URL fragment and sends it to every member.
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage();
    await page.goto(`${clientUrl.n2}/#token=${token}`);
    await page.waitForFunction(membersShown(3), null, { timeout: 30_000 });
    await page.goto(`${clientUrl.n1}/`);
    await page.waitForFunction(`document.getElementById('summary').textContent.includes('client token')`, null, { timeout: 30_000 });
  } finally {
    await browser.close();
  }

  const metrics = await (await fetch(`${clientUrl.n2}/metrics`, { headers: auth })).text();
  assert.match(metrics, /raftline_http_requests_total\{route="\/status",status="401"\} [1-9]/);
  assert.ok(!JSON.stringify(logs).includes(token), 'the token appears in no log');
  reports.push({ scenario: 'client token', operations, acknowledged, faults: unauthorized, anomalies, detail: details.join('; ') });
  assert.equal(anomalies, 0, details.join('\n'));
});
