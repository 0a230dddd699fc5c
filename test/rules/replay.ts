/**
 * The counts the evidence rules read from a scenario at minute t, computed as Prometheus
 * computes increase() over the synthetic series (samples every minute, left-open ranges,
 * extrapolation to the range's edges and the counter's zero), so that sim/localise.ts can be
 * replayed on exactly what promtool sees.
 */
import { WINDOWS } from '../../sim/evidence.ts';
import type { PairCounts } from '../../sim/localise.ts';
import { PROBES_PER_MINUTE, outagesStarted, pairsOf, type Scenario } from './scenarios.ts';

const minutes = (d: string) => {
  const m = /^(\d+)m$/.exec(d);
  if (!m) throw new Error(`window ${d}: only whole minutes are replayed`);
  return Number(m[1]);
};

/** Prometheus's extrapolated increase of a counter sampled at whole minutes (value per minute, undefined = no sample). */
export function increase(values: readonly (number | undefined)[], t: number, window: number): number | undefined {
  const pts: [number, number][] = [];
  for (let m = Math.max(0, t - window + 1); m <= t; m++) if (values[m] !== undefined) pts.push([m, values[m]!]);
  if (pts.length < 2) return undefined;
  const [firstT, firstV] = pts[0]!;
  const [lastT, lastV] = pts[pts.length - 1]!;
  const result = lastV - firstV;
  const sampled = (lastT - firstT) * 60;
  let toStart = (firstT - (t - window)) * 60;
  let toEnd = (t - lastT) * 60;
  const avg = sampled / (pts.length - 1);
  const threshold = avg * 1.1;
  if (toStart >= threshold) toStart = avg / 2;
  if (result > 0 && firstV >= 0) {
    const toZero = sampled * (firstV / result);
    if (toZero < toStart) toStart = toZero;
  }
  if (toEnd >= threshold) toEnd = avg / 2;
  return result * ((sampled + toStart + toEnd) / sampled);
}

export function countsAt(s: Scenario, t: number): PairCounts[] {
  const slow = minutes(WINDOWS.slow);
  const fast = minutes(WINDOWS.fast);
  const burst = minutes(WINDOWS.burst);
  const out: PairCounts[] = [];
  for (const { src, dst, kind } of pairsOf(s)) {
    if (kind !== 'node') continue;
    const agent = s.agents?.[src];
    const present = (m: number) => agent?.goneAt === undefined || m < agent.goneAt;
    const loss = (m: number) => s.loss?.(src, dst, m) ?? 0;
    const cumulative = (inc: (m: number) => number) => {
      let total = 0;
      return Array.from({ length: s.minutes + 1 }, (_, m) => {
        if (m > 0) total += inc(m);
        return present(m) ? total : undefined;
      });
    };
    const sent = cumulative(() => PROBES_PER_MINUTE);
    const received = cumulative((m) => Math.round(PROBES_PER_MINUTE * (1 - loss(m))));
    const outages = cumulative((m) => outagesStarted(s, src, dst, m));
    const S = increase(sent, t, slow);
    if (S === undefined) continue;
    const lostOver = (w: number, at: number) => {
      const a = increase(sent, at, w);
      const b = increase(received, at, w);
      return a === undefined || b === undefined ? undefined : { sent: a, lost: a - b };
    };
    const evals = Array.from({ length: slow }, (_, i) => t - slow + 1 + i).filter((e) => e >= 0);
    const bursts = evals.map((e) => lostOver(burst, e));
    const f = lostOver(fast, t);
    out.push({
      source: src,
      sourceZone: s.zones?.[src] ?? '',
      destination: dst,
      destinationZone: s.zones?.[dst] ?? '',
      sent: S,
      lost: lostOver(slow, t)!.lost,
      outages: increase(outages, t, slow) ?? 0,
      fastSent: f?.sent ?? 0,
      fastLost: f?.lost ?? 0,
      burstSent: bursts.map((b) => b?.sent ?? 0),
      burstLost: bursts.map((b) => b?.lost ?? 0),
    });
  }
  return out;
}
