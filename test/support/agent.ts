/**
 * Starts the real agent (src/main.ts on the project's Node) as a child process, and reads
 * its /metrics page. Shared by the integration tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
/**
 * The V8 flags the agent ships with (package.json "start", docker/Dockerfile): a small young
 * generation keeps the garbage of a 5,000-destination scrape from inflating RSS by ~60 MB, and
 * an old generation grown by 50 % after each full GC (V8 grows it up to fourfold) keeps the
 * collections promoted by scrapes and OTLP exports at once from adding another ~30 MB.
 */
export const NODE_FLAGS = ['--max-semi-space-size=2', '--heap-growing-percent=50'];

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface AgentProcess {
  child: ChildProcess;
  port: number;
  /** stderr so far (JSON log lines and fatal messages). */
  logs(): string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

export interface StartOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Wait for /readyz; false for runs expected to fail at start-up. */
  waitReady?: boolean;
  /** The entry point: src/main.ts by default; the benchmark runs the compiled dist/main.js the image ships. */
  main?: string;
  /** Node options added to NODE_FLAGS (the benchmark's stall probe is loaded with --import). */
  nodeFlags?: string[];
}

export async function startAgent(opts: StartOptions = {}): Promise<AgentProcess> {
  const port = await freePort();
  const argv = [...NODE_FLAGS, ...(opts.nodeFlags ?? []), opts.main ?? MAIN, '--prometheus-port', String(port), '--prometheus-host', '127.0.0.1', ...(opts.args ?? [])];
  const cmd = opts.netns ? 'ip' : process.execPath;
  const args = opts.netns ? ['netns', 'exec', opts.netns, process.execPath, ...argv] : argv;
  const child = spawn(cmd, args, { env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/root', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const agent: AgentProcess = {
    child,
    port,
    logs: () => stderr,
    exited,
    async stop(signal = 'SIGTERM') {
      const t0 = Date.now();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const r = await exited;
      clearTimeout(killer);
      return { ...r, ms: Date.now() - t0 };
    },
  };
  if (opts.waitReady !== false) {
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode}: ${stderr}`);
      try {
        const r = await fetch(`http://127.0.0.1:${port}/readyz`);
        if (r.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await agent.stop('SIGKILL');
        throw new Error(`agent not ready within 15 s: ${stderr}`);
      }
      await sleep(100);
    }
  }
  return agent;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (enough of it for our own page). */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

export async function scrape(port: number, host = '127.0.0.1'): Promise<{ samples: Sample[]; contentType: string | null }> {
  const r = await fetch(`http://${host}:${port}/metrics`);
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return { samples: parseExposition(await r.text()), contentType: r.headers.get('content-type') };
}

/** The value of the one sample of `name` whose labels include `match`, or undefined. */
export function valueOf(samples: Sample[], name: string, match: Record<string, string> = {}): number | undefined {
  const s = samples.filter((x) => x.name === name && Object.entries(match).every(([k, v]) => x.labels[k] === v));
  if (s.length > 1) throw new Error(`${s.length} samples of ${name} match ${JSON.stringify(match)}`);
  return s[0]?.value;
}

/** Polls `fn` until it returns a value that is not undefined/false, or throws after `ms`. */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(200);
  }
}
