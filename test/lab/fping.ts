// Run real fping against lab addresses, always behind the lab's route guard.

import { execFile } from 'node:child_process';
import type { Host, Lab } from './lab.ts';

export interface FpingOptions {
  /** Probes per target (-C). */
  count: number;
  /** Per-target period (-p), ms. */
  periodMs: number;
  /** Gap between any two probes (-i), ms; fping's default is 10. */
  intervalMs?: number;
  /** Per-probe timeout (-t), ms. */
  timeoutMs?: number;
  /** Probe from this lab host instead of the root namespace. */
  from?: Host;
}

/** RTTs in ms per target, in probe order; null = lost. */
export type FpingResults = Map<string, (number | null)[]>;

export async function fping(lab: Lab, targets: readonly string[], opts: FpingOptions): Promise<FpingResults> {
  // Never send a packet that could leave the lab.
  await lab.assertRoutes(targets, opts.from);
  const args = ['-C', String(opts.count), '-p', String(opts.periodMs), '-q'];
  if (opts.intervalMs !== undefined) args.push('-i', String(opts.intervalMs));
  if (opts.timeoutMs !== undefined) args.push('-t', String(opts.timeoutMs));
  args.push(...targets);
  const [file, argv] = opts.from ? ['ip', ['netns', 'exec', opts.from.ns, 'fping', ...args]] : ['fping', args];
  const stderr = await new Promise<string>((resolve, reject) => {
    execFile(file, argv, { maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
      // Exit status 1 only means "some target did not answer".
      const code = (err as { code?: unknown } | null)?.code;
      if (err && code !== 1) reject(new Error(`fping failed (${String(code)}): ${stderr}`));
      else resolve(stderr);
    });
  });
  const out: FpingResults = new Map();
  for (const line of stderr.split('\n')) {
    const m = /^(\S+)\s+:\s+(.*)$/.exec(line.trim());
    if (!m || !targets.includes(m[1]!)) continue;
    out.set(m[1]!, m[2]!.trim().split(/\s+/).map((v) => (v === '-' ? null : Number(v))));
  }
  for (const t of targets) {
    const r = out.get(t);
    if (!r || r.length !== opts.count) throw new Error(`fping: no complete result for ${t}:\n${stderr}`);
  }
  return out;
}

export function replies(rtts: readonly (number | null)[]): number[] {
  return rtts.filter((v): v is number => v !== null);
}
