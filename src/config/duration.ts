const UNITS_MS: Record<string, number> = { us: 0.001, 'µs': 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses `500ms`, `1s`, `1.5s`, `2m`, `50us` into milliseconds; `undefined` if it is none of
 * those. A bare number is rejected so that `--period 1` cannot mean a millisecond by surprise.
 */
export function parseDuration(raw: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)\s*$/.exec(raw);
  if (!m) return undefined;
  const ms = Number(m[1]) * UNITS_MS[m[2]!]!;
  return Number.isFinite(ms) ? ms : undefined;
}

/** The shortest exact spelling of a duration in milliseconds, for messages and --help. */
export function formatDuration(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  if (ms < 1) return `${Math.round(ms * 1000)}us`;
  return `${ms}ms`;
}
