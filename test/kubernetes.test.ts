/**
 * The chart in a real Kubernetes cluster (test/support/cluster.ts): etcd, kube-apiserver,
 * kube-controller-manager and kube-scheduler; four nodes, each a lab namespace running its
 * own containerd 2.x with runc, a kubelet and kube-proxy; the agent's image and a pause image
 * built by scripts/images.sh and imported into every node's containerd, nothing pulled.
 *
 * One cluster is shared by the tests, in order: install with the real helm, the pods'
 * privileges read from /proc, the full mesh, a real Prometheus that finds the agents through
 * kubernetes_sd_configs and loads the chart's rules, the negative controls, a blackholed node,
 * node churn (join, delete, NotReady) and a rolling upgrade.
 *
 * Time is compressed 15x in the rules, as in test/cluster-in-a-box.test.ts: windows and `for`
 * durations divided by 15 (5m -> 20s, for 1m -> 4s), the same expressions and thresholds.
 * A destination alert needs three sources, so the cluster starts with four nodes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Lab, type Host } from './lab/lab.ts';
import { one, parseObjects, templateText, type KObject } from './chart/helm.ts';
import { eventually, parseExposition, sleep, type Sample } from './support/agent.ts';
import { compressedRules, helmRelease, imageValues, RULES, startDiscoveringPrometheus } from './support/chart-in-cluster.ts';
import { KUBERNETES_SERVICE_IP, startCluster, type Cluster } from './support/cluster.ts';
import { agentImage, pauseImage, type BuiltImage } from './support/image.ts';
import type { PrometheusServer } from './support/servers.ts';
import { toolPath } from './support/tools.ts';

const NODES = ['node-1', 'node-2', 'node-3', 'node-4'];
const NS = 'monitoring';
const RELEASE = 'knp';
const PORT = 9464;
const CRDS = toolPath('prometheus-operator-crds');
const SELECTOR = `app.kubernetes.io/instance=${RELEASE}`;
/** CAP_NET_RAW is capability 13: /proc/<pid>/status shows the set as 16 hex digits. */
const CAP_NET_RAW = (1n << 13n).toString(16).padStart(16, '0');
const NO_CAPS = '0'.repeat(16);

let lab: Lab;
let cluster: Cluster;
let prom: PrometheusServer;
let agent: BuiltImage;
let work: string;
const t0 = Date.now();

function phase(what: string): void {
  process.stderr.write(`kubernetes.test: ${what} at ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
}

const RELEASE_VALUES = () => [
  ...imageValues(agent.ref),
  '--set', 'metrics.serviceMonitor.enabled=true',
  '--set', 'metrics.podMonitor.enabled=true',
  '--set', 'prometheusRule.enabled=true',
];

interface Pod {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  spec: { nodeName?: string; containers: { args?: string[] }[] };
  status: { conditions?: { type: string; status: string }[]; containerStatuses?: { containerID?: string; ready: boolean; restartCount: number }[] };
}

async function pods(ns = NS, selector = SELECTOR): Promise<Pod[]> {
  const r = await cluster.kube.requestOk('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`);
  return r.items as Pod[];
}

const isReady = (p: Pod) => (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** A Ready agent pod of `ns` on each of `nodes`, by node; undefined while one is missing. */
async function readyOnEveryNode(nodes: string[], ns = NS, selector = SELECTOR): Promise<Map<string, Pod> | undefined> {
  const byNode = new Map<string, Pod>();
  for (const p of await pods(ns, selector)) if (p.spec.nodeName && isReady(p)) byNode.set(p.spec.nodeName, p);
  return nodes.every((n) => byNode.has(n)) ? byNode : undefined;
}

function hostOf(name: string): Host {
  return cluster.node(name).host;
}

/** One agent's page, read from the root namespace at the node's address. */
async function page(node: string): Promise<Sample[]> {
  const r = await fetch(`http://${hostOf(node).v4}:${PORT}/metrics`, { signal: AbortSignal.timeout(10_000) });
  if (r.status !== 200) throw new Error(`${node}: /metrics answered ${r.status}`);
  const samples = parseExposition(await r.text());
  assertLabTargets(node, samples);
  return samples;
}

/** The network rule: an agent's destinations are lab addresses, nothing else. */
function assertLabTargets(node: string, samples: Sample[]): void {
  const allowed = new Set(lab.hosts.flatMap((h) => [h.v4, h.v6]));
  const outside = [...new Set(samples.map((s) => s.labels['destination_address']).filter((a): a is string => a !== undefined && !allowed.has(a)))];
  assert.deepEqual(outside, [], `${node} probes addresses outside the lab: ${outside.join(', ')}`);
}

/** sent/received per destination name on one page. */
function pairs(samples: Sample[]): Map<string, { sent: number; received: number }> {
  const out = new Map<string, { sent: number; received: number }>();
  for (const s of samples) {
    const d = s.labels['destination_name'];
    if (d === undefined) continue;
    const e = out.get(d) ?? { sent: 0, received: 0 };
    if (s.name === 'kube_node_ping_packets_sent_total') e.sent += s.value;
    else if (s.name === 'kube_node_ping_packets_received_total') e.received += s.value;
    else continue;
    out.set(d, e);
  }
  return out;
}

interface Firing {
  alertname: string;
  labels: Record<string, string>;
}

async function firing(): Promise<Firing[]> {
  const r = await prom.query('ALERTS{alertstate="firing"}');
  return r.map((x) => ({ alertname: x.metric['alertname']!, labels: x.metric }));
}

function blamed(alerts: Firing[]): string[] {
  return alerts.map((a) => `${a.alertname}:${a.labels['destination_name'] ?? a.labels['k8s_node_name'] ?? a.labels['node'] ?? a.labels['instance'] ?? '?'}`).sort();
}

/** /proc/<pid>/status fields of every process of a container. */
function processes(node: string, containerID: string): { pid: number; name: string; uid: string; capEff: string; seccomp: string; noNewPrivs: string }[] {
  return cluster.containerPids(node, containerID).flatMap((pid) => {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch {
      return []; // exited meanwhile
    }
    const f = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
    // The program, not the comm (Node names its main thread "MainThread").
    let name: string;
    try {
      name = readlinkSync(`/proc/${pid}/exe`).split('/').pop()!;
    } catch {
      return [];
    }
    return [{ pid, name, uid: f('Uid').split(/\s+/)[1] ?? '', capEff: f('CapEff'), seccomp: f('Seccomp'), noNewPrivs: f('NoNewPrivs') }];
  });
}

/** Does `pid` hold an established TCP connection to the `kubernetes` Service's IP, port 443? */
function serviceConnection(pid: number): boolean {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  // /proc/net/tcp: local, remote as little-endian hex address:port, state 01 = ESTABLISHED.
  const want = `${KUBERNETES_SERVICE_IP.split('.').reverse().map((o) => Number(o).toString(16).padStart(2, '0')).join('').toUpperCase()}:01BB`;
  return readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1).some((l) => {
    const f = l.trim().split(/\s+/);
    return f[2] === want && f[3] === '01' && inodes.has(f[9]!);
  });
}

/** Server-side apply of one object, as kubectl apply --server-side does. */
async function apply(o: KObject, plural: string, namespaced: boolean): Promise<void> {
  const base = o.apiVersion.includes('/') ? `/apis/${o.apiVersion}` : `/api/${o.apiVersion}`;
  const at = `${base}${namespaced ? `/namespaces/${o.metadata.namespace}` : ''}/${plural}/${o.metadata.name}`;
  const r = await cluster.kube.request('PATCH', `${at}?fieldManager=kube-node-ping-test&force=true`, JSON.stringify(o), { contentType: 'application/apply-patch+yaml' });
  if (r.status < 200 || r.status > 299) throw new Error(`apply ${o.kind} ${o.metadata.name}: HTTP ${r.status}: ${r.text.slice(0, 1500)}`);
}

before(async () => {
  agent = agentImage();
  const pause = pauseImage();
  work = mkdtempSync(join(tmpdir(), 'knp-k8s-test-'));
  lab = await Lab.create();
  cluster = await startCluster({ lab, nodes: NODES, images: [agent.archive, pause.archive], sandboxImage: pause.ref, verbose: true });
  phase(`${NODES.length} nodes Ready`);
  // The network rule, before anything probes: every node address routes into the lab, from
  // the root namespace and from every node.
  const addrs = lab.hosts.flatMap((h) => [h.v4, h.v6]);
  await lab.assertRoutes(addrs);
  for (const h of lab.hosts) await lab.assertRoutes(addrs.filter((a) => a !== h.v4 && a !== h.v6), h);

  for (const f of readdirSync(CRDS).filter((x) => x.endsWith('.yaml')).sort()) {
    for (const crd of parseObjects(readFileSync(join(CRDS, f), 'utf8'))) await apply(crd, 'customresourcedefinitions', false);
  }
  await eventually(async () => (await cluster.kube.request('GET', '/apis/monitoring.coreos.com/v1')).status === 200, 60_000, 'the prometheus-operator CRDs served');
}, { timeout: 900_000 });

after(async () => {
  await prom?.stop();
  await cluster?.stop();
  await lab?.destroy();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the chart in a real cluster', { timeout: 1_800_000 }, () => {
  test('install: helm install, the DaemonSet is Ready on every node, and the pods hold only what they need', async () => {
    await helmRelease(cluster, 'install', RELEASE, NS, RELEASE_VALUES());
    phase('helm install done');
    // helm's --wait counts a DaemonSet ready with maxUnavailable pods still starting: wait for all.
    const ds = await eventually(async () => {
      const d = await cluster.kube.requestOk('GET', `/apis/apps/v1/namespaces/${NS}/daemonsets/${RELEASE}-kube-node-ping`);
      return d.status.numberReady === NODES.length ? d : undefined;
    }, 120_000, `the DaemonSet Ready on all ${NODES.length} nodes`);
    assert.equal(ds.status.desiredNumberScheduled, NODES.length);
    const byNode = await eventually(() => readyOnEveryNode(NODES), 60_000, 'one Ready pod on every node');
    for (const [node, p] of byNode) {
      const id = p.status.containerStatuses?.[0]?.containerID;
      assert.ok(id, `${node}: no container ID`);
      // fping runs as a child of the agent: wait until it is there.
      const procs = await eventually(async () => {
        const ps = processes(node, id);
        return ps.some((x) => x.name === 'fping') ? ps : undefined;
      }, 30_000, `fping running in ${p.metadata.name}`);
      for (const x of procs) {
        assert.equal(x.seccomp, '2', `${node} ${x.name}[${x.pid}]: seccomp filter mode`);
        assert.equal(x.uid, '65532', `${node} ${x.name}[${x.pid}]: effective uid`);
        if (x.name === 'fping') assert.equal(x.capEff, CAP_NET_RAW, `${node} fping[${x.pid}]: CapEff`);
        else if (x.name === 'node') assert.equal(x.capEff, NO_CAPS, `${node} node[${x.pid}]: CapEff`);
        else assert.fail(`${node}: unexpected process ${x.name}[${x.pid}] in the agent container`);
        // nonRoot mode: fping gains NET_RAW from its file capability, which no_new_privs would cancel.
        assert.equal(x.noNewPrivs, '0', `${node} ${x.name}[${x.pid}]: NoNewPrivs`);
      }
      const agentPid = procs.find((x) => x.name === 'node')?.pid;
      assert.ok(agentPid, `${node}: no node process`);
      // The agent reaches the API server as every in-cluster client does: through the
      // `kubernetes` Service's IP, which kube-proxy rewrites (no test-only setting).
      const env = readFileSync(`/proc/${agentPid}/environ`, 'utf8').split('\0');
      assert.ok(env.includes(`KUBERNETES_SERVICE_HOST=${KUBERNETES_SERVICE_IP}`), `${node}: ${env.filter((e) => e.startsWith('KUBERNETES_')).join(' ')}`);
      await eventually(async () => serviceConnection(agentPid), 30_000, `${node}: the agent connected to ${KUBERNETES_SERVICE_IP}:443`);
    }
  });

  test('full mesh: every agent probes every other node, and every packet is received', async () => {
    const pages = await eventually(async () => {
      const all = new Map<string, Map<string, { sent: number; received: number }>>();
      for (const n of NODES) {
        const p = pairs(await page(n));
        if (!NODES.filter((o) => o !== n).every((o) => (p.get(o)?.sent ?? 0) >= 5)) return undefined;
        all.set(n, p);
      }
      return all;
    }, 60_000, 'five probes of every pair');
    for (const n of NODES) {
      // Each agent names its own node, and sees the node's hostname (host network, as on a real node).
      const own = (await page(n)).filter((x) => x.name === 'kube_node_ping_packets_sent_total');
      assert.deepEqual([...new Set(own.map((x) => `${x.labels['k8s_node_name']} ${x.labels['host_name']}`))], [`${n} ${n}`]);
    }
    for (const [n, p] of pages) {
      assert.deepEqual([...p.keys()].sort(), NODES.filter((o) => o !== n), `${n}'s destinations`);
      for (const [d, c] of p) assert.equal(c.received, c.sent, `${n} -> ${d}: ${c.received} of ${c.sent} received`);
    }
  });

  test('Prometheus finds the agents through kubernetes_sd_configs with a token of its own, and loads the chart\'s rules', async () => {
    const k = cluster.kube;
    prom = await startDiscoveringPrometheus(cluster, NS, work, [compressedRules(work, 15)]);
    const want = NODES.map((n) => `${hostOf(n).v4}:${PORT}`).sort();
    await eventually(async () => {
      const up = await prom.query('up{job="kube-node-ping"} == 1');
      return JSON.stringify(up.map((u) => u.metric['instance']).sort()) === JSON.stringify(want);
    }, 90_000, `Prometheus scraping ${want.join(', ')}`);
    // Every rule of the chart's file is loaded.
    const shipped = parseYaml(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: unknown[] }[] };
    const loaded = (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as { data: { groups: { name: string; rules: { health: string }[] }[] } };
    const byName = (gs: { name: string; rules: unknown[] }[]) => gs.map((g) => `${g.name}: ${g.rules.length} rules`).sort();
    assert.deepEqual(byName(loaded.data.groups), byName(shipped.groups));
    // The recording rules work on what was discovered: every pair of nodes, no loss.
    const loss = await eventually(async () => {
      const r = await prom.query('kube_node_ping_pair:loss_ratio:rate5m{destination_kind="node"}');
      return r.length === NODES.length * (NODES.length - 1) ? r : undefined;
    }, 60_000, 'a loss ratio for every pair');
    assert.ok(loss.every((x) => Number(x.value[1]) === 0), JSON.stringify(loss.map((x) => x.value[1])));
    assert.deepEqual(blamed(await firing()), [], 'a healthy cluster fires nothing');
    // The operator's objects are there too, for those who run it.
    for (const kind of ['servicemonitors', 'podmonitors', 'prometheusrules']) {
      await k.requestOk('GET', `/apis/monitoring.coreos.com/v1/namespaces/${NS}/${kind}/${RELEASE}-kube-node-ping`);
    }
    phase('Prometheus scraping');
  });

  describe('negative controls', () => {
    const NEG = 'neg';
    const NEG_PORT = PORT + 10;
    const negSelector = 'app.kubernetes.io/instance=neg';
    const render = async (extra: string[]) =>
      parseObjects(await templateText({ release: NEG, namespace: NEG, set: [...pairsOf(imageValues(agent.ref)), `metrics.port=${NEG_PORT}`, ...extra] }));
    const applyAll = async (objs: KObject[]) => {
      for (const o of objs) {
        const plural = { ServiceAccount: 'serviceaccounts', ClusterRole: 'clusterroles', ClusterRoleBinding: 'clusterrolebindings', Service: 'services', DaemonSet: 'daemonsets' }[o.kind];
        if (!plural) throw new Error(`unexpected ${o.kind} in the negative release`);
        await apply({ ...o, metadata: { ...o.metadata, namespace: o.metadata.namespace ?? NEG } }, plural, !o.kind.startsWith('Cluster'));
      }
    };

    before(async () => {
      await cluster.kube.requestOk('POST', '/api/v1/namespaces', { metadata: { name: NEG } });
    });
    after(async () => {
      await cluster.kube.request('DELETE', `/apis/apps/v1/namespaces/${NEG}/daemonsets/${NEG}-kube-node-ping`);
      await cluster.kube.request('DELETE', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/neg-kube-node-ping');
      await cluster.kube.request('DELETE', '/apis/rbac.authorization.k8s.io/v1/clusterroles/neg-kube-node-ping');
      await eventually(async () => (await pods(NEG, negSelector)).length === 0, 120_000, 'the negative release\'s pods gone');
    });

    test('nonRoot with allowPrivilegeEscalation: false (as a policy engine would set it): never Ready, and the log says why in one line', async () => {
      const objs = await render([]);
      // The policy engine's mutation: no_new_privs, which makes fping's file capability inert.
      const c = one(objs, 'DaemonSet')['spec'].template.spec.containers[0];
      c.securityContext.allowPrivilegeEscalation = false;
      await applyAll(objs);
      let seen = '(no pod yet)';
      const logs = await eventually(async () => {
        const ps = await pods(NEG, negSelector);
        if (ps.length < NODES.length) return undefined;
        const out: string[] = [];
        for (const p of ps) {
          assert.ok(!isReady(p), `${p.metadata.name} became Ready without NET_RAW`);
          const r = await cluster.kube.request('GET', `/api/v1/namespaces/${NEG}/pods/${p.metadata.name}/log?container=agent`);
          const prev = await cluster.kube.request('GET', `/api/v1/namespaces/${NEG}/pods/${p.metadata.name}/log?container=agent&previous=true`);
          const text = `${prev.status === 200 ? prev.text : ''}${r.status === 200 ? r.text : ''}`;
          seen = `${p.metadata.name}: ${JSON.stringify(p.status.containerStatuses)}\n${text.slice(-1500)}`;
          if (!/cannot open an ICMP socket/.test(text)) return undefined;
          out.push(text);
        }
        return out;
      }, 120_000, 'every negative pod logging the cause').catch((e: Error) => {
        throw new Error(`${e.message}; last seen:\n${seen}`);
      });
      for (const text of logs) {
        // One error line names the cause (no_new_privs from allowPrivilegeEscalation: false
        // making fping's file capability inert) and the fix; fping's retries do not repeat it.
        const lines = text.split('\n').filter((l) => /cannot open an ICMP socket/.test(l));
        assert.equal(lines.length, 1, lines.join('\n'));
        const rec = JSON.parse(lines[0]!) as { level: string; msg: string };
        assert.equal(rec.level, 'error');
        assert.match(rec.msg, /CAP_NET_RAW/);
        assert.match(rec.msg, /allowPrivilegeEscalation: false/);
        assert.match(rec.msg, /Fix: /);
      }
      // The kubelet's readiness probe gets the cause too, and nothing becomes Ready over
      // several probe periods.
      for (const n of NODES) {
        const r = await fetch(`http://${hostOf(n).v4}:${NEG_PORT}/readyz`, { signal: AbortSignal.timeout(10_000) });
        assert.equal(r.status, 503, `${n}: /readyz`);
        assert.match(await r.text(), /cannot open an ICMP socket/);
      }
      const until = Date.now() + 20_000;
      while (Date.now() < until) {
        for (const p of await pods(NEG, negSelector)) assert.ok(!isReady(p), `${p.metadata.name} became Ready without NET_RAW`);
        await sleep(1000);
      }
    });

    test('securityMode root: Ready on every node', async () => {
      await applyAll(await render(['securityMode=root']));
      await eventually(async () => {
        const byNode = await readyOnEveryNode(NODES, NEG, negSelector);
        if (!byNode) return undefined;
        // The pods of the root template, not the patched ones.
        return [...byNode.values()].every((p) => p.status.containerStatuses?.[0]?.ready);
      }, 180_000, 'the root-mode pods Ready on every node');
    });
  });

  test('a blackholed node: the node alert names it and no other; healed, it resolves', async () => {
    const victim = hostOf('node-2');
    await lab.setBlackhole(victim, true);
    try {
      const first = await eventually(async () => {
        const a = await firing();
        return a.some((x) => x.alertname === 'KubeNodePingNodeUnreachable' && x.labels['destination_name'] === victim.name) ? a : undefined;
      }, 120_000, `KubeNodePingNodeUnreachable for ${victim.name}`);
      // Give any wrong blame time to show up too (the compressed `for` of 4 s, a few evaluations).
      await sleep(10_000);
      const all = blamed(await firing());
      assert.ok(all.length > 0 && all.every((b) => b.endsWith(`:${victim.name}`)), `firing: ${all.join(', ')} (first seen: ${blamed(first).join(', ')})`);
    } finally {
      await lab.setBlackhole(victim, false);
    }
    await eventually(async () => (await firing()).length === 0, 120_000, 'no alert firing after the heal');
    phase('blackhole healed');
  });

  describe('node churn', () => {
    test('a fifth kubelet joins: its pod becomes Ready, and every other agent probes it within 30 s', async () => {
      const all = [...NODES, 'node-5'];
      await cluster.addNode('node-5');
      const joined = Date.now();
      await lab.assertRoutes([hostOf('node-5').v4, hostOf('node-5').v6]);
      await eventually(async () => {
        for (const n of NODES) if ((pairs(await page(n)).get('node-5')?.received ?? 0) === 0) return undefined;
        return true;
      }, 30_000, 'every agent receiving replies from node-5');
      process.stderr.write(`kubernetes.test: node-5 probed by all ${NODES.length} agents ${Date.now() - joined} ms after it was Ready\n`);
      await eventually(() => readyOnEveryNode(all), 180_000, 'the agent on node-5 Ready');
      await eventually(async () => {
        const p = pairs(await page('node-5'));
        return NODES.every((o) => (p.get(o)?.received ?? 0) > 0);
      }, 60_000, 'node-5 probing every other node');
    });

    test('a deleted node: its series leave every agent\'s page', async () => {
      await cluster.removeNode('node-5');
      await eventually(async () => {
        for (const n of NODES) if ((await page(n)).some((s) => s.labels['destination_name'] === 'node-5')) return undefined;
        return true;
      }, 60_000, 'no series of node-5 on any page');
      // The pod of a node that is gone is garbage-collected (after PodGC's 40 s quarantine).
      await eventually(async () => (await pods()).every((p) => p.spec.nodeName !== 'node-5'), 180_000, 'the pod of node-5 garbage-collected');
    });

    test('a node whose kubelet stopped (NotReady) is still probed, and no network alert fires for it', async () => {
      const victim = 'node-4';
      await cluster.stopKubelet(victim);
      try {
        await eventually(async () => {
          const n = await cluster.kube.requestOk('GET', `/api/v1/nodes/${victim}`);
          return (n.status.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status !== 'True');
        }, 120_000, `${victim} NotReady`);
        const before = new Map(await Promise.all(NODES.filter((n) => n !== victim).map(async (n) => [n, pairs(await page(n)).get(victim)] as const)));
        // A while with the node NotReady: longer than any compressed `for` of a network alert.
        const until = Date.now() + 25_000;
        while (Date.now() < until) {
          const mine = (await firing()).filter((a) => Object.values(a.labels).includes(victim));
          assert.deepEqual(blamed(mine), [], `alerts for the NotReady ${victim}`);
          await sleep(1000);
        }
        for (const [n, b] of before) {
          const now = pairs(await page(n)).get(victim);
          assert.ok(b && now && now.sent > b.sent, `${n} stopped probing the NotReady ${victim}`);
          assert.equal(now.received - b.received, now.sent - b.sent, `${n} -> ${victim}: packets lost while its network is fine`);
        }
      } finally {
        await cluster.startKubelet(victim);
      }
      await cluster.waitNodesReady([victim]);
    });
  });

  test('upgrade: a changed value rolls through every node, and no alert fires during the rollout', async () => {
    await eventually(async () => (await prom.query('ALERTS')).length === 0, 120_000, 'no alert firing or pending before the upgrade');
    const old = new Set((await pods()).map((p) => p.metadata.uid));
    const start = Date.now();
    await helmRelease(cluster, 'upgrade', RELEASE, NS, [...RELEASE_VALUES(), '--set', 'probe.packetSize=64']);
    const byNode = await eventually(async () => {
      const m = await readyOnEveryNode(NODES);
      return m && [...m.values()].every((p) => !old.has(p.metadata.uid)) ? m : undefined;
    }, 180_000, 'a new Ready pod on every node');
    for (const [n, p] of byNode) assert.ok(p.spec.containers[0]!.args?.includes('--packet-size=64'), `${n}: ${p.metadata.name} runs the old arguments`);
    const rolloutS = Math.ceil((Date.now() - start) / 1000);
    // An alert caused by the rollout fires a compressed `for` later (20 s for an agent down).
    await sleep(25_000);
    const seen = await prom.query(`max_over_time(ALERTS{alertstate="firing"}[${Math.floor((Date.now() - start) / 1000)}s])`);
    assert.deepEqual(seen.map((x) => `${x.metric['alertname']}:${x.metric['destination_name'] ?? x.metric['instance'] ?? ''}`), [], 'alerts during the rollout');
    phase(`upgrade rolled in ${rolloutS} s`);
  });
});

/** ['--set', 'a=b', '--set', 'c=d'] -> ['a=b', 'c=d'] */
function pairsOf(args: string[]): string[] {
  return args.filter((_, i) => i % 2 === 1);
}
