/**
 * A cluster in a box, the flagship end-to-end test and the project's demo
 * (`./scripts/demo`): a real kube-apiserver and etcd; 20 "nodes", each a network namespace of
 * the fault lab running one agent and registered as a Node whose InternalIP is that
 * namespace's address; a real Prometheus scraping every agent and loading the shipped alert
 * and recording rules.
 *
 * For each mesh mode (full, then sampled):
 *   1. blackhole one node: the alert that names that node fires, and no alert blames a healthy node;
 *   2. heal it: the alert resolves;
 *   3. make one source lossy (it loses the replies to its own probes): the source-side alert names it;
 *   4. (full mesh) one node drops 1 % of the packets each way: the drizzle alert of the pooled
 *      evidence names it, and nothing else fires.
 *
 * Time is compressed: the rules are the shipped files with their windows and `for` durations
 * shortened (5m → 20s, for → 10s; the evidence file through prometheusRule.windows' own
 * substitution, slow 1m, fast 20s, burst 5s), the same expressions and thresholds otherwise.
 * With 19 probers at 4 probes per second the 1-minute slow window holds some 4,500 probes of
 * the drizzling node: enough to prove 1 %. A sampled mesh has 5 or so probers per node, too
 * few for that window, so step 4 runs in the full mesh only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Lab, type Host } from './lab/lab.ts';
import { NODE_FLAGS, REPO, eventually, sleep } from './support/agent.ts';
import { blamed, networkVerdicts, RULES_FILE, type Firing } from './support/alerts.ts';
import { findKubeBinaries, startKube, type Kube } from './support/kube.ts';
import { createNode } from './support/nodes.ts';
import { kubeconfigVia, nodeReaderToken } from './support/rbac.ts';
import { startPrometheus, type PrometheusServer } from './support/servers.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';
import { EVIDENCE_RULES_FILE, withWindows } from '../sim/evidence-rules.ts';

const NODES = 20;
const PORT = 9464;
const found = findKubeBinaries();
if ('missing' in found) throw new Error(`kube binaries missing: ${found.missing}; run ./scripts/test`);

/** The shipped rules with time compressed; expressions and thresholds unchanged. */
function compressedRules(dir: string): string[] {
  const text = readFileSync(RULES_FILE, 'utf8')
    .replace(/\[5m\]/g, '[20s]')
    .replace(/\[15m\]/g, '[1m]')
    .replace(/\[1d\]/g, '[5m]')
    .replace(/^(\s+for: )\d+[smh]$/gm, '$110s');
  const path = join(dir, 'rules.yaml');
  writeFileSync(path, text);
  const evidence = join(dir, 'evidence.rules.yaml');
  writeFileSync(evidence, withWindows(readFileSync(EVIDENCE_RULES_FILE, 'utf8'), { fast: '20s', slow: '1m', burst: '5s', for: '10s' }));
  return [path, evidence];
}

let lab: Lab;
let k: Kube;
let proxy: TcpProxy;
let prom: PrometheusServer;
let kubeconfig: string;
const hosts: Host[] = [];
let agents: ChildProcess[] = [];
let logs: string[] = [];

before(async () => {
  lab = await Lab.create();
  for (let i = 0; i < NODES; i++) hosts.push(await lab.addHost(`node-${String(i).padStart(2, '0')}`));
  // The network rule: every InternalIP routes into the lab, from the root and from a host.
  await lab.assertRoutes(hosts.map((h) => h.v4));
  await lab.assertRoutes(hosts.map((h) => h.v4), hosts[0]);
  k = await startKube(found);
  // The API server listens on 127.0.0.1; agents in the namespaces reach it through the lab's root address.
  proxy = await startTcpProxy(Number(new URL(k.url).port), lab.rootV4);
  await k.requestOk('POST', '/api/v1/namespaces', { metadata: { name: 'kube-node-ping' } });
  const token = await nodeReaderToken(k, 'kube-node-ping', 'kube-node-ping', true);
  kubeconfig = await kubeconfigVia(k, token, `https://${lab.rootV4}:${proxy.port}`, join(k.dir, 'agents.kubeconfig'));
  for (const [i, h] of hosts.entries()) {
    await createNode(k, { name: h.name, addresses: [{ type: 'InternalIP', address: h.v4 }], zone: `zone-${'abc'[i % 3]}` });
  }
  const dir = mkdtempSync(join(tmpdir(), 'knp-box-'));
  prom = await startPrometheus([{ job: 'kube-node-ping', targets: hosts.map((h) => `${h.v4}:${PORT}`) }], { ruleFiles: compressedRules(dir) });
});

after(async () => {
  await stopAgents();
  await prom?.stop();
  await proxy?.close();
  await k?.stop();
  await lab?.destroy();
});

async function startAgents(mesh: string[]): Promise<void> {
  logs = hosts.map(() => '');
  agents = hosts.map((h, i) => {
    const child = lab.spawn(h, [
      process.execPath, ...NODE_FLAGS, join(REPO, 'src/main.ts'),
      '--discovery', 'kubernetes', '--kubeconfig', kubeconfig, '--period', '250ms', '--cluster-name', 'box',
      '--prometheus-port', String(PORT), '--prometheus-host', h.v4, '--log-level', 'warn', ...mesh,
    ], { env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/root', NODE_NAME: h.name } });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (logs[i] = (logs[i]! + d).slice(-4000)));
    child.stdout!.resume();
    return child;
  });
  await eventually(async () => {
    for (const h of hosts) if ((await fetch(`http://${h.v4}:${PORT}/readyz`)).status !== 200) return false;
    return true;
  }, 60_000, `all ${NODES} agents ready`).catch((err: Error) => {
    throw new Error(`${err.message}\n${logs.filter(Boolean).slice(0, 3).join('\n')}`);
  });
}

async function stopAgents(): Promise<void> {
  await Promise.all(agents.map((a) => new Promise<void>((resolve) => {
    if (a.exitCode !== null || a.signalCode !== null) return resolve();
    a.once('exit', () => resolve());
    a.kill('SIGTERM');
  })));
  agents = [];
}

/** The firing network verdicts (agent-health alerts left out: see test/support/alerts.ts). */
async function firing(): Promise<Firing[]> {
  const r = await prom.query('ALERTS{alertstate="firing"}');
  return networkVerdicts(r.map((x) => ({ alertname: x.metric['alertname']!, labels: x.metric })));
}

for (const [mode, args] of [
  ['full', ['--mesh-mode', 'full']],
  // 20 nodes in 3 zones: 4 peers in the own zone, 1 in each other zone.
  ['sampled', ['--mesh-mode', 'sampled', '--mesh-zone-peers', '4', '--mesh-cross-zone-peers', '1', '--mesh-budget', '6']],
] as const) {
  describe(`${mode} mesh`, () => {
    const victim = () => hosts[5]!;
    const source = () => hosts[12]!;

    before(async () => {
      await startAgents([...args]);
      // A clean baseline: nothing fires once the windows have filled.
      await sleep(25_000);
    });
    after(stopAgents);

    test('the agents probe the mesh they were told to', async () => {
      const peers = await prom.query('kube_node_ping_mesh_peers');
      assert.equal(peers.length, NODES);
      const expected = mode === 'full' ? NODES - 1 : 6;
      for (const p of peers) assert.equal(Number(p.value[1]), expected, `${p.metric['k8s_node_name']}: ${p.value[1]} peers`);
      const sampled = await prom.query('kube_node_ping_mesh_sampled');
      assert.ok(sampled.length === NODES && sampled.every((x) => Number(x.value[1]) === (mode === 'sampled' ? 1 : 0)));
      const probers = await prom.query('min(kube_node_ping_mesh_probers)');
      assert.ok(Number(probers[0]!.value[1]) >= (mode === 'full' ? NODES - 1 : 4));
      assert.deepEqual(blamed(await firing()), [], 'a healthy cluster blames nothing');
    });

    test('a blackholed node: the alert names it, and only it', async () => {
      await lab.setBlackhole(victim(), true);
      const alerts = await eventually(async () => {
        const a = await firing();
        return a.some((x) => x.alertname === 'KubeNodePingNodeUnreachable') ? a : undefined;
      }, 90_000, `KubeNodePingNodeUnreachable for ${victim().name}`);
      // Give any wrong blame time to show up too.
      await sleep(10_000);
      const all = blamed(await firing());
      assert.deepEqual(all, [`KubeNodePingNodeUnreachable:${victim().name}`], `firing: ${all.join(', ')} (first seen: ${blamed(alerts).join(', ')})`);
    });

    test('healed: the alert resolves', async () => {
      await lab.setBlackhole(victim(), false);
      await eventually(async () => (await firing()).length === 0, 90_000, 'no alert firing after the heal');
    });

    test('a lossy source: the source-side alert names it', async () => {
      await lab.setReplyLoss(source(), 40);
      await eventually(async () => {
        const all = blamed(await firing());
        return all.length === 1 && all[0] === `KubeNodePingSourceDegraded:${source().name}` ? all : undefined;
      }, 90_000, `KubeNodePingSourceDegraded for ${source().name} and nothing else`);
      await lab.setReplyLoss(source(), 0);
    });

    if (mode === 'full') {
      test('a node drizzling 1 % each way: the drizzle alert names it, and nothing else fires', async () => {
        const drizzler = hosts[8]!;
        // 1 % of the echo requests it receives and of the replies to its own probes.
        await lab.setLoss(drizzler, 1);
        await lab.setReplyLoss(drizzler, 1);
        try {
          const want = [`KubeNodePingNodeDrizzling:${drizzler.name}`];
          // The previous step's source fault leaves the slow window within a minute.
          await eventually(async () => {
            const all = blamed(await firing());
            return all.join() === want.join() ? all : undefined;
          }, 150_000, `KubeNodePingNodeDrizzling for ${drizzler.name} and nothing else`);
          // It holds, and nothing else joins it.
          for (let i = 0; i < 4; i++) {
            await sleep(5_000);
            const all = blamed(await firing());
            assert.deepEqual(all, want, `firing: ${all.join(', ')}`);
          }
          const a = (await firing()).find((x) => x.alertname === 'KubeNodePingNodeDrizzling')!;
          assert.equal(a.labels['reason'], 'lossy');
          // The estimate and its interval hold the injected loss (1 % each way: about 1 % of round trips).
          const q = async (e: string) => Number((await prom.query(`${e}{destination_name="${drizzler.name}"}`))[0]?.value[1]);
          const [lower, upper] = [await q('kube_node_ping_destination:loss_lower:slow'), await q('kube_node_ping_destination:loss_upper:slow')];
          assert.ok(lower > 0.002 && lower < 0.01 && upper > 0.01 && upper < 0.04, `interval ${lower}–${upper}`);
        } finally {
          await lab.setLoss(drizzler, 0);
          await lab.setReplyLoss(drizzler, 0);
        }
      });
    }
  });
}
