import type { Logger } from '../log.ts';
import type { Target } from '../targets/target.ts';
import { FifoMaker } from './fifo.ts';
import { FpingProcess, maxTargetsForPeriod, spawnFping, type FpingSettings, type ProcessEvents, type ResultSink, type Spawner } from './fping-process.ts';

export interface ProberOptions {
  settings: FpingSettings;
  maxTargetsPerProcess: number;
  sink: ResultSink;
  events: ProcessEvents;
  log: Logger;
  spawner?: Spawner;
  /** Read fping's output through FIFOs drained on a timer (default) instead of pipes read per line. */
  fifo?: boolean;
}

/**
 * Spreads the targets over fping processes ("shards") of bounded size. fping's target list is
 * fixed for the life of a process, so a change in the target set restarts only the shards
 * whose membership changed: a node joining a 5,000-node cluster restarts one process of 256
 * targets, not the fleet. A new target goes to the emptiest shard with room; a departed
 * target's shard is restarted without it; an emptied shard is stopped.
 *
 * Accounting across a restart: a probe counts as sent only when fping reports its verdict
 * (reply or timeout). Probes still in flight when a process is stopped get no verdict and are
 * counted neither sent nor lost, so restarts never show up as packet loss.
 */
export class Prober {
  readonly #opts: ProberOptions;
  readonly #capacity: number;
  readonly #spawn: Spawner;
  readonly #fifos: FifoMaker | undefined;
  #shards: FpingProcess[] = [];
  #stopped = false;
  /** Processes waiting for their turn to start, and whether a start is scheduled. */
  #pending: FpingProcess[] = [];
  #starting = false;

  constructor(opts: ProberOptions) {
    this.#opts = opts;
    this.#capacity = Math.min(opts.maxTargetsPerProcess, maxTargetsForPeriod(opts.settings.periodMs));
    this.#spawn = opts.spawner ?? spawnFping;
    this.#fifos = opts.fifo === false ? undefined : new FifoMaker();
  }

  /** Number of fping processes currently alive. */
  get processes(): number {
    return this.#shards.reduce((n, s) => n + (s.running ? 1 : 0), 0);
  }

  get shardCount(): number {
    return this.#shards.length;
  }

  /** The address lists of the shards, for tests and diagnostics. */
  get layout(): string[][] {
    return this.#shards.map((s) => [...s.addresses]);
  }

  /** Applies a new target set, restarting only the shards it changes. Returns how many were (re)started. */
  setTargets(targets: readonly Target[]): number {
    if (this.#stopped) return 0;
    const wanted = new Set(targets.map((t) => t.address));
    const placed = new Set<string>();
    const plan: { addresses: string[]; changed: boolean; old?: FpingProcess }[] = [];
    for (const shard of this.#shards) {
      const keep = shard.addresses.filter((a) => wanted.has(a) && !placed.has(a));
      for (const a of keep) placed.add(a);
      plan.push({ addresses: keep, changed: keep.length !== shard.addresses.length, old: shard });
    }
    for (const t of targets) {
      if (placed.has(t.address)) continue;
      placed.add(t.address);
      let best: (typeof plan)[number] | undefined;
      for (const p of plan) {
        if (p.addresses.length < this.#capacity && (best === undefined || p.addresses.length < best.addresses.length)) best = p;
      }
      if (best === undefined) {
        best = { addresses: [], changed: true };
        plan.push(best);
      }
      best.addresses.push(t.address);
      best.changed = true;
    }

    const next: FpingProcess[] = [];
    let started = 0;
    this.#fifos?.prepare(plan.filter((p) => p.changed && p.addresses.length > 0).length);
    for (const p of plan) {
      if (!p.changed && p.old) {
        next.push(p.old);
        continue;
      }
      if (p.old) void p.old.stop();
      if (p.addresses.length === 0) continue;
      const proc = new FpingProcess(p.addresses, this.#opts.settings, this.#opts.sink, this.#opts.events, this.#opts.log, this.#spawn, this.#fifos);
      this.#start(proc);
      next.push(proc);
      started++;
    }
    this.#shards = next;
    if (started > 0) {
      this.#opts.log.info('fping processes updated', { targets: placed.size, processes: next.length, restarted: started });
    }
    return started;
  }

  /**
   * Starts processes one per turn of the event loop: spawning is synchronous, a few ms each,
   * and the 20 shards of 5,000 targets started in one go held the loop for about 80 ms while
   * the first shards' output waited. The first starts at once.
   */
  #start(proc: FpingProcess): void {
    this.#pending.push(proc);
    if (!this.#starting) {
      this.#starting = true;
      this.#startNext();
    }
  }

  readonly #startNext = (): void => {
    const proc = this.#pending.shift();
    if (proc === undefined) {
      this.#starting = false;
      return;
    }
    proc.start(); // a no-op for a process stopped while it waited
    setImmediate(this.#startNext);
  };

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#pending = [];
    await Promise.all(this.#shards.map((s) => s.stop()));
    this.#shards = [];
  }
}
