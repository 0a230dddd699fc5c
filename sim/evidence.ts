/**
 * Pooled, sample-size-aware localisation: the constants and the statistics shared by the
 * rule generator (sim/evidence-rules.ts, which writes
 * charts/kube-node-ping/files/rules/kube-node-ping-evidence.rules.yaml) and the simulator's
 * copy of the logic (sim/localise.ts, `localiseEvidence`). docs/alerts.md explains the choice.
 *
 * The test: a count of lost probes k out of n is judged against a tolerated loss t with the
 * one-sided score test k − n·t > z·√(n·t·(1−t)). It is the same as "the Wilson lower bound of
 * k/n at z is above t", written without the square root of the observed ratio, so that PromQL
 * and TypeScript compute it alike; the Wilson interval itself is recorded for the alert text
 * and the dashboards.
 */

/** z of the one-sided test (about 3·10⁻⁵ per judgement on a healthy entity). */
export const Z = 4;
/** Tolerated loss above the cluster's baseline for a node (as destination or source) and a zone pair. */
export const MARGIN = 0.003;
/**
 * Tolerated loss above the baseline for one link (both directions pooled where both are probed;
 * a few pairs at a steady 0.5 % are normal).
 */
export const PAIR_MARGIN = 0.005;
/** Probes a node, source or zone pair needs in the slow window before it is judged. */
export const MIN_PROBES = 1000;
/**
 * Probes a link needs in the slow window before it is judged: more than one direction sends in
 * 15 minutes at 1 Hz, so a link probed one way only is judged on a longer slow window (or a
 * faster probe period); one direction over 15 minutes cannot tell 1 % each way from a pair at
 * a steady 0.5 %.
 */
export const MIN_PAIR_PROBES = 1500;
/** Probers (or destinations) a node needs before it is judged. */
export const MIN_PEERS = 3;
/** Outages one prober must see in the slow window to count as seeing the node flap. */
export const FLAP_OUTAGES = 2;
/** Share of the probers that must see the node flap (more than this). */
export const FLAP_SHARE = 0.5;

/** A destination "bursts" at an evaluation when its pooled loss over the burst window is above this. */
export const BURST_LOSS = 0.05;
/** Flapping from bursts: at least this share of the slow window's evaluations burst. */
export const FLAP_BURST_SHARE = 0.2;

/**
 * The production windows; the chart replaces them from prometheusRule.windows. The burst
 * window must span at least two scrapes (rate() needs two samples).
 */
export const WINDOWS = { fast: '5m', slow: '15m', burst: '2m', for: '1m' } as const;

/** One-sided score test: k lost of n is more than the tolerated loss t explains. */
export function exceeds(k: number, n: number, t: number, z = Z): boolean {
  return k - n * t > z * Math.sqrt(n * t * (1 - t));
}

/** Wilson interval of k/n at z (two-sided bounds at the same z as the test). */
export function wilson(k: number, n: number, z = Z): { lower: number; upper: number } {
  const p = Math.min(Math.max(k / n, 0), 1);
  const z2 = z * z;
  const centre = p + z2 / (2 * n);
  const half = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { lower: (centre - half) / (1 + z2 / n), upper: (centre + half) / (1 + z2 / n) };
}

/** The median, as PromQL's quantile(0.5, …) computes it (linear between the two middle values). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const r = 0.5 * (s.length - 1);
  const lo = Math.floor(r);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (r - lo);
}
