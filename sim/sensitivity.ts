/**
 * Sensitivity of the localisation (both rule files: the 5 % verdicts and the pooled evidence,
 * as sim/localise.ts `localiseAll` mirrors them) to light faults, under a harsh background.
 *
 * For each mesh setting (full at 60 nodes; the documented large-cluster setting, sampled with
 * lean pair metrics and a budget of 16, at 1,000 and 5,000 nodes) and zone count, seeded
 * trials of one slow window (15 minutes at 1 probe per second per pair, evaluated at its end,
 * the fault present for its last 14 minutes) find:
 *   - the smallest per-packet drizzle (each way), flap (seconds away in every 5 minutes) and
 *     source loss (of the replies to its own probes) localised in ≥ 95 % of the trials;
 *   - the share of trials that localise one link at 1 % each way (target ≥ 90 %) and one zone
 *     uplink at 2 % each way (≥ 95 %);
 *   - false blames on healthy trials.
 * "Localised" means the culprit is named and nothing else is (no node, source, zone or pair).
 *
 * The background of every trial: every pair loses 0–0.1 % of its probes (uniform per pair);
 * a few pairs (5, or one in 2,000) lose a steady 0.5 %; each pair has a burst of 2 or 3
 * consecutive losses once an hour on average (a burst of 3 is an outage for the agent); one
 * agent restarts during the window (10 s without probes, its probes in flight lost).
 *
 *   node sim/sensitivity.ts                      # the table of docs/scale.md (long: ~1,000 healthy trials per row)
 *   node sim/sensitivity.ts --trials 20 --healthy 50 --sizes 60,1000 --zones 3
 */
import { parseArgs } from 'node:util';
import { rng } from './rng.ts';
import { Mesh, type MeshSettings } from '../src/mesh/mesh.ts';
import { localiseAll, type EvidenceVerdict, type PairCounts, type PairLoss, type Verdict } from './localise.ts';

const MINUTES = 15;
const PER_MINUTE = 60;
const FAST_MINUTES = 5;
const BURST_MINUTES = 2;
const FAULT_FROM = 1;

export interface Setting {
  label: string;
  mesh: MeshSettings;
  /** Whether the pairs export outage counters (not with --pair-metrics lean). */
  outages: boolean;
}

export const SETTINGS: Setting[] = [
  { label: 'full', mesh: { mode: 'full', fullBelow: 100, zonePeers: 10, crossZonePeers: 2, budget: 30 }, outages: true },
  { label: 'sampled, lean, budget 16', mesh: { mode: 'sampled', fullBelow: 100, zonePeers: 8, crossZonePeers: 2, budget: 16 }, outages: false },
];


/** Binomial(n, p) by inversion (the means here are small); normal approximation above a mean of 30. */
function binomial(n: number, p: number, rand: () => number): number {
  if (p <= 0 || n <= 0) return 0;
  if (p >= 1) return n;
  const mean = n * p;
  if (mean > 30) {
    const u = Math.max(rand(), 1e-12);
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
    return Math.min(n, Math.max(0, Math.round(mean + z * Math.sqrt(mean * (1 - p)))));
  }
  let k = 0;
  let prob = Math.pow(1 - p, n);
  let cdf = prob;
  const u = rand();
  while (u > cdf && k < n) {
    prob *= ((n - k) / (k + 1)) * (p / (1 - p));
    k++;
    cdf += prob;
  }
  return k;
}

export type Fault =
  | { kind: 'healthy' }
  | { kind: 'drizzle'; perPacket: number }
  | { kind: 'flap'; secondsPer5m: number }
  | { kind: 'source'; replyLoss: number }
  | { kind: 'link'; perPacket: number }
  | { kind: 'uplink'; perPacket: number };

interface Cluster {
  nodes: { name: string; zone: string }[];
  src: Int32Array;
  dst: Int32Array;
  outgoing: number[][];
  zones: string[];
}

export function cluster(setting: Setting, n: number, zones: number): Cluster {
  const nodes = Array.from({ length: n }, (_, i) => ({ name: `node-${String(i).padStart(5, '0')}`, zone: `zone-${i % zones}` }));
  const index = new Map(nodes.map((x, i) => [x.name, i]));
  const mesh = new Mesh(nodes, setting.mesh);
  const src: number[] = [];
  const dst: number[] = [];
  const outgoing: number[][] = nodes.map(() => []);
  for (const [i, x] of nodes.entries()) {
    for (const p of mesh.peersOf(x.name)) {
      outgoing[i]!.push(src.length);
      src.push(i);
      dst.push(index.get(p)!);
    }
  }
  return { nodes, src: Int32Array.from(src), dst: Int32Array.from(dst), outgoing, zones: [...new Set(nodes.map((x) => x.zone))] };
}

type AnyVerdict = Verdict | EvidenceVerdict;

/** One trial: the verdicts, and whether they name the culprit alone. */
export function trial(c: Cluster, setting: Setting, fault: Fault, seed: number): { ok: boolean; verdicts: AnyVerdict[]; culprit: string } {
  const rand = rng(seed);
  const P = c.src.length;
  const n = c.nodes.length;
  const lost = new Float64Array(P * MINUTES);
  const sent = new Float64Array(P * MINUTES).fill(PER_MINUTE);
  const outages = new Float64Array(P);
  const pick = (k: number) => Math.floor(rand() * k);
  const culpritIndex = pick(n);
  let culprit = c.nodes[culpritIndex]!.name;
  const bump = (a: Float64Array, i: number, v: number) => {
    a[i] = a[i]! + v;
  };
  const addLoss = (pair: number, p: number) => {
    for (let m = FAULT_FROM; m < MINUTES; m++) bump(lost, pair * MINUTES + m, binomial(PER_MINUTE, p, rand));
  };

  // Background.
  for (let i = 0; i < P; i++) {
    const k = binomial(MINUTES * PER_MINUTE, rand() * 0.001, rand);
    for (let j = 0; j < k; j++) bump(lost, i * MINUTES + pick(MINUTES), 1);
    // A burst an hour on average: 1/4 per 15 minutes.
    if (rand() < 0.25) {
      const len = rand() < 0.5 ? 2 : 3;
      bump(lost, i * MINUTES + pick(MINUTES), len);
      if (len >= 3) bump(outages, i, 1);
    }
  }
  for (let j = 0; j < Math.max(5, Math.round(P / 2000)); j++) {
    const i = pick(P);
    for (let m = 0; m < MINUTES; m++) bump(lost, i * MINUTES + m, binomial(PER_MINUTE, 0.005, rand));
  }
  {
    const r = pick(n);
    const m = pick(MINUTES);
    for (const i of c.outgoing[r]!) {
      bump(sent, i * MINUTES + m, -10);
      bump(lost, i * MINUTES + m, 1);
    }
  }

  // The fault.
  const roundTrip = (x: number) => 1 - (1 - x) * (1 - x);
  if (fault.kind === 'drizzle') {
    for (let i = 0; i < P; i++) if (c.src[i] === culpritIndex || c.dst[i] === culpritIndex) addLoss(i, roundTrip(fault.perPacket));
  } else if (fault.kind === 'source') {
    for (const i of c.outgoing[culpritIndex]!) addLoss(i, fault.replyLoss);
  } else if (fault.kind === 'flap') {
    // Away for a run of seconds every 5 minutes, at a random phase; probes to and from it are lost.
    const phase = pick(300);
    for (let i = 0; i < P; i++) {
      if (c.src[i] !== culpritIndex && c.dst[i] !== culpritIndex) continue;
      for (let start = phase; start < MINUTES * 60; start += 300) {
        if (start < FAULT_FROM * 60) continue;
        for (let s = start; s < Math.min(start + fault.secondsPer5m, MINUTES * 60); s++) bump(lost, i * MINUTES + Math.floor(s / 60), 1);
        if (fault.secondsPer5m >= 3 && setting.outages) bump(outages, i, 1);
      }
    }
  } else if (fault.kind === 'link') {
    const a = culpritIndex;
    const i0 = c.outgoing[a]![pick(c.outgoing[a]!.length)]!;
    const b = c.dst[i0]!;
    culprit = `${c.nodes[a]!.name} -> ${c.nodes[b]!.name}`;
    for (let i = 0; i < P; i++) if ((c.src[i] === a && c.dst[i] === b) || (c.src[i] === b && c.dst[i] === a)) addLoss(i, roundTrip(fault.perPacket));
  } else if (fault.kind === 'uplink') {
    const z = c.zones[pick(c.zones.length)]!;
    culprit = z;
    for (let i = 0; i < P; i++) if ((c.nodes[c.src[i]!]!.zone === z) !== (c.nodes[c.dst[i]!]!.zone === z)) addLoss(i, roundTrip(fault.perPacket));
  }
  for (let i = 0; i < P * MINUTES; i++) lost[i] = Math.min(lost[i]!, sent[i]!);
  if (!setting.outages) outages.fill(0);

  // What the rules read at the end of the window.
  const counts: PairCounts[] = [];
  const hard: PairLoss[] = [];
  for (let i = 0; i < P; i++) {
    const s = c.nodes[c.src[i]!]!;
    const d = c.nodes[c.dst[i]!]!;
    let S = 0;
    let L = 0;
    let FS = 0;
    let FL = 0;
    const bs: number[] = [];
    const bl: number[] = [];
    for (let m = 0; m < MINUTES; m++) {
      const sm = sent[i * MINUTES + m]!;
      const lm = lost[i * MINUTES + m]!;
      S += sm;
      L += lm;
      if (m >= MINUTES - FAST_MINUTES) {
        FS += sm;
        FL += lm;
      }
      let ws = 0;
      let wl = 0;
      for (let k = Math.max(0, m - BURST_MINUTES + 1); k <= m; k++) {
        ws += sent[i * MINUTES + k]!;
        wl += lost[i * MINUTES + k]!;
      }
      bs.push(ws);
      bl.push(wl);
    }
    counts.push({ source: s.name, sourceZone: s.zone, destination: d.name, destinationZone: d.zone, sent: S, lost: L, outages: outages[i]!, fastSent: FS, fastLost: FL, burstSent: bs, burstLost: bl });
    hard.push({ source: s.name, sourceZone: s.zone, destination: d.name, destinationZone: d.zone, loss: FS > 0 ? FL / FS : 0, outageSeconds: 0 });
  }
  const verdicts = localiseAll(hard, counts);
  const named = (v: AnyVerdict) => {
    if (fault.kind === 'link') {
      const [a, b] = culprit.split(' -> ');
      return (v.kind === 'link_drizzling' || v.kind === 'pair_lossy') && (v.subject === `${a} -> ${b}` || v.subject === `${b} -> ${a}`);
    }
    const kinds: Record<Fault['kind'], string[]> = {
      healthy: [],
      drizzle: ['node_drizzling', 'node_lossy'],
      // A flap of more than about 15 s in 5 minutes is over 5 % loss: the 5 % rule names the node first, as lossy.
      flap: ['node_flapping', 'node_lossy'],
      source: ['source_drizzling', 'source_degraded'],
      link: [],
      uplink: ['zone_uplink_lossy', 'zone_uplink'],
    };
    return kinds[fault.kind].includes(v.kind) && v.subject === culprit;
  };
  const ok = fault.kind === 'healthy' ? verdicts.length === 0 : verdicts.some(named) && verdicts.every(named);
  return { ok, verdicts, culprit };
}

/** Share of `trials` seeded trials that localise the fault. */
export function rate(c: Cluster, setting: Setting, fault: Fault, trials: number, seed: number): number {
  let ok = 0;
  for (let t = 0; t < trials; t++) if (trial(c, setting, fault, seed + t * 7919).ok) ok++;
  return ok / trials;
}

/** The smallest level of the grid from which every larger level is localised in ≥ 95 % of the trials. */
export function smallest(c: Cluster, setting: Setting, grid: readonly number[], make: (x: number) => Fault, trials: number, seed: number): number | undefined {
  let best: number | undefined;
  for (const x of [...grid].sort((a, b) => b - a)) {
    if (rate(c, setting, make(x), trials, seed) < 0.95) break;
    best = x;
  }
  return best;
}

export const DRIZZLE_GRID = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02];
export const FLAP_GRID = [3, 5, 10, 20, 30];
export const SOURCE_GRID = [0.0025, 0.005, 0.0075, 0.01, 0.02, 0.03];

const pct = (x: number | undefined) => (x === undefined ? '> grid' : `${Number((x * 100).toPrecision(2))} %`);

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string', default: '40' },
      healthy: { type: 'string', default: '1000' },
      sizes: { type: 'string', default: '60,1000,5000' },
      zones: { type: 'string', default: '3,10' },
      seed: { type: 'string', default: '1' },
    },
  });
  const trials = Number(values.trials);
  const healthy = Number(values.healthy);
  const seed = Number(values.seed);
  console.log(`| mesh | nodes | zones | smallest drizzle (per packet, each way) | smallest flap (s away per 5 min) | smallest source loss | link 1 % | uplink 2 % | false blames / healthy trials |`);
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const size of values.sizes.split(',').map(Number)) {
    const setting = size < 100 ? SETTINGS[0]! : SETTINGS[1]!;
    for (const z of values.zones.split(',').map(Number)) {
      const c = cluster(setting, size, z);
      const drizzle = smallest(c, setting, DRIZZLE_GRID, (x) => ({ kind: 'drizzle', perPacket: x }), trials, seed);
      const flap = smallest(c, setting, FLAP_GRID, (x) => ({ kind: 'flap', secondsPer5m: x }), trials, seed);
      const source = smallest(c, setting, SOURCE_GRID, (x) => ({ kind: 'source', replyLoss: x }), trials, seed);
      const link = rate(c, setting, { kind: 'link', perPacket: 0.01 }, trials, seed);
      const uplink = rate(c, setting, { kind: 'uplink', perPacket: 0.02 }, trials, seed);
      let wrong = 0;
      for (let t = 0; t < healthy; t++) if (!trial(c, setting, { kind: 'healthy' }, seed + 1_000_003 + t * 7919).ok) wrong++;
      console.log(`| ${setting.label} | ${size} | ${z} | ${pct(drizzle)} | ${flap === undefined ? '> grid' : `${flap} s`} | ${pct(source)} | ${Math.round(link * 100)} % | ${Math.round(uplink * 100)} % | ${wrong} / ${healthy} |`);
    }
  }
}
