import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, readdirSync } from 'node:fs';
import { FifoMaker, LineSplitter } from './fifo.ts';

test('line splitter carries partial lines across chunks', () => {
  const lines: string[] = [];
  const s = new LineSplitter();
  for (const chunk of ['a', 'b\nc', 'd\n', '\n', 'e\nf\ng', '\n']) s.push(chunk, (l) => lines.push(l));
  assert.deepEqual(lines, ['ab', 'cd', '', 'e', 'f', 'g']);
});

test('a child writes into the FIFO; drains return what is there, then end of file', async () => {
  const maker = new FifoMaker(undefined, 3);
  maker.prepare(2);
  assert.equal(readdirSync(maker.dir).length, 3, 'one batch');
  const made = maker.take();
  assert.ok(made);
  assert.equal(readdirSync(maker.dir).length, 2, 'unlinked once open');
  const child = spawn('sh', ['-c', 'for i in 1 2 3; do echo line$i; done'], { stdio: ['ignore', made.writeFd, 'ignore'] });
  closeSync(made.writeFd);
  await new Promise((r) => child.on('exit', r));
  const buf = Buffer.alloc(4); // smaller than the data: several reads per drain
  let text = '';
  assert.equal(made.fifo.drain(buf, (t) => (text += t)), false, 'writer gone: end of file');
  assert.equal(text, 'line1\nline2\nline3\n');
  made.fifo.close();
});

test('an empty FIFO with a live writer drains nothing and does not block', () => {
  const made = new FifoMaker().take()!;
  let called = false;
  assert.equal(made.fifo.drain(Buffer.alloc(16), () => (called = true)), true);
  assert.equal(called, false);
  closeSync(made.writeFd);
  made.fifo.close();
});

test('a read-only or full TMPDIR: no FIFOs, no throw, one reason (callers fall back to pipes)', () => {
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = '/proc/self'; // mkdtemp fails there, as on a read-only filesystem
  try {
    const reasons: string[] = [];
    const maker = new FifoMaker(undefined, 3, (r) => reasons.push(r));
    assert.equal(maker.dir, '');
    assert.equal(maker.take(), undefined);
    assert.equal(maker.take(), undefined);
    assert.equal(reasons.length, 1);
    assert.match(reasons[0]!, /cannot make a directory in \/proc\/self/);
  } finally {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
  }
});
