/**
 * Where one fping process stops keeping up: N loopback targets at one probe per target per
 * period, with the send gap `-i` set to `fill` × period / N (the agent uses FILL), as root
 * and as an unprivileged uid (65532, what the chart's securityMode nonRoot runs; the
 * Debian binary carries cap_net_raw=ep, so it still opens a raw socket).
 *
 *   node bench/fping-capacity.ts [--sizes 1000,5000,10000,20000] [--fills 0.8,0.95] [--seconds 10]
 *
 * Prints achieved verdicts/s against the intended rate and fping's CPU per probe. Only
 * 127.0.0.0/8 is probed.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,5000,10000,20000' },
    fills: { type: 'string', default: '0.8,0.95' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    uids: { type: 'string', default: '0,65532' },
    period: { type: 'string', default: '1000' },
  },
});
const PERIOD_MS = Number(values.period);
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function addresses(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `127.${2 + Math.floor(i / 62500)}.${Math.floor((i % 62500) / 250)}.${(i % 250) + 1}`);
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function one(n: number, fill: number, uid: number) {
  const gap = Math.floor(((fill * PERIOD_MS) / n) * 1000) / 1000;
  const fping = ['-l', '-p', String(PERIOD_MS), '-t', String(PERIOD_MS), '-i', String(gap), '-b', '56', ...addresses(n)];
  const [cmd, args] = uid === 0 ? ['fping', fping] : ['setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', 'fping', ...fping]];
  const p = spawn(cmd, args as string[], { stdio: ['ignore', 'pipe', 'pipe'] });
  let lines = 0;
  let stderr = '';
  p.stdout.on('data', (b: Buffer) => {
    for (let j = b.indexOf(10); j >= 0; j = b.indexOf(10, j + 1)) lines++;
  });
  p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await sleep(WARMUP * 1000);
  if (p.exitCode !== null) return { n, fill, uid, gap, error: stderr.trim().split('\n')[0] };
  // setpriv execs fping in place: the pid is fping's either way.
  const c0 = cpuSeconds(p.pid!);
  const l0 = lines;
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  if (p.exitCode !== null) return { n, fill, uid, gap, error: `exited ${p.exitCode}: ${stderr.trim().split('\n')[0]}` };
  const c1 = cpuSeconds(p.pid!);
  const l1 = lines;
  const s = (performance.now() - t0) / 1000;
  p.kill('SIGTERM');
  await new Promise((r) => p.on('exit', r));
  const rate = (l1 - l0) / s;
  return { n, fill, uid, gap, achieved: rate / (n * (1000 / PERIOD_MS)), cpuUsPerProbe: ((c1 - c0) / (l1 - l0)) * 1e6, cpuShare: (c1 - c0) / s };
}

for (const uid of values.uids.split(',').map(Number)) {
  for (const n of values.sizes.split(',').map(Number)) {
    for (const fill of values.fills.split(',').map(Number)) {
      const r = await one(n, fill, uid);
      console.log(JSON.stringify(r));
    }
  }
}
