/**
 * `./scripts/demo --cluster`: the chart in the real cluster of test/support/cluster.ts, left
 * running until Ctrl-C so that a newcomer can watch it. Four nodes (lab namespaces, each with
 * containerd, kubelet and kube-proxy), the DaemonSet installed with `helm install` as a user
 * would, and a Prometheus that finds the agents through kubernetes_sd_configs and loads the
 * chart's rules as shipped (real time: alerts need their full `for`).
 *
 * Packets go only to the lab's namespaces, as in the tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from './lab/lab.ts';
import { helmRelease, imageValues, RULES, startDiscoveringPrometheus } from './support/chart-in-cluster.ts';
import { startCluster, type Cluster } from './support/cluster.ts';
import { agentImage, pauseImage } from './support/image.ts';
import type { PrometheusServer } from './support/servers.ts';

const NODES = ['node-1', 'node-2', 'node-3', 'node-4'];
const NS = 'monitoring';

let lab: Lab | undefined;
let cluster: Cluster | undefined;
let prom: PrometheusServer | undefined;
const dir = mkdtempSync(join(tmpdir(), 'knp-demo-'));

let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    process.stderr.write('\ndemo: stopping the cluster ...\n');
    await prom?.stop().catch(() => {});
    await cluster?.stop().catch(() => {});
    await lab?.destroy().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(code);
}
// Ours before the lab's own handlers, which would only tear the lab down.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void shutdown(0));

try {
  const agent = agentImage();
  const pause = pauseImage();
  lab = await Lab.create();
  cluster = await startCluster({ lab, nodes: NODES, images: [agent.archive, pause.archive], sandboxImage: pause.ref, verbose: true });
  const addrs = lab.hosts.flatMap((h) => [h.v4, h.v6]);
  await lab.assertRoutes(addrs);
  process.stderr.write('demo: helm install ...\n');
  await helmRelease(cluster, 'install', 'knp', NS, imageValues(agent.ref));
  prom = await startDiscoveringPrometheus(cluster, NS, dir, [RULES]);
  const k = cluster.kube;
  const q = (expr: string) => `${prom!.url}/graph?g0.expr=${encodeURIComponent(expr)}&g0.tab=0`;
  const lines = [
    '',
    `kube-node-ping runs on ${NODES.length} nodes of a real cluster (Ctrl-C stops everything).`,
    '',
    `Prometheus (kubernetes_sd_configs, the chart's rules): ${prom.url}`,
    `  loss per pair:  ${q('kube_node_ping_pair:loss_ratio:rate5m')}`,
    `  RTT per pair:   ${q('kube_node_ping_pair:rtt_seconds:p50_5m')}`,
    `  alerts:         ${prom.url}/alerts`,
    '',
    'The agents\' own pages (each node\'s address, from this machine):',
    ...cluster.nodes.map((n) => `  ${n.name}: curl -s http://${n.host.v4}:9464/metrics | grep ^kube_node_ping_packets`),
    '',
    `The API server: ${k.url} (helm: --kubeconfig ${cluster.kubeconfigPath})`,
    `  curl -s --cacert ${k.caFile} -H "Authorization: Bearer $(sed -n 's/^ *token: "\\(.*\\)"/\\1/p' ${cluster.kubeconfigPath})" ${k.url}/api/v1/namespaces/${NS}/pods`,
    '',
    'Break a node (its echo requests dropped) and watch KubeNodePingNodeUnreachable fire after a minute:',
    `  ip netns exec ${cluster.nodes[1]!.host.ns} nft add rule inet knplab input icmp type echo-request drop`,
    `  ip netns exec ${cluster.nodes[1]!.host.ns} nft flush chain inet knplab input     # heal`,
    '',
    `Logs: ${cluster.dir}/nodes/<node>/{containerd,kubelet,kube-proxy}.log, ${k.dir}/*.log`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
  // Until a signal: shutdown() exits.
  setInterval(() => {}, 1 << 30);
} catch (err) {
  process.stderr.write(`demo: ${(err as Error).message}\n`);
  await shutdown(1);
}
