/**
 * Per-destination measurements, kept as plain numbers and handed to the OpenTelemetry readers
 * through a MetricProducer.
 *
 * Why not SDK instruments: with cumulative temporality the SDK exports an attribute set for
 * ever once it has been recorded, so a node that left the cluster would stay on /metrics and
 * in every OTLP push. Here a destination that leaves is deleted and is absent from the next
 * collection on both paths, while the counters of the others carry on untouched. It also
 * keeps the per-packet path to a Map lookup and a few additions, and puts no attribute-set
 * cardinality limit between a 5,000-node cluster and its series.
 */
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import {
  AggregationTemporality,
  DataPointType,
  type CollectionResult,
  type DataPoint,
  type Histogram,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import { emptyResource } from '@opentelemetry/resources';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Target } from '../targets/target.ts';
import { targetKey } from '../targets/target.ts';
import { ATTR, METRIC, SCOPE_NAME } from './names.ts';

export interface TargetMetricsOptions {
  /** Histogram upper bounds in milliseconds, strictly increasing. */
  bucketsMs: readonly number[];
  /** Consecutive losses that make an outage. */
  outageThreshold: number;
  /** fping's per-probe timeout: a loss is reported this long after its probe was sent. */
  timeoutMs: number;
  /** The probe period; with it, sweep() counts probes that were due and got no verdict. */
  periodMs?: number;
  version: string;
  /** 'zone': node targets share one RTT histogram per destination zone. */
  rttPer?: 'destination' | 'zone';
  /** Per pair only sent, received and the ongoing outage. */
  lean?: boolean;
  now?: () => number;
}

/** One RTT histogram: a destination's own, or shared by the nodes of a zone. */
class Hist {
  readonly attributes: Record<string, string>;
  readonly startTime: HrTime;
  readonly buckets: number[];
  sumSeconds = 0;
  count = 0;

  constructor(attributes: Record<string, string>, bucketCount: number, nowMs: number) {
    this.attributes = attributes;
    this.startTime = millisToHrTime(nowMs);
    this.buckets = new Array<number>(bucketCount).fill(0);
  }
}

class TargetStats {
  readonly target: Target;
  readonly attributes: Record<string, string>;
  readonly startTime: HrTime;
  sent = 0;
  received = 0;
  duplicates = 0;
  /** Set by TargetMetrics.setTargets: this destination's histogram or its zone's. */
  hist!: Hist;
  consecutiveLosses = 0;
  /** When the first probe of the current run of losses was sent (ms since epoch). */
  lossRunStartMs = 0;
  inOutage = false;
  outages = 0;
  closedOutageSeconds = 0;
  /** Duplicate detection: the fping process the sequence numbers belong to, the highest seq with a verdict, and a bit per seq below it. */
  epoch = -1;
  seqHigh = -1;
  seqMask = 0;
  /** When the probe of seqHigh was sent (ms), and the highest seq of this epoch counted as unanswered. */
  lastSendMs = 0;
  missedUpTo = -1;
  /** Before the first verdict: when this destination was added, and the probes counted unanswered since. */
  readonly addedMs: number;
  missedBeforeFirst = 0;

  constructor(target: Target, nowMs: number) {
    this.target = target;
    this.addedMs = nowMs;
    this.attributes = {
      [ATTR.destinationName]: target.name,
      [ATTR.destinationAddress]: target.address,
      [ATTR.destinationKind]: target.kind,
    };
    if (target.zone) this.attributes[ATTR.destinationZone] = target.zone;
    this.startTime = millisToHrTime(nowMs);
  }
}

export class TargetMetrics implements MetricProducer {
  readonly #byAddress = new Map<string, TargetStats>();
  readonly #boundsMs: Float64Array;
  readonly #boundariesSeconds: number[];
  readonly #threshold: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #scope: { name: string; version: string };
  readonly #perZone: boolean;
  readonly #lean: boolean;
  #zoneHists = new Map<string, Hist>();
  /** Results for addresses that are not (or no longer) targets, e.g. in flight during a restart. */
  unknownResults = 0;
  /** Probes that were due and got no verdict in time (see sweep), and the verdicts that came after that. */
  unanswered = 0;
  lateVerdicts = 0;
  /** Probes due so far: every destination, one per period (see sweep). */
  intended = 0;
  readonly #periodMs: number;
  #lastSweepMs = 0;

  constructor(opts: TargetMetricsOptions) {
    this.#boundsMs = Float64Array.from(opts.bucketsMs);
    this.#boundariesSeconds = opts.bucketsMs.map((ms) => ms / 1000);
    this.#threshold = opts.outageThreshold;
    this.#timeoutMs = opts.timeoutMs;
    this.#periodMs = opts.periodMs ?? 0;
    this.#now = opts.now ?? Date.now;
    this.#scope = { name: SCOPE_NAME, version: opts.version };
    this.#perZone = opts.rttPer === 'zone';
    this.#lean = opts.lean === true;
  }

  /**
   * Makes `targets` the measured set. Destinations whose (name, address) is unchanged keep
   * their counters; the others start from zero; the missing ones are dropped.
   */
  setTargets(targets: readonly Target[]): void {
    const now = this.#now();
    const next = new Map<string, TargetStats>();
    for (const t of targets) {
      const old = this.#byAddress.get(t.address);
      // Only (name, address) is identity: a node whose zone label changes keeps its series.
      next.set(t.address, old && targetKey(old.target) === targetKey(t) ? old : new TargetStats(t, now));
    }
    const zoneHists = new Map<string, Hist>();
    for (const st of next.values()) {
      if (this.#perZone && st.target.kind === 'node') {
        const zone = st.attributes[ATTR.destinationZone] ?? '';
        let h = zoneHists.get(zone) ?? this.#zoneHists.get(zone);
        if (!h) h = new Hist({ [ATTR.destinationZone]: zone || 'none', [ATTR.destinationKind]: 'node' }, this.#boundsMs.length + 1, now);
        zoneHists.set(zone, h);
        st.hist = h;
      } else {
        st.hist ??= new Hist(st.attributes, this.#boundsMs.length + 1, now);
      }
    }
    this.#zoneHists = zoneHists;
    this.#byAddress.clear();
    for (const [k, v] of next) this.#byAddress.set(k, v);
  }

  get size(): number {
    return this.#byAddress.size;
  }

  recordReply(address: string, seq: number, rttMs: number, epoch: number): void {
    const s = this.#byAddress.get(address);
    if (s === undefined) {
      this.unknownResults++;
      return;
    }
    if (isLate(s, seq, epoch)) {
      this.lateVerdicts++;
      return;
    }
    if (!firstVerdict(s, seq, epoch)) {
      s.duplicates++;
      return;
    }
    if (seq === s.seqHigh) s.lastSendMs = this.#now() - rttMs;
    s.sent++;
    s.received++;
    const h = s.hist;
    h.sumSeconds += rttMs / 1000;
    h.count++;
    h.buckets[this.#bucketIndex(rttMs)]!++;
    if (s.inOutage) {
      // The outage ends when the probe that got through was sent.
      s.closedOutageSeconds += Math.max(0, this.#now() - rttMs - s.lossRunStartMs) / 1000;
      s.inOutage = false;
    }
    s.consecutiveLosses = 0;
  }

  recordLoss(address: string, seq: number, epoch: number): void {
    const s = this.#byAddress.get(address);
    if (s === undefined) {
      this.unknownResults++;
      return;
    }
    if (isLate(s, seq, epoch)) {
      this.lateVerdicts++;
      return;
    }
    if (!firstVerdict(s, seq, epoch)) return;
    const sentMs = this.#now() - this.#timeoutMs;
    if (seq === s.seqHigh) s.lastSendMs = sentMs;
    this.#lose(s, 1, sentMs);
  }

  /** `n` probes lost, the first of them sent at `firstSentMs`. */
  #lose(s: TargetStats, n: number, firstSentMs: number): void {
    s.sent += n;
    if (s.consecutiveLosses === 0) s.lossRunStartMs = firstSentMs;
    s.consecutiveLosses += n;
    if (!s.inOutage && s.consecutiveLosses >= this.#threshold) {
      s.inOutage = true;
      s.outages++;
    }
  }

  /**
   * Counts the probes that were due and got no verdict. fping prints nothing for a probe it
   * could not send (a local firewall's OUTPUT drop, no route: in loop mode its send errors are
   * silent) nor while it is stopped or starved of CPU, so without this `sent` would freeze and
   * loss read 0 %. fping schedules a destination's probes one period apart, so the probe after
   * the last one with a verdict is due by its send time + a period + the timeout; past that and
   * a grace (SWEEP_GRACE_MS, at least a period: handovers, a restart's first backoff, drain
   * latency), it is counted as sent and lost, so that loss, outages and every alert on them
   * see it, and in `unanswered`, so that it can be told from loss on the wire. Each sequence
   * number gets one outcome: a verdict that arrives for a probe already counted unanswered
   * (fping catching up after a stall) is dropped and counted in `lateVerdicts`. Not counted:
   * a single send that failed between two that got through (only the probes after the last
   * verdict are judged); a failing route or firewall fails every send, which is.
   */
  sweep(): void {
    const p = this.#periodMs;
    if (p <= 0) return;
    const now = this.#now();
    if (this.#lastSweepMs > 0) this.intended += (this.#byAddress.size * (now - this.#lastSweepMs)) / p;
    this.#lastSweepMs = now;
    const grace = this.#timeoutMs + Math.max(p, SWEEP_GRACE_MS);
    for (const s of this.#byAddress.values()) {
      if (s.epoch < 0) {
        // No verdict yet: the first probe is due within a period of being added.
        const due = Math.floor((now - grace - s.addedMs) / p);
        if (due > s.missedBeforeFirst) {
          const n = due - s.missedBeforeFirst;
          this.#lose(s, n, s.addedMs + (s.missedBeforeFirst + 1) * p);
          s.missedBeforeFirst = due;
          this.unanswered += n;
        }
        continue;
      }
      // Probes after seqHigh are sent at lastSendMs + k periods (k = 1, 2, ...).
      const dueUpTo = s.seqHigh + Math.floor((now - grace - s.lastSendMs) / p);
      const from = Math.max(s.seqHigh, s.missedUpTo) + 1;
      if (dueUpTo >= from) {
        const n = dueUpTo - from + 1;
        this.#lose(s, n, s.lastSendMs + (from - s.seqHigh) * p);
        s.missedUpTo = dueUpTo;
        this.unanswered += n;
      }
    }
  }

  /** A reply that fping itself flagged as a duplicate. */
  recordDuplicate(address: string): void {
    const s = this.#byAddress.get(address);
    if (s === undefined) {
      this.unknownResults++;
      return;
    }
    s.duplicates++;
  }

  /** First bucket whose inclusive upper bound holds `ms` (binary search). */
  #bucketIndex(ms: number): number {
    const b = this.#boundsMs;
    let lo = 0;
    let hi = b.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ms <= b[mid]!) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /**
   * The producer's collection, built in slices of `COLLECT_SLICE` destinations with a turn of
   * the event loop between them: at 5,000 destinations building every data point in one go
   * held the loop for 6-20 ms, on top of the rest of a scrape or an export, while fping's
   * output waited to be drained. Every point carries the same end time; a destination's
   * values are read a few milliseconds apart at most.
   */
  async collect(): Promise<CollectionResult> {
    const snap = this.#startSnapshot();
    for (let from = 0; from < snap.stats.length; from += COLLECT_SLICE) {
      if (from > 0) await yieldToLoop();
      snap.add(from, from + COLLECT_SLICE);
    }
    return {
      resourceMetrics: { resource: emptyResource(), scopeMetrics: [{ scope: this.#scope, metrics: snap.finish() }] },
      errors: [],
    };
  }

  /** The current state as OTel metric data, in one go: cumulative since each destination was added. */
  snapshot(): MetricData[] {
    const snap = this.#startSnapshot();
    snap.add(0, snap.stats.length);
    return snap.finish();
  }

  #startSnapshot(): Snapshot {
    // A copy of the list: setTargets may run between the slices of a collection.
    return new Snapshot([...this.#byAddress.values()], this.#now(), this.#boundariesSeconds, this.#lean);
  }
}

/** Destinations per slice of a collection (about 1 ms of work each on a 2-core machine). */
const COLLECT_SLICE = 500;

/** One collection in the making: data points are added destination by destination. */
class Snapshot {
  readonly stats: readonly TargetStats[];
  readonly #nowMs: number;
  readonly #end: HrTime;
  readonly #boundariesSeconds: number[];
  readonly #lean: boolean;
  readonly #sent: DataPoint<number>[] = [];
  readonly #received: DataPoint<number>[] = [];
  readonly #dups: DataPoint<number>[] = [];
  readonly #ongoing: DataPoint<number>[] = [];
  readonly #outageSeconds: DataPoint<number>[] = [];
  readonly #outages: DataPoint<number>[] = [];
  readonly #rtt: DataPoint<Histogram>[] = [];
  readonly #perKind = new Map<string, number>();
  readonly #hists = new Set<Hist>();

  constructor(stats: readonly TargetStats[], nowMs: number, boundariesSeconds: number[], lean: boolean) {
    this.stats = stats;
    this.#nowMs = nowMs;
    this.#end = millisToHrTime(nowMs);
    this.#boundariesSeconds = boundariesSeconds;
    this.#lean = lean;
  }

  /** Adds the points of stats[from, to). */
  add(from: number, to: number): void {
    const end = this.#end;
    const nowMs = this.#nowMs;
    for (let i = from; i < to && i < this.stats.length; i++) {
      const s = this.stats[i]!;
      const { attributes, startTime } = s;
      this.#sent.push({ attributes, startTime, endTime: end, value: s.sent });
      this.#received.push({ attributes, startTime, endTime: end, value: s.received });
      if (!this.#lean) this.#dups.push({ attributes, startTime, endTime: end, value: s.duplicates });
      const ongoing = s.inOutage ? Math.max(0, nowMs - s.lossRunStartMs) / 1000 : 0;
      this.#ongoing.push({ attributes, startTime: end, endTime: end, value: ongoing });
      if (!this.#lean) {
        this.#outageSeconds.push({ attributes, startTime, endTime: end, value: s.closedOutageSeconds + ongoing });
        this.#outages.push({ attributes, startTime, endTime: end, value: s.outages });
      }
      this.#perKind.set(s.target.kind, (this.#perKind.get(s.target.kind) ?? 0) + 1);
      const h = s.hist;
      if (this.#hists.has(h)) continue;
      // A histogram is read once, when its first destination is reached.
      this.#hists.add(h);
      this.#rtt.push({
        attributes: h.attributes,
        startTime: h.startTime,
        endTime: end,
        value: { buckets: { boundaries: this.#boundariesSeconds, counts: h.buckets.slice() }, sum: h.sumSeconds, count: h.count },
      });
    }
  }

  finish(): MetricData[] {
    const end = this.#end;
    const targets: DataPoint<number>[] = [];
    for (const kind of ['node', 'external']) {
      targets.push({ attributes: { [ATTR.destinationKind]: kind }, startTime: end, endTime: end, value: this.#perKind.get(kind) ?? 0 });
    }
    const lean = this.#lean;
    return [
      sum(METRIC.packetsSent, 'ICMP echo requests sent that have a verdict (reply or timeout).', '{packet}', this.#sent),
      sum(METRIC.packetsReceived, 'ICMP echo replies received within the timeout.', '{packet}', this.#received),
      ...(lean ? [] : [sum(METRIC.packetsDuplicate, 'Duplicate ICMP echo replies.', '{packet}', this.#dups)]),
      {
        descriptor: { name: METRIC.rtt, description: 'Round-trip time of each reply.', unit: 's', valueType: ValueType.DOUBLE },
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.HISTOGRAM,
        dataPoints: this.#rtt,
      },
      gauge(METRIC.outageOngoing, 'Seconds since the destination last answered, while it is in outage; 0 when it answers.', 's', this.#ongoing),
      ...(lean
        ? []
        : [
            sum(METRIC.outageDuration, 'Seconds the destination spent in outage, the ongoing one included.', 's', this.#outageSeconds),
            sum(METRIC.outages, 'Outages started: runs of at least the outage threshold of consecutive losses.', '{outage}', this.#outages),
          ]),
      gauge(METRIC.targets, 'Destinations currently probed.', '{target}', targets),
    ];
  }
}

const SEQ_WINDOW = 32;
/** The least grace past a probe's timeout before it counts as unanswered (see sweep). */
const SWEEP_GRACE_MS = 2000;

/**
 * True the first time a (process, seq) verdict is seen. fping in loop mode does not flag
 * duplicate replies, so a second reply for a seq would otherwise count as a second packet
 * received. Sequence numbers restart with each fping process, hence the epoch.
 */
function firstVerdict(s: TargetStats, seq: number, epoch: number): boolean {
  if (s.epoch !== epoch || seq < s.seqHigh - 1000) {
    s.epoch = epoch;
    s.seqHigh = seq;
    s.seqMask = 1;
    s.missedUpTo = -1;
    return true;
  }
  if (seq > s.seqHigh) {
    const shift = seq - s.seqHigh;
    s.seqMask = shift >= SEQ_WINDOW ? 1 : ((s.seqMask << shift) | 1) >>> 0;
    s.seqHigh = seq;
    return true;
  }
  const d = s.seqHigh - seq;
  if (d >= SEQ_WINDOW) return true; // too old to tell: count it
  const bit = (1 << d) >>> 0;
  if ((s.seqMask & bit) !== 0) return false;
  s.seqMask = (s.seqMask | bit) >>> 0;
  return true;
}

/** A verdict for a probe already counted unanswered (see TargetMetrics.sweep). */
function isLate(s: TargetStats, seq: number, epoch: number): boolean {
  if (s.epoch !== epoch) return false;
  return seq <= s.missedUpTo;
}

function sum(name: string, description: string, unit: string, dataPoints: DataPoint<number>[]): MetricData {
  return {
    descriptor: { name, description, unit, valueType: unit === 's' ? ValueType.DOUBLE : ValueType.INT },
    aggregationTemporality: AggregationTemporality.CUMULATIVE,
    dataPointType: DataPointType.SUM,
    isMonotonic: true,
    dataPoints,
  };
}

function gauge(name: string, description: string, unit: string, dataPoints: DataPoint<number>[]): MetricData {
  return {
    descriptor: { name, description, unit, valueType: unit === 's' ? ValueType.DOUBLE : ValueType.INT },
    aggregationTemporality: AggregationTemporality.CUMULATIVE,
    dataPointType: DataPointType.GAUGE,
    dataPoints,
  };
}
