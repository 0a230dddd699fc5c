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
 */
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
