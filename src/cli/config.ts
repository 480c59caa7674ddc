// `raftline serve` settings: flags override environment variables, which
// override the config file, which overrides defaults. Every problem names the
// setting and where it came from.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Address, ServerConfig } from '../server/server.js';
// The transport's floor for the cluster secret is the client token's too: anything shorter can be guessed.
import { isPeerAddress, MIN_SECRET_BYTES } from '../transport/handshake.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

interface Setting {
  flag: string;
  env: string;
  key: string;
  kind: 'string' | 'boolean' | 'number';
}

const SETTINGS: Setting[] = [
  { flag: 'id', env: 'RAFTLINE_ID', key: 'id', kind: 'string' },
  { flag: 'data', env: 'RAFTLINE_DATA', key: 'data', kind: 'string' },
  { flag: 'peer-listen', env: 'RAFTLINE_PEER_LISTEN', key: 'peerListen', kind: 'string' },
  { flag: 'client-listen', env: 'RAFTLINE_CLIENT_LISTEN', key: 'clientListen', kind: 'string' },
  { flag: 'peers', env: 'RAFTLINE_PEERS', key: 'peers', kind: 'string' },
  { flag: 'secret-file', env: 'RAFTLINE_SECRET_FILE', key: 'secretFile', kind: 'string' },
  { flag: 'client-token-file', env: 'RAFTLINE_CLIENT_TOKEN_FILE', key: 'clientTokenFile', kind: 'string' },
  { flag: 'join', env: 'RAFTLINE_JOIN', key: 'join', kind: 'boolean' },
  { flag: 'election-timeout-ms', env: 'RAFTLINE_ELECTION_TIMEOUT_MS', key: 'electionTimeoutMs', kind: 'number' },
  { flag: 'heartbeat-interval-ms', env: 'RAFTLINE_HEARTBEAT_INTERVAL_MS', key: 'heartbeatIntervalMs', kind: 'number' },
  { flag: 'max-key-bytes', env: 'RAFTLINE_MAX_KEY_BYTES', key: 'maxKeyBytes', kind: 'number' },
  { flag: 'max-value-bytes', env: 'RAFTLINE_MAX_VALUE_BYTES', key: 'maxValueBytes', kind: 'number' },
  { flag: 'segment-bytes', env: 'RAFTLINE_SEGMENT_BYTES', key: 'segmentBytes', kind: 'number' },
  { flag: 'max-unread-answer-bytes', env: 'RAFTLINE_MAX_UNREAD_ANSWER_BYTES', key: 'maxUnreadAnswerBytes', kind: 'number' },
  { flag: 'log-level', env: 'RAFTLINE_LOG_LEVEL', key: 'logLevel', kind: 'string' },
];

const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
const DEFAULT_SEGMENT_BYTES = 64 << 20;
const MIN_SEGMENT_BYTES = 4096;
const MAX_SEGMENT_BYTES = 1 << 30;
const MAX_UNREAD_ANSWER_BYTES = 512 << 20;
/**
 * A write of two such values, with their keys, must fit a peer frame (64
 * MiB by default) to replicate, and a value written as JSON text with every
 * byte escaped (6 characters) must make a string V8 can hold.
 */
const MAX_VALUE_BYTES = 16 << 20;

export const SERVE_USAGE = `Usage: raftline serve --id ID --data DIR --peer-listen HOST:PORT --client-listen HOST:PORT
                      --peers ID=HOST:PORT,... [--secret-file FILE] [--client-token-file FILE] [--config FILE] [--join]
                      [--election-timeout-ms N] [--heartbeat-interval-ms N] [--max-key-bytes N] [--max-value-bytes N]
                      [--segment-bytes N] [--max-unread-answer-bytes N]
                      [--log-level debug|info|warn|error|silent]

Logs are JSON lines (pino) on stdout.

Each flag can also come from an environment variable (RAFTLINE_ID, RAFTLINE_PEERS, ...) or a
JSON config file (keys id, data, peerListen, clientListen, peers, secretFile, clientTokenFile, join, ...).
The cluster secret (at least 16 bytes, the same on every member) is read from --secret-file,
or from RAFTLINE_SECRET.
With a client token (at least 16 bytes, from --client-token-file or RAFTLINE_CLIENT_TOKEN), every
client request but the status page itself needs the header 'Authorization: Bearer <token>'.
`;

function address(value: string, name: string): Address {
  const m = /^(.+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : -1;
  // Port 0 would listen on a port nobody was told about, or point peers at nothing.
  if (!m || port < 1 || port > 65535) throw new ConfigError(`${name} must be HOST:PORT with a port from 1 to 65535, got '${value}'`);
  return { host: m[1], port };
}

function boolean(raw: unknown, name: string): boolean {
  if (raw === true || raw === 'true' || raw === '1') return true;
  if (raw === false || raw === 'false' || raw === '0') return false;
  throw new ConfigError(`${name} must be true or false (or 1 or 0), got '${String(raw)}'`);
}

function number(raw: unknown, name: string, min: number): number {
  const n = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new ConfigError(`${name} must be an integer ≥ ${min}, got '${String(raw)}'`);
  return n;
}

/**
 * A secret (the cluster secret, the client token) from its file (which wins)
 * or from the environment variable `envName`; undefined when neither is given.
 */
export function secretSetting(what: string, file: { path: string; from: string } | undefined, envName: string, env: NodeJS.ProcessEnv): string | undefined {
  let text = env[envName]?.trim();
  let from = envName;
  if (file) {
    from = `${file.from} (${file.path})`;
    try {
      text = readFileSync(file.path, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`${file.from}: cannot read ${file.path} (${(err as Error).message})`);
    }
  }
  if (text !== undefined && Buffer.byteLength(text) < MIN_SECRET_BYTES) {
    throw new ConfigError(`the ${what} must be at least ${MIN_SECRET_BYTES} bytes; the one from ${from} is ${Buffer.byteLength(text)} (make one with \`openssl rand -hex 32\`)`);
  }
  return text;
}

/** Parses `serve` arguments (with the environment and an optional --config file) into a checked configuration. */
export function parseServeConfig(argv: string[], env: NodeJS.ProcessEnv): ServerConfig {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument '${arg}'`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    const setting = SETTINGS.find((s) => s.flag === name);
    if (name !== 'config' && !setting) throw new ConfigError(`unknown flag --${name}`);
    if (setting?.kind === 'boolean') flags.set(name, inline === undefined ? true : inline);
    else {
      const value = inline ?? argv[++i];
      if (value === undefined || value.startsWith('--')) throw new ConfigError(`--${name} needs a value`);
      flags.set(name, value);
    }
  }
  let file: Record<string, unknown> = {};
  const configPath = flags.get('config') ?? env.RAFTLINE_CONFIG;
  if (typeof configPath === 'string') {
    try {
      file = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${configPath}: ${(err as Error).message}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) {
      throw new ConfigError(`config file ${configPath}: must hold a JSON object of settings, got ${file === null ? 'null' : Array.isArray(file) ? 'an array' : typeof file}`);
    }
    const known = new Set(SETTINGS.map((s) => s.key));
    for (const key of Object.keys(file)) if (!known.has(key)) throw new ConfigError(`config file ${configPath}: unknown setting '${key}'`);
  }
  const value = (s: Setting): { raw: unknown; from: string } | undefined => {
    if (flags.has(s.flag)) return { raw: flags.get(s.flag), from: `--${s.flag}` };
    if (env[s.env] !== undefined) return { raw: env[s.env], from: s.env };
    if (file[s.key] !== undefined) return { raw: file[s.key], from: `config ${s.key}` };
    return undefined;
  };
  const get = (key: string) => value(SETTINGS.find((s) => s.key === key)!);
  const required = (key: string): { raw: string; from: string } => {
    const v = get(key);
    const s = SETTINGS.find((x) => x.key === key)!;
    if (!v || v.raw === '') throw new ConfigError(`missing --${s.flag} (or ${s.env})`);
    if (typeof v.raw !== 'string') throw new ConfigError(`${v.from} must be a string, got ${JSON.stringify(v.raw)}`);
    return v as { raw: string; from: string };
  };

  const id = required('id');
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id.raw)) throw new ConfigError(`${id.from} must be 1-64 letters, digits, '.', '_' or '-', got '${id.raw}'`);
  const peersSetting = required('peers');
  const peers: Record<string, string> = {};
  for (const part of peersSetting.raw.split(',')) {
    const [peerId, addr] = part.split('=');
    if (!peerId || !addr) throw new ConfigError(`${peersSetting.from} must be ID=HOST:PORT,..., got '${part}'`);
    // The rule the transport applies when dialling it.
    if (!isPeerAddress(addr)) throw new ConfigError(`${peersSetting.from} (${peerId}) must be HOST:PORT (an IPv6 host in brackets) with a port from 1 to 65535, got '${addr}'`);
    if (peers[peerId]) throw new ConfigError(`${peersSetting.from} names ${peerId} twice`);
    peers[peerId] = addr;
  }
  if (!peers[id.raw]) throw new ConfigError(`${peersSetting.from} must include this node (${id.raw})`);
  const fileOf = (key: string) => {
    const v = get(key);
    return v && { path: String(v.raw), from: v.from };
  };
  const secret = secretSetting('cluster secret', fileOf('secretFile'), 'RAFTLINE_SECRET', env);
  if (secret === undefined) throw new ConfigError(`the cluster secret (at least ${MIN_SECRET_BYTES} bytes) is missing: pass --secret-file FILE or set RAFTLINE_SECRET`);
  const clientToken = secretSetting('client token', fileOf('clientTokenFile'), 'RAFTLINE_CLIENT_TOKEN', env) ?? null;
  const join = get('join');
  const optionalNumber = (key: string, fallback: number, min: number) => {
    const v = get(key);
    return v ? number(v.raw, v.from, min) : fallback;
  };
  const electionTimeoutMs = optionalNumber('electionTimeoutMs', 1000, 10);
  const heartbeatIntervalMs = optionalNumber('heartbeatIntervalMs', 100, 1);
  if (heartbeatIntervalMs * 2 > electionTimeoutMs) {
    const setting = (key: string, flag: string, value: number) => `${get(key)?.from ?? `the default ${flag}`} (${value})`;
    throw new ConfigError(`${setting('heartbeatIntervalMs', '--heartbeat-interval-ms', heartbeatIntervalMs)} must be at most half of ${setting('electionTimeoutMs', '--election-timeout-ms', electionTimeoutMs)}`);
  }
  const boundedNumber = (key: string, fallback: number, min: number, max: number) => {
    const value = optionalNumber(key, fallback, min);
    if (value > max) throw new ConfigError(`${get(key)!.from} must be at most ${max} (${max >= 1 << 30 ? `${max / (1 << 30)} GiB` : `${max / (1 << 20)} MiB`}), got '${value}'`);
    return value;
  };
  const logLevelSetting = get('logLevel');
  const logLevel = (logLevelSetting?.raw ?? 'info') as ServerConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`${logLevelSetting!.from} must be one of ${LOG_LEVELS.join(', ')}, got '${String(logLevel)}'`);
  const peerListen = required('peerListen');
  const clientListen = required('clientListen');
  return {
    id: id.raw,
    dataDir: path.resolve(required('data').raw),
    peerListen: address(peerListen.raw, peerListen.from),
    clientListen: address(clientListen.raw, clientListen.from),
    peers,
    secret,
    clientToken,
    join: join ? boolean(join.raw, join.from) : false,
    electionTimeoutMs,
    heartbeatIntervalMs,
    maxKeyBytes: optionalNumber('maxKeyBytes', 1536, 1),
    maxValueBytes: boundedNumber('maxValueBytes', 1 << 20, 0, MAX_VALUE_BYTES),
    // raftline/client takes answers of up to 512 MiB: a larger one would only close its connection.
    maxUnreadAnswerBytes: boundedNumber('maxUnreadAnswerBytes', 256 << 20, 1 << 20, MAX_UNREAD_ANSWER_BYTES),
    // The log's own bounds (docs/log-format.md), checked here so a bad value is a configuration error.
    segmentBytes: boundedNumber('segmentBytes', DEFAULT_SEGMENT_BYTES, MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES),
    logLevel,
  };
}
