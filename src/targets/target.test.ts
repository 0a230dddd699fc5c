import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTargets, canonicalAddress } from './target.ts';
import { parseTargetsFile, StaticFileSource } from './static-file.ts';
import { createLogger } from '../log.ts';

test('only IP literals pass, in canonical form', () => {
  assert.deepEqual(canonicalAddress('10.1.2.3'), { address: '10.1.2.3', family: 4 });
  assert.deepEqual(canonicalAddress(' FD00:0:0::0001 '), { address: 'fd00::1', family: 6 });
  for (const bad of ['example.com', '-h', '10.1.2', '010.1.2.3', 'fe80::1%eth0', '', '1.2.3.4; rm -rf /', '::ffff:1.2.3.4.5']) {
    assert.equal(canonicalAddress(bad), undefined, bad);
  }
});

test('addresses that can never answer a unicast echo are rejected, naming why', () => {
  const { targets, rejected } = buildTargets(
    ['255.255.255.255', '224.0.0.1', '239.255.255.250', '240.0.0.1', '0.0.0.0', '::', 'ff02::1', '::ffff:10.0.0.1', '::FFFF:0A00:0001', '10.0.0.255', '::ffff:0:1:2', '2001:db8::ffff:1:2'].map((address) => ({ address })),
    'external',
  );
  assert.deepEqual(targets.map((t) => t.address), ['10.0.0.255', '::ffff:0:1:2', '2001:db8::ffff:1:2'], 'a directed broadcast cannot be told from a host');
  assert.deepEqual(rejected.map((r) => r.reason), [
    'address 255.255.255.255 is the limited broadcast address: it can never answer a unicast echo',
    'address 224.0.0.1 is a multicast address: it can never answer a unicast echo',
    'address 239.255.255.250 is a multicast address: it can never answer a unicast echo',
    'address 240.0.0.1 is in 240.0.0.0/4, reserved and never routed: it can never answer a unicast echo',
    'address 0.0.0.0 is in 0.0.0.0/8, "this network", not a host: it can never answer a unicast echo',
    'address :: is the unspecified address: it can never answer a unicast echo',
    'address ff02::1 is a multicast address: it can never answer a unicast echo',
    'address ::ffff:a00:1 is an IPv4-mapped IPv6 address (probe the IPv4 address instead): it can never answer a unicast echo',
    'address ::ffff:a00:1 is an IPv4-mapped IPv6 address (probe the IPv4 address instead): it can never answer a unicast echo',
  ]);
});

test('bad entries are rejected with a reason; the rest are kept', () => {
  const { targets, rejected } = buildTargets([
    { name: 'a', address: '10.0.0.1' },
    { name: 'b', address: 'node-b.example' },
    { name: 'c' },
    { name: 'd', address: '10.0.0.1' },
    { address: '::1', kind: 'external' },
    { name: 'e', address: '10.0.0.5', kind: 'router' },
  ], 'node');
  assert.deepEqual(targets.map((t) => [t.name, t.address, t.kind]), [['a', '10.0.0.1', 'node'], ['::1', '::1', 'external']]);
  assert.deepEqual(rejected.map((r) => r.reason), [
    'address "node-b.example" is not an IPv4 or IPv6 literal',
    'address is missing',
    'address 10.0.0.1 is listed twice; the first entry is kept',
    'kind "router" is not node or external',
  ]);
});

test('targets file: the seed recipe\'s nodes.json, YAML, and a {targets:} mapping', () => {
  const seed = parseTargetsFile('[{"name":"node-1","ipAddress":"192.0.2.1"},{"name":"node-2","ipAddress":"192.0.2.2"}]', 'nodes.json');
  assert.deepEqual(seed.targets.map((t) => t.name), ['node-1', 'node-2']);
  const yaml = parseTargetsFile('- name: a\n  address: 2001:db8::1\n- {name: resolver, address: 192.0.2.53, kind: external}\n', 't.yaml');
  assert.deepEqual(yaml.targets.map((t) => [t.address, t.family, t.kind]), [['2001:db8::1', 6, 'node'], ['192.0.2.53', 4, 'external']]);
  assert.equal(parseTargetsFile('targets:\n  - {address: 192.0.2.9}\n', 't.yaml').targets[0]!.name, '192.0.2.9');
  assert.throws(() => parseTargetsFile('{a: 1}', 't.yaml'), /must hold a list/);
  assert.throws(() => parseTargetsFile('[{', 't.yaml'), /is not valid YAML/);
  assert.throws(() => parseTargetsFile('[{', 't.json'), /is not valid JSON/);
});

test('file source: reloads on change, keeps the last good list on a broken file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'knp-targets-'));
  const path = join(dir, 'targets.yaml');
  writeFileSync(path, '- {name: a, address: 192.0.2.1}\n');
  const seen: string[][] = [];
  const reloads: string[] = [];
  const lines: string[] = [];
  const src = new StaticFileSource({
    path, pollIntervalMs: 50, log: createLogger({ level: 'debug', write: (l) => lines.push(l) }),
    onTargets: (t) => seen.push(t.map((x) => x.name)),
    onReload: (r) => reloads.push(r),
    settleMs: 20,
  });
  await src.start();
  const waitFor = async (cond: () => boolean) => {
    for (let i = 0; i < 250 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(cond());
  };
  // Written the way a ConfigMap update lands: a new file renamed over the old one.
  writeFileSync(`${path}.new`, '- {name: a, address: 192.0.2.1}\n- {name: b, address: 192.0.2.2}\n');
  renameSync(`${path}.new`, path);
  await waitFor(() => seen.length === 2);
  writeFileSync(path, '- {name: a, address: [');
  await waitFor(() => reloads.includes('failure'));
  assert.equal(seen.length, 2, 'a broken file changes nothing');
  const errors = lines.filter((l) => l.includes('reload failed'));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(lines.filter((l) => l.includes('reload failed')).length, errors.length, 'reported once, not at every poll');
  writeFileSync(path, '- {name: b, address: 192.0.2.2}\n- {name: x, address: not-an-ip}\n');
  await waitFor(() => seen.length === 3);
  src.stop();
  assert.deepEqual(seen, [['a'], ['a', 'b'], ['b']]);
  assert.ok(lines.some((l) => l.includes('"level":"warn"') && l.includes('not-an-ip')), 'bad entry warned');
});
