/**
 * Property-based fuzzing of the fping line parser (fast-check, fixed seed, bounded run):
 * whatever fping or a broken pipe writes, the parser never throws and never reports a result
 * it did not read; every well-formed line reads back what was written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { newParsedLine, parseFpingLine, RESULT_DUPLICATE, RESULT_LOSS, RESULT_NONE, RESULT_REPLY } from './fping-line.ts';

import { FUZZ } from '../../test/support/fuzz.ts';

const address = fc.oneof(fc.ipV4(), fc.ipV6());
const seq = fc.integer({ min: 0, max: 2 ** 31 - 1 });
/** fping prints 2 to 3 decimals; the parser must read any fixed-point figure. */
const rtt = fc.tuple(fc.integer({ min: 0, max: 99_999 }), fc.integer({ min: 0, max: 999 })).map(([i, f]) => ({ text: `${i}.${String(f).padStart(3, '0')}`, value: i + f / 1000 }));
const timestamp = fc.option(fc.tuple(fc.integer({ min: 1_000_000_000, max: 2_000_000_000 }), fc.integer({ min: 0, max: 99_999 })).map(([s, f]) => `[${s}.${String(f).padStart(5, '0')}] `), { nil: '' });
const padding = fc.integer({ min: 1, max: 40 }).map((n) => ' '.repeat(n));

function checkInvariants(line: string): void {
  const out = newParsedLine();
  const ok = parseFpingLine(line, out);
  if (!ok) {
    assert.equal(out.kind, RESULT_NONE);
    return;
  }
  assert.ok([RESULT_REPLY, RESULT_LOSS, RESULT_DUPLICATE].includes(out.kind as never));
  assert.ok(Number.isSafeInteger(out.seq) && out.seq >= 0, `seq ${out.seq} from ${JSON.stringify(line)}`);
  assert.ok(out.address !== '' && !out.address.includes(' '), `address ${JSON.stringify(out.address)}`);
  if (out.kind === RESULT_LOSS) assert.ok(Number.isNaN(out.rttMs));
  else assert.ok(Number.isFinite(out.rttMs) && out.rttMs >= 0, `rtt ${out.rttMs}`);
}

test('fuzz: well-formed reply, duplicate and timeout lines read back what was written', () => {
  fc.assert(
    fc.property(timestamp, address, padding, seq, rtt, fc.constantFrom('reply', 'duplicate', 'loss'), (ts, addr, pad, n, r, kind) => {
      const line =
        kind === 'loss' ? `${ts}${addr}${pad}: [${n}], timed out (NaN avg, 100% loss)`
        : kind === 'duplicate' ? `${ts}${addr}${pad}: duplicate for [${n}], 64 bytes, ${r.text} ms`
        : `${ts}${addr}${pad}: [${n}], 64 bytes, ${r.text} ms (${r.text} avg, 0% loss)`;
      const out = newParsedLine();
      assert.equal(parseFpingLine(line, out), true, line);
      assert.equal(out.address, addr);
      assert.equal(out.seq, n);
      assert.equal(out.kind, kind === 'loss' ? RESULT_LOSS : kind === 'duplicate' ? RESULT_DUPLICATE : RESULT_REPLY);
      if (kind !== 'loss') assert.ok(Math.abs(out.rttMs - r.value) < 1e-9, `${out.rttMs} for ${r.text}`);
    }),
    FUZZ,
  );
});

test('fuzz: any text, and real lines cut, spliced or corrupted, never throws nor reports what it did not read', () => {
  const real = fc.tuple(timestamp, address, padding, seq, rtt).map(([ts, a, pad, n, r]) => `${ts}${a}${pad}: [${n}], 64 bytes, ${r.text} ms (${r.text} avg, 0% loss)`);
  const mutated = fc.tuple(real, fc.nat(), fc.nat(), fc.string({ maxLength: 30 })).map(([line, at, len, junk]) => {
    const i = at % (line.length + 1);
    return line.slice(0, i) + junk + line.slice(Math.min(line.length, i + (len % 8)));
  });
  // Long digit runs in the sequence or RTT fields: the numbers must stay sane.
  const longDigits = fc.tuple(address, fc.string({ unit: fc.constantFrom('0', '1', '9'), minLength: 1, maxLength: 400, size: 'max' })).map(([a, d]) => `${a} : [${d}], 64 bytes, ${d} ms (1 avg, 0% loss)`);
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), mutated, longDigits), checkInvariants), { ...FUZZ, numRuns: FUZZ.numRuns * 2 });
});
