import type { Logger } from '../log.ts';
import type { Target } from '../targets/target.ts';
import { FifoMaker } from './fifo.ts';
import { FpingProcess, maxTargetsForPeriod, spawnFping, type FpingSettings, type ProcessEvents, type ResultSink, type Spawner } from './fping-process.ts';

export interface ProberOptions {
  settings: FpingSettings;
  /** A ceiling on targets per fping process, below what one process keeps at the period; 0: none. */
  maxTargetsPerProcess: number;
  sink: ResultSink;
  events: ProcessEvents;
  log: Logger;
  spawner?: Spawner;
  /** Read fping's output through FIFOs drained on a timer (default) instead of pipes read per line. */
  fifo?: boolean;
  /** Merge timing (defaults MERGE_QUIET_MS, MERGE_MAX_DELAY_MS); tests shorten them. */
  mergeQuietMs?: number;
  mergeMaxDelayMs?: number;
}

/** A merge waits for this long without a target change... */
export const MERGE_QUIET_MS = 30_000;
/** ...but no longer than this after the set began to drift from the main process's. */
export const MERGE_MAX_DELAY_MS = 300_000;
/** Departures alone are merged at a quiet moment once they are this share of the main process. */
const DEPARTED_SHARE_FOR_MERGE = 0.1;

/** fping processes switched into counting, and out of it, together. */
class Group {
  readonly procs: FpingProcess[];
  readonly addresses: ReadonlySet<string>;

  constructor(procs: FpingProcess[], addresses: readonly string[]) {
    this.procs = procs;
    this.addresses = new Set(addresses);
  }
}

interface Handover {
  group: Group;
  /** 'recent': the new group takes over the recent additions; 'all': every target (a merge). */
  replaces: 'recent' | 'all';
  timer: NodeJS.Timeout;
}

/**
 * Runs as few fping processes as can keep the period: one for every target, while they fit in
 * one (maxTargetsForPeriod: 5,000 at 1 s), because every raw ICMP socket on a host receives a
 * copy of every ICMP packet: P processes parse P copies of every reply. The 20 shards of 256
 * that this replaced cost 3.7–4.6× one process at 5,000 targets (bench/README.md).
 *
 * fping's target list is fixed for the life of a process, so churn is handled without
 * touching the main process:
 * - a node that joins goes to a small second process for recent additions, itself replaced
 *   (make-before-break) when another joins; the main process and its targets are not paused;
 * - a node that leaves stays in its process, and its results are dropped (TargetMetrics no
 *   longer knows the address), until the next merge;
 * - a merge starts one new process for the whole set and hands over to it: after a quiet
 *   moment (MERGE_QUIET_MS without a change) while recent additions exist or departures pile
 *   up, at the latest MERGE_MAX_DELAY_MS after the drift began, and at once if the recent
 *   additions outgrow one process. The second process doubles the copies of every reply while
 *   it lives, which is why it is merged within the minute, and why a single departure alone
 *   (one wasted probe per period) does not hurry a merge.
 *
 * Handover, make-before-break: the new processes start with counting off (their results are
 * read and dropped) while the old ones keep counting; at the first result of the last of them
 * (or after a deadline) counting switches to the new processes at once, the old ones are
 * drained and stopped, and whatever they print after that is dropped. So no target is ever
 * counted by two processes at the same time, and no verdict is counted twice. Probes in
 * flight in the stopped process get no verdict and are counted neither sent nor lost, so a
 * handover never shows up as loss; a target misses at most about one probe in it. Its
 * counters live in TargetMetrics and are never reset by a handover (sequence numbers restart
 * with each process: the epoch passed with every result keeps the duplicate check exact).
 */
export class Prober {
  readonly #opts: ProberOptions;
  readonly #capacity: number;
  readonly #spawn: Spawner;
  readonly #fifos: FifoMaker | undefined;
  readonly #quietMs: number;
  readonly #maxDelayMs: number;
  #main: Group | undefined;
  #recent: Group | undefined;
  #handover: Handover | undefined;
  #wanted: ReadonlySet<string> = new Set();
  #driftSince = 0;
  #mergeTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Processes waiting for their turn to start, and whether a start is scheduled. */
  #pending: FpingProcess[] = [];
  #starting = false;

  constructor(opts: ProberOptions) {
    this.#opts = opts;
    const fits = maxTargetsForPeriod(opts.settings.periodMs, opts.settings.minIntervalMs);
    this.#capacity = opts.maxTargetsPerProcess > 0 ? Math.min(opts.maxTargetsPerProcess, fits) : fits;
    this.#spawn = opts.spawner ?? spawnFping;
    // Where FIFOs cannot be made (a read-only or full TMPDIR), fping's output is read from
    // pipes instead, at some CPU cost per line: say so once.
    this.#fifos = opts.fifo === false ? undefined : new FifoMaker(undefined, undefined, (reason) =>
      opts.log.warn('cannot make FIFOs for fping output; reading it from pipes instead (more CPU per probe)', { reason }));
    this.#quietMs = opts.mergeQuietMs ?? MERGE_QUIET_MS;
    this.#maxDelayMs = opts.mergeMaxDelayMs ?? MERGE_MAX_DELAY_MS;
  }

  /** Targets one process is given at most. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Number of fping processes currently alive, those of a handover under way included. */
  get processes(): number {
    let n = 0;
    for (const g of [this.#main, this.#recent, this.#handover?.group]) for (const p of g?.procs ?? []) if (p.running) n++;
    return n;
  }

  /** The address lists of the processes, for tests and diagnostics. */
  get layout(): { main: string[][]; recent: string[][]; handover: string[][] } {
    const of = (g: Group | undefined) => (g?.procs ?? []).map((p) => [...p.addresses]);
    return { main: of(this.#main), recent: of(this.#recent), handover: of(this.#handover?.group) };
  }

  /** Reads every counting process's output now (before TargetMetrics.sweep judges what is overdue). */
  drain(): void {
    for (const g of [this.#main, this.#recent]) for (const p of g?.procs ?? []) p.drain();
  }

  /** Applies a new target set (see the class comment). Returns how many processes it started. */
  setTargets(targets: readonly Target[]): number {
    if (this.#stopped) return 0;
    const wanted = [...new Set(targets.map((t) => t.address))];
    this.#wanted = new Set(wanted);
    // A handover under way was computed for the previous set; its processes never counted.
    this.#abortHandover();
    if (wanted.length === 0) {
      this.#stopGroup(this.#main);
      this.#stopGroup(this.#recent);
      this.#main = this.#recent = undefined;
      this.#scheduleMerge();
      this.#opts.log.info('fping processes updated', { targets: 0, processes: 0 });
      return 0;
    }
    const main = this.#main;
    if (main === undefined) {
      // Nothing counts yet: no handover to make.
      this.#main = this.#group(wanted, true);
      this.#opts.log.info('fping processes updated', { targets: wanted.length, processes: this.#main.procs.length, capacity: this.#capacity });
      return this.#main.procs.length;
    }
    const recent = this.#recent;
    const missing = wanted.filter((a) => !main.addresses.has(a) && !recent?.addresses.has(a));
    if (missing.length > 0) {
      const next = [...[...(recent?.addresses ?? [])].filter((a) => this.#wanted.has(a)), ...missing];
      if (next.length > this.#capacity) return this.#merge('recent additions outgrew one process');
      return this.#startHandover(next, 'recent');
    }
    // Departures only: their results are dropped until the next merge.
    if (recent && ![...recent.addresses].some((a) => this.#wanted.has(a))) {
      this.#stopGroup(recent);
      this.#recent = undefined;
    }
    this.#scheduleMerge();
    return 0;
  }

  #merge(reason: string): number {
    this.#opts.log.info('merging fping processes', { reason, targets: this.#wanted.size });
    return this.#startHandover([...this.#wanted], 'all');
  }

  #startHandover(addresses: readonly string[], replaces: Handover['replaces']): number {
    const group = this.#group(addresses, false);
    let waiting = group.procs.length;
    for (const p of group.procs) p.onFirstResult = () => (--waiting === 0 ? this.#switchTo(group) : undefined);
    // Every process prints its first verdict within the timeout of starting (its first target
    // is probed at once); past this, switch anyway: a process that cannot run is restarted
    // with backoff by its own supervision, as any other.
    const deadline = this.#opts.settings.timeoutMs + 2000;
    const timer = setTimeout(() => this.#switchTo(group), deadline);
    this.#handover = { group, replaces, timer };
    this.#scheduleMerge();
    return group.procs.length;
  }

  #switchTo(group: Group): void {
    const h = this.#handover;
    if (h === undefined || h.group !== group || this.#stopped) return;
    clearTimeout(h.timer);
    this.#handover = undefined;
    for (const p of group.procs) {
      p.counting = true;
      p.onFirstResult = undefined;
    }
    this.#stopGroup(this.#recent);
    if (h.replaces === 'all') {
      this.#stopGroup(this.#main);
      this.#main = group;
      this.#recent = undefined;
    } else {
      this.#recent = group;
    }
    this.#scheduleMerge();
    this.#opts.log.info('fping handover done', {
      replaced: h.replaces,
      targets: group.addresses.size,
      processes: this.#main!.procs.length + (this.#recent?.procs.length ?? 0),
    });
  }

  #abortHandover(): void {
    const h = this.#handover;
    if (h === undefined) return;
    clearTimeout(h.timer);
    this.#handover = undefined;
    this.#stopGroup(h.group);
  }

  /** Plans the next merge from how far the running processes have drifted from the wanted set. */
  #scheduleMerge(): void {
    clearTimeout(this.#mergeTimer);
    this.#mergeTimer = undefined;
    const main = this.#main;
    let departed = 0;
    for (const a of main?.addresses ?? []) if (!this.#wanted.has(a)) departed++;
    const drift = this.#recent !== undefined || this.#handover?.replaces === 'recent' || departed > 0;
    if (!drift || main === undefined || this.#handover?.replaces === 'all') {
      if (!drift) this.#driftSince = 0;
      return;
    }
    const now = Date.now();
    if (this.#driftSince === 0) this.#driftSince = now;
    const worthIt = this.#recent !== undefined || this.#handover !== undefined || departed >= DEPARTED_SHARE_FOR_MERGE * main.addresses.size;
    const at = Math.min(worthIt ? now + this.#quietMs : Infinity, this.#driftSince + this.#maxDelayMs);
    this.#mergeTimer = setTimeout(() => {
      this.#mergeTimer = undefined;
      if (this.#stopped || this.#handover?.replaces === 'all') return;
      this.#abortHandover();
      this.#driftSince = 0;
      this.#merge(worthIt ? 'quiet after a change' : 'drift older than the merge delay');
    }, Math.max(0, at - now));
    this.#mergeTimer.unref?.();
  }

  /** Starts processes for `addresses`, split evenly in as few as the capacity allows. */
  #group(addresses: readonly string[], counting: boolean): Group {
    const n = Math.ceil(addresses.length / this.#capacity);
    const per = Math.ceil(addresses.length / n);
    this.#fifos?.prepare(n);
    const procs: FpingProcess[] = [];
    for (let i = 0; i < addresses.length; i += per) {
      const proc = new FpingProcess(addresses.slice(i, i + per), this.#opts.settings, this.#opts.sink, this.#opts.events, this.#opts.log, this.#spawn, this.#fifos);
      proc.counting = counting;
      procs.push(proc);
      this.#start(proc);
    }
    return new Group(procs, addresses);
  }

  #stopGroup(g: Group | undefined): void {
    for (const p of g?.procs ?? []) void p.stop();
  }

  /**
   * Starts processes one per turn of the event loop: spawning is synchronous, a few ms each,
   * and many processes started in one go held the loop while the first ones' output waited.
   * The first starts at once.
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
    clearTimeout(this.#mergeTimer);
    const h = this.#handover;
    if (h) clearTimeout(h.timer);
    const all = [this.#main, this.#recent, h?.group].flatMap((g) => g?.procs ?? []);
    this.#main = this.#recent = this.#handover = undefined;
    await Promise.all(all.map((p) => p.stop()));
  }
}
