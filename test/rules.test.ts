/**
 * The Prometheus rule file (charts/kube-node-ping/files/rules/kube-node-ping.rules.yaml):
 * promtool accepts it, its promtool unit tests (test/rules/*.test.yaml, rendered from
 * test/rules/scenarios.ts) are up to date and pass, and it only names metrics the agent exports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { toolPath } from './support/tools.ts';
import { FILES, RULES_FILE, outPath, renderFile } from './rules/generate.ts';
import { knownMetric, rawMetrics } from './rules/metric-names.ts';
import { SCENARIOS, pairsOf, type AlertName } from './rules/scenarios.ts';
import { localise, type PairLoss } from '../sim/localise.ts';

const run = promisify(execFile);

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (parse(readFileSync(RULES_FILE, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

test('promtool check rules accepts the rule file', async () => {
  const { stdout } = await run(toolPath('promtool'), ['check', 'rules', RULES_FILE]);
  assert.match(stdout, /SUCCESS: \d+ rules found/);
});

test('the promtool unit tests are rendered from the current scenarios and rule file', () => {
  for (const f of FILES) assert.equal(readFileSync(outPath(f), 'utf8'), renderFile(f), `${outPath(f)} is stale: run node test/rules/generate.ts`);
});

test('promtool test rules: every scenario fires exactly the expected alerts', async () => {
  const files = FILES.map((f) => `${f}.test.yaml`);
  try {
    const { stdout } = await run(toolPath('promtool'), ['test', 'rules', ...files], { cwd: new URL('./rules/', import.meta.url), maxBuffer: 64 << 20 });
    assert.equal(stdout.match(/SUCCESS/g)?.length, files.length, stdout);
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    assert.fail(`promtool test rules failed:\n${e.stdout ?? ''}${e.stderr ?? String(err)}`);
  }
});

test('every alert has a severity, a summary, a description and a runbook URL', () => {
  const alerts = rules.filter((r) => r.alert);
  assert.ok(alerts.length >= 10);
  for (const a of alerts) {
    assert.match(a.labels?.['severity'] ?? '', /^(critical|warning|info)$/, a.alert);
    for (const k of ['summary', 'description', 'runbook_url']) assert.ok(a.annotations?.[k], `${a.alert}: ${k}`);
    assert.equal(a.annotations!['runbook_url'], `https://runbooks.invalid/kube-node-ping/${a.alert}`);
  }
});

test('recording rules are named level:what:window and read only metrics the agent exports', () => {
  const records = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
  for (const r of rules) {
    if (r.record) assert.match(r.record, /^kube_node_ping_(pair|zone_pair|zone_link|zone|destination|source|node):[a-z0-9_]+(:[a-z0-9_]+)?$/, r.record);
    for (const m of rawMetrics(r.expr)) assert.ok(knownMetric(m), `${r.record ?? r.alert} reads ${m}, which the agent does not export`);
    for (const m of r.expr.matchAll(/\bkube_node_ping_[a-z_]+:[a-z0-9_:]+/g)) assert.ok(records.has(m[0]), `${r.record ?? r.alert} reads ${m[0]}, which no rule records`);
  }
});

test('no rule selects histogram buckets by a literal le (scrape and OTLP write it differently)', () => {
  for (const r of rules) assert.doesNotMatch(r.expr, /le\s*=~?\s*"/, r.record ?? r.alert);
});

test('the simulator\'s copy of the logic (sim/localise.ts) reaches the same verdicts on every localisation scenario', () => {
  const KIND: Partial<Record<AlertName, string>> = {
    KubeNodePingZoneUplinkDegraded: 'zone_uplink',
    KubeNodePingNodeUnreachable: 'node_unreachable',
    KubeNodePingNodeLossy: 'node_lossy',
    KubeNodePingSourceDegraded: 'source_degraded',
    KubeNodePingPacketLoss: 'pair_lossy',
  };
  for (const s of SCENARIOS.filter((x) => x.file === 'localisation')) {
    const check = s.checks[s.checks.length - 1]!;
    // Steady state at the last check: each present source's pairs, with the scenario's loss.
    const pairs: PairLoss[] = pairsOf(s)
      .filter((p) => (s.agents?.[p.src]?.goneAt ?? Infinity) > check.at)
      .map((p) => {
        const loss = s.loss?.(p.src, p.dst, check.at) ?? 0;
        return { source: p.src, sourceZone: s.zones?.[p.src] ?? '', destination: p.dst, destinationZone: s.zones?.[p.dst] ?? '', loss, outageSeconds: loss >= 1 ? 300 : 0 };
      });
    const got = localise(pairs).map((v) => `${v.kind} ${v.subject}`).sort();
    const want: string[] = [];
    for (const [alert, list] of Object.entries(check.firing) as [AlertName, { labels: Record<string, string> }[]][]) {
      for (const e of list) {
        const l = e.labels;
        if (alert === 'KubeNodePingExternalUnreachable') {
          const v = got.find((g) => g.endsWith(` ${l['destination_name']}`) && /^node_(unreachable|lossy) /.test(g));
          want.push(v ?? `node_unreachable|node_lossy ${l['destination_name']}`);
        } else if (KIND[alert] === 'pair_lossy') want.push(`pair_lossy ${l['k8s_node_name']} -> ${l['destination_name']}`);
        else if (KIND[alert]) want.push(`${KIND[alert]} ${l['zone'] ?? l['destination_name'] ?? l['k8s_node_name']}`);
      }
    }
    assert.deepEqual(got, want.sort(), s.name);
  }
});
