// The status page at `/`, in headless Chromium (Debian's chromium package,
// which .ci/run installs), against three `raftline serve` processes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { clusterArgs, freePorts, spawnServer, writableThroughEvery } from './support/servers.js';
import { tempDir } from './support/tmp.js';
import { membersShown } from './support/status-page.js';

const CHROMIUM = '/usr/bin/chromium';
const IDS = ['n1', 'n2', 'n3'];
const { dir, cleanup } = tempDir('status-page');
const children: ChildProcess[] = [];
let clientUrl: Record<string, string> = {};
let browser: Browser | undefined;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium), as .ci/run does`);
  const ports = await freePorts(6, 15_000);
  const secretFile = path.join(dir, 'secret');
  writeFileSync(secretFile, 'status-page-secret-0123456789');
  const cluster = clusterArgs(IDS, ports, dir, secretFile);
  clientUrl = cluster.clientUrl;
  for (const id of IDS) children.push(spawnServer(cluster.args[id]).child);
  await writableThroughEvery(clientUrl);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
});

after(async () => {
  await browser?.close();
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  cleanup();
});

test('the page shows three members with one leader, and its chart moves while writes flow', async () => {
  const page = await browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${clientUrl.n2}/`);
  await page.waitForFunction(membersShown(3), null, { timeout: 30_000 });
  const rows = await page.$$eval('#members tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.deepEqual(rows.map((r) => r[0]).sort(), IDS);
  assert.deepEqual(rows.map((r) => r[1]).sort(), ['follower', 'follower', 'leader']);
  for (const r of rows) assert.match(r[4] ?? '', /^\d+$/, 'commit index shown');
  assert.match(await page.textContent('#summary') ?? '', /3 members, leader n\d/);

  let writing = true;
  let written = 0;
  const writers = Array.from({ length: 8 }, async (_, w) => {
    while (writing) {
      const r = await fetch(`${clientUrl.n1}/v1/kv/chart-${w}-${written++}`, { method: 'PUT', body: 'x' });
      assert.equal(r.status, 200);
    }
  });
  try {
    await page.waitForFunction('Number(document.body.dataset.points) >= 3 && Number(document.body.dataset.lastWrites) > 0', null, { timeout: 30_000 });
  } finally {
    writing = false;
    await Promise.all(writers);
  }
  assert.ok(written > 0);
  assert.ok((await page.$$('#chart canvas')).length > 0, 'the chart drew');
  assert.deepEqual(errors, [], 'no script errors');
  await page.close();
});
