import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Mesh, type MeshNode, type MeshSettings } from './mesh.ts';

const sampled: MeshSettings = { mode: 'sampled', fullBelow: 100, zonePeers: 5, crossZonePeers: 2, budget: 30 };
const cluster = (n: number, zones: number): MeshNode[] => Array.from({ length: n }, (_, i) => ({ name: `node-${i}`, zone: `z${i % zones}` }));

test('auto: full below the threshold, sampled from it', () => {
  const auto = { ...sampled, mode: 'auto' as const, fullBelow: 10 };
  assert.equal(new Mesh(cluster(9, 3), auto).mode, 'full');
  assert.equal(new Mesh(cluster(10, 3), auto).mode, 'sampled');
  assert.equal(new Mesh(cluster(9, 3), auto).peersOf('node-0').length, 8);
  assert.equal(new Mesh(cluster(9, 3), auto).probersOf('node-0'), 8);
  assert.equal(new Mesh(cluster(9, 3), auto).probersOf('not-a-node'), 0);
});

test('sampled: zone peers on the own ring, cross-zone peers in every other zone, exact in-zone in-degree', () => {
  const m = new Mesh(cluster(300, 3), sampled);
  const zoneOf = (n: string) => `z${Number(n.split('-')[1]) % 3}`;
  const peers = m.peersOf('node-0');
  assert.equal(peers.length, 5 + 2 * 2);
  assert.equal(new Set(peers).size, peers.length);
  assert.ok(!peers.includes('node-0'));
  assert.equal(peers.filter((p) => zoneOf(p) === 'z0').length, 5);
  assert.equal(peers.filter((p) => zoneOf(p) === 'z1').length, 2);
  // Every node is probed by exactly zonePeers sources of its own zone.
  const inZone = new Map<string, number>();
  for (const n of cluster(300, 3)) for (const p of m.peersOf(n.name)) if (zoneOf(p) === n.zone) inZone.set(p, (inZone.get(p) ?? 0) + 1);
  assert.deepEqual(new Set(inZone.values()), new Set([5]));
  assert.ok(m.probersOf('node-7') >= 5);
});

test('a small zone is probed in full; the budget cuts cross-zone peers first, then zones', () => {
  const m = new Mesh([...cluster(30, 1), { name: 'lone-a', zone: 'zb' }, { name: 'lone-b', zone: 'zb' }], { ...sampled, zonePeers: 50 });
  assert.deepEqual(m.peersOf('lone-a').slice(0, 1), ['lone-b']);
  const tight = new Mesh(cluster(1000, 10), { ...sampled, zonePeers: 5, crossZonePeers: 2, budget: 9 });
  const peers = tight.peersOf('node-3');
  assert.equal(peers.length, 9, '5 in zone, then one in each of 4 of the 9 other zones');
  const zones = new Set(peers.slice(5).map((p) => `z${Number(p.split('-')[1]) % 10}`));
  assert.equal(zones.size, 4);
});

test('a node joining changes the peers of only a few sources', () => {
  const nodes = cluster(1000, 3);
  const before = new Mesh(nodes, sampled);
  const after = new Mesh([...nodes, { name: 'newcomer', zone: 'z1' }], sampled);
  let changed = 0;
  for (const n of nodes) if (before.peersOf(n.name).join() !== after.peersOf(n.name).join()) changed++;
  // In its zone, the zonePeers nodes before it; in the 2 other zones, the crossZonePeers-ish
  // sources whose ring position precedes it: a handful, not a reshuffle.
  assert.ok(changed > 0 && changed <= 5 + 2 * 2 * 3, `${changed} sources changed`);
});
