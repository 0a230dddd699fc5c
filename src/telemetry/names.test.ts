import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { METRIC } from './names.ts';

/** The README's metric table ("What it measures"): its first column, the OTel instrument names. */
function readmeInstruments(): string[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  return [...readme.matchAll(/^\| `(kube_node_ping\.[^`]+)` \| `([^`]+)` \|/gm)].map((m) => m[1]!);
}

test('the README lists every metric the agent exports, once, and no other', () => {
  const listed = readmeInstruments();
  assert.equal(new Set(listed).size, listed.length, 'a metric listed twice');
  assert.deepEqual([...listed].sort(), Object.values(METRIC).sort());
});
