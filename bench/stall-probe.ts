// `npm run bench:stall -- [--keys N] [--tries N]`: how long one request with
// a very long answer holds a leader's event loop. A 3-node cluster on
// loopback gets N keys of 256 bytes (300,000 by default); then, one at a
// time, a /v3 range over all of them, a /v3 transaction ranging over all of
// them, a raftline/client range, and a raftline/client delete of all of them
// with prevKv (the keys are written again after it). Meanwhile another
// process polls the leader's /status every 10 ms (this one is busy decoding
// the answer); the longest wait, against the election timeout (1,000 ms),
// says whether the leader could have lost its followers. Its term and role
// afterwards say whether it did.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { RaftlineClient } from '../src/client/index.js';
import { clusterArgs, freePorts, spawnServer } from '../test/support/servers.js';
import { updateReadmeSection } from './readme.js';

const ELECTION_TIMEOUT_MS = 1000;
const KEYS_PER_TXN = 500;

const { values } = parseArgs({ options: { keys: { type: 'string', default: '300000' }, tries: { type: 'string', default: '1' } } });
const keyCount = Number(values.keys);
const tries = Number(values.tries);
if (!Number.isInteger(keyCount) || keyCount < 1) throw new Error(`--keys takes a positive whole number, not ${values.keys}`);
if (!Number.isInteger(tries) || tries < 1) throw new Error(`--tries takes a positive whole number, not ${values.tries}`);

const key = (i: number) => Buffer.from(`big/${String(i).padStart(7, '0')}`);
const VALUE = Buffer.alloc(256, 97);
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The longest /status answer at `url` while `work` runs, timed by a process of its own. */
async function longestStatusWhile(url: string, work: () => Promise<number>): Promise<{ rows: number; tookMs: number; longestMs: number }> {
  const poller = spawn(
    process.execPath,
    ['-e', `(async () => { for (;;) { const t = performance.now(); await fetch(${JSON.stringify(`${url}/status`)}); console.log(performance.now() - t); await new Promise((r) => setTimeout(r, 10)); } })()`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let longestMs = 0;
  poller.stdout.setEncoding('utf8').on('data', (text: string) => {
    for (const line of text.split('\n')) if (line) longestMs = Math.max(longestMs, Number(line));
  });
  const exited = new Promise((r) => poller.on('exit', r));
  await new Promise((r) => setTimeout(r, 500));
  const started = performance.now();
  const rows = await work();
  const tookMs = performance.now() - started;
  await new Promise((r) => setTimeout(r, 100));
  poller.kill();
  await exited;
  return { rows, tookMs, longestMs };
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'raftline-stall-'));
  const secretFile = path.join(root, 'secret');
  writeFileSync(secretFile, 'bench-stall-secret-0123456789');
  const ids = ['n1', 'n2', 'n3'];
  const { args, clientUrl } = clusterArgs(ids, await freePorts(6, 21_000), root, secretFile, false);
  const children = ids.map((id) => spawnServer([...args[id], '--log-level', 'warn']).child);
  try {
    let leader = '';
    for (const deadline = Date.now() + 30_000; !leader; ) {
      if (Date.now() > deadline) throw new Error('no leader within 30 s');
      await new Promise((r) => setTimeout(r, 200));
      for (const id of ids) {
        const s = (await fetch(`${clientUrl[id]}/status`).then((r) => r.json(), () => ({}))) as { role?: string };
        if (s.role === 'leader') leader = id;
      }
    }
    const url = clientUrl[leader];
    const client = await RaftlineClient.connect({ endpoints: [url] });
    const load = async () => {
      const writes = [];
      for (let i = 0; i < keyCount; i += KEYS_PER_TXN) {
        const success = Array.from({ length: Math.min(KEYS_PER_TXN, keyCount - i) }, (_, j) => ({ type: 'put' as const, key: key(i + j), value: VALUE }));
        writes.push(client.txn({ compare: [], success, failure: [] }));
      }
      await Promise.all(writes);
    };
    await load();
    const everything = { key: b64('big/'), range_end: b64('big0') };
    // The key order is built by the first range: paid here, not by the first request measured.
    await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ ...everything, limit: 1 }) });
    const requests: [string, () => Promise<number>][] = [
      ['/v3/kv/range', async () => ((await (await fetch(`${url}/v3/kv/range`, { method: 'POST', body: JSON.stringify(everything) })).json()) as { kvs: unknown[] }).kvs.length],
      [
        '/v3/kv/txn with a range',
        async () => {
          const answer = (await (await fetch(`${url}/v3/kv/txn`, { method: 'POST', body: JSON.stringify({ success: [{ request_range: everything }] }) })).json()) as { responses: { response_range: { kvs: unknown[] } }[] };
          return answer.responses[0].response_range.kvs.length;
        },
      ],
      ['raftline/client range', async () => (await client.range('big/', 'big0')).kvs.length],
      ['raftline/client delete with prevKv', async () => (await client.delete('big/', { rangeEnd: 'big0', prevKv: true })).results[0].prevKvs.length],
    ];
    const termOf = async () => ((await (await fetch(`${url}/status`)).json()) as { term: number; role: string });
    const before = await termOf();
    const lines = [
      `Run ${new Date().toISOString()} with \`npm run bench:stall -- --keys ${keyCount} --tries ${tries}\` on ${os.cpus()[0]?.model ?? 'unknown CPU'}, nproc ${os.availableParallelism()}, Node ${process.version}. ` +
        `${keyCount.toLocaleString('en-US')} keys of 256 bytes; the leader started in term ${before.term}; election timeout ${ELECTION_TIMEOUT_MS} ms.`,
      '',
      '| request | key-values answered | answered in | longest /status at the leader | ÷ election timeout | the leader after it |',
      '|---|---|---|---|---|---|',
    ];
    for (let t = 0; t < tries; t++) {
      for (const [name, work] of requests) {
        const r = await longestStatusWhile(url, work);
        if (name.includes('delete')) await load();
        const after = await termOf();
        const row = `| ${name} | ${r.rows.toLocaleString('en-US')} | ${r.tookMs.toFixed(0)} ms | ${r.longestMs.toFixed(0)} ms | ${(r.longestMs / ELECTION_TIMEOUT_MS).toFixed(2)}× | term ${after.term}, ${after.role} |`;
        console.log(row);
        lines.push(row);
      }
    }
    await client.close();
    updateReadmeSection('stall', lines.join('\n'));
  } finally {
    for (const c of children) c.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
