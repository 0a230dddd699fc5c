/**
 * Discovery against a real kube-apiserver and etcd: Node objects whose InternalIPs are hosts
 * of the fault lab (so every probe stays inside our own namespaces). The agent runs with a
 * ServiceAccount token bound to a ClusterRole of get/list/watch on nodes, through a TCP proxy
 * the test can cut to give the agent alone an API outage.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, type Host } from './lab/lab.ts';
import { eventually, scrape, sleep, startAgent, valueOf, type AgentProcess, type Sample } from './support/agent.ts';
import { findKubeBinaries, startKube, type Kube } from './support/kube.ts';
import { createNode, deleteNode, setNodeAddresses } from './support/nodes.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';
import { kubeconfigVia, nodeReaderToken } from './support/rbac.ts';

const found = findKubeBinaries();
if ('missing' in found) throw new Error(`kube binaries missing: ${found.missing}; run ./scripts/test`);

let lab: Lab;
let k: Kube;
let proxy: TcpProxy;
let agent: AgentProcess;
let token: string;
const h: Record<string, Host> = {};
const NS = 'kube-node-ping';

const grantNodeReader = (sa: string, bind: boolean) => nodeReaderToken(k, NS, sa, bind);
const kubeconfigFor = (tok: string, url: string, name: string) => kubeconfigVia(k, tok, url, join(k.dir, `${name}.kubeconfig`));

const v4 = (name: string) => ({ type: 'InternalIP', address: h[name]!.v4 });
const v6 = (name: string) => ({ type: 'InternalIP', address: h[name]!.v6 });
const sentOf = (s: Sample[], name: string, address?: string) =>
  valueOf(s, 'kube_node_ping_packets_sent_total', address ? { destination_name: name, destination_address: address } : { destination_name: name });

before(async () => {
  lab = await Lab.create();
  for (const name of ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8']) h[name] = await lab.addHost(name);
  // The network rule: every address a Node will carry routes into the lab.
  await lab.assertRoutes(Object.values(h).flatMap((x) => [x.v4, x.v6]));
  k = await startKube(found);
  proxy = await startTcpProxy(Number(new URL(k.url).port));
  await k.requestOk('POST', '/api/v1/namespaces', { metadata: { name: NS } });
  token = await grantNodeReader('kube-node-ping', true);

  await createNode(k, { name: 'self', addresses: [{ type: 'InternalIP', address: lab.rootV4 }], zone: 'lab-a', realistic: true });
  await createNode(k, { name: 'n1', addresses: [v4('n1'), v6('n1')], zone: 'lab-b', realistic: true });
  await createNode(k, { name: 'n2', addresses: [v4('n2')], ready: false });
  await createNode(k, { name: 'n3', addresses: [v4('n3')], unschedulable: true });
  await createNode(k, { name: 'no-address', addresses: [] });

  agent = await startAgent({
    args: ['--discovery', 'kubernetes', '--kubeconfig', await kubeconfigFor(token, `https://127.0.0.1:${proxy.port}`, 'agent'), '--period', '100ms', '--cluster-name', 'kind-of'],
    env: { NODE_NAME: 'self' },
  });
});

after(async () => {
  await agent?.stop();
  await proxy?.close();
  await k?.stop();
  await lab?.destroy();
});

test('nodes become targets: dual-stack, NotReady and cordoned probed, self and address-less skipped', async () => {
  const s = await eventually(async () => {
    const { samples } = await scrape(agent.port);
    return ['n1', 'n2', 'n3'].every((n) => (sentOf(samples, n, h[n]!.v4) ?? 0) > 0) ? samples : undefined;
  }, 15_000, 'n1..n3 probed');
  assert.ok(sentOf(s, 'n1', h['n1']!.v4)! > 0 && sentOf(s, 'n1', h['n1']!.v6)! > 0, 'one target per family');
  assert.equal(valueOf(s, 'kube_node_ping_packets_received_total', { destination_name: 'n2' })! > 0, true, 'the NotReady node is probed and answers');
  assert.equal(sentOf(s, 'self'), undefined, 'own node excluded');
  assert.equal(valueOf(s, 'kube_node_ping_targets', { destination_kind: 'node' }), 4);
  const n1 = s.find((x) => x.name === 'kube_node_ping_packets_sent_total' && x.labels['destination_address'] === h['n1']!.v4)!;
  assert.equal(n1.labels['destination_zone'], 'lab-b');
  assert.equal(n1.labels['k8s_node_name'], 'self');
  assert.equal(n1.labels['cloud_availability_zone'], 'lab-a', 'own zone from the own Node object');
  assert.match(agent.logs(), /"msg":"skipping node".*"node":"no-address"/);
  assert.equal(valueOf(s, 'kube_node_ping_discovery_nodes'), 5);
});

test('a node added, readdressed or deleted is followed within seconds', async () => {
  await createNode(k, { name: 'n4', addresses: [v4('n4')] });
  await setNodeAddresses(k, 'n3', [v4('n5')]);
  await deleteNode(k, 'n2');
  const t0 = Date.now();
  const s = await eventually(async () => {
    const { samples } = await scrape(agent.port);
    const ok = (sentOf(samples, 'n4') ?? 0) > 0 && (sentOf(samples, 'n3', h['n5']!.v4) ?? 0) > 0 && sentOf(samples, 'n3', h['n3']!.v4) === undefined && sentOf(samples, 'n2') === undefined;
    return ok ? samples : undefined;
  }, 10_000, 'add, readdress and delete reflected');
  assert.ok(Date.now() - t0 < 10_000);
  assert.equal(valueOf(s, 'kube_node_ping_targets', { destination_kind: 'node' }), 4);
});

test('API outage for the agent: probing goes on, last known nodes kept, a node added meanwhile is picked up', async () => {
  const before = (await scrape(agent.port)).samples;
  await proxy.cut();
  await createNode(k, { name: 'n6', addresses: [v4('n6')] });
  await sleep(5000);
  const during = (await scrape(agent.port)).samples;
  assert.ok(sentOf(during, 'n1', h['n1']!.v4)! >= sentOf(before, 'n1', h['n1']!.v4)! + 30, 'probing went on');
  assert.equal(valueOf(during, 'kube_node_ping_targets', { destination_kind: 'node' }), 4, 'no target dropped');
  assert.ok(valueOf(during, 'kube_node_ping_discovery_restarts_total', { reason: 'unreachable' })! >= 1);
  assert.ok(valueOf(during, 'kube_node_ping_discovery_last_sync_age_seconds')! >= 4);
  await proxy.restore();
  await eventually(async () => (sentOf((await scrape(agent.port)).samples, 'n6') ?? 0) > 0, 70_000, 'n6 after reconnect');
});

test('kube-apiserver restart: probing never stops and the informer recovers', async () => {
  const before = (await scrape(agent.port)).samples;
  await k.restartApiserver();
  await createNode(k, { name: 'n7', addresses: [v4('n7')] });
  const s = await eventually(async () => {
    const { samples } = await scrape(agent.port);
    return (sentOf(samples, 'n7') ?? 0) > 0 ? samples : undefined;
  }, 70_000, 'n7 after the restart');
  assert.ok(sentOf(s, 'n1', h['n1']!.v4)! > sentOf(before, 'n1', h['n1']!.v4)! + 20);
});

test('410 Gone: compacted etcd makes the watch expire; the re-list keeps every node that still exists', async () => {
  const expired0 = valueOf((await scrape(agent.port)).samples, 'kube_node_ping_discovery_restarts_total', { reason: 'expired' }) ?? 0;
  // Compaction, then a fresh API server cache: the agent's resourceVersion is gone.
  await k.compactEtcd();
  await createNode(k, { name: 'n8', addresses: [v4('n8')] });
  await k.restartApiserver();
  let sawDrop = false;
  const s = await eventually(async () => {
    const { samples } = await scrape(agent.port);
    const still: [string, string][] = [['n1', h['n1']!.v4], ['n1', h['n1']!.v6], ['n3', h['n5']!.v4], ['n4', h['n4']!.v4], ['n6', h['n6']!.v4], ['n7', h['n7']!.v4]];
    for (const [n, a] of still) if (sentOf(samples, n, a) === undefined) sawDrop = true;
    const expired = valueOf(samples, 'kube_node_ping_discovery_restarts_total', { reason: 'expired' }) ?? 0;
    return expired > expired0 && (sentOf(samples, 'n8') ?? 0) > 0 ? samples : undefined;
  }, 70_000, 'a 410 and a re-list');
  assert.equal(sawDrop, false, 'no node that still exists left the targets');
  assert.match(agent.logs(), /410 Gone/);
  // n1 (v4 and v6), n3, n4, n6, n7, n8
  assert.equal(valueOf(s, 'kube_node_ping_targets', { destination_kind: 'node' }), 7);
});

test('RBAC denied: one clear line naming the permission, retried, and the token reads no secrets', async () => {
  const denied = await grantNodeReader('no-rbac', false);
  const other = await startAgent({
    args: ['--discovery', 'kubernetes', '--kubeconfig', await kubeconfigFor(denied, k.url, 'denied'), '--period', '100ms'],
    env: { NODE_NAME: 'self' },
    waitReady: false,
  });
  try {
    await eventually(async () => /RBAC: the agent may not list\/watch nodes \(HTTP 403\).*ClusterRole with get, list, watch on nodes/.test(other.logs()), 15_000, 'the RBAC line');
    const lines = other.logs().split('\n').filter((l) => l.includes('RBAC'));
    assert.equal(lines.length, 1, 'one line, not one per retry');
    const ready = await fetch(`http://127.0.0.1:${other.port}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /nodes not listed yet/);
  } finally {
    assert.equal((await other.stop()).code, 0);
  }
  // The agent's own token: nodes yes, secrets no.
  assert.equal((await k.request('GET', '/api/v1/nodes', undefined, { token })).status, 200);
  assert.equal((await k.request('GET', '/api/v1/secrets', undefined, { token })).status, 403);
  assert.equal((await k.request('GET', `/api/v1/namespaces/${NS}/secrets`, undefined, { token })).status, 403);
});

test('a label selector narrows the nodes; file targets are merged as external, a node wins its address', async () => {
  const file = join(k.dir, 'external.yaml');
  // n8's v6 plays an external resolver; n1's v4 is also listed but belongs to node n1.
  writeFileSync(file, `- {name: resolver, address: "${h['n8']!.v6}", kind: external}\n- {name: not-n1, address: "${h['n1']!.v4}", kind: external}\n`);
  const other = await startAgent({
    args: ['--discovery', 'kubernetes', '--kubeconfig', await kubeconfigFor(token, k.url, 'selector'), '--node-selector', 'topology.kubernetes.io/zone=lab-b', '--targets-file', file, '--period', '100ms'],
    env: { NODE_NAME: 'self' },
  });
  try {
    const s = await eventually(async () => {
      const { samples } = await scrape(other.port);
      return (valueOf(samples, 'kube_node_ping_packets_received_total', { destination_name: 'resolver' }) ?? 0) > 0 &&
        (sentOf(samples, 'n1', h['n1']!.v4) ?? 0) > 0 ? samples : undefined;
    }, 15_000, 'n1 and the resolver probed');
    assert.equal(valueOf(s, 'kube_node_ping_discovery_nodes'), 1, 'only the lab-b node is listed');
    assert.equal(valueOf(s, 'kube_node_ping_targets', { destination_kind: 'node' }), 2, 'n1 on v4 and v6');
    assert.equal(valueOf(s, 'kube_node_ping_targets', { destination_kind: 'external' }), 1);
    assert.equal(sentOf(s, 'not-n1'), undefined, 'the node keeps its address');
    const resolver = s.find((x) => x.name === 'kube_node_ping_packets_sent_total' && x.labels['destination_name'] === 'resolver')!;
    assert.equal(resolver.labels['destination_kind'], 'external');
  } finally {
    assert.equal((await other.stop()).code, 0);
  }
});
