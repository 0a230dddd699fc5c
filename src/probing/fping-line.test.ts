import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { newParsedLine, parseFpingLine, RESULT_DUPLICATE, RESULT_LOSS, RESULT_NONE, RESULT_REPLY } from './fping-line.ts';

// Recorded from fping 5.1 on this project's CI machine kind (see test/fixtures/README.md).
const fixture = (name: string) => readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url), 'utf8').split('\n').filter((l) => l !== '');

test('every recorded reply line parses, with and without -D', () => {
  for (const file of ['replies.stdout', 'replies-D.stdout']) {
    const lines = fixture(file);
    assert.ok(lines.length >= 6, `${file} has lines`);
    const out = newParsedLine();
    for (const line of lines) {
      assert.equal(parseFpingLine(line, out), true, line);
      assert.equal(out.kind, RESULT_REPLY, line);
      assert.ok(['127.0.0.1', '::1', '127.0.0.2'].includes(out.address), line);
      assert.ok(out.rttMs > 0 && out.rttMs < 50, line);
    }
  }
});

test('recorded timeouts parse as losses with their sequence number', () => {
  const out = newParsedLine();
  const seqs: number[] = [];
  for (const line of fixture('timeouts.stdout')) {
    assert.equal(parseFpingLine(line, out), true, line);
    assert.equal(out.kind, RESULT_LOSS);
    assert.ok(Number.isNaN(out.rttMs));
    if (out.address === '::1') seqs.push(out.seq);
  }
  assert.deepEqual(seqs, seqs.map((_, i) => i));
});

test('fields are exact', () => {
  const out = newParsedLine();
  assert.ok(parseFpingLine('[1795637400.26671] 10.200.0.2 : [17], 64 bytes, 6.07 ms (6.07 avg, 50% loss)', out));
  assert.deepEqual({ ...out }, { kind: RESULT_REPLY, address: '10.200.0.2', seq: 17, rttMs: 6.07 });
  assert.ok(parseFpingLine('fd00::2   : [3], 64 bytes, 12 ms (12.0 avg, 0% loss)', out));
  assert.deepEqual({ ...out }, { kind: RESULT_REPLY, address: 'fd00::2', seq: 3, rttMs: 12 });
  assert.ok(parseFpingLine('10.0.0.2 : duplicate for [4], 64 bytes, 0.100 ms', out));
  assert.equal(out.kind, RESULT_DUPLICATE);
  assert.equal(out.seq, 4);
});

test('anything else is refused without throwing', () => {
  const out = newParsedLine();
  for (const line of [
    '',
    'garbage',
    '127.0.0.1 : xmt/rcv/%loss = 7/0/100%',
    'ICMP Host Unreachable from 10.0.0.1 for ICMP Echo sent to 10.0.0.2',
    '10.0.0.2 : [x], 64 bytes, 1 ms',
    '10.0.0.2 : [1], 64 bytes, abc ms',
    '10.0.0.2 : [1], 64 bytes, 1.2.3 ms',
    '10.0.0.2 : [1]',
    '[123 10.0.0.2 : [1], timed out',
    '10.0.0.2 : duplicate for [1], timed out',
  ]) {
    assert.equal(parseFpingLine(line, out), false, line);
    assert.equal(out.kind, RESULT_NONE, line);
  }
});
