import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../log.ts';
import { closeSync } from 'node:fs';
import { LineSplitter, type FifoMaker } from './fifo.ts';
import { newParsedLine, parseFpingLine, RESULT_DUPLICATE, RESULT_LOSS, RESULT_REPLY } from './fping-line.ts';

/** What a probe result is handed to. Called once per packet: keep it cheap. */
export interface ResultSink {
  /** `epoch` names the fping process run that `seq` belongs to; seqs restart with each run. */
  recordReply(address: string, seq: number, rttMs: number, epoch: number): void;
  recordLoss(address: string, seq: number, epoch: number): void;
  recordDuplicate(address: string): void;
}

let nextEpoch = 0;

export interface ProcessEvents {
  restart(reason: string): void;
  parseError(): void;
  /** fping could not get an ICMP socket: `message` is the one-line cause and fix ({@link icmpDeniedMessage}). */
  icmpDenied?(message: string): void;
  /** A run of fping reported its first result: whatever denied it before is over. */
  probing?(): void;
}

/** fping 5.1's own words when neither a raw nor a datagram ICMP socket opens (it exits 4). */
const SOCKET_REFUSED = /can't create (?:raw )?socket/;

/**
 * The one line that says why fping has no ICMP socket and how to fix it, or undefined when the
 * failure is something else. Two forms: the kernel refusing to exec fping (spawn EPERM: its
 * file capability asks for CAP_NET_RAW and the bounding set lacks it), and fping running
 * without the capability and saying so on stderr (NET_RAW dropped for root, or the file
 * capability made inert by no_new_privs, i.e. allowPrivilegeEscalation: false).
 */
export function icmpDeniedMessage(err: NodeJS.ErrnoException | undefined, stderr: readonly string[], gid: number): string | undefined {
  let cause: string;
  if (err?.code === 'EPERM') {
    cause = ': the kernel refused to exec it (EPERM), as its file capability asks for CAP_NET_RAW and the container does not hold that';
  } else {
    const line = stderr.find((l) => SOCKET_REFUSED.test(l));
    if (line === undefined) return undefined;
    cause = ` (${JSON.stringify(line.slice(line.indexOf("can't")))}): it holds no CAP_NET_RAW, because the container lacks it or no_new_privs (allowPrivilegeEscalation: false) made fping's file capability inert`;
  }
  return `fping cannot open an ICMP socket${cause}. Fix: uid 65532 with CAP_NET_RAW in the bounding set, fping's file capability and allowPrivilegeEscalation: true (chart securityMode nonRoot), or uid 0 holding NET_RAW (securityMode root); fping 5.2 or later could also use unprivileged ICMP with a net.ipv4.ping_group_range covering gid ${gid}`;
}

/** Starts fping with its stdout on `stdout` (a pipe, or the write end of our FIFO) and stderr piped. */
export type Spawner = (cmd: string, args: readonly string[], stdout: 'pipe' | number) => ChildProcess;

/** The real thing. */
export const spawnFping: Spawner = (cmd, args, stdout) => spawn(cmd, args, { stdio: ['ignore', stdout, 'pipe'] });

/**
 * The FIFO is drained every DRAIN_MAX_INTERVAL_MS, or more often for a busy process, so that a
 * drain finds at most DRAIN_TARGET_BYTES: fping blocks on a full pipe (64 KiB) and, blocked,
 * falls behind its schedule for good. One process of 5,000 targets writes about 350 KB/s; at
 * a drain every 100 ms a late timer under load let it fill, and that process kept 76 % of
 * the rate where fping alone, read at once, kept 100 % (bench/README.md). 8 KiB leaves the
 * event loop 160 ms of lateness at that rate before fping waits.
 */
const DRAIN_MAX_INTERVAL_MS = 100;
const DRAIN_MIN_INTERVAL_MS = 10;
const DRAIN_TARGET_BYTES = 8 * 1024;
/** A per-packet line with an IPv4 address is about 60 bytes, with IPv6 up to about 90. */
const LINE_BYTES = 80;

export function drainIntervalMs(targets: number, periodMs: number): number {
  const bytesPerMs = (LINE_BYTES * targets) / periodMs;
  return Math.max(DRAIN_MIN_INTERVAL_MS, Math.min(DRAIN_MAX_INTERVAL_MS, Math.floor(DRAIN_TARGET_BYTES / bytesPerMs)));
}
/** Shared by every process: drains run one at a time on the event loop. */
const DRAIN_BUFFER = Buffer.allocUnsafe(64 * 1024);

export interface FpingSettings {
  fpingPath: string;
  periodMs: number;
  timeoutMs: number;
  packetSize: number;
  /**
   * The smallest `-i` this fping accepts from the uid the agent runs as: 0 for Debian's build
   * (any uid), 1 ms for a build with FPING_SAFE_LIMITS run by a non-root uid
   * (see fpingMinIntervalMs in fping-check.ts).
   */
  minIntervalMs?: number;
}

/**
 * fping's send gap `-i` (the gap between any two sends of one process, all targets together)
 * is set to this share of period / targets. fping schedules every target of a process at the
 * same instant and then sends one packet per turn of its loop, at least `-i` apart, sleeping in
 * select() between two sends, so a round of N targets takes N × (gap + the time fping takes to
 * wake up and send), and the second term is not small on a loaded machine. It never catches
 * up: a round that takes longer than the period lowers the rate for good. Measured here with
 * bench/fping-capacity.ts on 2 shared cores: under a load of 8, a share of 0.8 kept 84 % of
 * the rate at 1,000 targets and 70 % at 5,000; under a load of 16-28, 0.5 kept 79 % at 5,000,
 * while 0.25 (and 0.1) kept 100 % at 1,000 and 5,000. A round then takes a quarter of the
 * period: 5,000 targets at 1 s are sent at 20,000 packets/s for 250 ms, about 13 Mbit/s.
 */
export const SEND_GAP_FILL = 0.25;

/**
 * The most probes per second one fping process is given. fping 5.1 gives every packet a
 * sequence id out of 65,536 and holds each for 10 s (its seqmap): above 6,553 probes/s it
 * runs out and exits ("not enough sequence numbers available!", exit 4), which it did here at
 * 10,000 targets at 1 Hz. 5,000/s leaves a quarter of the ids for the catch-up after a stall,
 * when fping sends its backlog at up to 1 / gap.
 */
export const PROCESS_MAX_PROBES_PER_SECOND = 5000;

/**
 * fping's arguments for one process. `-i` is set from the target count so that every target
 * really gets one probe per period (fping's 10 ms default caps a process at 100 probes/s and
 * silently stretches the period beyond that): SEND_GAP_FILL × period / targets, at most the
 * default, at least what this fping accepts, in whole microseconds (fping's resolution is ns).
 */
export function fpingArgs(s: FpingSettings, addresses: readonly string[]): string[] {
  const ideal = (SEND_GAP_FILL * s.periodMs) / Math.max(1, addresses.length);
  const interval = Math.max(s.minIntervalMs ?? 0, 0.001, Math.min(10, Math.floor(ideal * 1000) / 1000));
  return [
    '-l',
    '-p', String(s.periodMs),
    '-t', String(s.timeoutMs),
    '-i', String(interval),
    '-b', String(s.packetSize),
    ...addresses,
  ];
}

/**
 * How many targets one process keeps at one probe per period: PROCESS_MAX_PROBES_PER_SECOND,
 * and, where fping has a floor on `-i`, no more than the gap allows.
 */
export function maxTargetsForPeriod(periodMs: number, minIntervalMs = 0): number {
  const bySeqIds = Math.floor((PROCESS_MAX_PROBES_PER_SECOND * periodMs) / 1000);
  const byGap = minIntervalMs > 0 ? Math.floor((SEND_GAP_FILL * periodMs) / minIntervalMs) : Infinity;
  return Math.max(1, Math.min(bySeqIds, byGap));
}

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A process that ran this long was healthy: the next failure starts the backoff again. */
const HEALTHY_AFTER_MS = 60_000;

/**
 * One long-lived `fping -l` over a fixed list of addresses, restarted with backoff and jitter
 * when it dies. Its stdout is split into lines by hand and each line parsed in place.
 */
export class FpingProcess {
  readonly addresses: readonly string[];
  readonly #settings: FpingSettings;
  readonly #sink: ResultSink;
  readonly #events: ProcessEvents;
  readonly #log: Logger;
  readonly #spawn: Spawner;
  #child: ChildProcess | undefined;
  #stopped = false;
  #failures = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #startedAt = 0;
  #stderrTail: string[] = [];
  #exited: Promise<void> = Promise.resolve();
  /** Reads what the FIFO holds now (a no-op for a pipe, whose data arrives by itself). */
  #drainNow: () => void = () => {};

  readonly #fifos: FifoMaker | undefined;

  /**
   * False while this process is the new side of a make-before-break handover (see Prober):
   * its output is read and dropped, so that no target is counted by two processes at once.
   */
  counting = true;
  /** Called once, on the first result line of a process that is not counting yet. */
  onFirstResult: (() => void) | undefined;

  /** `fifos`: where fping's output FIFO comes from; undefined reads its stdout as a plain pipe. */
  constructor(addresses: readonly string[], settings: FpingSettings, sink: ResultSink, events: ProcessEvents, log: Logger, spawner: Spawner, fifos?: FifoMaker) {
    this.#fifos = fifos;
    this.addresses = addresses;
    this.#settings = settings;
    this.#sink = sink;
    this.#events = events;
    this.#log = log;
    this.#spawn = spawner;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  start(): void {
    if (this.#stopped) return;
    const args = fpingArgs(this.#settings, this.addresses);
    const made = this.#fifos?.take();
    let child: ChildProcess;
    try {
      child = this.#spawn(this.#settings.fpingPath, args, made ? made.writeFd : 'pipe');
    } catch (err) {
      // Some exec failures (EPERM: a file capability the bounding set forbids) throw here
      // instead of arriving as an 'error' event: the same restart with backoff.
      made?.fifo.close();
      this.#child = undefined;
      this.#startedAt = Date.now();
      this.#fail(null, null, err as NodeJS.ErrnoException);
      return;
    } finally {
      // The child holds its own copy of the write end; ours would keep EOF from ever coming.
      if (made) closeSync(made.writeFd);
    }
    this.#child = child;
    this.#startedAt = Date.now();
    this.#stderrTail = [];
    let done!: () => void;
    this.#exited = new Promise((r) => (done = r));
    this.#log.debug('fping started', { pid: child.pid, targets: this.addresses.length, interval_ms: args[6], fifo: made !== undefined });

    const parsed = newParsedLine();
    const sink = this.#sink;
    const epoch = nextEpoch++;
    let probing = false;
    const onLine = (line: string) => {
      if (parseFpingLine(line, parsed)) {
        if (!probing) {
          probing = true;
          this.#events.probing?.();
        }
        if (!this.counting) {
          const first = this.onFirstResult;
          this.onFirstResult = undefined;
          first?.(); // may switch counting on, and then this result counts
          if (!this.counting) return;
        }
        if (parsed.kind === RESULT_REPLY) sink.recordReply(parsed.address, parsed.seq, parsed.rttMs, epoch);
        else if (parsed.kind === RESULT_LOSS) sink.recordLoss(parsed.address, parsed.seq, epoch);
        else if (parsed.kind === RESULT_DUPLICATE) sink.recordDuplicate(parsed.address);
      } else if (line.length > 0) {
        this.#events.parseError();
        this.#log.debug('unparsed fping line', { line });
      }
    };
    const lines = new LineSplitter();
    const onChunk = (chunk: string) => lines.push(chunk, onLine);
    let finish = () => {};
    if (made) {
      const fifo = made.fifo;
      const drain = () => {
        try {
          fifo.drain(DRAIN_BUFFER, onChunk);
        } catch (err) {
          this.#log.warn('reading fping output failed', { error: (err as Error).message });
        }
      };
      const timer = setInterval(drain, drainIntervalMs(this.addresses.length, this.#settings.periodMs));
      this.#drainNow = drain;
      finish = () => {
        clearInterval(timer);
        drain();
        fifo.close();
        this.#drainNow = () => {};
      };
    } else {
      child.stdout!.setEncoding('latin1');
      child.stdout!.on('data', onChunk);
    }
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      // ICMP errors (host unreachable, ...) and fatal messages; kept for the exit log.
      for (const l of chunk.split('\n')) if (l !== '') this.#stderrTail.push(l);
      if (this.#stderrTail.length > 20) this.#stderrTail.splice(0, this.#stderrTail.length - 20);
    });
    let ended = false;
    const end = (code: number | null, signal: NodeJS.Signals | null, err: NodeJS.ErrnoException | undefined) => {
      if (ended) return;
      ended = true;
      finish();
      this.#onExit(code, signal, err);
      done();
    };
    // spawn failures (ENOENT, EACCES) arrive as 'error' instead of 'exit'.
    child.on('error', (err: NodeJS.ErrnoException) => end(null, null, err));
    child.on('exit', (code, signal) => end(code, signal, undefined));
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null, err: NodeJS.ErrnoException | undefined): void {
    if (this.#stopped) return;
    if (this.#child === undefined) return;
    this.#child = undefined;
    this.#fail(code, signal, err);
  }

  /** Counts, logs and schedules the restart of a process that died or could not start. */
  #fail(code: number | null, signal: NodeJS.Signals | null, err: NodeJS.ErrnoException | undefined): void {
    if (this.#stopped) return;
    const ranMs = Date.now() - this.#startedAt;
    if (ranMs >= HEALTHY_AFTER_MS) this.#failures = 0;
    this.#failures++;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.#failures - 1)) * (0.5 + Math.random() / 2);
    const reason = err ? `spawn error ${err.code ?? err.message}` : signal ? `signal ${signal}` : `exit code ${code}`;
    this.#events.restart(reason);
    const fields = {
      reason,
      ran_ms: ranMs,
      restart_in_ms: Math.round(delay),
      targets: this.addresses.length,
      stderr: this.#stderrTail.slice(-5).join(' | '),
    };
    const denied = icmpDeniedMessage(err, this.#stderrTail, process.getgid?.() ?? -1);
    if (denied !== undefined && this.#events.icmpDenied) {
      // Every restart would fail alike: the receiver logs the cause once (rate-limited) and
      // reports it on /readyz; the restarts themselves are only debug noise.
      this.#events.icmpDenied(denied);
      this.#log.debug('fping exited; restarting', fields);
    } else {
      this.#log.warn('fping exited; restarting', fields);
    }
    this.#restartTimer = setTimeout(() => this.start(), delay);
  }

  /** Reads what its FIFO holds now, so that every verdict printed so far is counted. */
  drain(): void {
    if (this.counting) this.#drainNow();
  }

  /**
   * Stops the process; resolves when it has exited. What it printed until now is read and
   * counted; what it prints from now on is dropped. Probes in flight get no verdict and are
   * not counted.
   */
  async stop(): Promise<void> {
    if (this.counting) this.#drainNow();
    this.counting = false;
    this.onFirstResult = undefined;
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (!child || !this.running) return;
    const exited = this.#exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 1000);
    await exited;
    clearTimeout(timer);
  }
}
