/**
 * The page must always be valid: whatever the resource attributes, `promtool check metrics`
 * accepts the real page (small, and at 1,000 destinations), a real Prometheus scrapes it, and
 * gzip is served when the scraper asks.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { eventually, parseExposition, startAgent, valueOf, type AgentProcess } from './support/agent.ts';
import { startPrometheus, type PrometheusServer } from './support/servers.ts';
import { toolPath } from './support/tools.ts';

/**
 * Resource attributes that collide with each other (host.name/host_name, k8s.node.name and
 * k8s_node_name), with a data point label (destination_name), and with reserved names (le,
 * quantile, __name__). Each of these gave a page that Prometheus rejects as a whole.
 */
const HOSTILE_ATTRIBUTES = 'host_name=x,k8s_node_name=other,destination_name=evil,le=1,quantile=q,__name__=z,exporter=e';

let small: AgentProcess;
let large: AgentProcess;
let prom: PrometheusServer | undefined;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'knp-page-'));
  const file = join(dir, 'targets.json');
  // 1,000 loopback destinations (127.1.x.y answer on Linux without any set-up).
  writeFileSync(file, JSON.stringify(Array.from({ length: 1000 }, (_, i) => ({ name: `lo-${i}`, address: `127.1.${(i + 1) >> 8}.${(i + 1) & 255}` }))));
  const env = { NODE_NAME: 'node-a', OTEL_RESOURCE_ATTRIBUTES: HOSTILE_ATTRIBUTES };
  small = await startAgent({ env, args: ['--period', '200ms'] });
  large = await startAgent({ env, args: ['--targets-file', file, '--period', '1s'] });
});

after(async () => {
  await prom?.stop();
  await small?.stop();
  await large?.stop();
});

function promtoolCheck(page: string): { status: number | null; output: string } {
  const r = spawnSync(toolPath('promtool'), ['check', 'metrics'], { input: page, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

async function page(agent: AgentProcess, headers: Record<string, string> = {}): Promise<{ text: string; encoding: string | null; bytes: number }> {
  // fetch would decompress by itself: read the raw body to see what went over the wire.
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port: agent.port, path: '/metrics', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d)).on('error', reject).on('end', () => {
        const body = Buffer.concat(parts);
        const encoding = res.headers['content-encoding'] ?? null;
        resolve({ text: (encoding === 'gzip' ? gunzipSync(body) : body).toString('utf8'), encoding, bytes: body.length });
      });
    }).on('error', reject).end();
  });
}

test('the page must always be valid: promtool accepts the real page with colliding and reserved resource attributes, small and at 1,000 destinations', async () => {
  for (const [agent, destinations] of [[small, 2], [large, 1000]] as const) {
    const { text } = await eventually(async () => {
      const p = await page(agent);
      const samples = parseExposition(p.text);
      const targets = samples.filter((s) => s.name === 'kube_node_ping_targets').reduce((a, s) => a + s.value, 0);
      // Every destination probed once at least, so that each has all its series.
      const probed = samples.filter((s) => s.name === 'kube_node_ping_packets_sent_total' && s.value > 0).length;
      return targets === destinations && probed === destinations ? p : undefined;
    }, 20_000, `${destinations} destinations on the page`);
    const check = promtoolCheck(text);
    assert.equal(check.status, 0, `${destinations} destinations: ${check.output}`);
    const info = parseExposition(text).filter((s) => s.name === 'target_info');
    assert.equal(info.length, 1);
    // The rule (README, "Labels"): colliding attributes join, in the order of their names.
    assert.equal(info[0]!.labels['host_name'], `${spawnSync('hostname', { encoding: 'utf8' }).stdout.trim()};x`);
    assert.equal(info[0]!.labels['k8s_node_name'], 'node-a;other');
    assert.equal(info[0]!.labels['resource_le'], '1');
    assert.equal(info[0]!.labels['resource_quantile'], 'q');
    // On the series, the data point's own labels win.
    const rtt = parseExposition(text).find((s) => s.name === 'kube_node_ping_rtt_seconds_bucket')!;
    assert.notEqual(rtt.labels['destination_name'], 'evil');
    // Only the promoted attributes themselves (k8s.node.name, not k8s_node_name) are on the series, as on the OTLP path.
    assert.equal(rtt.labels['k8s_node_name'], 'node-a');
  }
});

test('the page must always be valid: gzip when the scraper asks, the same page, far smaller; plain otherwise', async () => {
  const plain = await page(large);
  const zipped = await page(large, { 'accept-encoding': 'gzip' });
  assert.equal(plain.encoding, null);
  assert.equal(zipped.encoding, 'gzip');
  assert.equal(promtoolCheck(zipped.text).status, 0);
  // The same series (values move between two scrapes).
  const names = (t: string) => parseExposition(t).map((s) => `${s.name}${JSON.stringify(s.labels)}`).sort();
  assert.deepEqual(names(zipped.text), names(plain.text));
  assert.ok(zipped.bytes * 5 < plain.bytes, `gzip ${zipped.bytes} bytes for ${plain.bytes}`);
  assert.equal((await page(large, { 'accept-encoding': 'gzip;q=0, identity' })).encoding, null);
  // /healthz answers while large gzipped pages are being sent: the loop is not held.
  const scrapes = Array.from({ length: 4 }, () => page(large, { 'accept-encoding': 'gzip' }));
  const t0 = Date.now();
  assert.equal((await fetch(`http://127.0.0.1:${large.port}/healthz`)).status, 200);
  const healthMs = Date.now() - t0;
  await Promise.all(scrapes);
  assert.ok(healthMs < 2000, `/healthz took ${healthMs} ms during four scrapes`);
});

test('the page must always be valid: a real Prometheus scrapes it (gzip, as it asks) with hostile resource attributes', async () => {
  prom = await startPrometheus([{ job: 'page', targets: [`127.0.0.1:${small.port}`, `127.0.0.1:${large.port}`] }]);
  const up = await eventually(async () => {
    const r = await prom!.query('up{job="page"}');
    return r.length === 2 ? r : undefined;
  }, 20_000, 'two scrapes');
  assert.deepEqual(up.map((r) => r.value[1]), ['1', '1'], JSON.stringify(up));
  const info = await prom.query('target_info{job="page"}');
  assert.equal(info.length, 2);
  assert.ok(info.every((r) => r.metric['resource_le'] === '1' && r.metric['host_name']!.endsWith(';x')), JSON.stringify(info));
  const sent = await prom.query('count(kube_node_ping_packets_sent_total{job="page"})');
  assert.equal(sent[0]?.value[1], '1002');
});
