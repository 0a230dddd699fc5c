import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, DEFAULT_RTT_BUCKETS_MS, helpText, loadConfig, type Config } from './config.ts';

const load = (argv: string[], env: Record<string, string> = {}, files: Record<string, string> = {}): Config => {
  const r = loadConfig({ argv, env, readFile: (p) => {
    if (!(p in files)) throw new Error('ENOENT: no such file');
    return files[p]!;
  } });
  assert.equal(r.kind, 'config');
  return (r as { config: Config }).config;
};

const fails = (argv: string[], env: Record<string, string>, pattern: RegExp, files: Record<string, string> = {}) => {
  assert.throws(() => load(argv, env, files), (err: Error) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  });
};

test('defaults', () => {
  const c = load([]);
  assert.equal(c.period, 1000);
  assert.equal(c.timeout, 1000);
  assert.equal(c.prometheusPort, 9464);
  assert.equal(c.otlpEndpoint, '');
  assert.equal(c.otlpProtocol, 'http/protobuf');
  assert.equal(c.exportInterval, 60_000);
  assert.deepEqual(c.rttBuckets, DEFAULT_RTT_BUCKETS_MS);
  assert.equal(c.logLevel, 'info');
});

test('timeout defaults to the period, at most 2s', () => {
  assert.equal(load(['--period', '500ms']).timeout, 500);
  assert.equal(load(['--period', '5s']).timeout, 2000);
  assert.equal(load(['--period', '5s', '--timeout=3s']).timeout, 3000);
});

test('flag beats environment beats file beats default', () => {
  const files = { '/c.yaml': 'period: 3s\npacketSize: 100\nlogLevel: warn\n' };
  const c = load(['--config', '/c.yaml', '--period', '2s'], { KNP_PERIOD: '4s', KNP_PACKET_SIZE: '200' }, files);
  assert.equal(c.period, 2000);
  assert.equal(c.packetSize, 200);
  assert.equal(c.logLevel, 'warn');
  assert.equal(load([], { KNP_CONFIG: '/c.yaml' }, files).period, 3000);
});

test('standard OTel variables', () => {
  const c = load([], {
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    OTEL_METRIC_EXPORT_INTERVAL: '15000',
    OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20x,tenant=a',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,k8s.cluster.name=c1',
    NODE_NAME: 'node-a',
  });
  assert.equal(c.otlpEndpoint, 'http://collector:4317');
  assert.equal(c.otlpProtocol, 'grpc');
  assert.equal(c.exportInterval, 15_000);
  assert.deepEqual(c.otlpHeaders, { authorization: 'Bearer x', tenant: 'a' });
  assert.deepEqual(c.resourceAttributes, { 'deployment.environment': 'prod', 'k8s.cluster.name': 'c1' });
  assert.equal(c.nodeName, 'node-a');
  // The signal-specific variable wins over the general one.
  assert.equal(load([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://b:2/v1/metrics' }).otlpEndpoint, 'http://b:2/v1/metrics');
});

test('bad values name the key and the value', () => {
  fails(['--period', 'abc'], {}, /--period "abc" is not a duration/);
  fails([], { KNP_PERIOD: '1' }, /KNP_PERIOD "1" is not a duration/);
  fails(['--prometheus-port', '70000'], {}, /--prometheus-port "70000" is out of range 0\.\.65535/);
  fails(['--otlp-protocol', 'udp'], {}, /--otlp-protocol "udp" is not one of grpc, http\/protobuf/);
  fails([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' }, /OTEL_EXPORTER_OTLP_ENDPOINT "collector:4317" must start with http/);
  fails(['--rtt-buckets', '1ms,1ms'], {}, /--rtt-buckets "1ms,1ms" is not strictly increasing/);
  fails(['--log-level', 'loud'], {}, /--log-level "loud" is not one of debug, info, warn, error/);
  fails(['--no-such-flag', '1'], {}, /unknown flag --no-such-flag/);
  fails(['--period'], {}, /--period needs a value/);
  fails(['--config', '/c.yaml'], {}, /\/c\.yaml: period "fast" is not a duration/, { '/c.yaml': 'period: fast\n' });
  fails(['--config', '/c.yaml'], {}, /unknown key "perod"/, { '/c.yaml': 'perod: 1s\n' });
  fails(['--config', '/missing.yaml'], {}, /--config "\/missing\.yaml" cannot be read/);
});

test('--help documents every flag', () => {
  const r = loadConfig({ argv: ['--help'], env: {} });
  assert.equal(r.kind, 'help');
  const text = helpText();
  for (const flag of ['--targets-file', '--period', '--timeout', '--packet-size', '--prometheus-port', '--otlp-endpoint', '--otlp-protocol', '--export-interval', '--cluster-name', '--log-level', '--rtt-buckets', '--max-targets-per-fping', '--outage-threshold']) {
    assert.ok(text.includes(flag), flag);
  }
});
