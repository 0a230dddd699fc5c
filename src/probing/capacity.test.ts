import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../log.ts';
import type { Target } from '../targets/target.ts';
import { AGENT_MAX_PROCESSES, agentTargetCapacity, TargetCap } from './capacity.ts';
import { maxTargetsForPeriod } from './fping-process.ts';
import { fpingMinIntervalMs } from './fping-check.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const t = (i: number): Target => ({ name: `n${i}`, address: `192.0.2.${i}`, family: 4, kind: 'node' });

test('the cap scales with the period and with the gap floor', () => {
  assert.equal(agentTargetCapacity(1000), AGENT_MAX_PROCESSES * maxTargetsForPeriod(1000));
  assert.equal(agentTargetCapacity(2000), 2 * agentTargetCapacity(1000));
  assert.ok(agentTargetCapacity(1000, 1) < agentTargetCapacity(1000));
});

test('beyond the cap the first targets are kept, with one line saying why, once per excess', () => {
  const lines: string[] = [];
  const cap = new TargetCap(3, 1000, createLogger({ level: 'info', write: (l) => lines.push(l) }));
  const five = Array.from({ length: 5 }, (_, i) => t(i));
  assert.deepEqual(cap.apply(five).map((x) => x.address), ['192.0.2.0', '192.0.2.1', '192.0.2.2']);
  assert.equal(cap.apply(five).length, 3);
  assert.equal(lines.length, 1, lines.join('\n'));
  const msg = JSON.parse(lines[0]!) as { level: string; msg: string };
  assert.equal(msg.level, 'warn');
  assert.match(msg.msg, /5 targets exceed what one agent probes at a 1000 ms period \(3\)/);
  assert.equal(cap.apply(five.slice(0, 2)).length, 2, 'under the cap: all of them');
  cap.apply(five);
  assert.equal(lines.length, 2, 'a new excess is said again');
});

test("Debian's fping accepts a sub-millisecond gap from a non-root uid (securityMode nonRoot)", { skip: process.getuid?.() !== 0 && 'needs root to switch to uid 65532' }, async () => {
  // The agent's own question, asked as uid 65532 (the chart's nonRoot user): as root it is
  // not asked at all. Then fping itself, as that uid, probing loopback with a 50 µs gap.
  const asUser = (cmd: string, args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile('setpriv', ['--reuid', '65532', '--regid', '65532', '--clear-groups', cmd, ...args], { timeout: 20_000, cwd: REPO }, (err, out, errOut) =>
        err ? reject(new Error(`${err.message}: ${errOut}`)) : resolve(out)),
    );
  const asked = await asUser(process.execPath, ['--input-type=module', '-e', "const m = await import('./src/probing/fping-check.ts'); console.log(await m.fpingMinIntervalMs('fping'))"]);
  assert.equal(asked.trim(), '0');
  const probed = await asUser('fping', ['-c', '3', '-p', '20', '-i', '0.05', '127.0.0.1', '127.0.0.2']);
  assert.equal(probed.split('\n').filter((l) => / : \[\d+\], \d+ bytes/.test(l)).length, 6, probed);
});
