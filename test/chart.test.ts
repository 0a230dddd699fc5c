/**
 * The Helm chart (charts/kube-node-ping) with the pinned helm: lint, golden renders, the
 * values schema, what the rendered objects promise, and a server-side apply of every
 * scenario into a real kube-apiserver (prometheus-operator CRDs included), where the chart's
 * own ServiceAccount may list and watch nodes and nothing else.
 *
 * Goldens: test/chart/README.md (UPDATE_GOLDEN=1 rewrites them).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { CHART, helm, one, parseObjects, privilegesOf, render, scenarios, templateText, type KObject } from './chart/helm.ts';
import { REPO } from './support/agent.ts';
import { findKubeBinaries, startKube, type Kube } from './support/kube.ts';
import { toolPath } from './support/tools.ts';
import { EVIDENCE_RULES_FILE, withWindows } from '../sim/evidence-rules.ts';
import { RULES_FILE } from './rules/generate.ts';

const HERE = fileURLToPath(new URL('./chart/', import.meta.url));
const GOLDEN = join(HERE, 'golden');
const SCENARIOS = scenarios();
const byName = (n: string) => SCENARIOS.find((s) => s.name === n)!.file;

// Fail, not skip, when a tool is missing: toolPath throws.
toolPath('helm');
const CRDS = toolPath('prometheus-operator-crds');

const agentDs = (objs: KObject[]) => one(objs, 'DaemonSet');
const podSpec = (objs: KObject[]) => agentDs(objs)['spec'].template.spec;
const agentContainer = (objs: KObject[]) => podSpec(objs).containers.find((c: any) => c.name === 'agent');

test('every ci scenario named in the brief exists', () => {
  assert.deepEqual(SCENARIOS.map((s) => s.name), ['default', 'full', 'root', 'static']);
});

test('appVersion is the agent version (package.json)', () => {
  const chart = parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  assert.equal(chart.appVersion, pkg.version);
});

test('values.schema.json closes every object: additionalProperties false, or typed map values', () => {
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));
  const open: string[] = [];
  const walk = (s: any, at: string) => {
    if (s === null || typeof s !== 'object') return;
    if (s.type === 'object') {
      const ap = s.additionalProperties;
      // Kubernetes objects handed through as is (affinity terms, env valueFrom sources) say so.
      const passthrough = typeof s.description === 'string' && s.description.startsWith('Kubernetes object, passed through');
      if (!passthrough && ap !== false && !(ap && typeof ap === 'object')) open.push(at || '/');
      if (s.properties && ap !== false) open.push(`${at} (has properties but is not closed)`);
    }
    for (const [k, v] of Object.entries(s)) {
      if (k === 'properties') for (const [pk, pv] of Object.entries(v as object)) walk(pv, `${at}/${pk}`);
      else if (typeof v === 'object') walk(v, `${at}/${k}`);
    }
  };
  walk(schema, '');
  assert.deepEqual(open, []);
});

test('helm lint --strict: the defaults and every ci scenario', async () => {
  for (const args of [[], ...SCENARIOS.map((s) => ['--values', s.file])]) {
    const r = await helm(['lint', '--strict', CHART, ...args]);
    assert.equal(r.code, 0, `helm lint ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
    assert.doesNotMatch(r.stdout, /\[(WARNING|ERROR)\]/, r.stdout);
  }
});

describe('golden renders (templates only: files/ from test/chart/fixtures)', () => {
  let chartCopy: string;
  before(() => {
    chartCopy = join(mkdtempSync(join(tmpdir(), 'knp-chart-')), 'kube-node-ping');
    cpSync(CHART, chartCopy, { recursive: true, filter: (src) => !src.startsWith(join(CHART, 'files')) });
    cpSync(join(HERE, 'fixtures/files'), join(chartCopy, 'files'), { recursive: true });
  });
  after(() => rmSync(join(chartCopy, '..'), { recursive: true, force: true }));

  for (const s of SCENARIOS) {
    test(s.name, async () => {
      const got = await templateText({ chart: chartCopy, valuesFiles: [join(chartCopy, 'ci', basename(s.file))] });
      const file = join(GOLDEN, `${s.name}.yaml`);
      if (process.env['UPDATE_GOLDEN'] === '1') {
        mkdirSync(GOLDEN, { recursive: true });
        writeFileSync(file, got);
      }
      assert.ok(existsSync(file), `${file} missing: UPDATE_GOLDEN=1 node --test test/chart.test.ts`);
      assert.equal(got, readFileSync(file, 'utf8'), `render of ci/${s.name}-values.yaml differs from ${file} (see test/chart/README.md)`);
    });
  }
  test('dashboard ConfigMaps are named after their files (valid, distinct names)', async () => {
    const extra = join(chartCopy, 'files/dashboards/Another Board!.json');
    writeFileSync(extra, '{"title": "another"}\n');
    try {
      const objs = await render({ chart: chartCopy, set: ['dashboards.enabled=true'] });
      const names = objs.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.['grafana_dashboard']).map((o) => o.metadata.name).sort();
      assert.deepEqual(names, ['knp-kube-node-ping-dashboard-another-board', 'knp-kube-node-ping-dashboard-example-overview']);
    } finally {
      rmSync(extra);
    }
  });
  test('no golden without its scenario', () => {
    assert.deepEqual(readdirSync(GOLDEN).sort(), SCENARIOS.map((s) => `${s.name}.yaml`));
  });
});

describe('the values schema rejects mistakes at install, naming the key', () => {
  const cases: { what: string; args: string[]; key: RegExp }[] = [
    { what: 'a typo in a key', args: ['--set', 'probe.perod=2s'], key: /perod/ },
    { what: 'a typo at the top level', args: ['--set', 'hostNetwrok=false'], key: /hostNetwrok/ },
    { what: 'a string for an integer', args: ['--set-string', 'probe.packetSize=big'], key: /packetSize/ },
    { what: 'a string for a boolean', args: ['--set-string', 'hostNetwork=yes'], key: /hostNetwork/ },
    { what: 'an unknown security mode', args: ['--set', 'securityMode=privileged'], key: /securityMode/ },
    { what: 'a period that is no duration', args: ['--set', 'probe.period=1'], key: /period/ },
    { what: 'an external target without address', args: ['--set', 'externalTargets[0].name=gw'], key: /address/ },
    { what: 'an unknown field in an external target', args: ['--set', 'externalTargets[0].name=gw', '--set', 'externalTargets[0].address=10.0.0.1', '--set', 'externalTargets[0].ip=10.0.0.1'], key: /'ip'|"ip"|\bip\b/ },
  ];
  for (const c of cases) {
    test(c.what, async () => {
      const r = await helm(['template', 'knp', CHART, ...c.args]);
      assert.notEqual(r.code, 0, `helm accepted ${c.args.join(' ')}`);
      assert.match(r.stderr, /values don't meet the specifications of the schema/);
      assert.match(r.stderr, c.key);
    });
  }
  test('YAML\'s bare off (a boolean) for nodes.discovery', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knp-values-'));
    try {
      writeFileSync(join(dir, 'v.yaml'), 'nodes:\n  discovery: off\n');
      const r = await helm(['template', 'knp', CHART, '--values', join(dir, 'v.yaml')]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /discovery/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('what the rendered objects promise', () => {
  const rendered = new Map<string, KObject[]>();
  let agentFlags: Set<string>;
  before(async () => {
    for (const s of SCENARIOS) rendered.set(s.name, await render({ valuesFiles: [s.file] }));
    const help = execFileSync(process.execPath, [join(REPO, 'src/main.ts'), '--help'], { encoding: 'utf8' });
    agentFlags = new Set([...help.matchAll(/^\s+(--[a-z0-9-]+)\b/gm)].map((m) => m[1]!));
  });
  const each = (fn: (objs: KObject[], name: string) => void) => () => {
    for (const [name, objs] of rendered) fn(objs, name);
  };

  test('the ClusterRole allows get, list, watch on nodes and nothing else', each((objs, name) => {
    const roles = objs.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
    if (name === 'static') return assert.equal(roles.length, 0, 'rbac.create=false renders no role');
    assert.equal(roles.length, 1);
    assert.deepEqual(roles[0]!['rules'], [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }]);
    const binding = one(objs, 'ClusterRoleBinding');
    assert.deepEqual(binding['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roles[0]!.metadata.name });
    const sa = one(objs, 'ServiceAccount');
    assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'monitoring' }]);
    assert.equal(podSpec(objs).serviceAccountName, sa.metadata.name);
  }));

  test('security: drop ALL + NET_RAW, read-only root, RuntimeDefault seccomp, not privileged; user by mode', each((objs, name) => {
    const c = agentContainer(objs);
    const pod = podSpec(objs);
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'], add: ['NET_RAW'] });
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.privileged, false);
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    const p = privilegesOf(agentDs(objs));
    if (name === 'root') {
      assert.deepEqual(p, { uid: 0, gid: 0, caps: ['net_raw'], noNewPrivs: true });
      assert.equal(pod.securityContext.runAsNonRoot, false);
    } else {
      // fping's file capability needs exec to grant privileges: no_new_privs must stay off.
      assert.deepEqual(p, { uid: 65532, gid: 65532, caps: ['net_raw'], noNewPrivs: false });
      assert.equal(pod.securityContext.runAsNonRoot, true);
    }
  }));

  test('the non-root uid is the image\'s USER', () => {
    const dockerfile = readFileSync(join(REPO, 'docker/Dockerfile'), 'utf8');
    const user = /^USER\s+(\d+)(?::(\d+))?\s*$/m.exec(dockerfile);
    assert.ok(user, 'docker/Dockerfile has a numeric USER');
    const p = privilegesOf(agentDs(rendered.get('default')!));
    assert.equal(Number(user[1]), p.uid);
    assert.equal(Number(user[2] ?? user[1]), p.gid);
  });

  test('scheduling: every node (tolerate all taints by default), node-critical priority, rolling update', each((objs, name) => {
    const pod = podSpec(objs);
    const ds = agentDs(objs);
    assert.equal(ds['spec'].updateStrategy.type, 'RollingUpdate');
    if (name === 'full') {
      assert.deepEqual(pod.tolerations, [{ key: 'dedicated', operator: 'Equal', value: 'network', effect: 'NoSchedule' }]);
      assert.equal(pod.priorityClassName, undefined);
      assert.equal(ds['spec'].updateStrategy.rollingUpdate.maxUnavailable, 1);
    } else {
      assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
      assert.equal(pod.priorityClassName, 'system-node-critical');
      assert.equal(ds['spec'].updateStrategy.rollingUpdate.maxUnavailable, '10%');
    }
    assert.deepEqual(ds['spec'].selector.matchLabels, Object.fromEntries(Object.entries(ds['spec'].template.metadata.labels).filter(([k]) => ['app.kubernetes.io/name', 'app.kubernetes.io/instance'].includes(k))));
  }));

  test('network: host network with ClusterFirstWithHostNet, or the pod network', each((objs, name) => {
    const pod = podSpec(objs);
    if (name === 'full') assert.deepEqual([pod.hostNetwork, pod.dnsPolicy], [false, 'ClusterFirst']);
    else assert.deepEqual([pod.hostNetwork, pod.dnsPolicy], [true, 'ClusterFirstWithHostNet']);
  }));

  test('downward API env, /tmp emptyDir, probes on the metrics port', each((objs) => {
    const c = agentContainer(objs);
    const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
    assert.equal(env['NODE_NAME'], 'spec.nodeName');
    assert.equal(env['POD_NAME'], 'metadata.name');
    assert.equal(env['POD_NAMESPACE'], 'metadata.namespace');
    const tmp = c.volumeMounts.find((m: any) => m.mountPath === '/tmp');
    assert.ok(tmp, '/tmp is mounted');
    assert.ok(podSpec(objs).volumes.find((v: any) => v.name === tmp.name).emptyDir, '/tmp is an emptyDir');
    const port = c.ports.find((p: any) => p.name === 'metrics');
    assert.ok(c.args.includes(`--prometheus-port=${port.containerPort}`));
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'metrics' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'metrics' });
    assert.ok(c.resources.requests.memory && c.resources.limits.memory);
  }));

  test('every flag the chart passes is one the agent knows (node src/main.ts --help)', each((objs) => {
    for (const a of agentContainer(objs).args as string[]) {
      const flag = a.split('=')[0]!;
      assert.ok(agentFlags.has(flag), `${flag} is not in the agent's --help`);
      assert.match(a, /^--[a-z0-9-]+=/, `${a}: one --flag=value per argument`);
    }
  }));

  test('node selection and OTLP settings reach the agent', () => {
    const args = agentContainer(rendered.get('full')!).args as string[];
    for (const a of [
      '--discovery=kubernetes', '--node-selector=node-role.kubernetes.io/worker,topology.kubernetes.io/zone in (eu-1a, eu-1b)',
      '--node-address-types=InternalIP,ExternalIP', '--ip-families=ipv4', '--skip-not-ready=true', '--skip-cordoned=true',
      '--otlp-endpoint=http://otel-collector.observability:4317', '--otlp-protocol=grpc', '--export-interval=30s', '--cluster-name=prod-eu-1',
      '--period=500ms', '--timeout=400ms', '--prometheus-port=19464', '--rtt-buckets=100us,1ms,10ms,100ms,1s',
    ]) assert.ok(args.includes(a), `${a} missing from ${JSON.stringify(args)}`);
    const env = agentContainer(rendered.get('full')!).env.find((e: any) => e.name === 'OTEL_EXPORTER_OTLP_HEADERS');
    assert.deepEqual(env.valueFrom, { secretKeyRef: { name: 'otlp-auth', key: 'headers' } });
    assert.equal(agentContainer(rendered.get('full')!).image, 'registry.example.com/mirror/kube-node-ping@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
    const dflt = agentContainer(rendered.get('default')!);
    assert.equal(dflt.image, `ghcr.io/kube-node-ping/kube-node-ping:${JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version}`);
    assert.ok(!dflt.env.some((e: any) => e.name.startsWith('OTEL_')), 'no OTLP by default');
  });

  test('external targets: a ConfigMap of kind external, mounted where --targets-file points', each((objs, name) => {
    const args = agentContainer(objs).args as string[];
    const tf = args.find((a) => a.startsWith('--targets-file='));
    if (name === 'default' || name === 'root') return assert.equal(tf, undefined);
    const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-targets'))!;
    const list = parseYaml(cm['data']['targets.yaml']);
    const want = name === 'full'
      ? [{ name: 'gateway', address: '10.0.0.1', kind: 'external' }, { name: 'dns-v6', address: '2001:db8::53', kind: 'external' }]
      : [{ name: 'core-router', address: '192.0.2.1', kind: 'external' }];
    assert.deepEqual(list, want);
    const path = tf!.slice('--targets-file='.length);
    const mount = agentContainer(objs).volumeMounts.find((m: any) => path.startsWith(`${m.mountPath}/`));
    assert.ok(mount, `a volume is mounted above ${path}`);
    // A whole-directory mount (no subPath), or the kubelet never updates the file.
    assert.equal(mount.subPath, undefined);
    const vol = podSpec(objs).volumes.find((v: any) => v.name === mount.name);
    assert.equal(vol.configMap.name, cm.metadata.name);
    assert.equal(path.slice(mount.mountPath.length + 1), 'targets.yaml');
  }));

  test('scrape objects: a headless Service, opt-in ServiceMonitor and PodMonitor on the metrics port', each((objs, name) => {
    const kinds = (k: string) => objs.filter((o) => o.kind === k).length;
    const svc = objs.find((o) => o.kind === 'Service');
    if (name === 'static') assert.equal(svc, undefined);
    else {
      assert.equal(svc!['spec'].clusterIP, 'None');
      assert.equal(svc!['spec'].ports[0].targetPort, 'metrics');
    }
    assert.equal(kinds('ServiceMonitor'), name === 'full' ? 1 : 0);
    assert.equal(kinds('PodMonitor'), name === 'full' || name === 'static' ? 1 : 0);
    for (const m of objs.filter((o) => o.kind === 'ServiceMonitor' || o.kind === 'PodMonitor')) {
      const ep = (m['spec'].endpoints ?? m['spec'].podMetricsEndpoints)[0];
      assert.equal(ep.port, 'metrics');
      const target = m.kind === 'ServiceMonitor' ? svc!.metadata.labels! : agentDs(objs)['spec'].template.metadata.labels;
      for (const [k, v] of Object.entries(m['spec'].selector.matchLabels)) assert.equal(target[k], v, `${m.kind} selects ${k}=${v}`);
    }
  }));

  test('PrometheusRule: every group of every files/rules/*.yaml, intact', async () => {
    const dir = join(CHART, 'files/rules');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
    assert.ok(files.length > 0, 'files/rules/*.yaml exist');
    const want = files.flatMap((f) => parseYaml(readFileSync(join(dir, f), 'utf8')).groups);
    const rule = one(rendered.get('full')!, 'PrometheusRule');
    assert.deepEqual(rule['spec'].groups, want);
    assert.equal(rule.metadata.labels!['release'], 'kube-prometheus-stack');
    assert.equal(rendered.get('default')!.filter((o) => o.kind === 'PrometheusRule').length, 0, 'opt-in');
  });

  test('PrometheusRule: prometheusRule.windows sets the windows of the evidence rules, and nothing else', async () => {
    const windows = { fast: '50s', slow: '3m', burst: '20s', for: '10s' };
    const objs = await render({ set: ['prometheusRule.enabled=true', ...Object.entries(windows).map(([k, v]) => `prometheusRule.windows.${k}=${v}`)] });
    const groups = one(objs, 'PrometheusRule')['spec'].groups as { name: string }[];
    const evidence = parseYaml(withWindows(readFileSync(EVIDENCE_RULES_FILE, 'utf8'), windows)).groups;
    const others = parseYaml(readFileSync(RULES_FILE, 'utf8')).groups;
    assert.deepEqual(groups, [...evidence, ...others]);
    assert.notDeepEqual(evidence, parseYaml(readFileSync(EVIDENCE_RULES_FILE, 'utf8')).groups, 'the windows changed');
  });

  test('dashboards: one ConfigMap per files/dashboards/*.json, byte for byte, with the sidecar label', () => {
    const dir = join(CHART, 'files/dashboards');
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
    const cms = rendered.get('full')!.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.['grafana_dashboard'] === '1');
    assert.equal(cms.length, files.length);
    for (const f of files) {
      const cm = cms.find((c) => c['data'][f] !== undefined);
      assert.ok(cm, `a ConfigMap holds ${f}`);
      const text = readFileSync(join(dir, f), 'utf8');
      assert.equal(cm['data'][f], text.replace(/\n$/, ''));
      JSON.parse(cm['data'][f]);
      assert.equal(cm.metadata.namespace, 'grafana');
      assert.equal(cm.metadata.annotations?.['grafana_folder'], 'Network');
    }
    assert.equal(rendered.get('default')!.filter((o) => o.metadata.labels?.['grafana_dashboard']).length, 0, 'opt-in');
  });
});

describe('server-side apply into a real kube-apiserver', () => {
  let k: Kube;
  const applied = new Map<string, KObject[]>();
  const nsOf = (scenario: string) => `knp-${scenario}`;

  // Discovery: kind → (plural, namespaced) per group/version, asked of the server itself.
  const resources = new Map<string, { plural: string; namespaced: boolean }>();
  async function resourceOf(o: KObject): Promise<{ plural: string; namespaced: boolean }> {
    const key = `${o.apiVersion}/${o.kind}`;
    if (!resources.has(key)) {
      const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
      const list = await k.requestOk(`GET`, base);
      for (const r of list.resources) if (!r.name.includes('/')) resources.set(`${o.apiVersion}/${r.kind}`, { plural: r.name, namespaced: r.namespaced });
    }
    const r = resources.get(key);
    if (!r) throw new Error(`the API server has no ${key}`);
    return r;
  }
  async function apply(o: KObject, namespace?: string): Promise<any> {
    const r = await resourceOf(o);
    const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
    const ns = o.metadata.namespace ?? namespace;
    if (r.namespaced && !ns) throw new Error(`${o.kind} ${o.metadata.name} has no namespace`);
    const path = `${base}${r.namespaced ? `/namespaces/${ns}` : ''}/${r.plural}/${o.metadata.name}`;
    // fieldValidation=Strict: a field the schema does not know (a typo in a template) is an error.
    const res = await k.request('PATCH', `${path}?fieldManager=kube-node-ping-chart-test&force=true&fieldValidation=Strict`, JSON.stringify(o),
      { contentType: 'application/apply-patch+yaml' });
    if (res.status < 200 || res.status > 299) throw new Error(`apply ${o.kind} ${ns ?? ''}/${o.metadata.name}: HTTP ${res.status}: ${res.text.slice(0, 1500)}`);
    return res.body;
  }

  before(async () => {
    const found = findKubeBinaries();
    if ('missing' in found) throw new Error(`kube binaries missing: ${found.missing}; run ./scripts/test`);
    k = await startKube(found);
  });
  after(async () => {
    await k?.stop();
  });

  test('the prometheus-operator CRDs apply and become Established', async () => {
    const files = readdirSync(CRDS).filter((f) => f.endsWith('.yaml')).sort();
    assert.deepEqual(files, ['monitoring.coreos.com_podmonitors.yaml', 'monitoring.coreos.com_prometheusrules.yaml', 'monitoring.coreos.com_servicemonitors.yaml']);
    for (const f of files) for (const crd of parseObjects(readFileSync(join(CRDS, f), 'utf8'))) await apply(crd);
    for (const name of ['servicemonitors', 'podmonitors', 'prometheusrules']) {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const crd = await k.requestOk('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}.monitoring.coreos.com`);
        if (crd.status?.conditions?.some((c: any) => c.type === 'Established' && c.status === 'True')) break;
        if (Date.now() > deadline) throw new Error(`${name} not Established: ${JSON.stringify(crd.status)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    // The group's discovery document can lag the Established condition.
    const deadline = Date.now() + 60_000;
    while ((await k.request('GET', '/apis/monitoring.coreos.com/v1')).status !== 200) {
      if (Date.now() > deadline) throw new Error('monitoring.coreos.com/v1 never appeared in discovery');
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  for (const s of SCENARIOS) {
    test(`every object of ci/${s.name}-values.yaml applies`, async () => {
      const ns = nsOf(s.name);
      const objs = await render({ release: `knp-${s.name}`, namespace: ns, valuesFiles: [s.file] });
      assert.ok(objs.length >= 2);
      const namespaces = new Set([ns, ...objs.map((o) => o.metadata.namespace).filter((x): x is string => !!x)]);
      for (const n of namespaces) await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } });
      for (const o of objs) {
        const live = await apply(o, ns);
        assert.equal(live.kind, o.kind);
      }
      applied.set(s.name, objs);
      // Read back: the API server kept what the chart asked for (no field dropped on the way).
      const ds = one(objs, 'DaemonSet');
      const live = await k.requestOk('GET', `/apis/apps/v1/namespaces/${ns}/daemonsets/${ds.metadata.name}`);
      const c = live.spec.template.spec.containers[0];
      assert.deepEqual(c.securityContext, agentContainer(objs).securityContext);
      assert.deepEqual(c.args, agentContainer(objs).args);
    });
  }

  test('NOTES.txt renders (helm install --dry-run against this API server) and says where to look', async () => {
    const r = await helm(['install', 'knp-notes', CHART, '--namespace', nsOf('full'), '--dry-run=client', '--kubeconfig', k.kubeconfigPath, '--values', byName('full')]);
    assert.equal(r.code, 0, r.stderr);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    assert.match(notes, /dashboards/i);
    assert.match(notes, /get prometheusrule knp-notes-kube-node-ping/);
    assert.match(notes, /port-forward POD 19464/);
    assert.match(notes, /OTLP push to http:\/\/otel-collector\.observability:4317/);
  });

  test('the chart\'s ServiceAccount token may get, list and watch nodes, and is refused secrets', async () => {
    const objs = applied.get('default');
    assert.ok(objs, 'the default scenario was applied');
    const ns = nsOf('default');
    const sa = one(objs, 'ServiceAccount').metadata.name;
    await k.requestOk('POST', '/api/v1/nodes', { metadata: { name: 'n1' } });
    const token = await k.tokenForServiceAccount(ns, sa);
    const as = { token };
    assert.equal((await k.request('GET', '/api/v1/nodes', undefined, as)).status, 200, 'list nodes');
    assert.equal((await k.request('GET', '/api/v1/nodes/n1', undefined, as)).status, 200, 'get a node');
    const watch = await k.request('GET', '/api/v1/nodes?watch=true&timeoutSeconds=1', undefined, as);
    assert.equal(watch.status, 200, 'watch nodes');
    assert.match(watch.text, /"type":"ADDED"/);
    for (const [method, path] of [
      ['GET', '/api/v1/secrets'], ['GET', `/api/v1/namespaces/${ns}/secrets`], ['GET', '/api/v1/pods'], ['GET', `/api/v1/namespaces/${ns}/configmaps`],
      ['DELETE', '/api/v1/nodes/n1'], ['PATCH', '/api/v1/nodes/n1'],
    ] as const) {
      const r = await k.request(method, path, method === 'PATCH' ? '{}' : undefined, { ...as, contentType: 'application/merge-patch+json' });
      assert.equal(r.status, 403, `${method} ${path}: ${r.status} ${r.text.slice(0, 200)}`);
    }
    // And the rest of the matrix, asked of the authorizer directly.
    const can = async (verb: string, resource: string) => (await k.requestOk('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
      { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { verb, resource, group: '' } } }, as)).status.allowed === true;
    for (const v of ['get', 'list', 'watch']) assert.equal(await can(v, 'nodes'), true, `${v} nodes`);
    for (const v of ['create', 'update', 'patch', 'delete', 'deletecollection']) assert.equal(await can(v, 'nodes'), false, `${v} nodes`);
    for (const r of ['secrets', 'pods', 'configmaps', 'services', 'endpoints', 'nodes/proxy', 'nodes/status']) assert.equal(await can('get', r), false, `get ${r}`);
  });
});
