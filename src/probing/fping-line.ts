/**
 * Parser for the per-packet lines of `fping -l` (5.x), e.g.
 *
 *   10.200.0.2 : [1], 64 bytes, 6.07 ms (6.07 avg, 50% loss)
 *   10.200.0.2 : [0], timed out (NaN avg, 100% loss)
 *   ::1        : [3], 64 bytes, 0.033 ms (0.067 avg, 0% loss)
 *   [1795637400.26671] 10.200.0.2 : [1], ...            (with -D)
 *
 * It runs once per probe, so it scans with indexOf and writes into a caller-owned result
 * object: no regex, no array, no object per line.
 */
export const RESULT_NONE = 0;
export const RESULT_REPLY = 1;
export const RESULT_LOSS = 2;
export const RESULT_DUPLICATE = 3;

export type ResultKind = typeof RESULT_NONE | typeof RESULT_REPLY | typeof RESULT_LOSS | typeof RESULT_DUPLICATE;

export interface ParsedLine {
  kind: ResultKind;
  address: string;
  seq: number;
  /** Milliseconds; NaN unless kind is REPLY or DUPLICATE. */
  rttMs: number;
}

export function newParsedLine(): ParsedLine {
  return { kind: RESULT_NONE, address: '', seq: -1, rttMs: NaN };
}

/** Fills `out` from `line`; returns false (and kind NONE) for a line that is not a per-packet result. */
export function parseFpingLine(line: string, out: ParsedLine): boolean {
  out.kind = RESULT_NONE;
  out.rttMs = NaN;
  let start = 0;
  if (line.charCodeAt(0) === 91 /* [ */) {
    const close = line.indexOf('] ');
    if (close < 0) return false;
    start = close + 2;
  }
  const space = line.indexOf(' ', start);
  if (space <= start) return false;
  const colon = line.indexOf(': ', space);
  if (colon < 0) return false;
  let p = colon + 2;
  let duplicate = false;
  if (line.startsWith('duplicate for [', p)) {
    duplicate = true;
    p += 15;
  } else if (line.charCodeAt(p) === 91 /* [ */) {
    p += 1;
  } else {
    return false;
  }
  const bracket = line.indexOf(']', p);
  if (bracket <= p) return false;
  const seq = parseUint(line, p, bracket);
  if (seq < 0) return false;
  p = bracket + 1;
  if (line.charCodeAt(p) !== 44 /* , */ || line.charCodeAt(p + 1) !== 32) return false;
  p += 2;
  if (line.startsWith('timed out', p)) {
    if (duplicate) return false;
    out.kind = RESULT_LOSS;
  } else {
    const bytes = line.indexOf(' bytes, ', p);
    if (bytes < 0) return false;
    const msStart = bytes + 8;
    const msEnd = line.indexOf(' ms', msStart);
    if (msEnd < 0) return false;
    const rtt = parseDecimal(line, msStart, msEnd);
    if (!(rtt >= 0)) return false;
    out.rttMs = rtt;
    out.kind = duplicate ? RESULT_DUPLICATE : RESULT_REPLY;
  }
  out.address = line.slice(start, space);
  out.seq = seq;
  return true;
}

/** At most this many digits: any more could not be read exactly (2^53) and is no fping output. */
const MAX_DIGITS = 15;

function parseUint(s: string, from: number, to: number): number {
  if (to - from > MAX_DIGITS) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** Digits with at most one dot; NaN otherwise. Exact enough for fping's 3 decimals. */
function parseDecimal(s: string, from: number, to: number): number {
  if (to - from > MAX_DIGITS + 1) return NaN;
  let int = 0;
  let frac = 0;
  let scale = 1;
  let seenDot = false;
  let digits = 0;
  for (let i = from; i < to; i++) {
    const ch = s.charCodeAt(i);
    if (ch === 46 /* . */) {
      if (seenDot) return NaN;
      seenDot = true;
      continue;
    }
    const c = ch - 48;
    if (c < 0 || c > 9) return NaN;
    digits++;
    if (seenDot) {
      frac = frac * 10 + c;
      scale *= 10;
    } else {
      int = int * 10 + c;
    }
  }
  return digits === 0 ? NaN : int + frac / scale;
}
