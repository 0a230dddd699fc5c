import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { createLogger } from '../log.ts';
import type { Target } from '../targets/target.ts';
import { fpingArgs, FpingProcess, maxTargetsForPeriod, spawnFping, type ResultSink } from './fping-process.ts';
import { Prober } from './prober.ts';
import { FifoMaker } from './fifo.ts';

const log = createLogger({ level: 'error', write: () => {} });
const settings = { fpingPath: 'fping', periodMs: 1000, timeoutMs: 1000, packetSize: 56 };
const t = (i: number): Target => ({ name: `n${i}`, address: `192.0.2.${i}`, family: 4, kind: 'node' });
const noSink: ResultSink = { recordReply() {}, recordLoss() {}, recordDuplicate() {} };
const noEvents = { restart() {}, parseError() {} };

/** A stand-in process for unit tests of the sharding logic: it records its argv and never exits on its own. */
function fakeSpawner() {
  const spawned: string[][] = [];
  const spawner = (_cmd: string, args: readonly string[], _stdout: 'pipe' | number) => {
    spawned.push([...args]);
    const p = new EventEmitter() as ChildProcess;
    Object.assign(p, { stdout: new PassThrough(), stderr: new PassThrough(), exitCode: null, signalCode: null, pid: 1 });
    (p as { kill: (s?: string) => boolean }).kill = () => {
      Object.assign(p, { signalCode: 'SIGTERM' });
      setImmediate(() => p.emit('exit', null, 'SIGTERM'));
      return true;
    };
    return p;
  };
  return { spawned, spawner };
}

test('-i is set from the target count so the period is kept', () => {
  const iOf = (n: number, periodMs = 1000) => Number(fpingArgs({ ...settings, periodMs }, Array.from({ length: n }, (_, i) => `192.0.2.${i}`))[6]);
  assert.equal(iOf(1), 10, 'fping default for few targets');
  assert.equal(iOf(100), 8);
  assert.equal(iOf(256), 3.125);
  assert.equal(iOf(1000), 1, 'never below 1 ms, the non-root minimum');
  assert.equal(maxTargetsForPeriod(1000), 800);
  assert.equal(maxTargetsForPeriod(100), 80);
});

test('shards are bounded; a change restarts only the shards it touches', async () => {
  const { spawned, spawner } = fakeSpawner();
  const p = new Prober({ settings, maxTargetsPerProcess: 100, sink: noSink, events: noEvents, log, spawner, fifo: false });
  const all = Array.from({ length: 250 }, (_, i) => t(i));
  assert.equal(p.setTargets(all), 3);
  assert.deepEqual(p.layout.map((s) => s.length), [100, 100, 50]);
  // One node joins: it goes to the emptiest shard, and only that one restarts.
  assert.equal(p.setTargets([...all, t(250)]), 1);
  assert.deepEqual(p.layout.map((s) => s.length), [100, 100, 51]);
  // One node leaves from the first shard: only the first shard restarts.
  const without5 = [...all, t(250)].filter((x) => x.address !== '192.0.2.5');
  assert.equal(p.setTargets(without5), 1);
  assert.deepEqual(p.layout.map((s) => s.length), [99, 100, 51]);
  assert.ok(!p.layout.flat().includes('192.0.2.5'));
  // Same set again: nothing restarts.
  assert.equal(p.setTargets(without5), 0);
  // Every spawn got only validated literals after the options.
  for (const argv of spawned) assert.ok(argv.slice(9).every((a) => /^192\.0\.2\.\d+$/.test(a)), argv.join(' '));
  assert.equal(p.setTargets([]), 0);
  assert.equal(p.shardCount, 0);
  await p.stop();
});

test('processes start one per turn of the event loop; one replaced before its turn never starts', async () => {
  const { spawned, spawner } = fakeSpawner();
  const p = new Prober({ settings, maxTargetsPerProcess: 100, sink: noSink, events: noEvents, log, spawner, fifo: false });
  const all = Array.from({ length: 300 }, (_, i) => t(i));
  p.setTargets(all);
  assert.equal(spawned.length, 1, 'the first at once');
  assert.equal(p.processes, 1);
  // Before the others' turn, the last shard loses a target: it is replaced, never started.
  p.setTargets(all.slice(0, 299));
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual(spawned.map((a) => a.filter((x) => x.startsWith('192.0.2.')).length), [100, 100, 99], 'shard 3 started only in its 99-target form');
  assert.equal(p.processes, 3);
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
