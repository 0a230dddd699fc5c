import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { TargetMetrics } from '../telemetry/target-metrics.ts';
import { SelfMetrics } from '../telemetry/self-metrics.ts';
import { parseExposition } from '../../test/support/agent.ts';
import { Exposition, prometheusName } from './exposition.ts';
import { PrometheusEndpoint } from './prometheus.ts';

const PROMOTE = /^(k8s\.node\.name|host\.name)$/;

async function collect(): Promise<ResourceMetrics> {
  const metrics = new TargetMetrics({ bucketsMs: [0.05, 1, 20, 30, 1000], outageThreshold: 1, timeoutMs: 1000, version: 't' });
  const endpoint = new PrometheusEndpoint([metrics]);
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'kube-node-ping', 'k8s.node.name': 'n"1\\', 'host.name': 'h\n1' }), readers: [endpoint.reader] });
  new SelfMetrics(provider.getMeter('kube-node-ping'), { processes: () => 3 }).fpingRestart();
  metrics.setTargets([
    { name: 'quote"back\\slash', address: '10.0.0.2', family: 4, kind: 'node' },
    { name: 'v6', address: 'fd00::2', family: 6, kind: 'external' },
  ]);
  metrics.recordReply('10.0.0.2', 0, 25, 0);
  metrics.recordReply('10.0.0.2', 1, 0.04, 0);
  metrics.recordLoss('fd00::2', 0, 0);
  return (await endpoint.reader.collect()).resourceMetrics;
}

test('same samples as the OTel exporter\'s serializer given the same names', async () => {
  const rm = await collect();
  const ours = parseExposition([...new Exposition({ promote: PROMOTE, chunkSize: 100 }).render(rm)].join(''));
  // The reference: the OTel serializer on the same data, renamed the way we name (it adds no unit suffix).
  const renamed: ResourceMetrics = {
    resource: rm.resource,
    scopeMetrics: rm.scopeMetrics.map((sm) => ({ scope: sm.scope, metrics: sm.metrics.map((m) => ({ ...m, descriptor: { ...m.descriptor, name: prometheusName(m).replace(/_total$/, '') } }) as MetricData) })),
  };
  const reference = parseExposition(new PrometheusSerializer(undefined, false, PROMOTE, false, true).serialize(renamed));
  const key = (s: { name: string; labels: Record<string, string>; value: number }) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())} ${s.value}`;
  assert.deepEqual(ours.map(key).sort(), reference.map(key).sort());
  assert.ok(ours.some((s) => s.labels['destination_name'] === 'quote"back\\slash' && s.labels['k8s_node_name'] === 'n"1\\' && s.labels['host_name'] === 'h\n1'), 'escaping round-trips');
  // 2 destinations × 14 samples, 2 of the targets gauge, 8 self samples, target_info.
  assert.equal(ours.length, 2 * 14 + 2 + 8 + 1);
});

test('chunks stay near the requested size', async () => {
  const rm = await collect();
  const chunks = [...new Exposition({ promote: PROMOTE, chunkSize: 500 }).render(rm)];
  assert.ok(chunks.length > 3);
  for (const c of chunks.slice(0, -1)) assert.ok(c.length >= 500 && c.length < 500 + 2000, String(c.length));
});
