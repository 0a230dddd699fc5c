import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataPointType, type HistogramMetricData, type MetricData, type SumMetricData, type GaugeMetricData } from '@opentelemetry/sdk-metrics';
import type { Target } from '../targets/target.ts';
import { TargetMetrics } from './target-metrics.ts';
import { METRIC } from './names.ts';

const A: Target = { name: 'a', address: '10.0.0.1', family: 4, kind: 'node' };
const B: Target = { name: 'b', address: '10.0.0.2', family: 4, kind: 'node' };

function setup(threshold = 3) {
  let now = 1_000_000;
  const m = new TargetMetrics({ bucketsMs: [1, 10, 100], outageThreshold: threshold, timeoutMs: 1000, version: 't', now: () => now });
  return { m, advance: (ms: number) => (now += ms) };
}

function point(metrics: MetricData[], name: string, dest: string): number {
  const md = metrics.find((x) => x.descriptor.name === name) as SumMetricData | GaugeMetricData;
  const p = md.dataPoints.find((d) => d.attributes['destination_name'] === dest);
  assert.ok(p, `${name}{${dest}}`);
  return p.value;
}

test('replies and losses count per destination; buckets are inclusive upper bounds', () => {
  const { m } = setup();
  m.setTargets([A, B]);
  m.recordReply(A.address, 0, 1, 0); // exactly on the 1 ms bound
  m.recordReply(A.address, 1, 5, 0);
  m.recordReply(A.address, 2, 500, 0); // beyond the last bound
  m.recordLoss(A.address, 3, 0);
  const s = m.snapshot();
  assert.equal(point(s, METRIC.packetsSent, 'a'), 4);
  assert.equal(point(s, METRIC.packetsReceived, 'a'), 3);
  assert.equal(point(s, METRIC.packetsSent, 'b'), 0, 'a series exists from the start');
  const rtt = s.find((x) => x.descriptor.name === METRIC.rtt) as HistogramMetricData;
  assert.equal(rtt.dataPointType, DataPointType.HISTOGRAM);
  assert.equal(rtt.descriptor.unit, 's');
  const pa = rtt.dataPoints.find((d) => d.attributes['destination_name'] === 'a')!;
  assert.deepEqual(pa.value.buckets.boundaries, [0.001, 0.01, 0.1]);
  assert.deepEqual(pa.value.buckets.counts, [1, 1, 0, 1]);
  assert.equal(pa.value.count, 3);
  assert.ok(Math.abs(pa.value.sum! - 0.506) < 1e-12);
});

test('a second verdict for the same seq of the same process is a duplicate, not a packet', () => {
  const { m } = setup();
  m.setTargets([A]);
  m.recordReply(A.address, 5, 1, 7);
  m.recordReply(A.address, 5, 1, 7);
  m.recordReply(A.address, 4, 1, 7);
  m.recordReply(A.address, 4, 1, 7);
  m.recordLoss(A.address, 4, 7);
  // A new process (epoch) starts its seqs at 0 again: not duplicates.
  m.recordReply(A.address, 0, 1, 8);
  m.recordReply(A.address, 1, 1, 8);
  m.recordDuplicate(A.address);
  const s = m.snapshot();
  assert.equal(point(s, METRIC.packetsSent, 'a'), 4);
  assert.equal(point(s, METRIC.packetsReceived, 'a'), 4);
  assert.equal(point(s, METRIC.packetsDuplicate, 'a'), 3);
});

test('outage: dated from the first lost probe, ongoing while it lasts, closed by a reply', () => {
  const { m, advance } = setup(3);
  m.setTargets([A]);
  m.recordReply(A.address, 0, 1, 0);
  advance(1000);
  m.recordLoss(A.address, 1, 0); // sent 1 s earlier (the timeout)
  advance(1000);
  m.recordLoss(A.address, 2, 0);
  let s = m.snapshot();
  assert.equal(point(s, METRIC.outageOngoing, 'a'), 0, 'two losses are not an outage');
  assert.equal(point(s, METRIC.outages, 'a'), 0);
  advance(1000);
  m.recordLoss(A.address, 3, 0);
  s = m.snapshot();
  // first lost probe sent at t=0 relative to the loss at t=1000: now is t=3000 → 3 s
  assert.equal(point(s, METRIC.outageOngoing, 'a'), 3);
  assert.equal(point(s, METRIC.outages, 'a'), 1);
  assert.equal(point(s, METRIC.outageDuration, 'a'), 3);
  advance(10_000);
  assert.equal(point(m.snapshot(), METRIC.outageOngoing, 'a'), 13);
  m.recordReply(A.address, 4, 2, 0); // sent 2 ms ago
  s = m.snapshot();
  assert.equal(point(s, METRIC.outageOngoing, 'a'), 0);
  assert.ok(Math.abs(point(s, METRIC.outageDuration, 'a') - 12.998) < 1e-9);
  assert.equal(point(s, METRIC.outages, 'a'), 1);
});

test('a departed destination disappears; the others keep their counters', () => {
  const { m } = setup();
  m.setTargets([A, B]);
  m.recordReply(A.address, 0, 1, 0);
  m.recordReply(B.address, 0, 1, 0);
  m.setTargets([A]);
  m.recordReply(B.address, 1, 1, 0); // in flight from a stopped process
  const s = m.snapshot();
  assert.equal(point(s, METRIC.packetsSent, 'a'), 1);
  const sent = s.find((x) => x.descriptor.name === METRIC.packetsSent) as SumMetricData;
  assert.equal(sent.dataPoints.length, 1);
  assert.equal(m.unknownResults, 1);
  // Renamed at the same address: a new series from zero.
  m.setTargets([{ ...A, name: 'a2' }]);
  assert.equal(point(m.snapshot(), METRIC.packetsSent, 'a2'), 0);
});

test('targets gauge counts by kind', () => {
  const { m } = setup();
  m.setTargets([A, B, { name: 'dns', address: '10.9.9.9', family: 4, kind: 'external' }]);
  const g = m.snapshot().find((x) => x.descriptor.name === METRIC.targets) as GaugeMetricData;
  assert.deepEqual(g.dataPoints.map((d) => [d.attributes['destination_kind'], d.value]), [['node', 2], ['external', 1]]);
});

test('per-zone RTT histograms: node targets share their zone\'s, externals keep their own; lean drops the totals', () => {
  const m = new TargetMetrics({ bucketsMs: [1, 10], outageThreshold: 3, timeoutMs: 1000, version: 't', rttPer: 'zone', lean: true });
  m.setTargets([
    { name: 'a', address: '10.0.0.1', family: 4, kind: 'node', zone: 'z1' },
    { name: 'b', address: '10.0.0.2', family: 4, kind: 'node', zone: 'z1' },
    { name: 'c', address: '10.0.0.3', family: 4, kind: 'node', zone: 'z2' },
    { name: 'dns', address: '10.9.9.9', family: 4, kind: 'external' },
  ]);
  m.recordReply('10.0.0.1', 0, 0.5, 0);
  m.recordReply('10.0.0.2', 0, 5, 0);
  m.recordReply('10.0.0.3', 0, 5, 0);
  m.recordReply('10.9.9.9', 0, 50, 0);
  const s = m.snapshot();
  const rtt = () => (m.snapshot().find((x) => x.descriptor.name === METRIC.rtt) as HistogramMetricData).dataPoints;
  assert.deepEqual(rtt().map((d) => [d.attributes, d.value.count]), [
    [{ destination_zone: 'z1', destination_kind: 'node' }, 2],
    [{ destination_zone: 'z2', destination_kind: 'node' }, 1],
    [{ destination_name: 'dns', destination_address: '10.9.9.9', destination_kind: 'external' }, 1],
  ]);
  assert.equal(point(s, METRIC.packetsReceived, 'b'), 1, 'loss counters stay per pair');
  assert.deepEqual(s.map((x) => x.descriptor.name).filter((n) => n.startsWith('kube_node_ping.outage') || n.includes('duplicate') || n === METRIC.outages), [METRIC.outageOngoing]);
  // b leaves: z1's histogram goes on counting from where it was.
  m.setTargets([
    { name: 'a', address: '10.0.0.1', family: 4, kind: 'node', zone: 'z1' },
    { name: 'c', address: '10.0.0.3', family: 4, kind: 'node', zone: 'z2' },
  ]);
  m.recordReply('10.0.0.1', 1, 0.5, 0);
  assert.deepEqual(rtt().map((d) => [d.attributes['destination_zone'], d.value.count, d.value.buckets.counts]), [['z1', 3, [2, 1, 0]], ['z2', 1, [0, 1, 0]]]);
});

test('collect() builds the same points as snapshot() in slices, and a target change between slices neither drops nor repeats one', async () => {
  const { m } = setup();
  const many: Target[] = Array.from({ length: 1234 }, (_, i) => ({ name: `n${i}`, address: `10.1.${i >> 8}.${i & 255}`, family: 4, kind: 'node' }));
  m.setTargets(many);
  for (let i = 0; i < many.length; i++) m.recordReply(many[i]!.address, 0, i % 50, 0);
  const whole = m.snapshot();
  let changed = false;
  const pending = m.collect();
  // Runs at the collection's first turn of the event loop: it keeps the list it started with.
  setImmediate(() => {
    m.setTargets(many.slice(0, 10));
    changed = true;
  });
  const { resourceMetrics } = await pending;
  assert.ok(changed, 'the collection gave the event loop a turn before it finished');
  assert.deepEqual(resourceMetrics.scopeMetrics[0]!.metrics, whole);
  assert.equal((m.snapshot()[0] as SumMetricData).dataPoints.length, 10, 'the change applies to the next collection');
});

test('probes that were due and got no verdict count as sent and lost, once each; a late verdict is dropped', () => {
  let now = 1_000_000;
  const m = new TargetMetrics({ bucketsMs: [1, 10, 100], outageThreshold: 3, timeoutMs: 1000, periodMs: 1000, version: 't', now: () => now });
  m.setTargets([A, B]);
  // A answers seq 0 and 1, a second apart (replies of 0 ms: sent when recorded), then fping goes silent.
  m.recordReply(A.address, 0, 0, 7);
  now += 1000;
  m.recordReply(A.address, 1, 0, 7);
  const lastSend = now;
  // B never gets a verdict (say, every send is dropped by the local firewall).
  const firstSweep = now;
  m.sweep();
  // Probe 2 of A was due at lastSend + 1 s, its verdict by + 1 s of timeout; the grace is 2 s more.
  now = lastSend + 3999;
  m.sweep();
  assert.equal(point(m.snapshot(), METRIC.packetsSent, 'a'), 2, 'not before the grace has passed');
  now = lastSend + 4000;
  m.sweep();
  assert.equal(point(m.snapshot(), METRIC.packetsSent, 'a'), 3);
  assert.equal(point(m.snapshot(), METRIC.packetsReceived, 'a'), 2);
  // Ten seconds on: probes 2..8 unanswered, and that is an outage dated from probe 2's send.
  now = lastSend + 10_000;
  m.sweep();
  const s = m.snapshot();
  assert.equal(point(s, METRIC.packetsSent, 'a'), 2 + 7);
  assert.equal(point(s, METRIC.outageOngoing, 'a'), (now - (lastSend + 1000)) / 1000);
  // B was added at 1,000,000 and never answered: its first probe was due within a period.
  assert.equal(point(s, METRIC.packetsSent, 'b'), Math.floor((now - 3000 - 1_000_000) / 1000));
  assert.equal(point(s, METRIC.packetsReceived, 'b'), 0);
  assert.equal(m.unanswered, 7 + point(s, METRIC.packetsSent, 'b'));
  // fping wakes up and catches up: verdicts for probes already counted are dropped, later ones count.
  m.recordReply(A.address, 5, 0, 7);
  m.recordLoss(A.address, 8, 7);
  assert.equal(m.lateVerdicts, 2);
  m.recordReply(A.address, 9, 0, 7);
  assert.equal(point(m.snapshot(), METRIC.packetsSent, 'a'), 10);
  assert.equal(point(m.snapshot(), METRIC.outageOngoing, 'a'), 0, 'a reply ends the outage');
  assert.ok(m.intended > 0 && Math.abs(m.intended - (2 * (now - firstSweep)) / 1000) < 1e-9, String(m.intended));
});

test('a new process (epoch) starts its sequence numbers afresh: nothing of it is late', () => {
  let now = 1_000_000;
  const m = new TargetMetrics({ bucketsMs: [1, 10, 100], outageThreshold: 1, timeoutMs: 1000, periodMs: 1000, version: 't', now: () => now });
  m.setTargets([A]);
  m.recordReply(A.address, 0, 0, 3);
  now += 6000; // process 3 went silent: probes 1..3 are past their deadline
  m.sweep();
  assert.equal(m.unanswered, 3);
  m.recordReply(A.address, 2, 0, 3);
  assert.equal(m.lateVerdicts, 1, 'process 3 catching up: already counted');
  // Process 4 (a restart or a handover) numbers from 0 again: its seq 1 and 2 count.
  m.recordReply(A.address, 0, 0, 4);
  m.recordReply(A.address, 1, 0, 4);
  m.recordReply(A.address, 2, 0, 4);
  const s = m.snapshot();
  assert.equal(point(s, METRIC.packetsSent, 'a'), 1 + 3 + 3);
  assert.equal(point(s, METRIC.outageOngoing, 'a'), 0);
});
