/**
 * Probing benchmark: the agent against fping alone doing the same probing, on N loopback
 * targets at 1 Hz (every address of 127.0.0.0/8 answers locally, so no packet leaves the
 * machine).
 *
 *   node bench/run.ts [--sizes 100,1000,5000] [--seconds 20] [--repeat 3] [--no-otlp] [--no-shards]
 *
 * For each N it runs, one after the other in the same run so the ratio is fair, --repeat
 * times (interleaved, so that a burst of load elsewhere on a shared machine hits one pair, not
 * one side):
 *   - the floor: ONE fping process per address family over all N targets, with the -p/-t/-i
 *     the agent would give a process of that size, its output read through a FIFO drained on a
 *     timer as the agent reads its own, and only counted;
 *   - the agent as the image runs it (src/ compiled to dist/main.js) with a targets file of
 *     the same N addresses;
 *   - for reference, fping alone in the shards of 256 the agent ran before (one process per
 *     256 targets, the old 0.8 × period / targets gap): every raw ICMP socket receives every
 *     reply, so P processes parse P copies of each.
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
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { drainIntervalMs, fpingArgs, maxTargetsForPeriod } from '../src/probing/fping-process.ts';
import { FifoMaker } from '../src/probing/fifo.ts';
import { REPO, parseExposition, sleep, startAgent } from '../test/support/agent.ts';
import { startCollector, startPrometheus } from '../test/support/servers.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100,1000,5000' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '5' },
    repeat: { type: 'string', default: '3' },
    otlp: { type: 'boolean', default: true },
    shards: { type: 'boolean', default: true },
    churn: { type: 'string', default: '5000' },
  },
  allowNegative: true,
});
const REPEAT = Number(values.repeat);
const SIZES = values.sizes.split(',').map(Number);
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
const PERIOD_MS = 1000;
const OLD_SHARD = 256; // the agent's shards before one process per family
const SETTINGS = { fpingPath: 'fping', periodMs: PERIOD_MS, timeoutMs: PERIOD_MS, packetSize: 56 };
const TICKS = 100; // USER_HZ on Linux

function addresses(n: number): string[] {
  // 127.1.0.1, 127.1.0.2, ... : distinct loopback addresses, no .0 or .255 hosts.
  return Array.from({ length: n }, (_, i) => `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`);
}

/** CPU seconds (user+system) of pid alone, all its threads. */
function ownCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS;
  } catch {
    return 0;
  }
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

/**
 * CPU and verdicts over the same stretch of time, as rates. The counts are read at the start of
 * a request (the agent collects on arrival, then renders); the CPU is read after the first
 * request has been answered and before the second is sent, so that serving them is not
 * charged to probing. `parts` splits the CPU between the process itself and its children.
 */
async function measure(pids: () => number[], countProbes: () => Promise<number>) {
  await sleep(WARMUP * 1000);
  const cpuOf = () => pids().reduce((s, p) => [s[0]! + ownCpuSeconds(p), s[1]! + treeCpuSeconds(p) - ownCpuSeconds(p)], [0, 0]);
  const tp0 = performance.now();
  const probes0 = await countProbes();
  const tc0 = performance.now();
  const cpu0 = cpuOf();
  await sleep(SECONDS * 1000 - (tc0 - tp0));
  const cpu1 = cpuOf();
  const tc1 = performance.now();
  const probes1 = await countProbes();
  const seconds = (tc1 - tp0) / 1000;
  const cpuSeconds = (tc1 - tc0) / 1000;
  // CPU per second of the window times the probe window: the CPU of `seconds` of probing.
  const scale = seconds / cpuSeconds;
  const own = (cpu1[0]! - cpu0[0]!) * scale;
  const children = (cpu1[1]! - cpu0[1]!) * scale;
  return { cpu: own + children, own, children, probes: probes1 - probes0, seconds };
}

/** fping's argv for each process of a layout. */
type Layout = string[][];

/**
 * The floor: one process per address family, with the arguments the agent gives a process of
 * that size; where one process cannot hold them (fping 5.1 exits beyond 6,553 probes/s, out of
 * sequence ids), as few as maxTargetsForPeriod allows.
 */
function floorLayout(addrs: string[]): Layout {
  const v4 = addrs.filter((a) => !a.includes(':'));
  const v6 = addrs.filter((a) => a.includes(':'));
  const cap = maxTargetsForPeriod(PERIOD_MS);
  return [v4, v6].filter((f) => f.length > 0).flatMap((f) => {
    const n = Math.ceil(f.length / cap);
    const per = Math.ceil(f.length / n);
    return Array.from({ length: n }, (_, i) => fpingArgs(SETTINGS, f.slice(i * per, (i + 1) * per)));
  });
}

/** What the agent ran before: shards of 256 with a gap of 0.8 × period / shard size, at least 1 ms. */
function oldShardLayout(addrs: string[]): Layout {
  const out: Layout = [];
  for (let i = 0; i < addrs.length; i += OLD_SHARD) {
    const part = addrs.slice(i, i + OLD_SHARD);
    const gap = Math.max(1, Math.min(10, (0.8 * PERIOD_MS) / part.length));
    out.push(['-l', '-p', String(PERIOD_MS), '-t', String(PERIOD_MS), '-i', String(Math.floor(gap * 1000) / 1000), '-b', '56', ...part]);
  }
  return out;
}

/**
 * fping alone: each process writes into a FIFO read the way the agent reads its own (the same
 * FifoMaker, drained on the same timer, chunks only counted for newlines), so that the floor and
 * the agent pay the same for fping's output. The sink matters to fping's own CPU: a pipe read
 * at once (as a child's stdout is) wakes the reader on every line and the kernel charges that
 * to the writer; a regular file costs fping more than a pipe that nobody waits on.
 */
const FIFOS = new FifoMaker();

async function fpingAlone(layout: Layout) {
  const fifos = FIFOS;
  const procs: ChildProcess[] = [];
  const timers: NodeJS.Timeout[] = [];
  const opened: { close(): void }[] = [];
  let lines = 0;
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (const args of layout) {
    const made = fifos.take();
    if (made === undefined) throw new Error('cannot make a FIFO');
    procs.push(spawn('fping', args, { stdio: ['ignore', made.writeFd, openSync('/dev/null', 'w')] }));
    closeSync(made.writeFd);
    opened.push(made.fifo);
    const targets = args.length - 9;
    timers.push(setInterval(() => made.fifo.drain(buf, (chunk) => {
      for (let j = chunk.indexOf('\n'); j >= 0; j = chunk.indexOf('\n', j + 1)) lines++;
    }), drainIntervalMs(targets, PERIOD_MS)));
  }
  // Counting the lines runs in this process; only fping's own CPU is the floor.
  const r = await measure(() => procs.map((p) => p.pid!), async () => lines);
  const rssKiB = procs.reduce((s, p) => s + statusKiB(p.pid!, 'VmHWM'), 0);
  for (const p of procs) p.kill('SIGTERM');
  await sleep(300);
  for (const t of timers) clearInterval(t);
  for (const f of opened) f.close();
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
  const processes = childrenOf(pid).length;
  await agent.stop();
  return { ...r, rssKiB, scrapeMs: scrapeMs[2]!, processes };
}

/**
 * Churn at N: one destination joins, and later leaves again. For each phase, the verdicts per
 * second of the N destinations that stayed (from their own counters) against N/s, whether any
 * of their counters went backwards, and which fping processes ran (by pid): the join must not
 * restart the process of the others, the merge must not lose their counts.
 */
async function churnRun(addrs: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'knp-bench-'));
  const file = join(dir, 'targets.json');
  const write = (list: string[]) => writeFileSync(file, JSON.stringify(list.map((a) => ({ name: `n-${a}`, address: a }))));
  write(addrs);
  const agent = await startAgent({ main: SHIPPED_MAIN, args: ['--targets-file', file, '--targets-reload-interval', '1s', '--period', `${PERIOD_MS}ms`, '--log-level', 'info'] });
  const pid = agent.child.pid!;
  const stayed = new Set(addrs);
  const sent = async () => {
    const text = await (await fetch(`http://127.0.0.1:${agent.port}/metrics`)).text();
    const m = new Map<string, number>();
    for (const s of parseExposition(text)) if (s.name === 'kube_node_ping_packets_sent_total' && stayed.has(s.labels['destination_address']!)) m.set(s.labels['destination_address']!, s.value);
    return { at: performance.now(), m };
  };
  const phase = (name: string, a: Awaited<ReturnType<typeof sent>>, b: Awaited<ReturnType<typeof sent>>, pidsBefore: number[], pidsAfter: number[]) => {
    let total = 0;
    let backwards = 0;
    for (const [k, v] of b.m) {
      const before = a.m.get(k) ?? 0;
      if (v < before) backwards++;
      total += v - before;
    }
    const rate = total / ((b.at - a.at) / 1000);
    return { name, achieved: rate / (addrs.length * (1000 / PERIOD_MS)), backwards, kept: pidsBefore.filter((p) => pidsAfter.includes(p)).length, before: pidsBefore.length, after: pidsAfter.length };
  };
  const extra = '127.3.0.1';
  try {
    await sleep(WARMUP * 1000);
    const p0 = childrenOf(pid);
    const s0 = await sent();
    write([...addrs, extra]);
    await sleep(SECONDS * 1000);
    const s1 = await sent();
    const p1 = childrenOf(pid);
    // The merge comes after MERGE_QUIET_MS without a change; measure across it.
    const merged = () => agent.logs().includes('"replaced":"all"');
    for (let i = 0; i < 120 && !merged(); i++) await sleep(500);
    if (!merged()) throw new Error(`no merge within a minute: ${agent.logs().slice(-2000)}`);
    await sleep(5000);
    const s2 = await sent();
    const p2 = childrenOf(pid);
    write(addrs);
    await sleep(SECONDS * 1000);
    const s3 = await sent();
    const p3 = childrenOf(pid);
    return [phase('a join', s0, s1, p0, p1), phase('the merge after it', s1, s2, p1, p2), phase('a departure', s2, s3, p2, p3)];
  } finally {
    await agent.stop();
  }
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
  'agent probes/s (min)',
  'achieved (min)',
  'agent fping processes',
  'floor processes',
  'floor µs CPU/probe',
  'agent µs CPU/probe',
  'of which Node',
  'agent / floor, median (min–max)',
  'old shards of 256 / floor',
  'agent peak RSS MiB (max)',
  'scrape ms',
  'OTLP grpc / http: longest stall at start-up ms',
  'longest stall, exports ms',
  'longest stall, exports + scrapes ms',
  'peak RSS MiB',
  'series received',
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const spread = (xs: number[]) => `${median(xs).toFixed(2)}× (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
const loads: number[] = [];
for (const n of SIZES) {
  const addrs = addresses(n);
  const intended = n * (1000 / PERIOD_MS);
  const floorUs: number[] = [];
  const agentUs: number[] = [];
  const nodeUs: number[] = [];
  const shardRatio: number[] = [];
  const ratio: number[] = [];
  const achieved: number[] = [];
  const rss: number[] = [];
  const scrape: number[] = [];
  let processes = 0;
  let floorProcesses = 0;
  for (let rep = 0; rep < REPEAT; rep++) {
    loads.push(loadavg()[0]!);
    const floor = await fpingAlone(floorLayout(addrs));
    const agent = await agentRun(addrs);
    const f = (floor.cpu / floor.probes) * 1e6;
    const a = (agent.cpu / agent.probes) * 1e6;
    floorUs.push(f);
    agentUs.push(a);
    nodeUs.push((agent.own / agent.probes) * 1e6);
    ratio.push(a / f);
    achieved.push(agent.probes / agent.seconds / intended);
    rss.push(agent.rssKiB / 1024);
    scrape.push(agent.scrapeMs);
    processes = agent.processes;
    floorProcesses = floor.processes;
    let line = `N=${n} rep ${rep + 1}: floor ${(floor.probes / floor.seconds).toFixed(0)} probes/s in ${floor.processes} process(es) ${f.toFixed(1)} µs/probe; agent ${(agent.probes / agent.seconds).toFixed(0)} probes/s in ${agent.processes} ${a.toFixed(1)} µs/probe: ${(a / f).toFixed(2)}×`;
    if (values.shards) {
      const old = await fpingAlone(oldShardLayout(addrs));
      const o = (old.cpu / old.probes) * 1e6;
      shardRatio.push(o / f);
      line += `; old shards ${old.processes} processes ${(old.probes / old.seconds).toFixed(0)} probes/s ${o.toFixed(1)} µs/probe`;
    }
    process.stderr.write(`${line}\n`);
  }
  const stall = values.otlp ? [await stallRun(addrs, 'grpc'), await stallRun(addrs, 'http/protobuf')] : undefined;
  const both = (f: (r: Awaited<ReturnType<typeof stallRun>>) => number) => (stall ? `${f(stall[0]!).toFixed(0)} / ${f(stall[1]!).toFixed(0)}` : '–');
  rows.push([
    String(n),
    intended.toFixed(0),
    (Math.min(...achieved) * intended).toFixed(0),
    `${(100 * Math.min(...achieved)).toFixed(1)}%`,
    String(processes),
    String(floorProcesses),
    median(floorUs).toFixed(1),
    median(agentUs).toFixed(1),
    median(nodeUs).toFixed(1),
    spread(ratio),
    shardRatio.length > 0 ? spread(shardRatio) : '–',
    Math.max(...rss).toFixed(0),
    median(scrape).toFixed(0),
    both((r) => r.startupMs),
    both((r) => r.exportsMs),
    both((r) => r.scrapesMs),
    both((r) => r.rssKiB / 1024),
    both((r) => r.otlpSeries),
  ]);
}

const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
console.log(`machine: ${machine()}`);
console.log(`date: ${new Date().toISOString().slice(0, 10)}, ${SECONDS} s measured after ${WARMUP} s warm-up, period ${PERIOD_MS} ms, ${REPEAT} repetitions, 1-min load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} at their starts`);
console.log('');
console.log(line(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 1) + ':').join('|')}|`);
for (const r of rows) console.log(line(r));

if (values.churn !== '' && values.churn !== '0') {
  const n = Number(values.churn);
  const phases = await churnRun(addresses(n));
  console.log('');
  console.log(`churn at ${n} targets: verdicts of the ${n} that stayed, per second, over the intended rate`);
  console.log('');
  console.log('| phase | achieved by the others | their counters that went backwards | fping processes before → after | of them kept |');
  console.log('|---|---:|---:|---:|---:|');
  for (const p of phases) console.log(`| ${p.name} | ${(100 * p.achieved).toFixed(1)}% | ${p.backwards} | ${p.before} → ${p.after} | ${p.kept} |`);
}
