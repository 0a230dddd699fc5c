import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Node } from '@kubernetes/client-node';
import { compactNode, targetsFromNodes, type CompactNode, type NodePolicy } from './node.ts';
import { TargetSet } from '../targets/target-set.ts';

const policy: NodePolicy = { selfName: 'self', addressTypes: ['InternalIP'], ipFamilies: ['ipv4', 'ipv6'], skipNotReady: false, skipCordoned: false };

function node(name: string, addresses: [string, string][], extra: Partial<CompactNode> = {}): CompactNode {
  return { name, uid: `uid-${name}`, zone: '', region: '', ready: true, unschedulable: false, addresses: addresses.map(([type, address]) => ({ type, address })), ...extra };
}

test('compactNode keeps what probing needs and nothing else', () => {
  const full: V1Node = {
    metadata: {
      name: 'n1', uid: 'u1', resourceVersion: '7',
      labels: { 'topology.kubernetes.io/zone': 'z1', 'topology.kubernetes.io/region': 'r1', other: 'x' },
      annotations: { big: 'x'.repeat(10_000) },
    },
    spec: { unschedulable: true },
    status: {
      addresses: [{ type: 'InternalIP', address: '10.0.0.1' }, { type: 'Hostname', address: 'n1' }],
      conditions: [{ type: 'Ready', status: 'False' }, { type: 'MemoryPressure', status: 'False' }],
      images: [{ names: ['img'], sizeBytes: 1 }],
    },
  } as V1Node;
  assert.deepEqual(compactNode(full), {
    name: 'n1', uid: 'u1', zone: 'z1', region: 'r1', ready: false, unschedulable: true,
    addresses: [{ type: 'InternalIP', address: '10.0.0.1' }, { type: 'Hostname', address: 'n1' }],
  });
  assert.equal(compactNode({ metadata: {} } as V1Node), undefined);
});

test('one target per family, preferred address type first; self excluded', () => {
  const { targets, skipped } = targetsFromNodes([
    node('self', [['InternalIP', '10.0.0.9']]),
    node('a', [['ExternalIP', '203.0.113.1'], ['InternalIP', '10.0.0.1'], ['InternalIP', 'fd00::1']], { zone: 'z1' }),
    node('b', [['InternalIP', '10.0.0.2']]),
  ], policy);
  assert.deepEqual(targets.map((t) => [t.name, t.address, t.family, t.kind, t.zone]), [
    ['a', '10.0.0.1', 4, 'node', 'z1'],
    ['a', 'fd00::1', 6, 'node', 'z1'],
    ['b', '10.0.0.2', 4, 'node', ''],
  ]);
  assert.deepEqual(skipped, []);
  const ext = targetsFromNodes([node('a', [['ExternalIP', '203.0.113.1'], ['InternalIP', '10.0.0.1']]), node('c', [['ExternalIP', '203.0.113.3']])], { ...policy, addressTypes: ['InternalIP', 'ExternalIP'], ipFamilies: ['ipv4'] });
  assert.deepEqual(ext.targets.map((t) => t.address), ['10.0.0.1', '203.0.113.3']);
});

test('nodes without a usable address are skipped with the reason', () => {
  const { targets, skipped } = targetsFromNodes([
    node('h', [['Hostname', 'h']]),
    node('bad', [['InternalIP', 'not-an-ip']]),
    node('v6only', [['InternalIP', 'fd00::6']]),
  ], { ...policy, ipFamilies: ['ipv4'] });
  assert.deepEqual(targets, []);
  assert.deepEqual(skipped, [
    { node: 'h', reason: 'no InternalIP address of family ipv4' },
    { node: 'bad', reason: 'invalid addresses InternalIP "not-an-ip"' },
    { node: 'v6only', reason: 'no InternalIP address of family ipv4' },
  ]);
});

test('NotReady and cordoned nodes are probed unless the policy says otherwise', () => {
  const nodes = [node('nr', [['InternalIP', '10.0.0.1']], { ready: false }), node('co', [['InternalIP', '10.0.0.2']], { unschedulable: true })];
  assert.equal(targetsFromNodes(nodes, policy).targets.length, 2);
  assert.deepEqual(targetsFromNodes(nodes, { ...policy, skipNotReady: true }).targets.map((t) => t.name), ['co']);
  assert.deepEqual(targetsFromNodes(nodes, { ...policy, skipCordoned: true }).targets.map((t) => t.name), ['nr']);
});

test('target set: merged by address with the first source winning, bursts applied once', async () => {
  const applied: string[][] = [];
  const set = new TargetSet(['nodes', 'file'], (t) => applied.push(t.map((x) => `${x.name}@${x.address}`)), 50);
  set.set('file', [{ name: 'resolver', address: '192.0.2.53', family: 4, kind: 'external' }, { name: 'dup', address: '10.0.0.1', family: 4, kind: 'external' }], true);
  for (let i = 0; i < 5; i++) set.set('nodes', [{ name: `a${i}`, address: '10.0.0.1', family: 4, kind: 'node' }]);
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(applied, [['resolver@192.0.2.53', 'dup@10.0.0.1'], ['a4@10.0.0.1', 'resolver@192.0.2.53']]);
  set.stop();
});
