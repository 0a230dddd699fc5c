/**
 * 5,000 Node objects in a real kube-apiserver: the agent's target set converges to all of
 * them (minus its own node), and a change to one of them still lands within seconds. The
 * InternalIPs are loopback addresses, so nothing leaves the machine.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, scrape, startAgent, valueOf, type AgentProcess } from './support/agent.ts';
import { findKubeBinaries, startKube, type Kube } from './support/kube.ts';
import { createNodes, deleteNode } from './support/nodes.ts';

const N = 5000;
const found = findKubeBinaries();
if ('missing' in found) throw new Error(`kube binaries missing: ${found.missing}; run ./scripts/test`);

let k: Kube;
let agent: AgentProcess;

before(async () => {
  k = await startKube(found);
  await createNodes(k, Array.from({ length: N }, (_, i) => ({
    name: `node-${String(i).padStart(5, '0')}`,
    addresses: [{ type: 'InternalIP', address: `127.3.${Math.floor(i / 250)}.${(i % 250) + 1}` }],
    zone: `zone-${'abc'[i % 3]}`,
    realistic: true,
  })));
});

after(async () => {
  await agent?.stop();
  await k?.stop();
});

test(`${N} nodes: the target set converges, and follows a deletion`, async () => {
  const t0 = Date.now();
  // A long period keeps the probing itself light: this test is about discovery.
  // A full mesh: the worst case, every node a target.
  agent = await startAgent({ args: ['--discovery', 'kubernetes', '--kubeconfig', k.kubeconfigPath, '--period', '10s', '--ip-families', 'ipv4', '--mesh-mode', 'full'], env: { NODE_NAME: 'node-00000' } });
  await eventually(async () => valueOf((await scrape(agent.port)).samples, 'kube_node_ping_targets', { destination_kind: 'node' }) === N - 1, 60_000, 'all nodes but our own as targets');
  const convergedS = (Date.now() - t0) / 1000;
  assert.ok(convergedS < 60, `converged in ${convergedS} s`);
  const { samples } = await scrape(agent.port);
  assert.equal(valueOf(samples, 'kube_node_ping_discovery_nodes'), N);
  // One fping process for them all: every raw ICMP socket receives every reply, so shards
  // would multiply the cost (issue 15, bench/README.md).
  assert.equal(valueOf(samples, 'kube_node_ping_fping_processes'), 1);
  await deleteNode(k, 'node-04999');
  await eventually(async () => valueOf((await scrape(agent.port)).samples, 'kube_node_ping_targets', { destination_kind: 'node' }) === N - 2, 10_000, 'the deletion');
});

test(`${N} nodes in sampled mode: only the assigned peers are probed, and the in-degree is exported`, async () => {
  await agent.stop();
  agent = await startAgent({ args: ['--discovery', 'kubernetes', '--kubeconfig', k.kubeconfigPath, '--period', '10s', '--ip-families', 'ipv4'], env: { NODE_NAME: 'node-00000' } });
  const s = await eventually(async () => {
    const { samples } = await scrape(agent.port);
    return (valueOf(samples, 'kube_node_ping_targets', { destination_kind: 'node' }) ?? 0) > 0 ? samples : undefined;
  }, 60_000, 'sampled peers as targets');
  // --mesh-mode auto with 5,000 nodes: sampled, 10 peers in the own zone and 2 in each of the 2 others.
  assert.equal(valueOf(s, 'kube_node_ping_mesh_sampled'), 1);
  assert.equal(valueOf(s, 'kube_node_ping_targets', { destination_kind: 'node' }), 14);
  assert.equal(valueOf(s, 'kube_node_ping_mesh_peers'), 14);
  assert.ok(valueOf(s, 'kube_node_ping_mesh_probers')! >= 10);
});
