/** Which series names the agent exports, for checking the rules and the dashboards against them. */
import { METRIC } from '../../src/telemetry/names.ts';

const SUFFIXES = ['', '_total', '_seconds', '_seconds_total', '_seconds_bucket', '_seconds_sum', '_seconds_count'];

/** Whether the agent can put a series of this name into Prometheus (scraped or over OTLP). */
export function knownMetric(name: string): boolean {
  return Object.values(METRIC).some((m) => SUFFIXES.some((s) => name === m.replaceAll('.', '_') + s));
}

/** The raw kube_node_ping_* series an expression reads (recording-rule names have colons). */
export function rawMetrics(expr: string): string[] {
  return [...expr.matchAll(/\bkube_node_ping_[a-z0-9_]+(?![a-z0-9_:])/g)].map((m) => m[0]);
}

/** The recording rules an expression reads. */
export function recordedMetrics(expr: string): string[] {
  return [...expr.matchAll(/\bkube_node_ping_[a-z_]+:[a-z0-9_:]+/g)].map((m) => m[0]);
}
