/**
 * Probing benchmark: the agent against fping alone doing the same probing, on N loopback
 * targets at 1 Hz (every address of 127.0.0.0/8 answers locally, so no packet leaves the
 * machine).
 *
 *   node bench/run.ts [--sizes 100,1000,5000] [--seconds 20] [--markdown]
 *
 * For each N it runs, one after the other in the same run so the ratio is fair:
 *   - fping alone: the same processes with the same arguments the agent would start
 *     (same shards, same -p/-t/-i), output drained into /dev/null;
 *   - the agent as the image runs it (src/ compiled to dist/main.js) with a targets file of
 *     the same N addresses.
 * It prints the achieved probe rate against the intended rate, CPU per probe (user+system of
 * the process tree, from /proc), peak RSS of the agent's Node process and the median time to
 * serve one scrape.
 *
 * Two more runs of the agent push OTLP every 2 s (gRPC, then HTTP/protobuf) to the real
 * Collector built by scripts/tools.sh, which forwards to a real Prometheus. They measure how
 * long the event loop, which also drains fping's output, is held at a stretch, with a probe
 * loaded into the agent (bench/stall-probe.mjs) and kept out of the first run so that its
 * timer costs no CPU there. Stalls are reported for start-up, for OTLP exports alone, and for
 * exports with ten scrapes served back to back; the series Prometheus received through OTLP
 * show that the exports arrived whole.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fpingArgs, maxTargetsForPeriod } from '../src/probing/fping-process.ts';
import { REPO, parseExposition, sleep, startAgent } from '../test/support/agent.ts';
import { startCollector, startPrometheus } from '../test/support/servers.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100,1000,5000' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '5' },
    markdown: { type: 'boolean', default: false },
  },
});
const SIZES = values.sizes.split(',').map(Number);
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
const PERIOD_MS = 1000;
const PER_PROCESS = 256; // the agent's default --max-targets-per-fping
const TICKS = 100; // USER_HZ on Linux

function addresses(n: number): string[] {
  // 127.1.0.1, 127.1.0.2, ... : distinct loopback addresses, no .0 or .255 hosts.
  return Array.from({ length: n }, (_, i) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`);
}

/** CPU seconds (user+system) of pid and its live children. */
function treeCpuSeconds(pid: number): number {
  let total = 0;
  for (const p of [pid, ...childrenOf(pid)]) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(f[11]) + Number(f[12])) / TICKS; // utime, stime
    } catch {
      // exited
    }
  }
  return total;
}

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function statusKiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

async function measure(pids: () => number[], countProbes: () => Promise<number>): Promise<{ cpu: number; probes: number; seconds: number }> {
  await sleep(WARMUP * 1000);
  const cpu0 = pids().reduce((s, p) => s + treeCpuSeconds(p), 0);
  // Counts are taken when the request starts (the agent collects on arrival, then renders).
  const t0 = performance.now();
  const probes0 = await countProbes();
  await sleep(SECONDS * 1000 - (performance.now() - t0));
  const cpu1 = pids().reduce((s, p) => s + treeCpuSeconds(p), 0);
  const t1 = performance.now();
  const probes1 = await countProbes();
  const seconds = (t1 - t0) / 1000;
  return { cpu: cpu1 - cpu0, probes: probes1 - probes0, seconds };
}

async function fpingAlone(addrs: string[]) {
  const shard = Math.min(PER_PROCESS, maxTargetsForPeriod(PERIOD_MS));
  const procs: ChildProcess[] = [];
  const counters: number[] = [];
  for (let i = 0; i < addrs.length; i += shard) {
    const part = addrs.slice(i, i + shard);
    const args = fpingArgs({ fpingPath: 'fping', periodMs: PERIOD_MS, timeoutMs: PERIOD_MS, packetSize: 56 }, part);
    // Output goes through a pipe we only count newlines on, as cheaply as can be: the floor.
    const p = spawn('fping', args, { stdio: ['ignore', 'pipe', openSync('/dev/null', 'w')] });
    const idx = counters.push(0) - 1;
    p.stdout!.on('data', (b: Buffer) => {
      let n = 0;
      for (let j = b.indexOf(10); j >= 0; j = b.indexOf(10, j + 1)) n++;
      counters[idx]! += n;
    });
    procs.push(p);
  }
  // The counting above runs in this process; only fping's own CPU is the floor.
  const r = await measure(() => procs.map((p) => p.pid!), async () => counters.reduce((a, b) => a + b, 0));
  const rssKiB = procs.reduce((s, p) => s + statusKiB(p.pid!, 'VmHWM'), 0);
  for (const p of procs) p.kill('SIGTERM');
  await sleep(300);
  return { ...r, rssKiB, processes: procs.length };
}

async function agentRun(addrs: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'knp-bench-'));
  const file = join(dir, 'targets.json');
  writeFileSync(file, JSON.stringify(addrs.map((a, i) => ({ name: `n${i}`, address: a }))));
  const agent = await startAgent({ main: SHIPPED_MAIN, args: ['--targets-file', file, '--period', `${PERIOD_MS}ms`, '--log-level', 'warn'] });
  const pid = agent.child.pid!;
  const sentTotal = async () => {
    const text = await (await fetch(`http://127.0.0.1:${agent.port}/metrics`)).text();
    return parseExposition(text).filter((s) => s.name === 'kube_node_ping_packets_sent_total').reduce((a, s) => a + s.value, 0);
  };
  // Scrapes during the window cost CPU too; keep them out of the CPU figure by taking two only.
  const r = await measure(() => [pid], sentTotal);
  const scrapeMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    // Read and drop the page: parsing it here would only slow this process.
    const t0 = performance.now();
    await (await fetch(`http://127.0.0.1:${agent.port}/metrics`)).arrayBuffer();
    scrapeMs.push(performance.now() - t0);
  }
  scrapeMs.sort((a, b) => a - b);
  const rssKiB = statusKiB(pid, 'VmHWM');
  await agent.stop();
  return { ...r, rssKiB, scrapeMs: scrapeMs[2]! };
}

const STALL_PROBE = join(REPO, 'bench/stall-probe.mjs');
const EXPORT_INTERVAL_S = 2;

/**
 * The agent with OTLP on and the stall probe loaded: the longest stall in each phase (ms),
 * its peak RSS, and how many per-destination series reached Prometheus through OTLP.
 */
async function stallRun(addrs: string[], protocol: 'grpc' | 'http/protobuf') {
  const dir = mkdtempSync(join(tmpdir(), 'knp-bench-'));
  const file = join(dir, 'targets.json');
  const stalls = join(dir, 'stalls.txt');
  writeFileSync(file, JSON.stringify(addrs.map((a, i) => ({ name: `n${i}`, address: a }))));
  writeFileSync(stalls, '');
  const prometheus = await startPrometheus([]);
  const collector = await startCollector(prometheus.url);
  try {
    const agent = await startAgent({
      main: SHIPPED_MAIN,
      nodeFlags: ['--import', STALL_PROBE],
      env: { KNP_STALL_FILE: stalls },
      args: ['--targets-file', file, '--period', `${PERIOD_MS}ms`, '--log-level', 'info', '--otlp-endpoint', protocol === 'grpc' ? collector.grpcEndpoint : collector.httpEndpoint, '--otlp-protocol', protocol, '--export-interval', `${EXPORT_INTERVAL_S}s`],
    });
    // Start-up counts from the first fping process (logged right after it is spawned): loading
    // the modules before it holds the loop too, but no packet waits on it.
    const started = agent.logs().split('\n').find((l) => l.includes('"fping processes updated"'));
    if (started === undefined) throw new Error(`no fping start in the agent's log: ${agent.logs()}`);
    const t0 = Date.parse((JSON.parse(started) as { time: string }).time);
    await sleep(WARMUP * 1000);
    const t1 = Date.now();
    await sleep(5 * EXPORT_INTERVAL_S * 1000);
    const t2 = Date.now();
    for (let i = 0; i < 10; i++) await (await fetch(`http://127.0.0.1:${agent.port}/metrics`)).arrayBuffer();
    const t3 = Date.now();
    const rssKiB = statusKiB(agent.child.pid!, 'VmHWM');
    await agent.stop();
    // A stall is logged when it ends; what counts in a phase is the part of it inside the
    // phase (the block that spawns the first fping process began before any packet was sent).
    const entries = readFileSync(stalls, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split(' ').map(Number) as [number, number]);
    const longest = (from: number, to: number) => Math.max(0, ...entries.map(([end, ms]) => Math.min(end, to) - Math.max(end - ms, from)));
    const otlpSeries = (await prometheus.query('count(kube_node_ping_packets_sent_total)'))[0]?.value[1] ?? '0';
    return { startupMs: longest(t0, t1), exportsMs: longest(t1, t2), scrapesMs: longest(t2, t3), rssKiB, otlpSeries: Number(otlpSeries) };
  } finally {
    await collector.stop();
    await prometheus.stop();
  }
}

function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  let os = 'Linux';
  try {
    os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch {
    // keep default
  }
  return `${os}, ${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

// What the image runs: src/ compiled to dist/ (tsconfig.build.json).
execFileSync(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(REPO, 'tsconfig.build.json')], { stdio: 'inherit' });
const SHIPPED_MAIN = join(REPO, 'dist/main.js');

const rows: string[][] = [];
const header = [
  'targets',
  'intended probes/s',
  'agent probes/s',
  'achieved',
  'fping alone µs CPU/probe',
  'agent µs CPU/probe',
  'CPU ratio',
  'agent peak RSS MiB',
  'scrape ms',
  'OTLP grpc / http: longest stall at start-up ms',
  'longest stall, exports ms',
  'longest stall, exports + scrapes ms',
  'peak RSS MiB',
  'series received',
];
for (const n of SIZES) {
  const addrs = addresses(n);
  const alone = await fpingAlone(addrs);
  const agent = await agentRun(addrs);
  const grpc = await stallRun(addrs, 'grpc');
  const http = await stallRun(addrs, 'http/protobuf');
  const both = (f: (r: typeof grpc) => number) => `${f(grpc).toFixed(0)} / ${f(http).toFixed(0)}`;
  const intended = n * (1000 / PERIOD_MS);
  const agentRate = agent.probes / agent.seconds;
  const aloneUs = (alone.cpu / alone.probes) * 1e6;
  const agentUs = (agent.cpu / agent.probes) * 1e6;
  rows.push([
    String(n),
    intended.toFixed(0),
    agentRate.toFixed(0),
    `${((100 * agentRate) / intended).toFixed(1)}%`,
    aloneUs.toFixed(1),
    agentUs.toFixed(1),
    `${(agentUs / aloneUs).toFixed(2)}×`,
    (agent.rssKiB / 1024).toFixed(0),
    agent.scrapeMs.toFixed(0),
    both((r) => r.startupMs),
    both((r) => r.exportsMs),
    both((r) => r.scrapesMs),
    both((r) => r.rssKiB / 1024),
    both((r) => r.otlpSeries),
  ]);
  process.stderr.write(`done N=${n}: fping alone ${(alone.probes / alone.seconds).toFixed(0)} probes/s in ${alone.processes} processes\n`);
}

const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
console.log(`machine: ${machine()}`);
console.log(`date: ${new Date().toISOString().slice(0, 10)}, ${SECONDS} s measured after ${WARMUP} s warm-up, period ${PERIOD_MS} ms, ${PER_PROCESS} targets per fping process`);
console.log('');
console.log(line(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 1) + ':').join('|')}|`);
for (const r of rows) console.log(line(r));

