// `raftline ctl`: cluster administration over the servers' HTTP admin API
// (braft_cli's set). Changes go to whichever endpoint reports itself leader.
import { ConfigError, secretSetting } from './config.js';

export const CTL_USAGE = `Usage: raftline ctl --endpoints URL[,URL...] [--token-file FILE] [--json] <command> [arguments]

When the servers have a client token, pass it with --token-file FILE, RAFTLINE_CLIENT_TOKEN_FILE
or RAFTLINE_CLIENT_TOKEN.

Commands:
  status                      every endpoint's role, term, leader, commit/applied index, followers' lag
  members                     voters and learners, with their client URLs (peer addresses of members never started)
  add-peer ID HOST:PORT       add a voter (start it first with raftline serve --join)
  add-learner ID HOST:PORT    add a non-voting member
  promote ID                  make a learner a voter
  remove-peer ID              remove a voter or learner
  change-peers ID,ID,...      make exactly these the voters (joint consensus when several change)
  transfer-leader ID          hand leadership to ID
  snapshot                    snapshot and compact the log on every endpoint given
  reset-peers ID,ID,...       UNSAFE: force this configuration on every endpoint given (majority lost for good)
`;

interface Parsed {
  endpoints: string[];
  /** Headers of every request: the client token, when there is one. */
  headers: Record<string, string>;
  json: boolean;
  command: string;
  args: string[];
}

const ARITY: Record<string, number> = {
  status: 0,
  members: 0,
  'add-peer': 2,
  'add-learner': 2,
  promote: 1,
  'remove-peer': 1,
  'change-peers': 1,
  'transfer-leader': 1,
  snapshot: 0,
  'reset-peers': 1,
};

function parse(argv: string[], env: NodeJS.ProcessEnv): Parsed {
  let endpoints: string[] = [];
  let tokenFile = env.RAFTLINE_CLIENT_TOKEN_FILE === undefined ? undefined : { path: env.RAFTLINE_CLIENT_TOKEN_FILE, from: 'RAFTLINE_CLIENT_TOKEN_FILE' };
  let json = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].split(/=(.*)/s, 2);
    if (name === '--endpoints') {
      const value = inline ?? argv[++i];
      if (!value) throw new ConfigError('--endpoints needs a value');
      endpoints = value.split(',').map((e) => e.trim().replace(/\/+$/, ''));
      for (const e of endpoints) if (!/^https?:\/\/[^/]+$/.test(e)) throw new ConfigError(`--endpoints: '${e}' is not an http://HOST:PORT URL`);
    } else if (name === '--token-file') {
      const value = inline ?? argv[++i];
      if (!value) throw new ConfigError('--token-file needs a value');
      tokenFile = { path: value, from: '--token-file' };
    } else if (name === '--json') json = true;
    else if (name.startsWith('--')) throw new ConfigError(`unknown flag ${name}`);
    else rest.push(argv[i]);
  }
  if (endpoints.length === 0) throw new ConfigError('missing --endpoints');
  const [command, ...args] = rest;
  if (command === undefined) throw new ConfigError('missing command');
  const arity = ARITY[command];
  if (arity === undefined) throw new ConfigError(`unknown command '${command}'`);
  if (args.length !== arity) throw new ConfigError(`${command} takes ${arity} argument${arity === 1 ? '' : 's'}, got ${args.length}`);
  const token = secretSetting('client token', tokenFile, 'RAFTLINE_CLIENT_TOKEN', env);
  return { endpoints, headers: token === undefined ? {} : { Authorization: `Bearer ${token}` }, json, command, args };
}

const STATUS_TIMEOUT_MS = 2000;
/** Membership changes wait for their entry to commit; transfer-leader for the new leader. */
const CHANGE_TIMEOUT_MS = 30_000;

/** An endpoint answered, with an error (a missing token, a refused change). */
class RefusedError extends Error {}

interface EndpointStatus {
  endpoint: string;
  status: Record<string, any> | null;
  error?: string;
  /** The endpoint answered with an error, rather than not at all. */
  refused?: boolean;
}

/** The endpoints given, and the headers every request to them carries. */
class Cluster {
  constructor(
    readonly endpoints: string[],
    private readonly headers: Record<string, string>,
  ) {}

  async call(endpoint: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    // A frozen or half-open member must not hang the command: its status counts as unreachable.
    const timeoutMs = path === '/status' ? STATUS_TIMEOUT_MS : CHANGE_TIMEOUT_MS;
    const init: RequestInit = body === undefined ? { headers: this.headers } : { method: 'POST', headers: this.headers, body: JSON.stringify(body) };
    let r: Response;
    try {
      r = await fetch(`${endpoint}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw new Error(`${endpoint}: ${(err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err as Error).message}`);
    }
    const out = (await r.json()) as Record<string, unknown>;
    if (!r.ok) throw new RefusedError(`${endpoint}: ${String(out.error ?? r.statusText)} (${String(out.code ?? r.status)})`);
    return out;
  }

  statuses(): Promise<EndpointStatus[]> {
    return Promise.all(
      this.endpoints.map((endpoint) =>
        this.call(endpoint, '/status').then(
          (status): EndpointStatus => ({ endpoint, status }),
          (err: Error): EndpointStatus => ({ endpoint, status: null, error: err.message, refused: err instanceof RefusedError }),
        ),
      ),
    );
  }

  /** The first endpoint that answers /status, for requests any member serves. */
  async anyMember(): Promise<string> {
    const all = await this.statuses();
    const found = all.find((s) => s.status);
    if (!found) throw new Error(`no endpoint answered: ${all.map((s) => s.error).join('; ')}`);
    return found.endpoint;
  }

  /**
   * The leader's endpoint: one of those given, or the client URL the leader
   * a member names has recorded in the cluster's metadata.
   */
  async leader(): Promise<string> {
    let all: EndpointStatus[] = [];
    let named: string | undefined;
    /** Client URLs members recorded, by member, looked up once per member named leader. */
    const recorded = new Map<string, string | undefined>();
    for (let attempt = 0; attempt < 50; attempt++) {
      all = await this.statuses();
      const found = all.find((s) => s.status?.role === 'leader');
      if (found) return found.endpoint;
      named = all.find((s) => s.status?.leader)?.status!.leader as string | undefined;
      const asking = all.find((s) => s.status);
      if (named && asking && !recorded.has(named)) {
        const members = await this.call(asking.endpoint, '/v1/admin/members').then((m) => m.members as Record<string, { client?: string }>, () => null);
        if (members) recorded.set(named, usableUrl(members[named]?.client));
      }
      // Only once it says so itself: the others name a leader killed a moment ago until they elect another.
      const client = named && recorded.get(named);
      if (client && (await this.call(client, '/status').then((s) => s.role === 'leader', () => false))) return client;
      // Refusals (a missing or wrong token) that waiting will not change.
      if (all.every((s) => s.refused)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (all.every((s) => s.refused)) throw new Error(`every endpoint refused: ${all.map((s) => s.error).join('; ')}`);
    if (all.every((s) => !s.status)) throw new Error(`no endpoint answered: ${all.map((s) => s.error).join('; ')}`);
    if (named && !recorded.get(named)) throw new Error(`the leader is ${named}, whose client URL no member has recorded; include its endpoint in --endpoints`);
    throw new Error(`none of ${this.endpoints.join(', ')} could reach a leader (an election under way, or most members down)`);
  }
}

/** A recorded client URL another machine can use: not one on a wildcard address. */
function usableUrl(url: string | undefined): string | undefined {
  return url && !/^https?:\/\/(0\.0\.0\.0|\[::\])(:|\/|$)/.test(url) ? url : undefined;
}

const list = (text: string) => text.split(',').map((x) => x.trim()).filter(Boolean);

export async function ctl(argv: string[]): Promise<number> {
  const { endpoints, headers, json, command, args } = parse(argv, process.env);
  const cluster = new Cluster(endpoints, headers);
  const print = (value: unknown, human: string) => process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human}\n`);
  switch (command) {
    case 'status': {
      const all = await cluster.statuses();
      const lines = all.map(({ endpoint, status: s, error, refused }) => {
        if (!s) return `${endpoint}  ${refused ? 'refused' : 'unreachable'}: ${error}`;
        const followers = Object.entries(s.followers as Record<string, { lag: number; state: string }>)
          .map(([id, f]) => `${id} lag ${f.lag} (${f.state})`)
          .join(', ');
        return `${endpoint}  ${s.id}  ${s.role}  term ${s.term}  leader ${s.leader ?? '-'}  commit ${s.commitIndex}  applied ${s.appliedIndex}${followers ? `  followers: ${followers}` : ''}`;
      });
      print(all, lines.join('\n'));
      return all.every((s) => s.status) ? 0 : 1;
    }
    case 'members': {
      const m = await cluster.call(await cluster.anyMember(), '/v1/admin/members');
      const members = m.members as Record<string, { peer: string; client?: string }>;
      const show = (ids: string[]) => ids.map((id) => (members[id] ? `${id} (${members[id].client ?? members[id].peer})` : id)).join(', ') || '-';
      print(m, `leader ${String(m.leader)}  term ${String(m.term)}\nvoters: ${show(m.voters as string[])}\nlearners: ${show(m.learners as string[])}`);
      return 0;
    }
    case 'snapshot':
    case 'reset-peers': {
      const results: Record<string, unknown>[] = [];
      for (const endpoint of endpoints) {
        const r = await cluster.call(endpoint, `/v1/admin/${command}`, command === 'snapshot' ? {} : { voters: list(args[0]) });
        results.push({ endpoint, ...r });
      }
      print(results, results.map((r) => `${r.endpoint}: ${command === 'snapshot' ? `snapshot at index ${String(r.index)}` : 'configuration reset'}`).join('\n'));
      return 0;
    }
    default: {
      const body =
        command === 'add-peer' || command === 'add-learner'
          ? { id: args[0], address: args[1] }
          : command === 'change-peers'
            ? { voters: list(args[0]) }
            : command === 'transfer-leader'
              ? { to: args[0] }
              : { id: args[0] };
      const r = await cluster.call(await cluster.leader(), `/v1/admin/${command}`, body);
      print(r, `${command}: done; voters ${(r.voters as string[]).join(', ')}${(r.learners as string[]).length ? `; learners ${(r.learners as string[]).join(', ')}` : ''}`);
      return 0;
    }
  }
}
