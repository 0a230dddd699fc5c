#!/usr/bin/env node
/**
 * Soak: `node test/soak.ts --minutes 30` (not part of CI). One agent probes hosts of the fault
 * lab (network namespaces this run creates) while:
 *  - a host flaps (blackholed for a random 3-12 s, up for 5-20 s), each real outage recorded;
 *  - the targets file is rewritten every 3 s, alternately atomically (rename) and in place
 *    (truncate, pause, write), adding and removing a churn host;
 *  - the Collector the agent pushes OTLP to is stopped for 30 s every 2 minutes;
 *  - /metrics is scraped every second.
 * Afterwards it reports, and fails on: RSS, fds and TCP connections not flat (slope per hour
 * over the second half), any counter of a surviving target that went backwards or vanished,
 * and real outage time that the agent did not report as outage.
 *
 * Network rule: probes go only to the lab's namespaces (checked with assertRoutes) and
 * loopback.
 */
import { readdirSync, readFileSync, renameSync, writeFileSync, openSync, writeSync, closeSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Lab, type Host } from './lab/lab.ts';
import { freePort, parseExposition, sleep, startAgent, valueOf, type Sample } from './support/agent.ts';
import { startCollector, startPrometheus, type CollectorServer } from './support/servers.ts';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '30' }, period: { type: 'string', default: '200ms' } } });
const MINUTES = Number(values.minutes);
if (!(MINUTES > 0)) throw new Error(`--minutes ${values.minutes} is not a positive number`);
const PERIOD_MS = 200;
const SURVIVORS = ['stable-a', 'stable-b', 'flappy'];

function slopePerHour(points: { t: number; v: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const mv = points.reduce((a, p) => a + p.v, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.v - mv);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 3_600_000;
}

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

function connections(pid: number): number {
  const out = spawnSync('ss', ['-Htnp', 'state', 'established'], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter((l) => l.includes(`pid=${pid},`)).length;
}

const lab = await Lab.create();
const failures: string[] = [];
try {
  const hosts: Record<string, Host> = {};
  for (const name of ['stable-a', 'stable-b', 'flappy', 'churn']) hosts[name] = await lab.addHost(name);
  await lab.assertRoutes(Object.values(hosts).map((h) => h.v4));
  const dir = mkdtempSync(join(tmpdir(), 'knp-soak-'));
  const file = join(dir, 'targets.json');
  const body = (withChurn: boolean) =>
    JSON.stringify(Object.values(hosts).filter((h) => withChurn || h.name !== 'churn').map((h) => ({ name: h.name, address: h.v4 })));
  writeFileSync(file, body(true));

  const prom = await startPrometheus([]);
  const otlpPort = await freePort();
  let collector: CollectorServer | undefined = await startCollector(prom.url, { grpc: await freePort(), http: otlpPort });
  const agent = await startAgent({
    args: ['--targets-file', file, '--targets-reload-interval', '1s', '--period', values.period!, '--otlp-protocol', 'http/protobuf', '--export-interval', '2s', '--export-timeout', '1500ms'],
    env: { NODE_NAME: 'soak', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpPort}` },
  });
  const pid = agent.child.pid!;
  const t0 = Date.now();
  const end = t0 + MINUTES * 60_000;
  let running = true;

  // Flapping with the real outage intervals recorded.
  const outages: { from: number; to: number }[] = [];
  const flap = (async () => {
    while (running) {
      await sleep(5000 + Math.random() * 15_000);
      if (!running) break;
      const from = Date.now();
      await lab.setBlackhole(hosts['flappy']!, true);
      await sleep(3000 + Math.random() * 9000);
      await lab.setBlackhole(hosts['flappy']!, false);
      outages.push({ from, to: Date.now() });
    }
  })();

  // The targets file, rewritten every 3 s, atomically and in place by turns.
  let rewrites = 0;
  const rewrite = (async () => {
    while (running) {
      await sleep(3000);
      const text = body(rewrites % 4 < 2);
      if (rewrites % 2 === 0) {
        writeFileSync(`${file}.tmp`, text);
        renameSync(`${file}.tmp`, file);
      } else {
        const fd = openSync(file, 'w');
        await sleep(50 + Math.random() * 300);
        writeSync(fd, text);
        closeSync(fd);
      }
      rewrites++;
    }
  })();

  // The Collector away for 30 s every 2 minutes.
  let collectorStops = 0;
  const collectorLoop = (async () => {
    while (running) {
      await sleep(90_000);
      if (!running) break;
      await collector?.stop();
      collector = undefined;
      collectorStops++;
      await sleep(30_000);
      if (!running) break;
      collector = await startCollector(prom.url, { grpc: await freePort(), http: otlpPort });
    }
  })();

  // Scrapes in a loop; resource samples every 10 s.
  const last = new Map<string, number>();
  const usage: { t: number; rss: number; fds: number; conns: number }[] = [];
  let scrapes = 0;
  let firstOutageTotal: number | undefined;
  let lastOutageTotal = 0;
  let lastUsage = 0;
  while (Date.now() < end) {
    await sleep(1000);
    let samples: Sample[];
    try {
      const r = await fetch(`http://127.0.0.1:${agent.port}/metrics`, { headers: { 'accept-encoding': 'gzip' } });
      samples = parseExposition(await r.text());
      scrapes++;
    } catch (err) {
      failures.push(`scrape failed at ${Math.round((Date.now() - t0) / 1000)} s: ${(err as Error).message}`);
      continue;
    }
    for (const dest of SURVIVORS) {
      for (const name of ['kube_node_ping_packets_sent_total', 'kube_node_ping_packets_received_total', 'kube_node_ping_outage_duration_seconds_total']) {
        const v = valueOf(samples, name, { destination_name: dest });
        const key = `${name}{${dest}}`;
        const prev = last.get(key);
        if (v === undefined) {
          if (prev !== undefined) failures.push(`${key} vanished at ${Math.round((Date.now() - t0) / 1000)} s`);
          continue;
        }
        if (prev !== undefined && v < prev) failures.push(`${key} went back from ${prev} to ${v} at ${Math.round((Date.now() - t0) / 1000)} s`);
        last.set(key, v);
      }
    }
    const outageTotal = valueOf(samples, 'kube_node_ping_outage_duration_seconds_total', { destination_name: 'flappy' });
    if (outageTotal !== undefined) {
      firstOutageTotal ??= outageTotal;
      lastOutageTotal = outageTotal;
    }
    if (Date.now() - lastUsage >= 10_000) {
      lastUsage = Date.now();
      usage.push({ t: Date.now() - t0, rss: rssKiB(pid), fds: readdirSync(`/proc/${pid}/fd`).length, conns: connections(pid) });
    }
  }
  running = false;
  await Promise.all([flap, rewrite, collectorLoop]);
  await sleep(3000); // the last outage's end is scraped
  const finalSamples = parseExposition(await (await fetch(`http://127.0.0.1:${agent.port}/metrics`)).text());
  lastOutageTotal = valueOf(finalSamples, 'kube_node_ping_outage_duration_seconds_total', { destination_name: 'flappy' }) ?? lastOutageTotal;
  const stop = await agent.stop();
  await collector?.stop();
  await prom.stop();

  // Outage accounting: each real outage is reported from its first lost probe to the first
  // answer, so the agent's total is the real total within a probe period and a timeout at
  // each edge; an outage shorter than the threshold (3 probes) would be missed, and none is.
  const real = outages.reduce((a, o) => a + (o.to - o.from) / 1000, 0);
  const reported = lastOutageTotal - (firstOutageTotal ?? 0);
  const tolerance = outages.length * ((3 * PERIOD_MS + 1000) / 1000) + 1;
  if (reported < real - tolerance) failures.push(`outage reported ${reported.toFixed(1)} s of a real ${real.toFixed(1)} s (tolerance ${tolerance.toFixed(1)} s)`);
  if (reported > real + tolerance) failures.push(`outage reported ${reported.toFixed(1)} s, more than the real ${real.toFixed(1)} s (tolerance ${tolerance.toFixed(1)} s)`);

  const half = usage.slice(Math.floor(usage.length / 2));
  const slopes = {
    rss_kib_per_hour: slopePerHour(half.map((u) => ({ t: u.t, v: u.rss }))),
    fds_per_hour: slopePerHour(half.map((u) => ({ t: u.t, v: u.fds }))),
    connections_per_hour: slopePerHour(half.map((u) => ({ t: u.t, v: u.conns }))),
  };
  // Flat: less than 8 MiB an hour of RSS (a scrape's garbage moves it by that much), and no
  // trend in fds or connections beyond one an hour.
  if (slopes.rss_kib_per_hour > 8 * 1024) failures.push(`RSS grows ${Math.round(slopes.rss_kib_per_hour)} KiB/h`);
  if (slopes.fds_per_hour > 1) failures.push(`fds grow ${slopes.fds_per_hour.toFixed(2)}/h`);
  if (slopes.connections_per_hour > 1) failures.push(`connections grow ${slopes.connections_per_hour.toFixed(2)}/h`);
  if (stop.code !== 0) failures.push(`agent exited ${stop.code}`);

  const report = {
    minutes: MINUTES,
    scrapes,
    targets_file_rewrites: rewrites,
    collector_stops: collectorStops,
    outages: outages.length,
    outage_seconds_real: Number(real.toFixed(1)),
    outage_seconds_reported: Number(reported.toFixed(1)),
    rss_kib: { first: usage[0]?.rss, last: usage.at(-1)?.rss, max: Math.max(...usage.map((u) => u.rss)) },
    fds: { first: usage[0]?.fds, last: usage.at(-1)?.fds, max: Math.max(...usage.map((u) => u.fds)) },
    connections: { first: usage[0]?.conns, last: usage.at(-1)?.conns, max: Math.max(...usage.map((u) => u.conns)) },
    slopes_second_half: Object.fromEntries(Object.entries(slopes).map(([k, v]) => [k, Number(v.toFixed(2))])),
    stop_ms: stop.ms,
    failures,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} finally {
  await lab.destroy();
}
process.exit(failures.length === 0 ? 0 : 1);
