/**
 * Property-based fuzzing of the config parser (fast-check, fixed seed, bounded run): flags,
 * environment and config file of any content either give a config or a ConfigError of one
 * line naming what was wrong; never another exception, never a config that breaks what it
 * promises (timeout within range, export timeout within the interval, listen host a literal).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
import { ConfigError, helpText, loadConfig } from './config.ts';
import { FUZZ } from '../../test/support/fuzz.ts';

const help = helpText();
const FLAGS = [...help.matchAll(/^ {2}(--[a-z-]+) </gm)].map((m) => m[1]!).filter((f) => f !== '--config');
const ENVS = [...new Set([...help.matchAll(/\(([A-Z_, ]+)\)$/gm)].flatMap((m) => m[1]!.split(', ')))].filter((e) => e !== 'KNP_CONFIG');
const KEYS = [...help.matchAll(/\[([a-zA-Z]+)\]/g)].map((m) => m[1]!);

/** Values that are near the right form as often as they are garbage. */
const value = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.integer().map(String),
  fc.constantFrom('', '0', '-1', '1s', '500ms', '2m', '1h', '0.5ms', '10s', 'true', 'no', 'grpc', 'http/protobuf', 'ipv4,ipv6', 'InternalIP', 'a=b,c=d', 'a=%ZZ', 'a=b%0D%0A', 'http://c:4318', 'c:4317', '::', '0.0.0.0', 'localhost', '1ms,1ms', '1ms,5ms'),
);
const fileValue = fc.oneof(value, fc.integer(), fc.boolean(), fc.constant(null), fc.array(value, { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), value, { maxKeys: 3 }));

function check(argv: string[], env: Record<string, string>, file: string | undefined): void {
  try {
    const r = loadConfig({ argv: file === undefined ? argv : ['--config', '/c.yaml', ...argv], env, readFile: () => file ?? '' });
    if (r.kind !== 'config') return;
    const c = r.config;
    assert.ok(c.timeout >= 10 && c.timeout <= 60_000);
    assert.ok(c.exportTimeout <= c.exportInterval, `export timeout ${c.exportTimeout} above interval ${c.exportInterval}`);
    assert.ok(c.prometheusHost === '' || isIP(c.prometheusHost) !== 0, `host ${c.prometheusHost}`);
    for (const [k, v] of Object.entries(c.otlpHeaders)) assert.ok(!/[\r\n]/.test(k + v), 'no CR/LF in headers');
    assert.ok(Number.isInteger(c.prometheusPort) && c.prometheusPort >= 0 && c.prometheusPort <= 65_535);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${(err as Error).stack}`);
    assert.ok(err.message.startsWith('config: '), err.message);
    assert.ok(!err.message.includes('\n') && !err.message.includes('\r'), `one line: ${JSON.stringify(err.message)}`);
  }
}

test('fuzz: flags and environment of any value give a config that keeps its promises, or one line', () => {
  const flags = fc.array(fc.tuple(fc.constantFrom(...FLAGS), value, fc.boolean()), { maxLength: 6 }).map((l) => l.flatMap(([f, v, eq]) => (eq ? [`${f}=${v}`] : [f, v])));
  const env = fc.dictionary(fc.constantFrom(...ENVS), value, { maxKeys: 6 });
  fc.assert(fc.property(flags, env, (argv, e) => check(argv, e, undefined)), FUZZ);
});

test('fuzz: config files of any YAML shape and type give a config or one line', () => {
  const doc = fc.oneof(fc.dictionary(fc.constantFrom(...KEYS, 'perod', 'x'), fileValue, { maxKeys: 6 }), fc.jsonValue({ maxDepth: 2 }));
  const text = fc.oneof(doc.map((d) => toYaml(d)), fc.string({ maxLength: 100 }));
  fc.assert(fc.property(text, (t) => check([], {}, t)), FUZZ);
});

test('fuzz: the generated lists of flags, variables and keys are not empty', () => {
  assert.ok(FLAGS.length > 30 && ENVS.length > 30 && KEYS.length > 30, `${FLAGS.length} ${ENVS.length} ${KEYS.length}`);
});
