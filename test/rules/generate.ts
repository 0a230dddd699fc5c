/**
 * Renders the scenarios of scenarios.ts into promtool unit-test files, test/rules/<file>.test.yaml.
 *
 *   node test/rules/generate.ts          # rewrite the files
 *   node test/rules/generate.ts --check  # exit 1 if a committed file differs from a fresh rendering
 *
 * Expected annotations are rendered from the rule file's own templates by a tiny renderer that
 * knows only what the rules use ($labels.x, $value with humanizePercentage/humanizeDuration):
 * promtool then checks the label values and numbers that Prometheus puts into them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Document, parse } from 'yaml';
import { CLUSTER, JOB, SCENARIOS, SEVERITY, pairsOf, type AgentState, type AlertName, type ExpectedAlert, type Scenario } from './scenarios.ts';

export const RULES_FILE = fileURLToPath(new URL('../../charts/kube-node-ping/files/rules/kube-node-ping.rules.yaml', import.meta.url));
const OUT_DIR = fileURLToPath(new URL('./', import.meta.url));
/** As the test files name it (relative to themselves). */
const RULES_REF = '../../charts/kube-node-ping/files/rules/kube-node-ping.rules.yaml';

/** RTT histogram bounds of the synthetic data, seconds. */
const BOUNDS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];
const PROBES_PER_MINUTE = 60;

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function loadRules(): { alerts: Map<string, Rule>; records: Set<string> } {
  const doc = parse(readFileSync(RULES_FILE, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  const alerts = new Map<string, Rule>();
  const records = new Set<string>();
  for (const g of doc.groups) {
    for (const r of g.rules) {
      if (r.alert) alerts.set(r.alert, r);
      if (r.record) records.add(r.record);
    }
  }
  return { alerts, records };
}

// ---- Go template subset ------------------------------------------------------------------

/** Go's %.4g for the magnitudes alerts print (no exponent form). */
function g4(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`cannot render ${v}`);
  const s = String(Number(v.toPrecision(4)));
  if (/e/.test(s)) throw new Error(`${v} would print with an exponent`);
  return s;
}

function humanizePercentage(v: number): string {
  return `${g4(v * 100)}%`;
}

/** Prometheus's humanizeDuration for values under a second. */
function humanizeDuration(v: number): string {
  if (v === 0) return '0s';
  if (Math.abs(v) >= 1) throw new Error(`humanizeDuration(${v}) not implemented for ≥ 1 s`);
  let prefix = '';
  for (const p of ['m', 'u', 'n', 'p']) {
    if (Math.abs(v) >= 1) break;
    prefix = p;
    v *= 1000;
  }
  return `${g4(v)}${prefix}s`;
}

export function renderTemplate(t: string, labels: Record<string, string>, value: number | undefined): string {
  return t.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (_, inner: string) => {
    const lm = /^\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)$/.exec(inner);
    if (lm) return labels[lm[1]!] ?? '';
    const vm = /^\$value(?:\s*\|\s*(humanizePercentage|humanizeDuration))?$/.exec(inner);
    if (vm) {
      if (value === undefined) throw new Error(`template ${JSON.stringify(t)} prints $value: give the expected value`);
      if (vm[1] === 'humanizePercentage') return humanizePercentage(value);
      if (vm[1] === 'humanizeDuration') return humanizeDuration(value);
      return String(value);
    }
    throw new Error(`template construct {{ ${inner} }} is not supported by the test renderer`);
  });
}

// ---- series --------------------------------------------------------------------------------

type Values = (number | undefined)[];

function fmt(n: number): string {
  const s = String(Number(n.toPrecision(12)));
  if (/e/.test(s)) throw new Error(`value ${n} would print with an exponent`);
  return s;
}

/** promtool's expanding notation: `a+bxn` is n+1 values, `_xn` n missing ones, `stale` a staleness marker. */
export function compress(values: Values): string {
  const out: string[] = [];
  let i = 0;
  let wasPresent = false;
  while (i < values.length) {
    const v = values[i];
    if (v === undefined) {
      let j = i;
      while (j < values.length && values[j] === undefined) j++;
      let n = j - i;
      if (wasPresent) {
        out.push('stale');
        n--;
      }
      if (n === 1) out.push('_');
      else if (n > 1) out.push(`_x${n}`);
      wasPresent = false;
      i = j;
      continue;
    }
    let j = i + 1;
    const step = j < values.length && values[j] !== undefined ? values[j]! - v : 0;
    while (j < values.length && values[j] !== undefined && Math.abs(values[j]! - values[j - 1]! - step) <= 1e-9 * Math.max(1, Math.abs(step))) j++;
    const n = j - i - 1;
    if (n === 0) out.push(fmt(v));
    else if (step === 0) out.push(`${fmt(v)}x${n}`);
    else out.push(`${fmt(v)}${step > 0 ? '+' : '-'}${fmt(Math.abs(step))}x${n}`);
    wasPresent = true;
    i = j;
  }
  return out.join(' ');
}

function seriesName(name: string, labels: Record<string, string>): string {
  const body = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ');
  return `${name}{${body}}`;
}

const nodeAddress = (s: Scenario, n: string) => `10.0.0.${s.nodes.indexOf(n) + 1}`;
const externalAddress = (s: Scenario, n: string) => `192.0.2.${(s.externals ?? []).indexOf(n) + 1}`;

function sourceLabels(s: Scenario, node: string): Record<string, string> {
  const zone = s.zones?.[node];
  return { job: JOB, instance: `${node}:9464`, k8s_cluster_name: CLUSTER, k8s_node_name: node, host_name: node, ...(zone ? { cloud_availability_zone: zone } : {}) };
}

/** Whether the agent on `node` sends anything at minute m. */
function present(a: AgentState | undefined, m: number): boolean {
  return a?.goneAt === undefined || m < a.goneAt;
}

export function seriesOf(s: Scenario): { series: string; values: string }[] {
  const out: { series: string; values: string }[] = [];
  const minutes = Array.from({ length: s.minutes + 1 }, (_, m) => m);
  const add = (name: string, labels: Record<string, string>, values: Values) => {
    if (values.every((v) => v === undefined)) return;
    out.push({ series: seriesName(name, labels), values: compress(values) });
  };
  /** Cumulative counter from per-minute increments (none at minute 0); undefined while the agent is away. */
  const counter = (agent: AgentState | undefined, inc: (m: number) => number): Values => {
    let total = 0;
    return minutes.map((m) => {
      if (m > 0) total += inc(m);
      return present(agent, m) ? total : undefined;
    });
  };

  for (const { src, dst, kind } of pairsOf(s)) {
    const agent = s.agents?.[src];
    const dstZone = kind === 'node' ? s.zones?.[dst] : undefined;
    const labels = {
      ...sourceLabels(s, src),
      destination_name: dst,
      destination_address: kind === 'node' ? nodeAddress(s, dst) : externalAddress(s, dst),
      destination_kind: kind,
      ...(dstZone ? { destination_zone: dstZone } : {}),
    };
    const loss = (m: number) => s.loss?.(src, dst, m) ?? 0;
    const received = (m: number) => Math.round(PROBES_PER_MINUTE * (1 - loss(m)));
    add('kube_node_ping_packets_sent_total', labels, counter(agent, () => PROBES_PER_MINUTE));
    add('kube_node_ping_packets_received_total', labels, counter(agent, received));
    let ongoing = 0;
    add(
      'kube_node_ping_outage_ongoing_seconds',
      labels,
      minutes.map((m) => {
        if (m > 0) ongoing = loss(m) >= 1 ? ongoing + 60 : 0;
        return present(agent, m) ? ongoing : undefined;
      }),
    );
    if (s.rtt && !s.rttPerZone) {
      const rtt = s.rtt;
      add('kube_node_ping_rtt_seconds_count', labels, counter(agent, received));
      add('kube_node_ping_rtt_seconds_sum', labels, counter(agent, (m) => received(m) * rtt(src, dst, m)));
      for (const le of [...BOUNDS, Infinity]) {
        add('kube_node_ping_rtt_seconds_bucket', { ...labels, le: le === Infinity ? '+Inf' : String(le) }, counter(agent, (m) => (rtt(src, dst, m) <= le ? received(m) : 0)));
      }
    }
  }

  // --rtt-histogram per-zone: one histogram per source and destination zone, over its node destinations.
  if (s.rtt && s.rttPerZone) {
    const rtt = s.rtt;
    for (const src of s.nodes) {
      const agent = s.agents?.[src];
      for (const zone of [...new Set(Object.values(s.zones ?? {}))].sort()) {
        const dsts = s.nodes.filter((d) => d !== src && s.zones?.[d] === zone);
        if (dsts.length === 0) continue;
        const labels = { ...sourceLabels(s, src), destination_zone: zone, destination_kind: 'node' };
        const received = (d: string, m: number) => Math.round(PROBES_PER_MINUTE * (1 - (s.loss?.(src, d, m) ?? 0)));
        const over = (f: (d: string, m: number) => number) => (m: number) => dsts.reduce((t, d) => t + f(d, m), 0);
        add('kube_node_ping_rtt_seconds_count', labels, counter(agent, over(received)));
        add('kube_node_ping_rtt_seconds_sum', labels, counter(agent, over((d, m) => received(d, m) * rtt(src, d, m))));
        for (const le of [...BOUNDS, Infinity]) {
          add('kube_node_ping_rtt_seconds_bucket', { ...labels, le: le === Infinity ? '+Inf' : String(le) }, counter(agent, over((d, m) => (rtt(src, d, m) <= le ? received(d, m) : 0))));
        }
      }
    }
  }

  for (const node of s.nodes) {
    const a = s.agents?.[node];
    const labels = sourceLabels(s, node);
    const gauge = (v: number) => minutes.map((m) => (present(a, m) ? v : undefined));
    add('kube_node_ping_targets', { ...labels, destination_kind: 'node' }, gauge(s.nodes.length - 1));
    add('kube_node_ping_targets', { ...labels, destination_kind: 'external' }, gauge((s.externals ?? []).length));
    add('kube_node_ping_fping_processes', labels, gauge(a?.fpingProcesses ?? 1));
    add('kube_node_ping_fping_restarts_total', labels, counter(a, () => a?.fpingRestartsPerMinute ?? 0));
    add('kube_node_ping_fping_parse_errors_total', labels, counter(a, () => a?.parseErrorsPerMinute ?? 0));
    add('kube_node_ping_export_failures_total', { ...labels, exporter: 'otlp' }, counter(a, () => a?.exportFailuresPerMinute ?? 0));
    add('kube_node_ping_targets_reloads_total', { ...labels, result: 'success' }, counter(a, () => 0));
    add('kube_node_ping_targets_reloads_total', { ...labels, result: 'failure' }, counter(a, () => a?.reloadFailuresPerMinute ?? 0));
    add('kube_node_ping_eventloop_delay_max_seconds', labels, gauge(a?.eventLoopDelaySeconds ?? 0.01));
    const intendedPerMinute = PROBES_PER_MINUTE * (s.nodes.length - 1 + (s.externals ?? []).length);
    add('kube_node_ping_probes_intended_total', labels, counter(a, () => intendedPerMinute));
    add('kube_node_ping_probes_unanswered_total', labels, counter(a, () => Math.round((a?.unansweredShare ?? 0) * intendedPerMinute)));
    // The scrape's own series: 1 while the agent answers, 0 once it is down; none when it is missing.
    if (a?.gone !== 'missing') add('up', { job: JOB, instance: `${node}:9464` }, minutes.map((m) => (present(a, m) ? 1 : 0)));
  }
  out.push(...(s.extraSeries ?? []));
  return out;
}

// ---- expectations ----------------------------------------------------------------------------

const ALERT_NAMES = Object.keys(SEVERITY) as AlertName[];

function labelString(labels: Record<string, string>): string {
  return `{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ')}}`;
}

function expectedAlert(rule: Rule, name: AlertName, e: ExpectedAlert): { exp_labels: Record<string, string>; exp_annotations: Record<string, string> } {
  const labels = { ...e.labels, severity: SEVERITY[name] };
  if (rule.labels?.['severity'] !== SEVERITY[name]) throw new Error(`${name}: the rule file says severity ${rule.labels?.['severity']}, the scenarios ${SEVERITY[name]}`);
  const annotations: Record<string, string> = {};
  for (const [k, t] of Object.entries(rule.annotations ?? {})) annotations[k] = renderTemplate(t, e.labels, e.value);
  return { exp_labels: labels, exp_annotations: annotations };
}

export function renderFile(file: Scenario['file']): string {
  const { alerts } = loadRules();
  for (const name of alerts.keys()) if (!(name in SEVERITY)) throw new Error(`alert ${name} of the rule file is not known to scenarios.ts`);
  for (const name of ALERT_NAMES) if (!alerts.has(name)) throw new Error(`alert ${name} of scenarios.ts is not in the rule file`);
  const tests = SCENARIOS.filter((s) => s.file === file).map((s) => ({
    name: s.name,
    interval: '1m',
    input_series: seriesOf(s),
    alert_rule_test: s.checks.flatMap((c) =>
      ALERT_NAMES.map((name) => ({
        eval_time: `${c.at}m`,
        alertname: name,
        exp_alerts: (c.firing[name] ?? []).map((e) => expectedAlert(alerts.get(name)!, name, e)),
      })),
    ),
    promql_expr_test: s.checks.flatMap((c) =>
      (c.exprs ?? []).map((x) => ({
        expr: x.expr,
        eval_time: `${c.at}m`,
        // A bare selector keeps the metric name.
        exp_samples: x.samples.map((sm) => ({ labels: `${/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?$/.exec(x.expr)?.[1] ?? ''}${labelString(sm.labels)}`, value: sm.value })),
      })),
    ),
  }));
  const doc = new Document({ rule_files: [RULES_REF], evaluation_interval: '1m', tests });
  doc.commentBefore =
    ' Generated by test/rules/generate.ts from test/rules/scenarios.ts: edit those, then run\n' +
    ' `node test/rules/generate.ts`. Run with: promtool test rules test/rules/*.test.yaml';
  // One comment per scenario: what it proves.
  const seq = doc.get('tests') as { items: { commentBefore?: string }[] };
  SCENARIOS.filter((s) => s.file === file).forEach((s, i) => {
    seq.items[i]!.commentBefore = wrap(`${s.name}: ${s.description}`, 100);
  });
  return doc.toString({ lineWidth: 0 });
}

function wrap(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const w of text.split(/\s+/)) {
    if (line && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.map((l) => ` ${l}`).join('\n');
}

export const FILES: Scenario['file'][] = ['localisation', 'rtt', 'agents'];
export const outPath = (file: string) => `${OUT_DIR}${file}.test.yaml`;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const f of FILES) {
    const text = renderFile(f);
    if (check) {
      let old = '';
      try {
        old = readFileSync(outPath(f), 'utf8');
      } catch {
        // missing counts as different
      }
      if (old !== text) {
        console.error(`${outPath(f)} is out of date: run node test/rules/generate.ts`);
        stale++;
      }
    } else {
      writeFileSync(outPath(f), text);
      console.log(`wrote ${outPath(f)}`);
    }
  }
  process.exit(stale ? 1 : 0);
}
