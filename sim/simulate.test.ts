import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate, VARIANTS } from './simulate.ts';
import { localise, type PairLoss } from './localise.ts';

test('sampled meshes localise every injected fault on its culprit alone', async () => {
  for (const v of VARIANTS.slice(1)) {
    for (const zones of [3, 5]) {
      const r = await simulate(v, 300, zones, 20);
      assert.deepEqual(r.faults, { 'dead node': 'yes', 'lossy link': 'yes', 'zone uplink': 'yes', 'bad source': 'yes' }, `${v.label}, ${zones} zones`);
      assert.ok(r.inDegree.min >= Math.min(v.mesh.zonePeers, 300 / zones - 1), `${v.label}: in-degree ${r.inDegree.min}`);
      assert.ok(r.joinChanged < 300 / 10, `${v.label}: ${r.joinChanged} agents changed for one join`);
    }
  }
});

test('the series model counts what an agent exports', async () => {
  const full = await simulate(VARIANTS[0]!, 10, 2, 20);
  // 9 peers × (3 counters + 32 histogram series + 3 outage series) + 2 targets gauges + 20 self.
  assert.equal(full.seriesPerAgent, 9 * 38 + 2 + 20);
  assert.equal(full.probesPerSecond, 90);
});

test('localisation: a healthy cluster blames nothing; a dead node is not also a lossy source', () => {
  const pairs: PairLoss[] = [];
  const nodes = ['a', 'b', 'c', 'd', 'e'];
  for (const s of nodes) for (const d of nodes) if (s !== d) pairs.push({ source: s, sourceZone: 'z', destination: d, destinationZone: 'z', loss: 0, outageSeconds: 0 });
  assert.deepEqual(localise(pairs), []);
  const dead = pairs.filter((p) => p.source !== 'c').map((p) => (p.destination === 'c' ? { ...p, loss: 1, outageSeconds: 300 } : p));
  assert.deepEqual(localise(dead), [{ kind: 'node_unreachable', subject: 'c' }]);
});
