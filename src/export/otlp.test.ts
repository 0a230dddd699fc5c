import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { AggregationTemporality, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { TargetMetrics } from '../telemetry/target-metrics.ts';
import { createLogger } from '../log.ts';
import { CountingExporter, http2Handshake, otlpUrl, splitResourceMetrics } from './otlp.ts';

async function collection(n: number): Promise<ResourceMetrics> {
  const m = new TargetMetrics({ bucketsMs: [1, 10], outageThreshold: 3, timeoutMs: 1000, version: 't' });
  m.setTargets(Array.from({ length: n }, (_, i) => ({ name: `n${i}`, address: `10.0.${i >> 8}.${i & 255}`, family: 4 as const, kind: 'node' as const })));
  const { resourceMetrics } = await m.collect();
  return { ...resourceMetrics, resource: resourceFromAttributes({ 'service.name': 'x' }) };
}

const points = (rm: ResourceMetrics) => rm.scopeMetrics.flatMap((s) => s.metrics).reduce((a, m) => a + m.dataPoints.length, 0);

test('split: every data point exactly once, parts within the limit, descriptors kept', async () => {
  const rm = await collection(300); // 300 destinations × 7 metrics + 2 target gauges
  const parts = splitResourceMetrics(rm, 250);
  assert.equal(parts.reduce((a, p) => a + points(p), 0), points(rm));
  for (const p of parts) {
    assert.ok(points(p) <= 250);
    assert.equal(p.resource, rm.resource);
  }
  const names = (r: ResourceMetrics) => new Set(r.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name)));
  assert.deepEqual(names(parts.reduce((acc, p) => ({ ...acc, scopeMetrics: [...acc.scopeMetrics, ...p.scopeMetrics] }), { resource: rm.resource, scopeMetrics: [] as ResourceMetrics['scopeMetrics'] })), names(rm));
  assert.deepEqual(splitResourceMetrics(rm, 100_000), [{ resource: rm.resource, scopeMetrics: rm.scopeMetrics }]);
});

test('a large collection goes out in several requests; a failure stops the rest and is counted once', async () => {
  const sent: number[] = [];
  let failAt = -1;
  const inner: PushMetricExporter = {
    export(m: ResourceMetrics, done: (r: ExportResult) => void) {
      sent.push(points(m));
      setImmediate(() => done({ code: sent.length - 1 === failAt ? ExportResultCode.FAILED : ExportResultCode.SUCCESS, error: new Error('down') }));
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  let failures = 0;
  const ex = new CountingExporter(inner, createLogger({ level: 'error', write: () => {} }), () => failures++, 500);
  assert.equal(ex.selectAggregationTemporality(), AggregationTemporality.CUMULATIVE);
  const rm = await collection(300);
  const ok = await new Promise<ExportResult>((r) => ex.export(rm, r));
  assert.equal(ok.code, ExportResultCode.SUCCESS);
  assert.equal(sent.length, Math.ceil(points(rm) / 500));
  sent.length = 0;
  failAt = 1;
  const failed = await new Promise<ExportResult>((r) => ex.export(rm, r));
  assert.equal(failed.code, ExportResultCode.FAILED);
  assert.equal(sent.length, 2, 'stops at the failed part');
  assert.equal(failures, 1);
});

test('otlpUrl adds /v1/metrics to a bare http/protobuf endpoint only', () => {
  assert.equal(otlpUrl('http://c:4318', 'http/protobuf'), 'http://c:4318/v1/metrics');
  assert.equal(otlpUrl('http://c:4318/custom/path', 'http/protobuf'), 'http://c:4318/custom/path');
  assert.equal(otlpUrl('http://c:4317', 'grpc'), 'http://c:4317');
});

test('OTLP hygiene: a silent endpoint fails the preflight within its deadline; an answering one passes; no export overlaps another', async () => {
  const { createServer } = await import('node:net');
  const http2 = await import('node:http2');
  const silent = createServer((s) => s.on('error', () => {}).resume());
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const answering = http2.createServer();
  await new Promise<void>((r) => answering.listen(0, '127.0.0.1', r));
  try {
    const t0 = Date.now();
    assert.match((await http2Handshake(`http://127.0.0.1:${(silent.address() as { port: number }).port}`, 300))!, /did not complete an HTTP\/2 handshake within 300 ms/);
    assert.ok(Date.now() - t0 < 3000);
    assert.equal(await http2Handshake(`http://127.0.0.1:${(answering.address() as { port: number }).port}`, 2000), undefined);
  } finally {
    silent.close();
    answering.close();
  }
  // An export whose requests have not ended is not stacked on; a failed exporter is replaced.
  const made: { done?: (r: ExportResult) => void; shutdowns: number }[] = [];
  const make = (): PushMetricExporter => {
    const state: { done?: (r: ExportResult) => void; shutdowns: number } = { shutdowns: 0 };
    made.push(state);
    return { export: (_m, done) => (state.done = done), forceFlush: async () => {}, shutdown: async () => void state.shutdowns++ };
  };
  const errors: string[] = [];
  const ex = new CountingExporter(make, createLogger({ level: 'error', write: () => {} }), (e) => errors.push(e));
  const rm = await collection(2);
  const first = new Promise<ExportResult>((r) => ex.export(rm, r));
  await new Promise((r) => setImmediate(r));
  const second = await new Promise<ExportResult>((r) => ex.export(rm, r));
  assert.equal(second.code, ExportResultCode.FAILED);
  assert.deepEqual(errors, ['the previous export has not ended yet']);
  made[0]!.done!({ code: ExportResultCode.FAILED, error: new Error('deadline') });
  assert.equal((await first).code, ExportResultCode.FAILED);
  await new Promise((r) => setImmediate(r));
  assert.equal(made.length, 2, 'a fresh exporter after the failure');
  assert.equal(made[0]!.shutdowns, 1, 'the failed one shut down');
});
