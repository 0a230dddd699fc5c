import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { TargetMetrics } from '../telemetry/target-metrics.ts';
import { SelfMetrics } from '../telemetry/self-metrics.ts';
import { PrometheusEndpoint } from './prometheus.ts';

function setup() {
  const metrics = new TargetMetrics({ bucketsMs: [0.5, 1, 20, 30], outageThreshold: 3, timeoutMs: 1000, version: 't' });
  const endpoint = new PrometheusEndpoint([metrics]);
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'kube-node-ping', 'k8s.node.name': 'node-a', 'k8s.cluster.name': 'c1', 'host.name': 'host-a', 'k8s.pod.name': 'p' }),
    readers: [endpoint.reader],
  });
  const self = new SelfMetrics(provider.getMeter('kube-node-ping'), { processes: () => 1 });
  return { metrics, endpoint, self };
}

const samples = (body: string) => body.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

test('Prometheus names carry unit and _total suffixes; resource labels are on every series', async () => {
  const { metrics, endpoint } = setup();
  metrics.setTargets([{ name: 'node-b', address: '10.0.0.2', family: 4, kind: 'node' }]);
  metrics.recordReply('10.0.0.2', 0, 25, 0);
  metrics.recordLoss('10.0.0.2', 1, 0);
  const body = await endpoint.text();
  const lines = samples(body);
  const names = new Set(lines.map((l) => l.slice(0, l.search(/[{ ]/))));
  for (const n of [
    'kube_node_ping_packets_sent_total', 'kube_node_ping_packets_received_total', 'kube_node_ping_packets_duplicate_total',
    'kube_node_ping_rtt_seconds_bucket', 'kube_node_ping_rtt_seconds_sum', 'kube_node_ping_rtt_seconds_count',
    'kube_node_ping_outage_ongoing_seconds', 'kube_node_ping_outage_duration_seconds_total', 'kube_node_ping_outages_total',
    'kube_node_ping_targets', 'kube_node_ping_fping_processes', 'kube_node_ping_fping_restarts_total',
    'kube_node_ping_fping_parse_errors_total', 'kube_node_ping_export_failures_total', 'kube_node_ping_eventloop_delay_max_seconds', 'target_info',
  ]) assert.ok(names.has(n), `${n} in\n${[...names].join('\n')}`);
  for (const l of lines.filter((x) => !x.startsWith('target_info'))) {
    assert.match(l, /k8s_node_name="node-a"/, l);
    assert.match(l, /k8s_cluster_name="c1"/, l);
    assert.match(l, /host_name="host-a"/, l);
    assert.doesNotMatch(l, /k8s_pod_name|otel_scope_name/, l);
  }
  assert.ok(lines.includes('kube_node_ping_rtt_seconds_bucket{destination_name="node-b",destination_address="10.0.0.2",destination_kind="node",k8s_node_name="node-a",k8s_cluster_name="c1",host_name="host-a",le="0.03"} 1'), body);
  assert.ok(lines.some((l) => l.startsWith('kube_node_ping_rtt_seconds_bucket{') && l.includes('le="0.02"') && l.endsWith(' 0')));
  assert.ok(lines.some((l) => l.startsWith('kube_node_ping_packets_sent_total{') && l.endsWith(' 2')));
});

test('a departed destination leaves the page at the next scrape; the others keep counting', async () => {
  const { metrics, endpoint } = setup();
  metrics.setTargets([{ name: 'b', address: '10.0.0.2', family: 4, kind: 'node' }, { name: 'c', address: '10.0.0.3', family: 4, kind: 'node' }]);
  metrics.recordReply('10.0.0.2', 0, 1, 0);
  metrics.recordReply('10.0.0.3', 0, 1, 0);
  assert.match((await endpoint.text()), /destination_name="c"/);
  metrics.setTargets([{ name: 'b', address: '10.0.0.2', family: 4, kind: 'node' }]);
  metrics.recordReply('10.0.0.2', 1, 1, 0);
  const body = await endpoint.text();
  assert.doesNotMatch(body, /destination_name="c"/);
  assert.ok(samples(body).some((l) => l.startsWith('kube_node_ping_packets_received_total{destination_name="b"') && l.endsWith(' 2')));
});

test('thousands of destinations: one series each, no SDK cardinality overflow', async () => {
  const { metrics, endpoint } = setup();
  const n = 2500; // above the SDK's default limit of 2000 attribute sets per instrument
  metrics.setTargets(Array.from({ length: n }, (_, i) => ({ name: `n${i}`, address: `10.1.${i >> 8}.${i & 255}`, family: 4 as const, kind: 'node' as const })));
  const lines = samples(await endpoint.text());
  assert.equal(lines.filter((l) => l.startsWith('kube_node_ping_packets_sent_total{')).length, n);
  assert.ok(!lines.some((l) => l.includes('otel_metric_overflow')));
});
