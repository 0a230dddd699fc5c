/**
 * End to end on one machine: the agent probes hosts of the fault lab (network namespaces
 * with injected delay, loss, a blackhole and a flapping host), a real Prometheus 3 scrapes
 * one agent, and two more agents push OTLP (gRPC and HTTP/protobuf) through a real
 * OpenTelemetry Collector into Prometheus's OTLP receiver. PromQL answers must match the
 * injected faults, and both paths must give the same metric names and labels.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, type Host } from './lab/lab.ts';
import { eventually, freePort, sleep, startAgent, type AgentProcess } from './support/agent.ts';
import { startCollector, startPrometheus, type CollectorServer, type PrometheusServer } from './support/servers.ts';

const PERIOD = '50ms'; // 20 probes/s per destination: enough samples in half a minute
const RUN_S = 30;

let lab: Lab;
let targetsFile: string;
let targets: { name: string; address: string }[];
let prom: PrometheusServer;
let collector: CollectorServer | undefined;
const agents: AgentProcess[] = [];
const hosts: Record<string, Host> = {};

before(async () => {
  lab = await Lab.create();
  for (const name of ['clean', 'slow', 'lossy', 'dead', 'flappy']) hosts[name] = await lab.addHost(name);
  await lab.setDelay(hosts['slow']!, { ms: 25, jitterMs: 5 });
  await lab.setLoss(hosts['lossy']!, 20);
  await lab.setBlackhole(hosts['dead']!, true);
  lab.startFlap(hosts['flappy']!, { upMs: 3000, downMs: 3000 });

  targets = Object.values(hosts).flatMap((h) => [{ name: h.name, address: h.v4 }]);
  targets.push({ name: 'slow-v6', address: hosts['slow']!.v6 });
  // The network rule: every address the agents will probe must route into the lab.
  await lab.assertRoutes(targets.map((t) => t.address));
  const dir = mkdtempSync(join(tmpdir(), 'knp-e2e-'));
  targetsFile = join(dir, 'targets.json');
  writeFileSync(targetsFile, JSON.stringify(targets));
  const common = ['--targets-file', targetsFile, '--targets-reload-interval', '500ms', '--period', PERIOD, '--cluster-name', 'lab'];

  // The OTLP/HTTP agent starts while its collector is still down: export must resume by itself.
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const viaHttp = await startAgent({
    args: [...common, '--otlp-protocol', 'http/protobuf', '--export-interval', '1s', '--export-timeout', '900ms'],
    env: { NODE_NAME: 'src-otlp-http', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${httpPort}` },
  });
  agents.push(viaHttp);
  const scraped = await startAgent({ args: common, env: { NODE_NAME: 'src-scrape' } });
  agents.push(scraped);
  prom = await startPrometheus([{ job: 'kube-node-ping-scrape', targets: [`127.0.0.1:${scraped.port}`] }]);
  await sleep(3000);
  collector = await startCollector(prom.url, { grpc: grpcPort, http: httpPort });
  const viaGrpc = await startAgent({
    args: [...common, '--otlp-endpoint', `http://127.0.0.1:${grpcPort}`, '--otlp-protocol', 'grpc'],
    env: { NODE_NAME: 'src-otlp-grpc', OTEL_METRIC_EXPORT_INTERVAL: '1000' },
  });
  agents.push(viaGrpc);
  await sleep(RUN_S * 1000);
});

after(async () => {
  for (const a of agents) await a.stop();
  await collector?.stop();
  await prom?.stop();
  await lab?.destroy();
});

const SOURCES = ['src-scrape', 'src-otlp-grpc', 'src-otlp-http'];
const WINDOW = `${RUN_S - 5}s`;

async function scalar(q: string): Promise<number> {
  const r = await prom.query(q);
  assert.equal(r.length, 1, `${q} → ${JSON.stringify(r)}`);
  return Number(r[0]!.value[1]);
}

const sel = (src: string, dest: string) => `k8s_node_name="${src}",destination_name="${dest}"`;

test('loss matches the injected faults on every path', async () => {
  for (const src of SOURCES) {
    const loss = (dest: string) =>
      scalar(`1 - increase(kube_node_ping_packets_received_total{${sel(src, dest)}}[${WINDOW}]) / increase(kube_node_ping_packets_sent_total{${sel(src, dest)}}[${WINDOW}])`);
    const sent = await scalar(`increase(kube_node_ping_packets_sent_total{${sel(src, 'lossy')}}[${WINDOW}])`);
    assert.ok(sent > 200, `${src}: ${sent} probes to lossy`);
    // Binomial: 20 % of n probes; 4.5 standard deviations keeps a false failure below 1e-5.
    const tolerance = 4.5 * Math.sqrt((0.2 * 0.8) / sent);
    const lossy = await loss('lossy');
    assert.ok(Math.abs(lossy - 0.2) <= tolerance, `${src}: lossy loss ${lossy.toFixed(3)}, expected 0.2 ± ${tolerance.toFixed(3)}`);
    assert.ok((await loss('clean')) <= 0.01, `${src}: clean`);
    assert.equal(await loss('dead'), 1, `${src}: dead`);
    // 3 s up, 3 s down: half, give or take a period at each edge.
    const flappy = await loss('flappy');
    assert.ok(flappy > 0.3 && flappy < 0.7, `${src}: flappy loss ${flappy}`);
  }
});

test('RTT: mean and quantiles match the injected delay', async () => {
  for (const src of SOURCES) {
    for (const dest of ['slow', 'slow-v6']) {
      const s = sel(src, dest);
      const mean = await scalar(`increase(kube_node_ping_rtt_seconds_sum{${s}}[${WINDOW}]) / increase(kube_node_ping_rtt_seconds_count{${s}}[${WINDOW}])`);
      // 25 ms ± 5 ms uniform jitter: the mean of hundreds of replies is within a fraction of
      // a ms of 25; the responder may add up to ~1.5 ms on a loaded machine.
      assert.ok(mean > 0.0235 && mean < 0.0285, `${src} ${dest}: mean ${mean}`);
      const p50 = await scalar(`histogram_quantile(0.5, sum by (le) (rate(kube_node_ping_rtt_seconds_bucket{${s}}[${WINDOW}])))`);
      // Every reply lies in (20 ms, 30 ms]: one bucket; interpolation puts the median mid-bucket.
      assert.ok(p50 > 0.02 && p50 <= 0.03, `${src} ${dest}: p50 ${p50}`);
      const p90 = await scalar(`histogram_quantile(0.9, sum by (le) (rate(kube_node_ping_rtt_seconds_bucket{${s}}[${WINDOW}])))`);
      assert.ok(p90 > 0.02 && p90 <= 0.03, `${src} ${dest}: p90 ${p90}`);
      // The injected maximum is 30 ms; on a loaded 2-core machine the responder sometimes
      // answers a few ms late, so the 99th percentile may reach into the next bucket, no further.
      const p99 = await scalar(`histogram_quantile(0.99, sum by (le) (rate(kube_node_ping_rtt_seconds_bucket{${s}}[${WINDOW}])))`);
      assert.ok(p99 > 0.02 && p99 <= 0.05, `${src} ${dest}: p99 ${p99}`);
    }
    const cleanP99 = await scalar(`histogram_quantile(0.99, sum by (le) (rate(kube_node_ping_rtt_seconds_bucket{${sel(src, 'clean')}}[${WINDOW}])))`);
    assert.ok(cleanP99 < 0.003, `${src}: clean p99 ${cleanP99}`);
  }
});

test('outage: the blackholed host is in an outage that grows; the flapping host has several', async () => {
  for (const src of SOURCES) {
    const ongoing1 = await scalar(`kube_node_ping_outage_ongoing_seconds{${sel(src, 'dead')}}`);
    assert.ok(ongoing1 > RUN_S - 10, `${src}: dead in outage for ${ongoing1} s`);
    assert.equal(await scalar(`kube_node_ping_outages_total{${sel(src, 'dead')}}`), 1);
    assert.equal(await scalar(`kube_node_ping_outage_ongoing_seconds{${sel(src, 'clean')}}`), 0);
    const flaps = await scalar(`kube_node_ping_outages_total{${sel(src, 'flappy')}}`);
    assert.ok(flaps >= 3, `${src}: flappy outages ${flaps}`);
  }
  await sleep(3000);
  const ongoing2 = await scalar(`kube_node_ping_outage_ongoing_seconds{${sel('src-scrape', 'dead')}}`);
  assert.ok(ongoing2 > RUN_S - 7, `still growing: ${ongoing2}`);
});

test('scrape and OTLP give the same metric names and labels', async () => {
  const namesOf = async (src: string) =>
    (await prom.query(`count by (__name__) ({__name__=~"kube_node_ping_.+", k8s_node_name="${src}"})`)).map((r) => r.metric['__name__']!).sort();
  const scrapedNames = await namesOf('src-scrape');
  assert.ok(scrapedNames.includes('kube_node_ping_rtt_seconds_bucket') && scrapedNames.includes('kube_node_ping_packets_sent_total'), scrapedNames.join(' '));
  for (const src of ['src-otlp-grpc', 'src-otlp-http']) assert.deepEqual(await namesOf(src), scrapedNames, src);

  // Label names per metric, and label values apart from the ones that name the source.
  const IDENTITY = new Set(['job', 'instance', 'k8s_node_name']);
  const labelsOf = async (src: string) => {
    const out = new Map<string, Set<string>>();
    for (const r of await prom.query(`{__name__=~"kube_node_ping_.+", k8s_node_name="${src}"}`)) {
      const { __name__: name, ...labels } = r.metric;
      const key = `${name}{${Object.keys(labels).sort().join(',')}}`;
      // Prometheus itself writes a bucket bound differently per path: a scrape is normalised
      // to "1.0" and "5e-05", the OTLP translation gives "1" and "0.00005". Same number.
      const values = Object.entries(labels).filter(([k]) => !IDENTITY.has(k)).sort().map(([k, v]) => `${k}=${k === 'le' ? Number(v) : v}`).join(',');
      (out.get(key) ?? out.set(key, new Set()).get(key)!).add(values);
    }
    return out;
  };
  const scraped = await labelsOf('src-scrape');
  for (const src of ['src-otlp-grpc', 'src-otlp-http']) {
    const pushed = await labelsOf(src);
    assert.deepEqual([...pushed.keys()].sort(), [...scraped.keys()].sort(), `${src}: label names`);
    for (const [k, v] of scraped) assert.deepEqual([...pushed.get(k)!].sort(), [...v].sort(), `${src}: values of ${k}`);
  }
  const one = (await prom.query(`kube_node_ping_packets_sent_total{k8s_node_name="src-otlp-grpc",destination_name="clean"}`))[0]!.metric;
  assert.equal(one['k8s_cluster_name'], 'lab');
  assert.equal(one['destination_address'], hosts['clean']!.v4);
  assert.equal(one['destination_kind'], 'node');
});

test('the agent that started before its collector exported once it came up', async () => {
  const sent = await scalar(`kube_node_ping_packets_sent_total{${sel('src-otlp-http', 'clean')}}`);
  assert.ok(sent > 100, `sent ${sent}`);
  const failures = await eventually(async () => {
    const r = await fetch(`http://127.0.0.1:${agents[0]!.port}/metrics`);
    const m = /kube_node_ping_export_failures_total\{[^}]*\} (\d+)/.exec(await r.text());
    return m ? Number(m[1]) : undefined;
  }, 5000, 'failure counter');
  assert.ok(failures >= 1, 'the exports before the collector was up failed and were counted');
  assert.match(agents[0]!.logs(), /OTLP export recovered/);
});

test('a destination that leaves stops being exported on every path; the others go on', async () => {
  writeFileSync(`${targetsFile}.new`, JSON.stringify(targets.filter((t) => t.name !== 'clean')));
  const { renameSync } = await import('node:fs');
  renameSync(`${targetsFile}.new`, targetsFile);
  const left = Date.now() / 1000;
  await sleep(6000);
  for (const src of SOURCES) {
    // Scraped series get a staleness marker and vanish; OTLP series simply get no new samples.
    const last = await prom.query(`max_over_time(timestamp(kube_node_ping_packets_sent_total{${sel(src, 'clean')}})[1m:])`);
    assert.equal(last.length, 1, src);
    assert.ok(Number(last[0]!.value[1]) < left + 2, `${src}: clean still exported ${Number(last[0]!.value[1]) - left} s after it left`);
    const fresh = await scalar(`timestamp(kube_node_ping_packets_sent_total{${sel(src, 'slow')}})`);
    assert.ok(fresh > left + 3, `${src}: slow is still exported`);
  }
});

test('SIGTERM flushes OTLP once: data that no interval would have sent arrives', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'knp-e2e-flush-'));
  const file = join(dir, 'targets.json');
  writeFileSync(file, JSON.stringify([{ name: 'flush-check', address: hosts['clean']!.v4 }]));
  const agent = await startAgent({
    args: ['--targets-file', file, '--period', PERIOD, '--otlp-endpoint', collector!.grpcEndpoint, '--otlp-protocol', 'grpc', '--export-interval', '1h'],
    env: { NODE_NAME: 'src-flush' },
  });
  await sleep(2000);
  const r = await agent.stop();
  assert.equal(r.code, 0);
  assert.ok(r.ms < 5000, `stopped in ${r.ms} ms`);
  const sent = await eventually(async () => {
    const v = await prom.query(`kube_node_ping_packets_sent_total{k8s_node_name="src-flush"}`);
    return v.length === 1 ? Number(v[0]!.value[1]) : undefined;
  }, 10_000, 'the final flush in Prometheus');
  assert.ok(sent >= 10, `flushed ${sent} probes`);
});
