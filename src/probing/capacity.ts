import type { Logger } from '../log.ts';
import type { Target } from '../targets/target.ts';
import { maxTargetsForPeriod } from './fping-process.ts';

/**
 * Full fping processes one agent runs at most. Every raw ICMP socket on the host receives a
 * copy of every ICMP packet, so the cost per probe grows with the number of processes, and on
 * this project's 2 shared cores two processes of 5,000 targets at 1 s kept only 90-99.6 % of
 * the rate (bench/README.md), where one kept 99-100 %: the cap is one process's worth, 5,000
 * targets at 1 s. Beyond that, lengthen the period (the cap scales with it) or sample the mesh.
 */
export const AGENT_MAX_PROCESSES = 1;

/**
 * The most targets one agent probes at `periodMs`: AGENT_MAX_PROCESSES processes of what one
 * fping process keeps at that period (maxTargetsForPeriod). `minIntervalMs` is fping's floor on
 * its send gap for the agent's uid (fpingMinIntervalMs).
 */
export function agentTargetCapacity(periodMs: number, minIntervalMs = 0): number {
  return AGENT_MAX_PROCESSES * maxTargetsForPeriod(periodMs, minIntervalMs);
}

/**
 * Keeps the first `capacity` targets (nodes come first in the merged list) and says once per
 * distinct excess, in one line, why the rest are not probed.
 */
export class TargetCap {
  readonly #capacity: number;
  readonly #periodMs: number;
  readonly #log: Logger;
  #lastWarned = 0;

  constructor(capacity: number, periodMs: number, log: Logger) {
    this.#capacity = capacity;
    this.#periodMs = periodMs;
    this.#log = log;
  }

  apply(targets: readonly Target[]): readonly Target[] {
    if (targets.length <= this.#capacity) {
      this.#lastWarned = 0;
      return targets;
    }
    if (this.#lastWarned !== targets.length) {
      this.#lastWarned = targets.length;
      this.#log.warn(
        `${targets.length} targets exceed what one agent probes at a ${this.#periodMs} ms period (${this.#capacity}): probing the first ${this.#capacity}; lengthen --period, or narrow the targets (--node-selector, --mesh-mode sampled)`,
        { targets: targets.length, capacity: this.#capacity, period_ms: this.#periodMs },
      );
    }
    return targets.slice(0, this.#capacity);
  }
}
