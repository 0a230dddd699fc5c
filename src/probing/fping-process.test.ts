import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { createLogger } from '../log.ts';
import { FpingProcess, icmpDeniedMessage, type ResultSink } from './fping-process.ts';

/**
 * What Debian 12's fping 5.1 writes to stderr, and exits 4 with, when it gets no ICMP socket:
 * recorded from the built image (its own setpriv and fping, chroot into its rootfs) as uid
 * 65532 with NET_RAW in the bounding set and no_new_privs, which makes fping's file
 * capability inert, in a new network namespace (ping_group_range "1 0"), invoked as the
 * agent invokes it (--fping-path defaults to "fping").
 */
const NO_SOCKET = readFileSync(new URL('./testdata/fping-5.1-no-socket.stderr', import.meta.url), 'utf8').split('\n').filter(Boolean);

const settings = { fpingPath: '/usr/bin/fping', periodMs: 1000, timeoutMs: 1000, packetSize: 56 };
const noSink: ResultSink = { recordReply() {}, recordLoss() {}, recordDuplicate() {} };

test('fping\'s "can\'t create socket" is named as a missing CAP_NET_RAW, with the fix, in one line', () => {
  const m = icmpDeniedMessage(undefined, NO_SOCKET, 65532);
  assert.ok(m);
  assert.doesNotMatch(m, /\n/);
  assert.match(m, /^fping cannot open an ICMP socket \("can't create socket \(must run as root\?\)"\): it holds no CAP_NET_RAW, because the container lacks it or no_new_privs \(allowPrivilegeEscalation: false\) made fping's file capability inert\. Fix: /);
  assert.match(m, /allowPrivilegeEscalation: true \(chart securityMode nonRoot\)/);
  assert.match(m, /uid 0 holding NET_RAW \(securityMode root\)/);
  assert.match(m, /ping_group_range covering gid 65532$/);
});

test('an exec refused with EPERM is named as the file capability the container cannot grant', () => {
  const err = Object.assign(new Error('spawn EPERM'), { code: 'EPERM' });
  const m = icmpDeniedMessage(err, [], 0);
  assert.match(m ?? '', /^fping cannot open an ICMP socket: the kernel refused to exec it \(EPERM\), as its file capability asks for CAP_NET_RAW/);
  assert.match(m ?? '', /gid 0$/);
});

test('other failures are not mistaken for a denied socket', () => {
  assert.equal(icmpDeniedMessage(undefined, [], 65532), undefined);
  assert.equal(icmpDeniedMessage(Object.assign(new Error('spawn ENOENT'), { code: 'ENOENT' }), [], 65532), undefined);
  // ICMP errors that fping prints while it runs, and a bad argument.
  assert.equal(icmpDeniedMessage(undefined, ['ICMP Host Unreachable from 10.0.0.1 for ICMP Echo sent to 10.0.0.2', 'fping: can\'t parse duration'], 65532), undefined);
});

/** A process that writes the recorded stderr and exits 4, as fping does without a socket. */
function deniedSpawner() {
  let spawned = 0;
  const spawner = () => {
    spawned++;
    const p = new EventEmitter() as ChildProcess;
    const stderr = new PassThrough();
    Object.assign(p, { stdout: new PassThrough(), stderr, exitCode: null, signalCode: null, pid: 1, kill: () => true });
    setImmediate(() => {
      stderr.write(NO_SOCKET.join('\n') + '\n');
      setImmediate(() => {
        Object.assign(p, { exitCode: 4 });
        p.emit('exit', 4, null);
      });
    });
    return p;
  };
  return { spawner, count: () => spawned };
}

test('a denied socket is reported to icmpDenied on every retry, and the restart line drops to debug', async () => {
  const lines: { level: string; msg: string }[] = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(JSON.parse(l)) });
  const denied: string[] = [];
  const restarts: string[] = [];
  const { spawner, count } = deniedSpawner();
  const proc = new FpingProcess(['127.0.0.1'], settings, noSink, { restart: (r) => restarts.push(r), parseError() {}, icmpDenied: (m) => denied.push(m) }, log, spawner);
  proc.start();
  for (let i = 0; i < 100 && denied.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  await proc.stop();
  assert.ok(count() >= 2, 'retried with backoff');
  assert.equal(denied.length, restarts.length);
  assert.deepEqual(restarts.slice(0, 2), ['exit code 4', 'exit code 4']);
  assert.ok(denied.every((m) => m === icmpDeniedMessage(undefined, NO_SOCKET, process.getgid!())));
  assert.deepEqual(lines.filter((l) => l.level !== 'debug'), [], 'the receiver logs the cause; the process itself says nothing above debug');
});

test('without an icmpDenied receiver, the restart stays a warning with fping\'s stderr', async () => {
  const lines: { level: string; msg: string; stderr?: string }[] = [];
  const log = createLogger({ level: 'warn', write: (l) => lines.push(JSON.parse(l)) });
  const { spawner } = deniedSpawner();
  const proc = new FpingProcess(['127.0.0.1'], settings, noSink, { restart() {}, parseError() {} }, log, spawner);
  proc.start();
  for (let i = 0; i < 100 && lines.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
  await proc.stop();
  assert.equal(lines[0]?.msg, 'fping exited; restarting');
  assert.match(lines[0]?.stderr ?? '', /can't create socket/);
});

test('the first result of a run, and only the first, tells that fping is probing again', async () => {
  let probing = 0;
  const stdout = new PassThrough();
  const spawner = () => {
    const p = new EventEmitter() as ChildProcess;
    Object.assign(p, { stdout, stderr: new PassThrough(), exitCode: null, signalCode: null, pid: 1 });
    (p as { kill: () => boolean }).kill = () => {
      Object.assign(p, { signalCode: 'SIGTERM' });
      setImmediate(() => p.emit('exit', null, 'SIGTERM'));
      return true;
    };
    return p;
  };
  const log = createLogger({ level: 'error', write: () => {} });
  const proc = new FpingProcess(['127.0.0.1'], settings, noSink, { restart() {}, parseError() {}, probing: () => probing++ }, log, spawner);
  proc.start();
  // Loop-mode lines as fping 5.1 prints them (docs: platform facts).
  stdout.write('[1795637400.26061] 127.0.0.1 : [0], timed out (NaN avg, 100% loss)\n');
  stdout.write('[1795637400.26671] 127.0.0.1 : [1], 64 bytes, 0.07 ms (0.07 avg, 50% loss)\n');
  await new Promise((r) => setImmediate(r));
  await proc.stop();
  assert.equal(probing, 1);
});
