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

test('start-up and exit paths: values that used to fail later, in other words, stop start-up naming the key and the value', () => {
  // The SDK refused this with exit 1 and its own wording.
  fails(['--export-interval', '10s', '--export-timeout', '20s'], {}, /--export-timeout 20s is above --export-interval 10s/);
  fails([], { OTEL_METRIC_EXPORT_INTERVAL: '1000', OTEL_METRIC_EXPORT_TIMEOUT: '2000' }, /OTEL_METRIC_EXPORT_TIMEOUT 2s is above OTEL_METRIC_EXPORT_INTERVAL 1s/);
  fails(['--export-timeout', '2m'], {}, /--export-timeout 2m is above --export-interval \(default\) 1m/);
  // Headers: CR/LF (two lines over gRPC, a failure at every export over HTTP), bad names.
  fails([], { OTEL_EXPORTER_OTLP_HEADERS: 'a=b%0D%0AX-Injected: 1' }, /OTEL_EXPORTER_OTLP_HEADERS .* has a control character \(CR, LF, \.\.\.\) in the value of header "a"/);
  fails(['--otlp-headers', 'a=x%0Ay'], {}, /--otlp-headers "a=x%0Ay" has a control character/);
  fails(['--otlp-headers', 'bad name=1'], {}, /has header name "bad name", not a valid HTTP header name/);
  // A name would be looked up in DNS (getaddrinfo ENOTFOUND at start).
  fails(['--prometheus-host', 'no-such-host.invalid'], {}, /--prometheus-host "no-such-host\.invalid" is not an IP address/);
  fails([], { KNP_PROMETHEUS_HOST: 'localhost' }, /KNP_PROMETHEUS_HOST "localhost" is not an IP address/);
  assert.equal(load(['--prometheus-host', '::']).prometheusHost, '::');
  assert.equal(load(['--prometheus-host', ' 10.0.0.5 ']).prometheusHost, '10.0.0.5');
  // Wrong YAML types for string keys were stringified silently.
  const file = (text: string) => ({ '/c.yaml': text });
  fails(['--config', '/c.yaml'], {}, /\/c\.yaml: targetsFile 5 is a number, not a string \(quote it\)/, file('targetsFile: 5\n'));
  fails(['--config', '/c.yaml'], {}, /\/c\.yaml: nodeName \["a","b"\] is a list, not a single value/, file('nodeName: [a, b]\n'));
  fails(['--config', '/c.yaml'], {}, /\/c\.yaml: otlpEndpoint \{"a":1\} is a mapping, not a single value/, file('otlpEndpoint: {a: 1}\n'));
  fails(['--config', '/c.yaml'], {}, /\/c\.yaml: discovery true is a boolean, not a string/, file('discovery: true\n'));
  fails(['--config', '/c.yaml'], {}, /\/c\.yaml: clusterName null is empty/, file('clusterName:\n'));
  fails(['--config', '/c.yaml'], {}, /\/c\.yaml: period \[1,2\] is a list/, file('period: [1, 2]\n'));
  // What is right still passes: numbers for numbers, lists for lists, maps for maps.
  const c = load(['--config', '/c.yaml'], {}, file('packetSize: 100\nskipCordoned: true\nipFamilies: [ipv4]\notlpHeaders: {tenant: a}\nrttBuckets: [1ms, 5ms]\nclusterName: "5"\n'));
  assert.deepEqual([c.packetSize, c.skipCordoned, c.ipFamilies, c.otlpHeaders, c.rttBuckets, c.clusterName], [100, true, ['ipv4'], { tenant: 'a' }, [1, 5], '5']);
});

test('OTLP endpoint variables per the specification: the signal-specific one as is, the generic one always gets /v1/metrics', async () => {
  const { otlpUrl } = await import('../export/otlp.ts');
  const url = (env: Record<string, string>, argv: string[] = []) => {
    const c = load(argv, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', ...env });
    return otlpUrl(c.otlpEndpoint, c.otlpProtocol, c.otlpEndpointKind);
  };
  assert.equal(url({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://c:4318' }), 'http://c:4318');
  assert.equal(url({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://c:4318/custom' }), 'http://c:4318/custom');
  assert.equal(url({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), 'http://c:4318/v1/metrics');
  assert.equal(url({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c/otlp' }), 'http://c/otlp/v1/metrics');
  assert.equal(url({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c/otlp/' }), 'http://c/otlp/v1/metrics');
  // The flag: /v1/metrics only when there is no path.
  assert.equal(url({}, ['--otlp-endpoint', 'http://c:4318']), 'http://c:4318/v1/metrics');
  assert.equal(url({}, ['--otlp-endpoint', 'http://c:4318/custom']), 'http://c:4318/custom');
  // The signal-specific variable wins, and gRPC takes the endpoint as is.
  assert.equal(url({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://b:2/m' }), 'http://b:2/m');
  assert.equal(url({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), 'http://c:4317');
});
