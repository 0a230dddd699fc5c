/**
 * A bounded, seeded subset of the sensitivity table (node sim/sensitivity.ts, docs/scale.md):
 * the targets of issue 11 at 60 nodes (full mesh) and 1,000 nodes (the documented sampled
 * setting), in 3 zones, with few trials. It fails when the logic of either rule file (as
 * sim/localise.ts mirrors it) stops localising a light fault or starts blaming a healthy cluster.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SETTINGS, cluster, rate, trial, type Fault } from './sensitivity.ts';

const TRIALS = 20;
const HEALTHY = 40;

for (const [setting, size] of [[SETTINGS[0]!, 60], [SETTINGS[1]!, 1000]] as const) {
  test(`${setting.label}, ${size} nodes, 3 zones: light faults are localised, a healthy cluster is not blamed`, () => {
    const c = cluster(setting, size, 3);
    const targets: [Fault, number][] = [
      [{ kind: 'drizzle', perPacket: 0.005 }, 0.95],
      [{ kind: 'flap', secondsPer5m: 10 }, 0.95],
      [{ kind: 'source', replyLoss: 0.01 }, 0.95],
      [{ kind: 'uplink', perPacket: 0.02 }, 0.95],
    ];
    // Links are judged both ways pooled: a full mesh has both, a sampled mesh mostly one (docs/alerts.md).
    if (setting.mesh.mode === 'full') targets.push([{ kind: 'link', perPacket: 0.01 }, 0.9]);
    for (const [fault, want] of targets) {
      const got = rate(c, setting, fault, TRIALS, 11);
      assert.ok(got >= want, `${JSON.stringify(fault)}: localised in ${got * 100} % of ${TRIALS} trials`);
    }
    for (let t = 0; t < HEALTHY; t++) {
      const r = trial(c, setting, { kind: 'healthy' }, 5_000_011 + t * 7919);
      assert.deepEqual(r.verdicts, [], `healthy trial ${t}`);
    }
  });
}

test('a fault well under the detection floor is not localised (the trials can fail)', () => {
  const c = cluster(SETTINGS[0]!, 60, 3);
  assert.ok(rate(c, SETTINGS[0]!, { kind: 'drizzle', perPacket: 0.0003 }, 10, 3) < 0.5);
});
