/**
 * The Grafana dashboards (dashboards/*.ts → charts/kube-node-ping/files/dashboards/*.json).
 *
 * No Grafana server can be installed here, so the dashboards are not rendered. What is checked
 * instead: the committed JSON is exactly a fresh build; its structure is sound (ids, data
 * source, variables, metric names); and every PromQL query of every panel and every variable,
 * with the variables substituted, returns data from a REAL Prometheus 3 that scraped three
 * agents probing each other (over loopback) and the fault lab, with the rule file loaded. The
 * loss matrix must show the lossy lab host as the worst cell of every row.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dashboard, Panel, RowPanel, VariableModel } from '@grafana/grafana-foundation-sdk/dashboard';
import { Lab, type Host } from './lab/lab.ts';
import { sleep, startAgent, type AgentProcess } from './support/agent.ts';
import { startPrometheus, type PrometheusServer } from './support/servers.ts';
import { OUT_DIR, dashboards, render } from '../dashboards/build.ts';
import { RULE_FILES, loadRules } from './rules/generate.ts';
import { knownMetric, rawMetrics, recordedMetrics } from './rules/metric-names.ts';

interface Query {
  dashboard: string;
  panel: string;
  refId: string;
  expr: string;
  instant: boolean;
}

function panelsOf(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p as Panel, ...(((p as RowPanel).panels ?? []) as Panel[])]);
}

function queriesOf(file: string, d: Dashboard): Query[] {
  return panelsOf(d).flatMap((p) =>
    ((p.targets ?? []) as { expr?: string; refId?: string; instant?: boolean }[]).flatMap((t) =>
      t.expr ? [{ dashboard: file, panel: p.title ?? '?', refId: t.refId ?? '?', expr: t.expr, instant: t.instant === true }] : [],
    ),
  );
}

const variablesOf = (d: Dashboard): VariableModel[] => d.templating?.list ?? [];

/** Grafana's own variables that the queries may use. */
const BUILTIN = new Set(['__range', '__rate_interval', '__interval', '__value', '__url_time_range', '__data']);

/** Every $name and ${name...} in a string. */
function variableRefs(s: string): string[] {
  return [...s.matchAll(/\$\{([a-zA-Z_][a-zA-Z0-9_]*)[^}]*\}|\$([a-zA-Z_][a-zA-Z0-9_]*)/g)].map((m) => (m[1] ?? m[2])!);
}

function substitute(expr: string, vars: Record<string, string>): string {
  const out = expr.replace(/\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}|\$([a-zA-Z_][a-zA-Z0-9_]*)/g, (all, a?: string, b?: string) => {
    const v = vars[(a ?? b)!];
    if (v === undefined) throw new Error(`no test value for ${all} in ${expr}`);
    return v;
  });
  assert.doesNotMatch(out, /\$[a-zA-Z_{]/, out); // ($1 is label_replace's)
  return out;
}

const built = dashboards();

describe('dashboards as code', () => {
  test('the committed JSON is exactly a fresh build (run npm run dashboards after a change)', () => {
    const committed = readdirSync(OUT_DIR).filter((f) => f.endsWith('.json')).sort();
    assert.deepEqual(committed, [...built.keys()].sort(), 'the chart holds exactly the built dashboards');
    for (const [file, d] of built) assert.equal(readFileSync(join(OUT_DIR, file), 'utf8'), render(d), `${file} is stale: run npm run dashboards`);
    // And a second build gives the same bytes: nothing depends on the time or the machine.
    for (const [file, d] of dashboards()) assert.equal(render(d), render(built.get(file)!), file);
  });

  test('structure: unique uids and panel ids, a title, description and the data-source variable everywhere', () => {
    const uids = [...built.values()].map((d) => d.uid);
    assert.equal(new Set(uids).size, uids.length);
    for (const [file, d] of built) {
      assert.ok(d.uid && d.title && d.description, file);
      assert.deepEqual(d.tags, ['kube-node-ping'], file);
      const ids = panelsOf(d).map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, `${file}: panel ids`);
      const names = variablesOf(d).map((v) => v.name);
      for (const v of ['datasource', 'cluster', 'source']) assert.ok(names.includes(v), `${file}: variable ${v}`);
      for (const p of panelsOf(d)) {
        if (p.type === 'row') continue;
        assert.ok(p.title && p.description, `${file}: panel ${p.id} needs a title and a description`);
        assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, `${file}: ${p.title}`);
        assert.ok((p.targets ?? []).length > 0, `${file}: ${p.title} has no query`);
        for (const t of p.targets ?? []) assert.deepEqual((t as { datasource?: unknown }).datasource, { type: 'prometheus', uid: '${datasource}' }, `${file}: ${p.title}`);
      }
    }
  });

  test('queries use only defined variables, metrics the agent exports, recording rules that exist, and no literal le', () => {
    const { records } = loadRules();
    for (const [file, d] of built) {
      const defined = new Set([...variablesOf(d).map((v) => v.name), ...BUILTIN]);
      for (const q of queriesOf(file, d)) {
        const where = `${file} / ${q.panel} / ${q.refId}`;
        for (const v of variableRefs(q.expr)) assert.ok(defined.has(v), `${where}: $${v} is not defined`);
        for (const m of rawMetrics(q.expr)) assert.ok(knownMetric(m), `${where}: ${m} is not a metric of the agent`);
        for (const m of recordedMetrics(q.expr)) assert.ok(records.has(m), `${where}: ${m} is not recorded by the rule file`);
        assert.doesNotMatch(q.expr, /le\s*=~?\s*"/, where);
        if (recordedMetrics(q.expr).length > 0) assert.match(q.panel, /\(rules/, `${where}: a panel that needs the rule file says so in its title`);
      }
      for (const v of variablesOf(d)) for (const r of variableRefs(String(v.definition ?? ''))) assert.ok(defined.has(r), `${file}: variable ${v.name} uses $${r}`);
    }
  });

  test('the overview has the source × destination matrices (and a zone × zone one)', () => {
    const o = built.get('kube-node-ping-overview.json')!;
    const matrices = panelsOf(o).filter((p) => (p.transformations ?? []).some((t) => t.id === 'groupingToMatrix'));
    const fields = matrices.map((m) => {
      const t = m.transformations!.find((x) => x.id === 'groupingToMatrix')!;
      return `${t.options.rowField} × ${t.options.columnField}`;
    });
    assert.equal(fields.filter((f) => f === 'k8s_node_name × destination_name').length, 4, fields.join(', '));
    assert.equal(fields.filter((f) => f === 'cloud_availability_zone × destination_zone').length, 1, fields.join(', '));
    for (const m of matrices) {
      assert.equal((m.targets![0] as { instant?: boolean }).instant, true, `${m.title}: an instant query over $__range`);
    }
  });
});

// ---- against a real Prometheus --------------------------------------------------------------

const RUN_S = 32;
const PERIOD = '100ms';
/** The agents: each probes the two others over loopback, and every lab host. */
const AGENTS = [
  { name: 'node-1', address: '127.0.0.11' },
  { name: 'node-2', address: '127.0.0.12' },
  { name: 'node-3', address: '127.0.0.13' },
];
const LOSS_PCT = 70;

describe('every query against a real Prometheus', () => {
  let lab: Lab;
  let prom: PrometheusServer;
  const agents: AgentProcess[] = [];
  const hosts: Record<string, Host> = {};
  let evalTime = 0;

  before(async () => {
    lab = await Lab.create();
    for (const name of ['alpha', 'slow', 'lossy', 'blip']) hosts[name] = await lab.addHost(name);
    await lab.setDelay(hosts['slow']!, { ms: 10, jitterMs: 2 });
    await lab.setLoss(hosts['lossy']!, LOSS_PCT);
    const labTargets = Object.values(hosts).map((h) => ({ name: h.name, address: h.v4 }));
    // The network rule: every lab address routes into the lab; the agents' own addresses are loopback.
    await lab.assertRoutes(labTargets.map((t) => t.address));
    const dir = mkdtempSync(join(tmpdir(), 'knp-dash-'));
    for (const a of AGENTS) {
      const file = join(dir, `${a.name}.json`);
      writeFileSync(file, JSON.stringify([...AGENTS.filter((o) => o !== a), ...labTargets]));
      agents.push(await startAgent({ args: ['--targets-file', file, '--period', PERIOD, '--cluster-name', 'lab'], env: { NODE_NAME: a.name } }));
    }
    prom = await startPrometheus([{ job: 'kube-node-ping', targets: agents.map((a) => `127.0.0.1:${a.port}`) }], { ruleFiles: RULE_FILES });
    // An outage of a few seconds in the middle of the run.
    await sleep(8000);
    await lab.setBlackhole(hosts['blip']!, true);
    await sleep(6000);
    await lab.setBlackhole(hosts['blip']!, false);
    await sleep((RUN_S - 14) * 1000);
    evalTime = Date.now() / 1000;
  });

  after(async () => {
    for (const a of agents) await a.stop();
    await prom?.stop();
    await lab?.destroy();
  });

  /** The values the test gives the variables; `source` differs per dashboard (All, or one node). */
  const vars = (source: string): Record<string, string> => ({
    datasource: 'prometheus',
    cluster: 'lab',
    source,
    destination: '.*',
    quantile: '0.99',
    __range: `${RUN_S}s`,
    __rate_interval: '10s',
    __interval: '2s',
  });
  const SOURCE_FOR: Record<string, string> = {
    'kube-node-ping-overview.json': '.*',
    'kube-node-ping-agents.json': '.*',
    'kube-node-ping-node.json': 'node-1',
  };

  type Series = { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] };

  async function api(path: string, params: Record<string, string>): Promise<Series[]> {
    const r = await fetch(`${prom.url}${path}?${new URLSearchParams(params)}`);
    const body = (await r.json()) as { status: string; error?: string; data: { result: Series[] } };
    if (body.status !== 'success') throw new Error(`${params['query']}: ${body.error}`);
    return body.data.result;
  }

  const instantQuery = (q: string) => api('/api/v1/query', { query: q, time: String(evalTime) });
  const rangeQuery = (q: string) => api('/api/v1/query_range', { query: q, start: String(evalTime - RUN_S + 5), end: String(evalTime), step: '2' });

  test('every panel query returns data, with the variables substituted', async () => {
    const empty: string[] = [];
    let n = 0;
    for (const [file, d] of built) {
      for (const q of queriesOf(file, d)) {
        const expr = substitute(q.expr, vars(SOURCE_FOR[file]!));
        const result = q.instant ? await instantQuery(expr) : await rangeQuery(expr);
        const values = result.flatMap((s) => (s.value ? [s.value] : (s.values ?? []))).map((v) => Number(v[1]));
        n++;
        if (!values.some((v) => Number.isFinite(v))) empty.push(`${file} / ${q.panel} / ${q.refId}: ${expr}`);
      }
    }
    assert.ok(n >= 60, `${n} queries`);
    assert.deepEqual(empty, [], `queries without data:\n${empty.join('\n')}`);
  });

  test('every variable query finds the lab values', async () => {
    const want: Record<string, string[]> = {
      cluster: ['lab'],
      source: AGENTS.map((a) => a.name),
      destination: [...AGENTS.map((a) => a.name), 'alpha', 'blip', 'lossy', 'slow'],
    };
    for (const [file, d] of built) {
      for (const v of variablesOf(d)) {
        if (v.type !== 'query') continue;
        const m = /^label_values\((.+), ([a-z0-9_]+)\)$/.exec(substitute(String(v.definition), vars('.*')));
        assert.ok(m, `${file}: ${v.name}: ${v.definition}`);
        const r = await fetch(`${prom.url}/api/v1/label/${m[2]}/values?${new URLSearchParams({ 'match[]': m[1]!, start: String(evalTime - 60), end: String(evalTime) })}`);
        const values = ((await r.json()) as { data: string[] }).data.sort();
        assert.deepEqual(values, want[v.name!]!.sort(), `${file}: ${v.name}`);
      }
    }
  });

  const overview = built.get('kube-node-ping-overview.json')!;
  const panelExpr = (title: string) => {
    const p = panelsOf(overview).find((x) => x.title === title);
    assert.ok(p, title);
    return substitute((p.targets![0] as unknown as { expr: string }).expr, vars('.*'));
  };

  /** The matrix as Grafana's groupingToMatrix makes it: row (source) → column (destination) → value. */
  async function matrix(title: string): Promise<Map<string, Map<string, number>>> {
    const m = new Map<string, Map<string, number>>();
    for (const s of await instantQuery(panelExpr(title))) {
      const row = s.metric['k8s_node_name']!;
      (m.get(row) ?? m.set(row, new Map()).get(row)!).set(s.metric['destination_name']!, Number(s.value![1]));
    }
    return m;
  }
  const worst = (row: Map<string, number>) => [...row].sort((a, b) => b[1] - a[1])[0]!;

  test('the loss matrix: every source row × destination column, the lossy host the worst cell of every row', async () => {
    const m = await matrix('Packet loss: source (rows) → destination (columns)');
    assert.deepEqual([...m.keys()].sort(), AGENTS.map((a) => a.name));
    for (const [src, row] of m) {
      const cols = [...AGENTS.filter((a) => a.name !== src).map((a) => a.name), 'alpha', 'blip', 'lossy', 'slow'].sort();
      assert.deepEqual([...row.keys()].sort(), cols, src);
      const [dest, value] = worst(row);
      assert.equal(dest, 'lossy', `${src}: worst cell ${dest} ${value}`);
      assert.ok(Math.abs(value - LOSS_PCT / 100) < 0.12, `${src} → lossy: ${value}`);
      for (const clean of ['alpha', 'slow', ...AGENTS.map((a) => a.name)]) if (row.has(clean)) assert.ok(row.get(clean)! < 0.02, `${src} → ${clean}: ${row.get(clean)}`);
      // Six seconds of blackhole in about half a minute.
      assert.ok(row.get('blip')! > 0.08 && row.get('blip')! < 0.4, `${src} → blip: ${row.get('blip')}`);
    }
  });

  test('the RTT matrix shows the delayed host; the outage matrix the blackholed one', async () => {
    const p50 = await matrix('RTT p50: source → destination');
    for (const [src, row] of p50) {
      assert.equal(worst(row)[0], 'slow', `${src}: ${JSON.stringify([...row])}`);
      assert.ok(row.get('slow')! > 0.007 && row.get('slow')! < 0.02, `${src} → slow p50 ${row.get('slow')}`);
    }
    const outage = await matrix('Longest outage: source → destination');
    for (const [src, row] of outage) {
      assert.ok(row.get('blip')! > 3 && row.get('blip')! < 15, `${src} → blip longest outage ${row.get('blip')}`);
      for (const clean of ['alpha', 'slow']) assert.equal(row.get(clean), 0, `${src} → ${clean}`);
    }
  });

  test('the recording rules evaluate on live data: the lossy host is blamed as unreachable, the blip as lossy, nobody else', async () => {
    const blamed = (await instantQuery('kube_node_ping_node:blamed')).map((s) => `${s.metric['node']}=${s.metric['reason']}`).sort();
    assert.deepEqual(blamed, ['blip=lossy', 'lossy=unreachable']);
    const sources = await instantQuery('kube_node_ping_destination:sources:count{destination_name="lossy"}');
    assert.equal(Number(sources[0]?.value?.[1]), AGENTS.length);
  });
});
