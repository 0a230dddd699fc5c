/**
 * Property-based fuzzing of the targets-file reader (fast-check, fixed seed, bounded run):
 * any content either gives targets that are all canonical IP literals, each once, or a
 * one-line error naming the file; never another exception, never a name that fping would
 * resolve.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
import { parseTargetsFile } from './static-file.ts';
import { canonicalAddress } from './target.ts';
import { FUZZ } from '../../test/support/fuzz.ts';

function check(text: string, path: string, maxTargets?: number): void {
  let r: ReturnType<typeof parseTargetsFile>;
  try {
    r = parseTargetsFile(text, path, maxTargets);
  } catch (err) {
    assert.ok(err instanceof Error, String(err));
    assert.ok(err.message.startsWith(`targets file ${path} `), err.message);
    assert.ok(!err.message.includes('\n'), `one line: ${JSON.stringify(err.message)}`);
    return;
  }
  const seen = new Set<string>();
  for (const t of r.targets) {
    assert.equal(canonicalAddress(t.address)?.address, t.address, `canonical ${t.address}`);
    assert.equal(t.family, t.address.includes(':') ? 6 : 4);
    assert.ok(t.kind === 'node' || t.kind === 'external');
    assert.ok(!seen.has(t.address), `${t.address} twice`);
    seen.add(t.address);
  }
  if (maxTargets !== undefined) assert.ok(r.targets.length <= maxTargets);
  for (const x of r.rejected) assert.ok(x.reason !== '' && !x.reason.includes('\n'));
}

const addressLike = fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.domain(), fc.string({ maxLength: 20 }), fc.constantFrom('-h', '::ffff:1.2.3.4', 'fe80::1%eth0', '010.1.2.3', ' 10.0.0.1 '), fc.integer(), fc.constant(null));
const entry = fc.oneof(
  fc.record({ name: fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.constant(null)), address: addressLike, kind: fc.option(fc.oneof(fc.constantFrom('node', 'external', 'router'), fc.integer()), { nil: undefined }) }, { requiredKeys: [] }),
  fc.record({ name: fc.string({ maxLength: 10 }), ipAddress: addressLike }),
  addressLike,
  fc.jsonValue({ maxDepth: 2 }),
);
const document = fc.oneof(fc.array(entry, { maxLength: 30 }), fc.record({ targets: fc.array(entry, { maxLength: 30 }) }), fc.jsonValue({ maxDepth: 3 }));

test('fuzz: targets files of any shape, as JSON and as YAML, give valid targets or one line', () => {
  fc.assert(
    fc.property(document, fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined }), (doc, cap) => {
      check(JSON.stringify(doc) ?? '', 'targets.json', cap);
      check(toYaml(doc), 'targets.yaml', cap);
      check(JSON.stringify(doc) ?? '', 'targets', cap);
    }),
    FUZZ,
  );
});

test('fuzz: arbitrary and corrupted text never throws anything but one line', () => {
  const corrupted = fc.tuple(document, fc.nat(), fc.string({ maxLength: 10 })).map(([doc, at, junk]) => {
    const text = JSON.stringify(doc) ?? '';
    const i = at % (text.length + 1);
    return text.slice(0, i) + junk + text.slice(i);
  });
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), corrupted), fc.constantFrom('t.json', 't.yaml', 't'), (text, path) => check(text, path)),
    FUZZ,
  );
});
