// Fault lab for integration tests: "hosts" are network namespaces on a bridge
// that the root namespace reaches through one veth; faults (delay + jitter,
// random loss, blackhole, flapping) are injected per host.
//
//   root ns                     <id>-lan ns                 <id>-h-<name> ns
//   knpl<n> 10.213.<n>.1/24 ─── up0 ─┐
//           fd00:6b6e:70:<n>::1/64   br0 ── h<i> ─────────── eth0 10.213.<n>.<11+i>/24
//                                                                 fd00:6b6e:70:<n>::<11+i>/64
//
// Nothing here ever sends a packet: probes come from the tests, and
// assertRoutes() checks (with `ip route get`, which sends nothing) that every
// lab address is reached through the lab's own interface, never a default route.
//
// Every command goes through child_process without a shell; all values that
// reach a command line are validated (names by regex, numbers by range).

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LabOptions {
  /** Prefix of every namespace the lab creates: [a-z][a-z0-9]{0,15}, no hyphen. Default: unique per process. */
  id?: string;
}

export interface Host {
  readonly name: string;
  /** Network namespace name, for `ip netns exec` / `ip -n`. */
  readonly ns: string;
  readonly v4: string;
  readonly v6: string;
  /** The host's interface on the lab bridge. */
  readonly ifname: string;
}

export interface DelayOptions {
  ms: number;
  /** Uniform jitter: each reply waits ms + U(-jitterMs, +jitterMs), clamped at 0. */
  jitterMs?: number;
}

export interface FlapOptions {
  upMs: number;
  downMs: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

const REGISTRY_DIR = '/run/kube-node-ping-lab';
const LOCK_DIR = path.join(REGISTRY_DIR, 'lock');
const V4_BASE = '10.213';
const V6_BASE = 'fd00:6b6e:70';
/** Subnet index 250 and up are never used by a lab (tests use 10.213.250.x as "outside the lab"). */
const MAX_SUBNET = 249;
const FIRST_HOST_OCTET = 11;
const MAX_HOSTS = 240;
const HOST_IF = 'eth0';
const NFT_TABLE = 'knplab';
const ID_RE = /^[a-z][a-z0-9]{0,15}$/;
const HOST_RE = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

const RESPONDER = fileURLToPath(new URL('./responder.py', import.meta.url));
const PYTHON = process.env['KNP_LAB_PYTHON'] ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

// ---------------------------------------------------------------- processes

export class CommandError extends Error {
  readonly code: number | string | null;
  readonly stdout: string;
  readonly stderr: string;
  constructor(argv: readonly string[], code: number | string | null, stdout: string, stderr: string) {
    super(`command failed (${code}): ${argv.join(' ')}\n${stderr.trim()}`);
    this.code = code;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

function run(file: string, args: readonly string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { maxBuffer: 16 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
        reject(new CommandError([file, ...args], code, stdout, stderr));
      } else {
        resolve({ stdout, stderr });
      }
    });
    // Commands that never read stdin may exit before we close it: ignore EPIPE.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

const ip = (...args: string[]) => run('ip', args);
const ipIn = (ns: string, ...args: string[]) => run('ip', ['-n', ns, ...args]);
const inNs = (ns: string, argv: readonly string[], input?: string) =>
  run('ip', ['netns', 'exec', ns, ...argv], input);

function tryRunSync(file: string, args: readonly string[]): string | undefined {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True while the process exists and is not a zombie (orphans are reaped by init, eventually). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- registry
// One JSON file per live lab, so that a run that crashed (SIGKILL, OOM) is
// cleaned up by the next Lab.create(): records whose pid is dead, and any
// leftovers with the same id, are removed before a new lab is built.

interface LabRecord {
  id: string;
  pid: number;
  subnet: number;
}

function recordPath(id: string): string {
  return path.join(REGISTRY_DIR, `${id}.json`);
}

function readRecords(): LabRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(REGISTRY_DIR);
  } catch {
    return [];
  }
  const out: LabRecord[] = [];
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    try {
      const r = JSON.parse(fs.readFileSync(path.join(REGISTRY_DIR, name), 'utf8')) as LabRecord;
      if (ID_RE.test(r.id) && Number.isInteger(r.pid) && Number.isInteger(r.subnet)) out.push(r);
    } catch {
      // half-written or foreign file: ignore
    }
  }
  return out;
}

async function withRegistryLock<T>(fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(REGISTRY_DIR, { recursive: true });
  for (let attempt = 0; ; attempt++) {
    try {
      fs.mkdirSync(LOCK_DIR);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - fs.statSync(LOCK_DIR).mtimeMs > 30_000) fs.rmdirSync(LOCK_DIR); // stale
      } catch {
        // raced with the holder releasing it
      }
      if (attempt > 1500) throw new Error(`lab registry lock ${LOCK_DIR} is held for too long`);
      await sleep(20);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(LOCK_DIR, { recursive: true, force: true });
  }
}

/** Namespaces, root link and record of a lab, synchronously (also used from process.on('exit')). */
function cleanupSync(id: string, subnet: number | undefined): void {
  const namespaces = listNamespacesSync().filter((n) => n.startsWith(`${id}-`));
  for (const ns of namespaces) killNamespacePidsSync(ns);
  if (subnet !== undefined) tryRunSync('ip', ['link', 'del', rootIfName(subnet)]);
  for (const ns of namespaces) tryRunSync('ip', ['netns', 'del', ns]);
  fs.rmSync(recordPath(id), { force: true });
}

function listNamespacesSync(): string[] {
  const out = tryRunSync('ip', ['-j', 'netns', 'list']);
  if (!out || !out.trim()) return [];
  try {
    return (JSON.parse(out) as { name: string }[]).map((n) => n.name);
  } catch {
    return [];
  }
}

function killNamespacePidsSync(ns: string): void {
  const out = tryRunSync('ip', ['netns', 'pids', ns]) ?? '';
  const pids = out.split(/\s+/).filter(Boolean).map(Number).filter((p) => Number.isInteger(p) && p > 1 && p !== process.pid);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  // Wait (briefly) so the namespace and its interfaces really go away.
  const deadline = Date.now() + 1000;
  while (pids.some(pidAlive) && Date.now() < deadline) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

function rootIfName(subnet: number): string {
  return `knpl${subnet}`; // <= 7 chars, well below IFNAMSIZ-1 = 15
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Does a route/address prefix in the root ns overlap the candidate lab subnets? */
function prefixOverlaps(dst: string, family: 'ipv4' | 'ipv6', candidate: string, candidateLen: number): boolean {
  if (dst === 'default') return false;
  const [addr, lenStr] = dst.split('/');
  if (!addr || !net.isIP(addr)) return false;
  const len = lenStr === undefined ? (family === 'ipv4' ? 32 : 128) : Number(lenStr);
  if (len === 0) return false;
  const a = new net.BlockList();
  a.addSubnet(candidate, candidateLen, family);
  const b = new net.BlockList();
  try {
    b.addSubnet(addr, len, family);
  } catch {
    return false;
  }
  return a.check(addr, family) || b.check(candidate, family);
}

async function usedSubnets(): Promise<Set<number>> {
  const used = new Set<number>();
  const [links, r4, r6] = await Promise.all([
    ip('-j', 'link', 'show'),
    ip('-j', '-4', 'route', 'show', 'table', 'all'),
    ip('-j', '-6', 'route', 'show', 'table', 'all'),
  ]);
  for (const l of JSON.parse(links.stdout || '[]') as { ifname: string }[]) {
    const m = /^knpl(\d+)$/.exec(l.ifname);
    if (m) used.add(Number(m[1]));
  }
  const routes4 = JSON.parse(r4.stdout || '[]') as { dst: string }[];
  const routes6 = JSON.parse(r6.stdout || '[]') as { dst: string }[];
  for (let n = 1; n <= MAX_SUBNET; n++) {
    if (used.has(n)) continue;
    const v4 = `${V4_BASE}.${n}.0`;
    const v6 = `${V6_BASE}:${n.toString(16)}::`;
    if (routes4.some((r) => prefixOverlaps(r.dst, 'ipv4', v4, 24)) || routes6.some((r) => prefixOverlaps(r.dst, 'ipv6', v6, 64))) {
      used.add(n);
    }
  }
  return used;
}

// ---------------------------------------------------------------- responder

class Responder {
  readonly proc: ChildProcess;
  private lines: string[] = [];
  private waiters: ((line: string | null) => void)[] = [];
  private stderr = '';
  private exited = false;

  constructor(ns: string, delayMs: number, jitterMs: number) {
    this.proc = spawn(
      'ip',
      ['netns', 'exec', ns, PYTHON, RESPONDER, '--delay-ms', String(delayMs), '--jitter-ms', String(jitterMs)],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let buf = '';
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const w = this.waiters.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    this.proc.stdin!.on('error', () => {}); // EPIPE if it died; reported via nextLine()
    this.proc.on('exit', () => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w(null);
    });
    this.proc.on('error', () => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w(null);
    });
  }

  get alive(): boolean {
    return !this.exited;
  }

  private async expect(want: string): Promise<void> {
    const line =
      this.lines.shift() ??
      (this.exited ? null : await new Promise<string | null>((r) => this.waiters.push(r)));
    if (line !== want) {
      throw new Error(`responder: expected "${want}", got ${line === null ? 'exit' : JSON.stringify(line)}\n${this.stderr}`);
    }
  }

  ready(): Promise<void> {
    return this.expect('ready');
  }

  async configure(delayMs: number, jitterMs: number): Promise<void> {
    this.proc.stdin!.write(`${JSON.stringify({ delayMs, jitterMs })}\n`);
    await this.expect('ok');
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin!.end(); // EOF -> responder exits
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 2000);
    await gone;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- lab

interface HostState {
  host: Host;
  lossPct: number;
  /** Loss of incoming echo replies: the host's own probes suffer, probes of it do not. */
  replyLossPct: number;
  blackhole: boolean;
  flapDown: boolean;
  flapTimer: NodeJS.Timeout | undefined;
  flapError: Error | undefined;
  responder: Responder | undefined;
  /** Serialises fault changes on one host (flap timers race with test calls otherwise). */
  queue: Promise<void>;
}

const liveLabs = new Set<Lab>();
let exitHookInstalled = false;

function installExitHooks(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // Only take over the signal if nobody else handles it; then die by it as usual.
    if (process.listenerCount(sig) > 0) continue;
    const onSignal = () => {
      for (const lab of liveLabs) lab.destroySync();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

export class Lab {
  readonly id: string;
  /** Third octet of the IPv4 /24 and fourth group of the IPv6 /64. */
  readonly subnet: number;
  readonly v4Prefix: string;
  readonly v6Prefix: string;
  /** Root-namespace side of the lab link, with the .1 / ::1 addresses. */
  readonly rootIf: string;
  readonly rootV4: string;
  readonly rootV6: string;
  /** Namespace that holds the bridge. */
  readonly lanNs: string;
  private readonly states = new Map<string, HostState>();
  private nextIndex = 0;
  private destroyed = false;
  private destroying: Promise<void> | undefined;

  private constructor(id: string, subnet: number) {
    this.id = id;
    this.subnet = subnet;
    this.v4Prefix = `${V4_BASE}.${subnet}.0/24`;
    this.v6Prefix = `${V6_BASE}:${subnet.toString(16)}::/64`;
    this.rootIf = rootIfName(subnet);
    this.rootV4 = `${V4_BASE}.${subnet}.1`;
    this.rootV6 = `${V6_BASE}:${subnet.toString(16)}::1`;
    this.lanNs = `${id}-lan`;
  }

  static async create(opts: LabOptions = {}): Promise<Lab> {
    const id = opts.id ?? `knp${process.pid.toString(36)}`;
    if (!ID_RE.test(id)) throw new Error(`lab id ${JSON.stringify(id)} must match ${ID_RE}`);
    if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces, nft, raw sockets)');

    const subnet = await withRegistryLock(async () => {
      for (const r of readRecords()) {
        if (r.id === id && r.pid !== process.pid && pidAlive(r.pid)) {
          throw new Error(`lab id ${id} is in use by live pid ${r.pid}`);
        }
        if (r.id === id || !pidAlive(r.pid)) cleanupSync(r.id, r.subnet);
      }
      if ([...liveLabs].some((l) => l.id === id)) throw new Error(`lab id ${id} is already live in this process`);
      cleanupSync(id, undefined); // leftovers with our prefix but no record
      const used = await usedSubnets();
      for (const r of readRecords()) used.add(r.subnet);
      const start = fnv1a(id) % MAX_SUBNET;
      for (let k = 0; k < MAX_SUBNET; k++) {
        const n = ((start + k) % MAX_SUBNET) + 1;
        if (used.has(n)) continue;
        const rec: LabRecord = { id, pid: process.pid, subnet: n };
        fs.writeFileSync(recordPath(id), JSON.stringify(rec));
        return n;
      }
      throw new Error(`no free lab subnet in ${V4_BASE}.1-${MAX_SUBNET}.0/24`);
    });

    const lab = new Lab(id, subnet);
    liveLabs.add(lab);
    installExitHooks();
    try {
      await lab.build();
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  private async build(): Promise<void> {
    const lan = this.lanNs;
    await ip('netns', 'add', lan);
    await sysctlIn(lan, ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    await ipIn(lan, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0');
    await ipIn(lan, 'link', 'set', 'lo', 'up');
    await ipIn(lan, 'link', 'set', 'br0', 'up');
    await ip('link', 'add', this.rootIf, 'type', 'veth', 'peer', 'name', 'up0', 'netns', lan);
    await ipIn(lan, 'link', 'set', 'up0', 'master', 'br0', 'up');
    await run('sysctl', ['-q', '-w', `net.ipv6.conf.${this.rootIf}.accept_dad=0`, `net.ipv6.conf.${this.rootIf}.accept_ra=0`]);
    await ip('addr', 'add', `${this.rootV4}/24`, 'dev', this.rootIf);
    await ip('addr', 'add', `${this.rootV6}/64`, 'dev', this.rootIf, 'nodad');
    await ip('link', 'set', this.rootIf, 'up');
  }

  /** Lab hosts, in creation order. */
  get hosts(): Host[] {
    return [...this.states.values()].map((s) => s.host);
  }

  async addHost(name: string): Promise<Host> {
    this.assertLive();
    if (!HOST_RE.test(name)) throw new Error(`host name ${JSON.stringify(name)} must match ${HOST_RE}`);
    if (this.states.has(name)) throw new Error(`host ${name} already exists`);
    if (this.nextIndex >= MAX_HOSTS) throw new Error(`a lab holds at most ${MAX_HOSTS} hosts`);
    const index = this.nextIndex++;
    const octet = FIRST_HOST_OCTET + index;
    // The v6 interface id reuses the decimal digits of the v4 octet (.11 -> ::11).
    const host: Host = {
      name,
      ns: `${this.id}-h-${name}`,
      v4: `${V4_BASE}.${this.subnet}.${octet}`,
      v6: `${V6_BASE}:${this.subnet.toString(16)}::${octet}`,
      ifname: HOST_IF,
    };
    const state: HostState = {
      host,
      lossPct: 0,
      replyLossPct: 0,
      blackhole: false,
      flapDown: false,
      flapTimer: undefined,
      flapError: undefined,
      responder: undefined,
      queue: Promise.resolve(),
    };
    this.states.set(name, state);

    const ns = host.ns;
    const port = `h${index}`;
    await ip('netns', 'add', ns);
    await sysctlIn(ns, [
      'net.ipv6.conf.all.accept_dad=0',
      'net.ipv6.conf.default.accept_dad=0',
      'net.ipv6.conf.all.accept_ra=0',
      'net.ipv6.conf.default.accept_ra=0',
    ]);
    await ipIn(ns, 'link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', port, 'netns', this.lanNs);
    await ipIn(this.lanNs, 'link', 'set', port, 'master', 'br0', 'up');
    await ipIn(ns, 'addr', 'add', `${host.v4}/24`, 'dev', HOST_IF);
    await ipIn(ns, 'addr', 'add', `${host.v6}/64`, 'dev', HOST_IF, 'nodad');
    await ipIn(ns, 'link', 'set', HOST_IF, 'up');
    await ipIn(ns, 'link', 'set', 'lo', 'up');
    await inNs(ns, ['nft', 'add', 'table', 'inet', NFT_TABLE, ';',
      'add', 'chain', 'inet', NFT_TABLE, 'input', '{', 'type', 'filter', 'hook', 'input', 'priority', '-10', ';', 'policy', 'accept', ';', '}']);
    // Guard: the root namespace must reach the host through the lab link, and
    // the host must reach the root side through its lab interface.
    await this.assertRoutes([host.v4, host.v6]);
    await this.assertRoutes([this.rootV4, this.rootV6], host);
    return host;
  }

  /**
   * Throws unless every address routes through the lab's own interface, with
   * no gateway, as seen from `from` (a lab host) or the root namespace. Uses
   * `ip route get`, which sends no packet.
   */
  async assertRoutes(addrs: readonly string[], from?: Host): Promise<void> {
    const dev = from ? HOST_IF : this.rootIf;
    const own = from ? [from.v4, from.v6] : [this.rootV4, this.rootV6];
    const where = from ? `namespace ${from.ns}` : 'the root namespace';
    await Promise.all(
      addrs.map(async (addr) => {
        if (!net.isIP(addr)) throw new Error(`lab route guard: ${JSON.stringify(addr)} is not an IP address`);
        let routes: { dev?: string; gateway?: string; type?: string }[];
        try {
          const args = ['-j', 'route', 'get', addr];
          const out = from ? await ipIn(from.ns, ...args) : await ip(...args);
          routes = JSON.parse(out.stdout) as typeof routes;
        } catch (e) {
          throw new Error(`lab route guard: no route to ${addr} from ${where}: ${(e as Error).message}`);
        }
        const r = routes[0];
        // The namespace's own lab addresses are local (dev lo); everything else
        // must be on-link on the lab interface.
        const isOwn = own.includes(addr);
        const ok =
          r !== undefined &&
          r.gateway === undefined &&
          (isOwn ? r.dev === 'lo' && r.type === 'local' : r.dev === dev && r.type !== 'local');
        if (!ok) {
          throw new Error(
            `lab route guard: ${addr} does not route via the lab interface (${dev}) from ${where}: ${JSON.stringify(routes)}`,
          );
        }
      }),
    );
  }

  /** Every lab address (root side and hosts, v4 and v6). */
  addresses(): string[] {
    return [this.rootV4, this.rootV6, ...this.hosts.flatMap((h) => [h.v4, h.v6])];
  }

  /** Delay (+ uniform jitter) every echo reply; `{ ms: 0 }` hands echo back to the kernel. */
  setDelay(h: Host, opts: DelayOptions): Promise<void> {
    const ms = opts.ms;
    const jitterMs = opts.jitterMs ?? 0;
    if (!(Number.isFinite(ms) && ms >= 0 && ms <= 60_000)) throw new RangeError(`delay ${ms} ms out of range`);
    if (!(Number.isFinite(jitterMs) && jitterMs >= 0 && jitterMs <= 60_000)) throw new RangeError(`jitter ${jitterMs} ms out of range`);
    const s = this.state(h);
    return this.enqueue(s, async () => {
      if (ms === 0 && jitterMs === 0) {
        if (s.responder) {
          await s.responder.stop();
          s.responder = undefined;
        }
        await sysctlIn(h.ns, ['net.ipv4.icmp_echo_ignore_all=0', 'net.ipv6.icmp.echo_ignore_all=0']);
        return;
      }
      if (s.responder?.alive) {
        await s.responder.configure(ms, jitterMs);
        return;
      }
      // Kernel off first, then the responder: a short gap, never duplicate replies.
      await sysctlIn(h.ns, ['net.ipv4.icmp_echo_ignore_all=1', 'net.ipv6.icmp.echo_ignore_all=1']);
      const r = new Responder(h.ns, ms, jitterMs);
      s.responder = r;
      await r.ready();
    });
  }

  /** Drop `percent` of incoming echo requests at random (nft numgen; 0.01 % steps). */
  setLoss(h: Host, percent: number): Promise<void> {
    return this.setPercent(h, 'lossPct', percent);
  }

  /**
   * Drop `percent` of incoming echo replies at random: the host's own probes of others see
   * loss, while others probing it do not. A bad source, as a sick NIC or agent would make it.
   */
  setReplyLoss(h: Host, percent: number): Promise<void> {
    return this.setPercent(h, 'replyLossPct', percent);
  }

  private setPercent(h: Host, key: 'lossPct' | 'replyLossPct', percent: number): Promise<void> {
    if (!(Number.isFinite(percent) && percent >= 0 && percent <= 100)) throw new RangeError(`loss ${percent} % out of range`);
    const s = this.state(h);
    return this.enqueue(s, async () => {
      s[key] = percent;
      await this.applyNft(s);
    });
  }

  /** Drop every incoming echo request (v4 and v6). */
  setBlackhole(h: Host, on: boolean): Promise<void> {
    const s = this.state(h);
    return this.enqueue(s, async () => {
      s.blackhole = on;
      await this.applyNft(s);
    });
  }

  /** Alternate reachable (upMs) and blackholed (downMs), starting up, until stopFlap(). */
  startFlap(h: Host, opts: FlapOptions): void {
    const { upMs, downMs } = opts;
    if (!(upMs >= 10 && downMs >= 10)) throw new RangeError('flap phases must be >= 10 ms');
    const s = this.state(h);
    if (s.flapTimer) throw new Error(`host ${h.name} is already flapping`);
    s.flapError = undefined;
    const phase = (down: boolean) => {
      this.enqueue(s, async () => {
        s.flapDown = down;
        await this.applyNft(s);
      }).catch((e: Error) => {
        s.flapError ??= e;
      });
      s.flapTimer = setTimeout(() => phase(!down), down ? downMs : upMs);
      s.flapTimer.unref();
    };
    phase(false);
  }

  /** Stop flapping and leave the host up; rejects if a flap step had failed. */
  async stopFlap(h: Host): Promise<void> {
    const s = this.state(h);
    clearTimeout(s.flapTimer);
    s.flapTimer = undefined;
    await this.enqueue(s, async () => {
      s.flapDown = false;
      await this.applyNft(s);
    });
    const err = s.flapError;
    s.flapError = undefined;
    if (err) throw err;
  }

  /** Run a command inside the host's namespace (no shell). Rejects on non-zero exit. */
  exec(h: Host, argv: readonly string[], input?: string): Promise<ExecResult> {
    this.state(h);
    if (argv.length === 0) throw new Error('exec: empty argv');
    return inNs(h.ns, argv, input);
  }

  /** Start a long-running process inside the host's namespace; it is killed by destroy(). */
  spawn(h: Host, argv: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
    this.state(h);
    const [cmd, ...rest] = argv;
    if (cmd === undefined) throw new Error('spawn: empty argv');
    return spawn('ip', ['netns', 'exec', h.ns, cmd, ...rest], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  }

  /** Remove everything the lab created. Idempotent. */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      this.destroyed = true;
      for (const s of this.states.values()) {
        clearTimeout(s.flapTimer);
        s.flapTimer = undefined;
      }
      await Promise.allSettled([...this.states.values()].map((s) => s.responder?.stop()));
      // cleanupSync kills leftover processes in the namespaces and removes the
      // link, namespaces and record; a handful of short commands.
      cleanupSync(this.id, this.subnet);
      liveLabs.delete(this);
    })();
    return this.destroying;
  }

  /** Synchronous best effort, for process exit. */
  destroySync(): void {
    this.destroyed = true;
    for (const s of this.states.values()) {
      clearTimeout(s.flapTimer);
      s.responder?.proc.kill('SIGKILL');
    }
    cleanupSync(this.id, this.subnet);
    liveLabs.delete(this);
  }

  // ------------------------------------------------------------ internals

  private assertLive(): void {
    if (this.destroyed) throw new Error(`lab ${this.id} was destroyed`);
  }

  private state(h: Host): HostState {
    this.assertLive();
    const s = this.states.get(h.name);
    if (!s || s.host !== h) throw new Error(`host ${h.name} is not part of lab ${this.id}`);
    return s;
  }

  private enqueue(s: HostState, fn: () => Promise<void>): Promise<void> {
    const p = s.queue.then(() => {
      this.assertLive();
      return fn();
    });
    s.queue = p.catch(() => {});
    return p;
  }

  private async applyNft(s: HostState): Promise<void> {
    const t = ['inet', NFT_TABLE, 'input'];
    const cmds: string[] = ['flush', 'chain', ...t];
    if (s.blackhole || s.flapDown) {
      cmds.push(';', 'add', 'rule', ...t, 'icmp', 'type', 'echo-request', 'drop');
      cmds.push(';', 'add', 'rule', ...t, 'icmpv6', 'type', 'echo-request', 'drop');
    } else if (s.lossPct > 0) {
      cmds.push(...randomDrop(t, 'echo-request', s.lossPct));
    }
    if (s.replyLossPct > 0) cmds.push(...randomDrop(t, 'echo-reply', s.replyLossPct));
    await inNs(s.host.ns, ['nft', ...cmds]); // one nft invocation = one atomic transaction
  }
}

/** nft rules dropping `percent` of one ICMP type on v4 and v6 (numgen's range ends at 9999: 100 % is a plain drop). */
function randomDrop(chain: readonly string[], type: 'echo-request' | 'echo-reply', percent: number): string[] {
  const out: string[] = [];
  for (const proto of ['icmp', 'icmpv6']) {
    const match = percent >= 100 ? [] : ['numgen', 'random', 'mod', '10000', '<', String(Math.round(percent * 100))];
    out.push(';', 'add', 'rule', ...chain, proto, 'type', type, ...match, 'drop');
  }
  return out;
}

function sysctlIn(ns: string, settings: readonly string[]): Promise<ExecResult> {
  return inNs(ns, ['sysctl', '-q', '-w', ...settings]);
}
