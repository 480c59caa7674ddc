// Real network partitions between processes: each member runs in its own
// network namespace with one veth leg on a bridge in the test's namespace
// (so the test, as the clients, reaches every member). A link between two
// members is cut by blackhole routes inside both namespaces, which drops the
// packets of established connections and refuses new ones, and healed by
// deleting the routes. Creating namespaces needs root (CAP_NET_ADMIN) and
// iproute2; callers get the reason it failed and report their test as not run.
import { spawnSync } from 'node:child_process';

function ip(args: string[]): { ok: boolean; detail: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error) return { ok: false, detail: `cannot run ip: ${r.error.message}` };
  return { ok: r.status === 0, detail: `ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}` };
}

function mustIp(args: string[]): void {
  const r = ip(args);
  if (!r.ok) throw new Error(r.detail);
}

export class NetnsLab {
  private readonly cuts = new Set<string>();

  private constructor(
    /** Member ids, in the order of their addresses. */
    readonly ids: readonly string[],
    private readonly tag: string,
    private readonly subnet: string,
  ) {}

  /** Builds the namespaces and the bridge; returns the reason instead when this machine cannot. */
  static create(ids: readonly string[]): NetnsLab | string {
    // Names unique per test process (and within 15 bytes); a subnet no
    // interface here uses, so a bridge left by a crashed run cannot capture the traffic.
    const tag = String(process.pid % 100_000);
    const used = spawnSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' }).stdout ?? '';
    let octet = process.pid % 250;
    for (let tries = 0; used.includes(`inet 10.213.${octet}.`); tries++) {
      if (tries === 250) return 'every 10.213.X.0/24 subnet is in use here';
      octet = (octet + 1) % 250;
    }
    const lab = new NetnsLab(ids, tag, `10.213.${octet}`);
    const probe = ip(['netns', 'add', lab.namespace(ids[0])]);
    if (!probe.ok) return probe.detail;
    try {
      lab.build();
    } catch (err) {
      lab.destroy();
      return (err as Error).message;
    }
    return lab;
  }

  private get bridge(): string {
    return `rl${this.tag}br`;
  }

  namespace(id: string): string {
    return `raftline-${this.tag}-${id}`;
  }

  /** The member's address inside its namespace. */
  address(id: string): string {
    return `${this.subnet}.${this.ids.indexOf(id) + 1}`;
  }

  /** The command prefix that runs a program inside the member's namespace. */
  exec(id: string): string[] {
    return ['ip', 'netns', 'exec', this.namespace(id)];
  }

  private build(): void {
    mustIp(['link', 'add', this.bridge, 'type', 'bridge']);
    mustIp(['addr', 'add', `${this.subnet}.254/24`, 'dev', this.bridge]);
    mustIp(['link', 'set', this.bridge, 'up']);
    this.ids.forEach((id, i) => {
      const ns = this.namespace(id);
      if (i > 0) mustIp(['netns', 'add', ns]);
      const host = `rl${this.tag}h${i + 1}`;
      const inner = `rl${this.tag}p${i + 1}`;
      mustIp(['link', 'add', host, 'type', 'veth', 'peer', 'name', inner]);
      mustIp(['link', 'set', inner, 'netns', ns]);
      mustIp(['link', 'set', host, 'master', this.bridge, 'up']);
      mustIp(['-n', ns, 'link', 'set', 'lo', 'up']);
      mustIp(['-n', ns, 'addr', 'add', `${this.address(id)}/24`, 'dev', inner]);
      mustIp(['-n', ns, 'link', 'set', inner, 'up']);
    });
  }

  /** Cuts the link between `a` and `b`, both ways. */
  cut(a: string, b: string): void {
    for (const [from, to] of [[a, b], [b, a]]) {
      const key = `${from}>${to}`;
      if (this.cuts.has(key)) continue;
      mustIp(['-n', this.namespace(from), 'route', 'add', 'blackhole', `${this.address(to)}/32`]);
      this.cuts.add(key);
    }
  }

  /** Cuts `id` off from every other member (clients still reach it). */
  isolate(id: string): void {
    for (const other of this.ids) if (other !== id) this.cut(id, other);
  }

  heal(): void {
    for (const key of this.cuts) {
      const [from, to] = key.split('>');
      mustIp(['-n', this.namespace(from), 'route', 'del', 'blackhole', `${this.address(to)}/32`]);
    }
    this.cuts.clear();
  }

  /** Removes the namespaces (and with them the veths) and the bridge; safe to call on a half-built lab. */
  destroy(): void {
    for (const id of this.ids) ip(['netns', 'del', this.namespace(id)]);
    ip(['link', 'del', this.bridge]);
  }
}
