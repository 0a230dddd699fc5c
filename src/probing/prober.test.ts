import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { createLogger } from '../log.ts';
import type { Target } from '../targets/target.ts';
import { drainIntervalMs, fpingArgs, FpingProcess, maxTargetsForPeriod, PROCESS_MAX_PROBES_PER_SECOND, SEND_GAP_FILL, spawnFping, type ResultSink } from './fping-process.ts';
import { AGENT_MAX_PROCESSES, agentTargetCapacity } from './capacity.ts';
import { Prober } from './prober.ts';
import { FifoMaker } from './fifo.ts';

const log = createLogger({ level: 'error', write: () => {} });
const settings = { fpingPath: 'fping', periodMs: 1000, timeoutMs: 1000, packetSize: 56 };
const t = (i: number): Target => ({ name: `n${i}`, address: `192.0.2.${i}`, family: 4, kind: 'node' });
const noSink: ResultSink = { recordReply() {}, recordLoss() {}, recordDuplicate() {} };
const noEvents = { restart() {}, parseError() {} };

/** A stand-in process for unit tests of the layout and handover logic: it records its argv and never exits on its own. */
function fakeSpawner() {
  const spawned: string[][] = [];
  const procs: ChildProcess[] = [];
  const spawner = (_cmd: string, args: readonly string[], _stdout: 'pipe' | number) => {
    spawned.push([...args]);
    const p = new EventEmitter() as ChildProcess;
    Object.assign(p, { stdout: new PassThrough(), stderr: new PassThrough(), exitCode: null, signalCode: null, pid: 1 });
    (p as { kill: (s?: string) => boolean }).kill = () => {
      Object.assign(p, { signalCode: 'SIGTERM' });
      setImmediate(() => p.emit('exit', null, 'SIGTERM'));
      return true;
    };
    procs.push(p);
    return p;
  };
  return { spawned, procs, spawner };
}

test('-i is set from the target count so the period is kept', () => {
  const iOf = (n: number, periodMs = 1000, minIntervalMs?: number) =>
    Number(fpingArgs({ ...settings, periodMs, minIntervalMs }, Array.from({ length: n }, (_, i) => `192.0.2.${i}`))[6]);
  assert.equal(iOf(1), 10, 'fping default for few targets');
  assert.equal(iOf(100), SEND_GAP_FILL * 10);
  assert.equal(iOf(5000), SEND_GAP_FILL * 0.2);
  assert.equal(iOf(3000), Math.floor((SEND_GAP_FILL * 1e6) / 3000) / 1000, 'whole microseconds');
  assert.equal(iOf(5000, 1000, 1), 1, 'never below the floor of a safe-limits fping for a non-root uid');
  assert.equal(maxTargetsForPeriod(1000), PROCESS_MAX_PROBES_PER_SECOND, 'bounded by fping\'s sequence ids');
  assert.equal(maxTargetsForPeriod(100), PROCESS_MAX_PROBES_PER_SECOND / 10);
  assert.equal(maxTargetsForPeriod(1000, 1), SEND_GAP_FILL * 1000, 'bounded by the gap floor');
  assert.equal(agentTargetCapacity(1000), AGENT_MAX_PROCESSES * PROCESS_MAX_PROBES_PER_SECOND);
});

test('a busy process has its FIFO drained more often, so that fping never waits on a full pipe', () => {
  assert.equal(drainIntervalMs(100, 1000), 100);
  assert.equal(drainIntervalMs(5000, 1000), 20);
  assert.equal(drainIntervalMs(5000, 100), 10);
});

/** A fake process's stdout, to make it print a result. */
function say(p: ChildProcess, address: string, seq = 0) {
  (p.stdout as PassThrough).write(`${address} : [${seq}], 64 bytes, 0.05 ms (0.05 avg, 0% loss)\n`);
}

const tick = () => new Promise((r) => setImmediate(r));
async function ticks(n = 5) {
  for (let i = 0; i < n; i++) await tick();
}

/** A sink that records which process (epoch) each counted result came from. */
function recordingSink() {
  const got: { address: string; epoch: number }[] = [];
  const sink: ResultSink = { recordReply: (address, _seq, _rtt, epoch) => got.push({ address, epoch }), recordLoss() {}, recordDuplicate() {} };
  return { got, sink };
}

test('one process for all targets while they fit; a ceiling splits them evenly', async () => {
  const { spawned, spawner } = fakeSpawner();
  const p = new Prober({ settings, maxTargetsPerProcess: 0, sink: noSink, events: noEvents, log, spawner, fifo: false });
  assert.equal(p.capacity, PROCESS_MAX_PROBES_PER_SECOND);
  assert.equal(p.setTargets(Array.from({ length: 5000 }, (_, i) => t(i))), 1);
  assert.deepEqual(p.layout.main.map((s) => s.length), [5000]);
  await p.stop();
  const q = new Prober({ settings, maxTargetsPerProcess: 100, sink: noSink, events: noEvents, log, spawner, fifo: false });
  q.setTargets(Array.from({ length: 250 }, (_, i) => t(i)));
  assert.deepEqual(q.layout.main.map((s) => s.length), [84, 84, 82]);
  await ticks();
  // Every spawn got only validated literals after the options.
  for (const argv of spawned) assert.ok(argv.slice(9).every((a) => /^192\.0\.2\.\d+$/.test(a)), argv.join(' ').slice(0, 80));
  await q.stop();
});

test('a join goes to a recent-additions process, handed over make-before-break; the main process is never touched', async () => {
  const { spawned, procs, spawner } = fakeSpawner();
  const { got, sink } = recordingSink();
  const p = new Prober({ settings, maxTargetsPerProcess: 0, sink, events: noEvents, log, spawner, fifo: false });
  const all = Array.from({ length: 100 }, (_, i) => t(i));
  p.setTargets(all);
  const main = procs[0]!;
  say(main, '192.0.2.1');
  await tick();
  assert.equal(got.length, 1, 'the first process counts at once');

  // Node 100 joins: a recent process starts, not counting yet; main goes on.
  assert.equal(p.setTargets([...all, t(100)]), 1);
  await ticks();
  assert.deepEqual(p.layout.handover, [['192.0.2.100']]);
  const r1 = procs[1]!;
  assert.equal(spawned.length, 2);
  // Node 101 joins before r1 said anything: r1 is dropped, r2 gets both.
  p.setTargets([...all, t(100), t(101)]);
  await ticks();
  assert.equal(r1.signalCode, 'SIGTERM', 'an unswitched handover is abandoned');
  const r2 = procs[2]!;
  assert.deepEqual(p.layout.handover, [['192.0.2.100', '192.0.2.101']]);
  say(r1, '192.0.2.100'); // a stopped process: dropped
  await tick();
  assert.equal(got.length, 1);
  // r2's first result switches counting to it, and counts.
  say(r2, '192.0.2.101');
  await tick();
  assert.equal(got.length, 2);
  assert.deepEqual(p.layout, { main: [all.map((x) => x.address)], recent: [['192.0.2.100', '192.0.2.101']], handover: [] });
  assert.equal(main.signalCode, null, 'main never restarted');
  say(main, '192.0.2.2');
  await tick();
  assert.equal(got.length, 3, 'main still counts');

  // A third join: the recent process is replaced (make-before-break), the main one still untouched.
  p.setTargets([...all, t(100), t(101), t(102)]);
  await ticks();
  const r3 = procs[3]!;
  say(r2, '192.0.2.100'); // r2 still counts until r3 is ready
  say(r3, '192.0.2.100'); // r3's first result: switch
  await tick();
  say(r2, '192.0.2.101'); // stopped after the switch: dropped
  await tick();
  assert.deepEqual(got.slice(3).map((g) => g.address), ['192.0.2.100', '192.0.2.100']);
  assert.notEqual(got[3]!.epoch, got[4]!.epoch, 'two different processes, one after the other');
  assert.equal(r2.signalCode, 'SIGTERM');
  assert.equal(main.signalCode, null);
  assert.equal(spawned.length, 4);
  await p.stop();
});

test('departures restart nothing; a merge hands every target to one new process at a quiet moment', async () => {
  const { spawned, procs, spawner } = fakeSpawner();
  const { got, sink } = recordingSink();
  const p = new Prober({ settings, maxTargetsPerProcess: 0, sink, events: noEvents, log, spawner, fifo: false, mergeQuietMs: 200, mergeMaxDelayMs: 5000 });
  const all = Array.from({ length: 20 }, (_, i) => t(i));
  p.setTargets(all);
  // One leaves: nothing restarts, and one departure alone is not worth a merge at the next quiet moment.
  assert.equal(p.setTargets(all.slice(1)), 0);
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(spawned.length, 1);
  // One joins: a recent process, then after 200 ms of quiet a merge into one process of 20.
  p.setTargets([...all.slice(1), t(50)]);
  await ticks();
  say(procs[1]!, '192.0.2.50');
  await tick();
  assert.equal(p.layout.recent.length, 1);
  for (let i = 0; i < 100 && p.layout.handover.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  const merged = procs[2]!;
  assert.deepEqual(p.layout.handover, [[...all.slice(1).map((x) => x.address), '192.0.2.50']], 'the departed one is left out');
  const before = got.length;
  say(procs[0]!, '192.0.2.3'); // the old main still counts during the handover
  say(merged, '192.0.2.3');
  await tick();
  assert.equal(got.length, before + 2);
  assert.deepEqual(p.layout.main.map((s) => s.length), [20]);
  assert.deepEqual(p.layout.recent, []);
  assert.equal(procs[0]!.signalCode, 'SIGTERM');
  assert.equal(procs[1]!.signalCode, 'SIGTERM');
  assert.equal(p.processes, 1);
  await p.stop();
});

test('recent additions that outgrow one process are merged at once', async () => {
  const { spawner } = fakeSpawner();
  const p = new Prober({ settings, maxTargetsPerProcess: 10, sink: noSink, events: noEvents, log, spawner, fifo: false });
  p.setTargets(Array.from({ length: 10 }, (_, i) => t(i)));
  p.setTargets(Array.from({ length: 15 }, (_, i) => t(i)));
  assert.deepEqual(p.layout.handover.map((s) => s.length), [5], 'five joins: a recent process');
  p.setTargets(Array.from({ length: 25 }, (_, i) => t(i)));
  assert.deepEqual(p.layout.handover.map((s) => s.length), [9, 9, 7], 'fifteen: one merge over every target');
  await p.stop();
});

test('a handover whose new process says nothing switches at the deadline', async () => {
  const { procs, spawner } = fakeSpawner();
  const p = new Prober({ settings: { ...settings, timeoutMs: 10 }, maxTargetsPerProcess: 0, sink: noSink, events: noEvents, log, spawner, fifo: false });
  p.setTargets([t(1)]);
  p.setTargets([t(1), t(2)]);
  await new Promise((r) => setTimeout(r, 2300));
  assert.deepEqual(p.layout.recent, [['192.0.2.2']]);
  assert.equal(procs[1]!.signalCode, null);
  await p.stop();
});

test('processes start one per turn of the event loop; an empty set stops them all', async () => {
  const { spawned, spawner } = fakeSpawner();
  const p = new Prober({ settings, maxTargetsPerProcess: 100, sink: noSink, events: noEvents, log, spawner, fifo: false });
  const all = Array.from({ length: 300 }, (_, i) => t(i));
  p.setTargets(all);
  assert.equal(spawned.length, 1, 'the first at once');
  assert.equal(p.processes, 1);
  // Before the others' turn, a node joins: its recent process waits its turn behind them.
  p.setTargets([...all, t(300)]);
  await ticks();
  assert.deepEqual(spawned.map((a) => a.filter((x) => x.startsWith('192.0.2.')).length), [100, 100, 100, 1]);
  assert.equal(p.processes, 4);
  // Everything leaves: all stop.
  p.setTargets([]);
  await ticks();
  assert.equal(p.processes, 0);
  await p.stop();
});

for (const mode of ['fifo', 'pipe'] as const) test(`real fping through a ${mode}: results reach the sink and a stop is clean`, async () => {
  const replies: string[] = [];
  const sink: ResultSink = { recordReply: (a) => replies.push(a), recordLoss() {}, recordDuplicate() {} };
  const restarts: string[] = [];
  const proc = new FpingProcess(['127.0.0.1', '::1'], { ...settings, periodMs: 50, timeoutMs: 50 }, sink, { restart: (r) => restarts.push(r), parseError() {} }, log, spawnFping, mode === 'fifo' ? new FifoMaker() : undefined);
  proc.start();
  for (let i = 0; i < 100 && replies.length < 10; i++) await new Promise((r) => setTimeout(r, 20));
  await proc.stop();
  assert.ok(replies.includes('127.0.0.1') && replies.includes('::1'), replies.join(','));
  assert.deepEqual(restarts, [], 'a requested stop is not a restart');
  assert.equal(proc.running, false);
});

test('real process that dies is restarted with backoff and counted', async () => {
  const restarts: string[] = [];
  // /bin/false stands in for an fping that exits at once: the supervision is what is under test.
  const proc = new FpingProcess(['127.0.0.1'], { ...settings, fpingPath: '/bin/false' }, noSink, { restart: (r) => restarts.push(r), parseError() {} }, log, spawnFping);
  proc.start();
  for (let i = 0; i < 100 && restarts.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  await proc.stop();
  assert.ok(restarts.length >= 2, `restarted ${restarts.length} times`);
  assert.equal(restarts[0], 'exit code 1');
  const n = restarts.length;
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(restarts.length, n, 'no restart after stop');
});

test('a missing binary is a counted restart, not a crash', async () => {
  const restarts: string[] = [];
  const proc = new FpingProcess(['127.0.0.1'], { ...settings, fpingPath: '/nonexistent/fping' }, noSink, { restart: (r) => restarts.push(r), parseError() {} }, log, spawnFping);
  proc.start();
  for (let i = 0; i < 50 && restarts.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
  await proc.stop();
  assert.equal(restarts[0], 'spawn error ENOENT');
});


test('an exec failure thrown by spawn itself (EPERM) is a counted restart, not a crash', async () => {
  const restarts: string[] = [];
  const throwing = () => {
    throw Object.assign(new Error('spawn EPERM'), { code: 'EPERM' });
  };
  const proc = new FpingProcess(['127.0.0.1'], settings, noSink, { restart: (r) => restarts.push(r), parseError() {} }, log, throwing, new FifoMaker());
  proc.start();
  for (let i = 0; i < 100 && restarts.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  await proc.stop();
  assert.deepEqual(restarts.slice(0, 2), ['spawn error EPERM', 'spawn error EPERM']);
});
