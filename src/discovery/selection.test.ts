import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MeshSettings } from '../mesh/mesh.ts';
import type { CompactNode, NodePolicy } from './node.ts';
import { selectTargets } from './selection.ts';

const policy: Omit<NodePolicy, 'selfName'> = { addressTypes: ['InternalIP'], ipFamilies: ['ipv4', 'ipv6'], skipNotReady: false, skipCordoned: false };
const full: MeshSettings = { mode: 'auto', fullBelow: 100, zonePeers: 5, crossZonePeers: 2, budget: 30 };
const sampled: MeshSettings = { ...full, mode: 'sampled' };

function node(name: string, addresses: [string, string][], extra: Partial<CompactNode> = {}): CompactNode {
  return { name, uid: `uid-${name}`, zone: '', region: '', ready: true, unschedulable: false, addresses: addresses.map(([type, address]) => ({ type, address })), ...extra };
}

const byName = (list: CompactNode[]) => new Map(list.map((n) => [n.name, n]));

/** `n` nodes in `zones` zones, each with one IPv4 InternalIP. */
function cluster(n: number, zones: number): Map<string, CompactNode> {
  return byName(Array.from({ length: n }, (_, i) => node(`node-${i}`, [['InternalIP', `10.${i >> 8}.${i & 255}.1`]], { zone: `z${i % zones}` })));
}

test('full mesh: every other node, self excluded, one target per family of the preferred address type', () => {
  const nodes = byName([
    node('self', [['InternalIP', '10.0.0.9']], { zone: 'z1' }),
    node('a', [['ExternalIP', '192.0.2.1'], ['InternalIP', '10.0.0.1'], ['InternalIP', 'fd00::1']], { zone: 'z1' }),
    node('b', [['InternalIP', '10.0.0.2'], ['ExternalIP', '192.0.2.2']], { zone: 'z2' }),
    node('c', [['ExternalIP', '192.0.2.3']]),
  ]);
  const s = selectTargets(nodes, { name: 'self', zone: 'z1' }, policy, full);
  assert.deepEqual(s.targets.map((t) => [t.name, t.address, t.family, t.kind, t.zone]), [
    ['a', '10.0.0.1', 4, 'node', 'z1'],
    ['a', 'fd00::1', 6, 'node', 'z1'],
    ['b', '10.0.0.2', 4, 'node', 'z2'],
  ]);
  assert.deepEqual(s.skipped, [{ node: 'c', reason: 'no InternalIP address of family ipv4/ipv6' }]);
  // Peers count nodes, not addresses: a dual-stack node is one peer.
  assert.deepEqual(s.mesh, { mode: 'full', peers: 2, probers: 3 });

  const ext = selectTargets(nodes, { name: 'self', zone: 'z1' }, { ...policy, addressTypes: ['ExternalIP', 'InternalIP'], ipFamilies: ['ipv4'] }, full);
  assert.deepEqual(ext.targets.map((t) => [t.name, t.address]), [['a', '192.0.2.1'], ['b', '192.0.2.2'], ['c', '192.0.2.3']]);
  const v6 = selectTargets(nodes, { name: 'self', zone: 'z1' }, { ...policy, ipFamilies: ['ipv6'] }, full);
  assert.deepEqual(v6.targets.map((t) => [t.name, t.address]), [['a', 'fd00::1']]);
  assert.deepEqual(v6.skipped.map((x) => x.node), ['b', 'c']);
});

test('NotReady and cordoned nodes are probed unless the policy says otherwise', () => {
  const nodes = byName([node('nr', [['InternalIP', '10.0.0.1']], { ready: false }), node('co', [['InternalIP', '10.0.0.2']], { unschedulable: true })]);
  const own = { name: 'self', zone: '' };
  assert.deepEqual(selectTargets(nodes, own, policy, full).targets.map((t) => t.name), ['nr', 'co']);
  const notReady = selectTargets(nodes, own, { ...policy, skipNotReady: true }, full);
  assert.deepEqual(notReady.targets.map((t) => t.name), ['co']);
  assert.deepEqual(notReady.skipped, [], 'left out by policy is not a skipped node');
  assert.equal(notReady.mesh.peers, 1);
  assert.deepEqual(selectTargets(nodes, own, { ...policy, skipCordoned: true }, full).targets.map((t) => t.name), ['nr']);
  assert.deepEqual(selectTargets(nodes, own, { ...policy, skipNotReady: true, skipCordoned: true }, full).targets, []);
});

test('the own node takes part in the mesh even when the selector leaves it out', () => {
  const nodes = cluster(4, 1);
  // Full: 4 listed nodes plus self, so 4 probe us.
  assert.deepEqual(selectTargets(nodes, { name: 'self', zone: 'z0' }, policy, full).mesh, { mode: 'full', peers: 4, probers: 4 });
  // Auto counts the own node too: 4 listed + self reaches a threshold of 5.
  assert.equal(selectTargets(nodes, { name: 'self', zone: 'z0' }, policy, { ...full, fullBelow: 5 }).mesh.mode, 'sampled');
  assert.equal(selectTargets(nodes, { name: 'node-0', zone: 'z0' }, policy, { ...full, fullBelow: 5 }).mesh.mode, 'full');
});

test('sampled: only the assigned peers, zone peers then cross-zone ones, and the probers agree with every other agent', () => {
  const nodes = cluster(90, 3);
  const zoneOf = (name: string) => nodes.get(name)!.zone;
  const s = selectTargets(nodes, { name: 'node-0', zone: 'z0' }, policy, sampled);
  const names = s.targets.map((t) => t.name);
  assert.equal(s.mesh.mode, 'sampled');
  assert.equal(new Set(names).size, names.length);
  assert.ok(!names.includes('node-0'));
  assert.deepEqual(['z0', 'z1', 'z2'].map((z) => names.filter((n) => zoneOf(n) === z).length), [5, 2, 2]);
  assert.equal(s.mesh.peers, 9);
  // Every agent computes its own selection from the same list: count who picks node-0.
  let pickedBy = 0;
  for (const n of nodes.values()) {
    if (selectTargets(nodes, { name: n.name, zone: n.zone }, policy, sampled).targets.some((t) => t.name === 'node-0')) pickedBy++;
  }
  assert.equal(s.mesh.probers, pickedBy);
  assert.ok(pickedBy >= 5, 'at least the in-zone ring');

  // The own node outside the list is placed on its zone's ring, as the others see it.
  const without = new Map(nodes);
  without.delete('node-0');
  assert.deepEqual(selectTargets(without, { name: 'node-0', zone: 'z0' }, policy, sampled).targets.map((t) => t.name), names);

  // A peer without an address is skipped, not replaced: the assignment is the same for all.
  const broken = new Map(nodes);
  broken.set(names[0]!, node(names[0]!, [['Hostname', names[0]!]], { zone: zoneOf(names[0]!) }));
  const b = selectTargets(broken, { name: 'node-0', zone: 'z0' }, policy, sampled);
  assert.deepEqual(b.targets.map((t) => t.name), names.slice(1));
  assert.deepEqual(b.skipped.map((x) => x.node), [names[0]]);
  assert.equal(b.mesh.peers, 8);
});

test('without NODE_NAME: every node in a full mesh, none in a sampled one', () => {
  const nodes = cluster(6, 2);
  assert.equal(selectTargets(nodes, { name: '', zone: '' }, policy, full).targets.length, 6);
  assert.deepEqual(selectTargets(nodes, { name: '', zone: '' }, policy, sampled), { targets: [], skipped: [], mesh: { mode: 'sampled', peers: 0, probers: 0 } });
});
