/**
 * The localisation logic of the shipped rules (charts/kube-node-ping/files/rules/), in
 * TypeScript, over per-pair loss. Keep the two in step: docs/alerts.md states the logic once
 * and test/rules/ checks the PromQL side with promtool.
 *
 *   pair:         lossy when loss > 5 %; down when loss > 50 % or an outage of over 60 s.
 *   zone uplink:  zone Z is blamed when, of the other zones Y it exchanges probes with both
 *                 ways (at least 2), more than half see loss > 5 % both ways (Y→Z and Z→Y),
 *                 while Z's own in-zone loss is at most 5 %. Needs 3 zones or more.
 *   Pairs that cross the uplink of a blamed zone are explained by it: they are left out of
 *   everything below.
 *   destination:  probed by at least 3 sources; unreachable when more than half see it down;
 *                 else lossy when more than half see it lossy.
 *   source:       degraded when it probes at least 3 destinations and more than half of them
 *                 are lossy from it without a destination verdict explaining them, unless it
 *                 is itself a blamed destination.
 *   pair alert:   a lossy pair whose ends are not blamed.
 *
 * Below it, `localiseEvidence`: the pooled, sample-size-aware verdicts of
 * kube-node-ping-evidence.rules.yaml (docs/alerts.md, "Pooled evidence"), and `localiseAll`,
 * both files together as Prometheus runs them.
 */
import { BURST_LOSS, FLAP_BURST_SHARE, FLAP_OUTAGES, FLAP_SHARE, MARGIN, MIN_PAIR_PROBES, MIN_PEERS, MIN_PROBES, PAIR_MARGIN, exceeds, median } from './evidence.ts';

export interface PairLoss {
  source: string;
  sourceZone: string;
  destination: string;
  destinationZone: string;
  loss: number;
  outageSeconds: number;
}

export interface Verdict {
  kind: 'node_unreachable' | 'node_lossy' | 'source_degraded' | 'zone_uplink' | 'pair_lossy';
  subject: string;
}

const LOSSY = 0.05;
const DOWN = 0.5;
const OUTAGE_S = 60;
const MIN_SOURCES = 3;
const MIN_ZONES = 2;

export function localise(pairs: readonly PairLoss[]): Verdict[] {
  const lossy = (p: PairLoss) => p.loss > LOSSY;
  const down = (p: PairLoss) => p.loss > DOWN || p.outageSeconds > OUTAGE_S;

  // Zone pairs: loss over all packets between two zones (equal probe counts per pair).
  const zp = new Map<string, { sum: number; n: number }>();
  for (const p of pairs) {
    const k = `${p.sourceZone}\u0000${p.destinationZone}`;
    const e = zp.get(k) ?? zp.set(k, { sum: 0, n: 0 }).get(k)!;
    e.sum += p.loss;
    e.n++;
  }
  const zoneLoss = (a: string, b: string) => {
    const e = zp.get(`${a}\u0000${b}`);
    return e ? e.sum / e.n : undefined;
  };
  const zones = [...new Set(pairs.flatMap((p) => [p.sourceZone, p.destinationZone]))];
  const blamedZones = new Set<string>();
  for (const z of zones) {
    const own = zoneLoss(z, z);
    if (own !== undefined && own > LOSSY) continue;
    let both = 0;
    let bad = 0;
    for (const y of zones) {
      if (y === z) continue;
      const inbound = zoneLoss(y, z);
      const outbound = zoneLoss(z, y);
      if (inbound === undefined || outbound === undefined) continue;
      both++;
      if (inbound > LOSSY && outbound > LOSSY) bad++;
    }
    if (both >= MIN_ZONES && bad / both > 0.5) blamedZones.add(z);
  }

  const crossesBlamedZone = (p: PairLoss) => p.sourceZone !== p.destinationZone && (blamedZones.has(p.sourceZone) || blamedZones.has(p.destinationZone));
  const explained = pairs.filter((p) => !crossesBlamedZone(p));
  const byDest = new Map<string, PairLoss[]>();
  const bySource = new Map<string, PairLoss[]>();
  for (const p of explained) {
    (byDest.get(p.destination) ?? byDest.set(p.destination, []).get(p.destination)!).push(p);
    (bySource.get(p.source) ?? bySource.set(p.source, []).get(p.source)!).push(p);
  }
  const out: Verdict[] = [...blamedZones].map((z) => ({ kind: 'zone_uplink' as const, subject: z }));
  const blamedDest = new Set<string>();
  for (const [d, ps] of byDest) {
    if (ps.length < MIN_SOURCES) continue;
    if (ps.filter(down).length / ps.length > 0.5) {
      out.push({ kind: 'node_unreachable', subject: d });
      blamedDest.add(d);
    } else if (ps.filter(lossy).length / ps.length > 0.5) {
      out.push({ kind: 'node_lossy', subject: d });
      blamedDest.add(d);
    }
  }
  const blamedSource = new Set<string>();
  for (const [s, ps] of bySource) {
    if (ps.length < MIN_SOURCES || blamedDest.has(s)) continue;
    const unexplained = ps.filter((p) => lossy(p) && !blamedDest.has(p.destination)).length;
    if (unexplained / ps.length > 0.5) {
      out.push({ kind: 'source_degraded', subject: s });
      blamedSource.add(s);
    }
  }
  const blamed = new Set([...blamedDest, ...blamedSource]);
  for (const p of explained) {
    if (!lossy(p) || blamed.has(p.source) || blamed.has(p.destination)) continue;
    out.push({ kind: 'pair_lossy', subject: `${p.source} -> ${p.destination}` });
  }
  return out;
}

// ---- pooled evidence (charts/kube-node-ping/files/rules/kube-node-ping-evidence.rules.yaml) --

/**
 * One node pair's counts, as the evidence rules read them: the slow window's sent and lost
 * probes and outages started, the fast window's sent and lost probes. Externals are not judged
 * by the evidence rules and are left out.
 */
export interface PairCounts {
  source: string;
  sourceZone: string;
  destination: string;
  destinationZone: string;
  sent: number;
  lost: number;
  outages: number;
  fastSent: number;
  fastLost: number;
  /** Sent and lost over the burst window at each evaluation of the slow window. */
  burstSent: readonly number[];
  burstLost: readonly number[];
}

export interface EvidenceVerdict {
  kind: 'zone_uplink_lossy' | 'node_flapping' | 'node_drizzling' | 'source_drizzling' | 'link_drizzling';
  subject: string;
  /** The alert's value: a share for zones and flaps, the estimated loss otherwise. */
  value: number;
}

/** What the 5 % rules (localise) already blame: the evidence rules leave those to them. */
export interface HardVerdicts {
  nodes: ReadonlySet<string>;
  zones: ReadonlySet<string>;
  /** Pairs "s -> d" that the 5 % pair alert already names. */
  pairs: ReadonlySet<string>;
}

const NO_HARD: HardVerdicts = { nodes: new Set(), zones: new Set(), pairs: new Set() };

interface Pool {
  sent: number;
  lost: number;
  peers: number;
}
const pool = (ps: readonly PairCounts[]): Pool => ({ sent: ps.reduce((t, p) => t + p.sent, 0), lost: ps.reduce((t, p) => t + p.lost, 0), peers: ps.filter((p) => p.sent > 0).length });
const group = <K>(ps: readonly PairCounts[], key: (p: PairCounts) => K) => {
  const m = new Map<K, PairCounts[]>();
  for (const p of ps) (m.get(key(p)) ?? m.set(key(p), []).get(key(p))!).push(p);
  return m;
};

/**
 * The evidence rules' verdicts (docs/alerts.md, "Pooled evidence"), in the order of the
 * rule file: baseline, zone uplinks, suspects (pass 1), each node judged without the
 * suspects on the other side (pass 2), flaps, then the pairs that no verdict explains.
 */
export function localiseEvidence(pairs: readonly PairCounts[], hard: HardVerdicts = NO_HARD): EvidenceVerdict[] {
  const byDestAll = group(pairs, (p) => p.destination);
  const baseline = median([...byDestAll.values()].map(pool).filter((x) => x.sent > 0).map((x) => Math.max(x.lost / x.sent, 0)));
  if (!Number.isFinite(baseline)) return [];
  const tol = baseline + MARGIN;
  const pairTol = baseline + PAIR_MARGIN;
  const judged = (x: { sent: number; lost: number }, t: number, min: number) => x.sent >= min && exceeds(x.lost, x.sent, t);

  // Zones.
  const zoned = pairs.filter((p) => p.sourceZone !== '' && p.destinationZone !== '');
  const zp = new Map([...group(zoned, (p) => `${p.sourceZone}\u0000${p.destinationZone}`)].map(([k, ps]) => [k, pool(ps)]));
  const zlossy = (a: string, b: string) => {
    const x = zp.get(`${a}\u0000${b}`);
    return x !== undefined && judged(x, tol, MIN_PROBES);
  };
  const zones = [...new Set(zoned.flatMap((p) => [p.sourceZone, p.destinationZone]))];
  const out: EvidenceVerdict[] = [];
  const lossyZones = new Set<string>();
  for (const z of zones) {
    if (zlossy(z, z)) continue;
    let peers = 0;
    let bad = 0;
    for (const y of zones) {
      if (y === z || !zp.has(`${z}\u0000${y}`) || !zp.has(`${y}\u0000${z}`)) continue;
      peers++;
      if (zlossy(z, y) && zlossy(y, z)) bad++;
    }
    if (peers >= 2 && bad / peers > 0.5) {
      lossyZones.add(z);
      if (!hard.zones.has(z)) out.push({ kind: 'zone_uplink_lossy', subject: z, value: bad / peers });
    }
  }
  const explainedBy = new Set([...lossyZones, ...hard.zones]);
  const kept = pairs.filter((p) => !(p.sourceZone !== '' && p.destinationZone !== '' && p.sourceZone !== p.destinationZone && (explainedBy.has(p.sourceZone) || explainedBy.has(p.destinationZone))));

  // Pass 1: suspects on every kept pair; a destination without the sources the 5 % rules blame,
  // a source without the destinations they blame.
  const byDest = group(kept.filter((p) => !hard.nodes.has(p.source)), (p) => p.destination);
  const bySource = group(kept.filter((p) => !hard.nodes.has(p.destination)), (p) => p.source);
  const suspectDest = new Set([...byDest].filter(([, ps]) => judged(pool(ps), tol, MIN_PROBES)).map(([d]) => d));
  const suspectSource = new Set([...bySource].filter(([, ps]) => judged(pool(ps), tol, MIN_PROBES)).map(([s]) => s));

  // Pass 2 pools: a destination without the suspect sources, a source without the suspect destinations.
  const cleanDest = (ps: readonly PairCounts[]) => ps.filter((p) => !suspectSource.has(p.source));
  const cleanSource = (ps: readonly PairCounts[]) => ps.filter((p) => !suspectDest.has(p.destination));

  // Flaps: most probers saw outages, or the pooled loss is proven and comes in bursts.
  const flapping = new Map<string, number>();
  for (const [d, ps] of byDest) {
    const n = pool(ps).peers;
    const c = pool(cleanDest(ps));
    if (n < MIN_PEERS || !(c.sent > 0)) continue;
    const outageShare = ps.filter((p) => p.outages >= FLAP_OUTAGES).length / n;
    let evaluated = 0;
    let bursting = 0;
    for (let i = 0; i < (ps[0]?.burstSent.length ?? 0); i++) {
      const sent = ps.reduce((t, p) => t + (p.burstSent[i] ?? 0), 0);
      if (!(sent > 0)) continue;
      evaluated++;
      if (Math.max(ps.reduce((t, p) => t + (p.burstLost[i] ?? 0), 0) / sent, 0) > BURST_LOSS) bursting++;
    }
    const bursts = evaluated > 0 && bursting / evaluated >= FLAP_BURST_SHARE && exceeds(c.lost, c.sent, tol);
    if (outageShare > FLAP_SHARE || bursts) flapping.set(d, Math.min(c.lost / c.sent, 1));
  }

  // Pass 2 verdicts.
  const fastOver = (ps: readonly PairCounts[]) => {
    const s = ps.reduce((t, p) => t + p.fastSent, 0);
    return s > 0 ? Math.max(ps.reduce((t, p) => t + p.fastLost, 0) / s, 0) : undefined;
  };
  const verdict = (all: readonly PairCounts[], clean: readonly PairCounts[]) => {
    const c = pool(clean);
    const fast = fastOver(all);
    if (pool(all).peers < MIN_PEERS || fast === undefined || !(fast > tol) || !judged(c, tol, MIN_PROBES)) return undefined;
    return Math.min(c.lost / c.sent, 1);
  };
  const suspected = new Map<string, EvidenceVerdict>();
  for (const [d, loss] of flapping) suspected.set(d, { kind: 'node_flapping', subject: d, value: loss });
  for (const [d, ps] of byDest) {
    if (flapping.has(d)) continue;
    const v = verdict(ps, cleanDest(ps));
    if (v !== undefined) suspected.set(d, { kind: 'node_drizzling', subject: d, value: v });
  }
  for (const [s, ps] of bySource) {
    if (suspected.has(s)) continue;
    const v = verdict(ps, cleanSource(ps));
    if (v !== undefined) suspected.set(s, { kind: 'source_drizzling', subject: s, value: v });
  }
  for (const [n, v] of suspected) if (!hard.nodes.has(n)) out.push(v);

  // Pairs.
  const named = new Set([...hard.nodes, ...[...suspected.keys()].filter((n) => !hard.nodes.has(n))]);
  // Links: a pair pooled with its reverse where that is probed too.
  const byName = new Map(kept.map((p) => [`${p.source} -> ${p.destination}`, p]));
  for (const p of kept) {
    const name = `${p.source} -> ${p.destination}`;
    if (named.has(p.source) || named.has(p.destination) || hard.pairs.has(name) || hard.pairs.has(`${p.destination} -> ${p.source}`)) continue;
    const r = byName.get(`${p.destination} -> ${p.source}`);
    const link = { sent: p.sent + (r?.sent ?? 0), lost: p.lost + (r?.lost ?? 0) };
    const fastSent = p.fastSent + (r?.fastSent ?? 0);
    const fastLost = p.fastLost + (r?.fastLost ?? 0);
    if (!(fastSent > 0 && fastLost / fastSent > pairTol) || !judged(link, pairTol, MIN_PAIR_PROBES)) continue;
    out.push({ kind: 'link_drizzling', subject: name, value: link.lost / link.sent });
  }
  return out;
}

/**
 * Both rule files together, as Prometheus runs them: the 5 % verdicts on the fast window
 * (each pair's loss and ongoing outage), then the evidence verdicts; a 5 % pair alert whose end
 * the evidence suspects is left out (the node is named instead).
 */
export function localiseAll(hardPairs: readonly PairLoss[], counts: readonly PairCounts[]): (Verdict | EvidenceVerdict)[] {
  const hard = localise(hardPairs);
  const hv: HardVerdicts = {
    nodes: new Set(hard.filter((v) => v.kind !== 'zone_uplink' && v.kind !== 'pair_lossy').map((v) => v.subject)),
    zones: new Set(hard.filter((v) => v.kind === 'zone_uplink').map((v) => v.subject)),
    pairs: new Set(hard.filter((v) => v.kind === 'pair_lossy').map((v) => v.subject)),
  };
  const ev = localiseEvidence(counts, hv);
  const suspected = new Set(ev.filter((v) => v.kind !== 'zone_uplink_lossy' && v.kind !== 'link_drizzling').map((v) => v.subject));
  // The evidence's zone verdict explains the pairs across that uplink for the 5 % pair alert too.
  const zones = new Set([...hv.zones, ...ev.filter((v) => v.kind === 'zone_uplink_lossy').map((v) => v.subject)]);
  const zoneOf = new Map(hardPairs.flatMap((p) => [[p.source, p.sourceZone] as const, [p.destination, p.destinationZone] as const]));
  const acrossBlamedZone = (s: string, d: string) => {
    const a = zoneOf.get(s) ?? '';
    const b = zoneOf.get(d) ?? '';
    return a !== '' && b !== '' && a !== b && (zones.has(a) || zones.has(b));
  };
  const keptHard = hard.filter((v) => {
    if (v.kind !== 'pair_lossy') return true;
    const [s, d] = v.subject.split(' -> ') as [string, string];
    return !suspected.has(s) && !suspected.has(d) && !acrossBlamedZone(s, d);
  });
  return [...keptHard, ...ev];
}
