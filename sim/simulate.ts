/**
 * Mesh simulator: N nodes in Z zones under a mesh mode and budget. It prints, from the
 * agent's own code (the Mesh assignment, TargetMetrics and SelfMetrics for the series):
 *   - series cluster-wide and per agent, probes per second cluster-wide;
 *   - the in-degree distribution (how many agents probe each node);
 *   - how many agents change peers when one node joins or leaves;
 * then injects faults into the per-pair loss each mode would observe over 5 minutes at 1 Hz
 * (binomial, seeded) and applies the localisation logic of the shipped rules
 * (charts/kube-node-ping/files/rules/, written out in docs/alerts.md) to see whether each
 * fault is pinned on the right culprit, and nothing else is blamed:
 *   - dead node: the node's agent is gone and nothing reaches it;
 *   - lossy link: 30 % loss both ways between two nodes that probe each other;
 *   - lossy zone uplink: 30 % loss on every packet leaving or entering one zone;
 *   - bad source: one node loses 30 % of the replies to its own probes.
 *
 *   node sim/simulate.ts [--nodes 100,1000,5000] [--zones 3,10] [--markdown]
 */
import { parseArgs } from 'node:util';
import { rng } from './rng.ts';
import { MeterProvider, DataPointType, type MetricData } from '@opentelemetry/sdk-metrics';
import { Mesh, type MeshSettings } from '../src/mesh/mesh.ts';
import { TargetMetrics } from '../src/telemetry/target-metrics.ts';
import { SelfMetrics } from '../src/telemetry/self-metrics.ts';
import { DEFAULT_RTT_BUCKETS_MS } from '../src/config/config.ts';
import { localise, type PairLoss, type Verdict } from './localise.ts';

export interface Variant {
  label: string;
  mesh: MeshSettings;
  rttPer: 'destination' | 'zone';
  lean: boolean;
  bucketsMs: number[];
}

const COARSE_BUCKETS_MS = [0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 1000];

export const VARIANTS: Variant[] = [
  { label: 'full', mesh: { mode: 'full', fullBelow: 100, zonePeers: 10, crossZonePeers: 2, budget: 30 }, rttPer: 'destination', lean: false, bucketsMs: DEFAULT_RTT_BUCKETS_MS },
  { label: 'sampled (defaults)', mesh: { mode: 'sampled', fullBelow: 100, zonePeers: 10, crossZonePeers: 2, budget: 30 }, rttPer: 'destination', lean: false, bucketsMs: DEFAULT_RTT_BUCKETS_MS },
  {
    label: 'sampled, per-zone RTT, lean, budget 16, 10 buckets',
    mesh: { mode: 'sampled', fullBelow: 100, zonePeers: 8, crossZonePeers: 2, budget: 16 },
    rttPer: 'zone',
    lean: true,
    bucketsMs: COARSE_BUCKETS_MS,
  },
];

/** Series of one metric snapshot, as Prometheus stores them. */
function seriesOf(metrics: MetricData[]): number {
  let n = 0;
  for (const m of metrics) {
    if (m.dataPointType === DataPointType.HISTOGRAM) for (const dp of m.dataPoints) n += dp.value.buckets.boundaries.length + 3;
    else n += m.dataPoints.length;
  }
  return n;
}

/** The agent's own series (health, discovery, mesh), counted from a real SelfMetrics. */
async function selfSeries(): Promise<number> {
  const { PrometheusExporter } = await import('@opentelemetry/exporter-prometheus');
  const reader = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({ readers: [reader] });
  const self = new SelfMetrics(provider.getMeter('sim'), { processes: () => 1, discovery: { lastContactMs: Date.now(), nodes: new Map() }, mesh: { mode: 'sampled', peers: 1, probers: 1 } });
  const { resourceMetrics } = await reader.collect();
  self.stop();
  // + target_info and the per-kind targets gauge of TargetMetrics, counted there.
  return seriesOf(resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)) + 1;
}

function names(n: number, zones: number) {
  return Array.from({ length: n }, (_, i) => ({ name: `node-${String(i).padStart(5, '0')}`, zone: `zone-${i % zones}` }));
}


function binomialRatio(n: number, p: number, rand: () => number): number {
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  let k = 0;
  for (let i = 0; i < n; i++) if (rand() < p) k++;
  return k / n;
}

export interface Row {
  variant: string;
  nodes: number;
  zones: number;
  seriesCluster: number;
  seriesPerAgent: number;
  probesPerSecond: number;
  inDegree: { min: number; median: number; max: number };
  joinChanged: number;
  leaveChanged: number;
  faults: Record<string, string>;
}

export async function simulate(v: Variant, n: number, zones: number, selfCount: number): Promise<Row> {
  const nodes = names(n, zones);
  const zoneOf = new Map(nodes.map((x) => [x.name, x.zone]));
  const mesh = new Mesh(nodes, v.mesh);
  const peers = new Map<string, string[]>();
  // Full mesh is symmetric: one agent stands for all.
  const full = mesh.mode === 'full';
  for (const x of full ? nodes.slice(0, 1) : nodes) peers.set(x.name, mesh.peersOf(x.name));
  const peersOf = (s: string) => peers.get(s) ?? mesh.peersOf(s);

  // Series: the agent's own TargetMetrics over its peers.
  let seriesCluster = 0;
  let probes = 0;
  const sampleAgents = full ? nodes.slice(0, 1) : nodes;
  for (const a of sampleAgents) {
    const m = new TargetMetrics({ bucketsMs: v.bucketsMs, outageThreshold: 3, timeoutMs: 1000, version: 'sim', rttPer: v.rttPer, lean: v.lean });
    const p = peersOf(a.name);
    m.setTargets(p.map((name, i) => ({ name, address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, family: 4 as const, kind: 'node' as const, zone: zoneOf.get(name) })));
    seriesCluster += seriesOf(m.snapshot()) + selfCount;
    probes += p.length;
  }
  if (full) {
    seriesCluster *= n;
    probes *= n;
  }

  // In-degree.
  const inDeg = new Map<string, number>(nodes.map((x) => [x.name, 0]));
  if (full) for (const x of nodes) inDeg.set(x.name, n - 1);
  else for (const [, ps] of peers) for (const p of ps) inDeg.set(p, inDeg.get(p)! + 1);
  const degs = [...inDeg.values()].sort((a, b) => a - b);

  // Churn: sources whose peer set changes when one node joins, or one leaves.
  let joinChanged = 0;
  let leaveChanged = 0;
  if (!full) {
    const joined = new Mesh([...nodes, { name: 'node-joining', zone: 'zone-0' }], v.mesh);
    const left = new Mesh(nodes.filter((x) => x.name !== nodes[1]!.name), v.mesh);
    for (const x of nodes) {
      const before = peersOf(x.name).join();
      if (joined.peersOf(x.name).join() !== before) joinChanged++;
      if (x.name !== nodes[1]!.name && left.peersOf(x.name).join() !== before) leaveChanged++;
    }
  } else {
    joinChanged = n; // every agent gains a peer
    leaveChanged = n - 1;
  }

  return {
    variant: v.label,
    nodes: n,
    zones,
    seriesCluster,
    seriesPerAgent: seriesCluster / n,
    probesPerSecond: probes,
    inDegree: { min: degs[0]!, median: degs[Math.floor(degs.length / 2)]!, max: degs[degs.length - 1]! },
    joinChanged,
    leaveChanged,
    faults: n > 1000 && full ? { note: 'full mesh faults simulated at N ≤ 1000 only' } : runFaults(nodes, zoneOf, peersOf),
  };
}

/** Injects each fault, applies the rules' logic, and says whether the culprit was named alone. */
function runFaults(nodes: { name: string; zone: string }[], zoneOf: Map<string, string>, peersOf: (s: string) => string[]): Record<string, string> {
  const rand = rng(42);
  const PROBES = 300; // 5 minutes at 1 Hz
  const observe = (lossOf: (s: string, d: string) => number, deadAgents: Set<string>): PairLoss[] => {
    const out: PairLoss[] = [];
    for (const s of nodes) {
      if (deadAgents.has(s.name)) continue;
      for (const d of peersOf(s.name)) {
        const p = lossOf(s.name, d);
        out.push({ source: s.name, sourceZone: s.zone, destination: d, destinationZone: zoneOf.get(d)!, loss: binomialRatio(PROBES, p, rand), outageSeconds: p >= 1 ? 300 : 0 });
      }
    }
    return out;
  };
  const judge = (verdicts: Verdict[], expected: (v: Verdict) => boolean): string => {
    const right = verdicts.filter(expected);
    const wrong = verdicts.filter((v) => !expected(v));
    if (right.length > 0 && wrong.length === 0) return 'yes';
    if (right.length === 0 && wrong.length === 0) return 'missed';
    return `no (${wrong.slice(0, 2).map((w) => `${w.kind} ${w.subject}`).join(', ')}${wrong.length > 2 ? ', …' : ''})`;
  };
  const zones = [...new Set(nodes.map((x) => x.zone))];
  const dead = nodes[7 % nodes.length]!.name;
  const badSource = nodes[11 % nodes.length]!.name;
  const badZone = zones[zones.length - 1]!;
  // A link that is actually probed, in one direction at least.
  const a = nodes[3 % nodes.length]!.name;
  const b = peersOf(a)[0]!;
  const res: Record<string, string> = {};
  res['dead node'] = judge(localise(observe((_s, d) => (d === dead ? 1 : 0), new Set([dead]))), (v) => v.kind === 'node_unreachable' && v.subject === dead);
  res['lossy link'] = judge(
    localise(observe((s, d) => ((s === a && d === b) || (s === b && d === a) ? 0.3 : 0), new Set())),
    (v) => v.kind === 'pair_lossy' && (v.subject === `${a} -> ${b}` || v.subject === `${b} -> ${a}`),
  );
  res['zone uplink'] =
    zones.length < 3
      ? 'n/a (fewer than 3 zones)'
      : judge(localise(observe((s, d) => ((zoneOf.get(s) === badZone) !== (zoneOf.get(d) === badZone) ? 0.3 : 0), new Set())), (v) => v.kind === 'zone_uplink' && v.subject === badZone);
  res['bad source'] = judge(localise(observe((s) => (s === badSource ? 0.3 : 0), new Set())), (v) => v.kind === 'source_degraded' && v.subject === badSource);
  return res;
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { nodes: { type: 'string', default: '100,1000,5000' }, zones: { type: 'string', default: '3,10' } } });
  const selfCount = await selfSeries();
  const rows: Row[] = [];
  for (const v of VARIANTS) {
    for (const n of values.nodes.split(',').map(Number)) {
      for (const z of values.zones.split(',').map(Number)) {
        rows.push(await simulate(v, n, z, selfCount));
        process.stderr.write(`done ${v.label} N=${n} Z=${z}\n`);
      }
    }
  }
  const faultNames = ['dead node', 'lossy link', 'zone uplink', 'bad source'];
  console.log('| mode | nodes | zones | series (cluster) | series/agent | probes/s | in-degree min/median/max | agents changed: join / leave | ' + faultNames.join(' | ') + ' |');
  console.log('|---|---:|---:|---:|---:|---:|---|---|' + faultNames.map(() => '---').join('|') + '|');
  for (const r of rows) {
    const f = faultNames.map((k) => r.faults[k] ?? r.faults['note'] ?? '');
    console.log(`| ${r.variant} | ${r.nodes} | ${r.zones} | ${fmt(r.seriesCluster)} | ${fmt(r.seriesPerAgent)} | ${fmt(r.probesPerSecond)} | ${r.inDegree.min}/${r.inDegree.median}/${r.inDegree.max} | ${r.joinChanged} / ${r.leaveChanged} | ${f.join(' | ')} |`);
  }
}
