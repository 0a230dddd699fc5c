/**
 * The targets file as editors, `cat > file`, hostPath mounts and runaway generators write it:
 * torn reads, files that empty, and inputs that are too large or too many.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, openSync, writeSync, closeSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_TARGETS_FILE_BYTES, parseTargetsFile, StaticFileSource, targetsFileFormat } from './static-file.ts';
import { createLogger } from '../log.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function list(n: number, from = 1): string {
  return JSON.stringify(Array.from({ length: n }, (_, i) => ({ name: `n${from + i}`, address: `192.0.2.${from + i}` })));
}

function source(path: string, extra: { emptyHoldMs?: number; maxTargets?: number } = {}) {
  const applied: string[][] = [];
  const reloads: string[] = [];
  const lines: string[] = [];
  const src = new StaticFileSource({
    path, pollIntervalMs: 30, settleMs: 60, ...extra,
    log: createLogger({ level: 'debug', write: (l) => lines.push(l) }),
    onTargets: (t) => applied.push(t.map((x) => x.name)),
    onReload: (r) => reloads.push(r),
  });
  return { src, applied, reloads, lines };
}

/** Truncates the file in place, waits, then writes `body` in pieces with pauses: what `cat > file` over a slow pipe does. */
async function rewriteInPlace(path: string, body: string, pauseMs: number, pieces = 1): Promise<void> {
  const fd = openSync(path, 'w');
  try {
    await sleep(pauseMs);
    const step = Math.ceil(body.length / pieces);
    for (let i = 0; i < body.length; i += step) {
      writeSync(fd, body.slice(i, i + step));
      await sleep(pauseMs);
    }
  } finally {
    closeSync(fd);
  }
}

test('a rewritten targets file must not wipe the series: truncated and rewritten in place, it is never applied empty or torn', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'knp-torn-')), 'targets.json');
  writeFileSync(path, list(3));
  const { src, applied, reloads, lines } = source(path);
  await src.start();
  try {
    // Quick rewrite: the window between the truncation and the write.
    for (let round = 0; round < 5; round++) {
      await rewriteInPlace(path, list(3, 10 * round + 10), 15);
      await waitFor(() => applied.at(-1)?.[0] === `n${10 * round + 10}`, `round ${round} applied`);
    }
    // A writer that stalls while the file is empty, then writes a torn half, then the rest.
    await rewriteInPlace(path, list(4, 100), 400, 2);
    await waitFor(() => applied.at(-1)?.[0] === 'n100', 'the slow rewrite applied');
    assert.ok(applied.every((a) => a.length > 0), `never applied empty: ${JSON.stringify(applied)}`);
    assert.deepEqual(applied.at(-1), ['n100', 'n101', 'n102', 'n103']);
    assert.ok(!lines.some((l) => l.includes('"targets":0')), 'no empty list was applied');
    assert.ok(src.problem() === undefined, 'no problem once the file is whole');
    assert.ok(reloads.every((r) => r !== 'failure') || lines.some((l) => l.includes('reload failed')), 'failures are logged');
  } finally {
    src.stop();
  }
});

test('a rewritten targets file must not wipe the series: an empty file is held back, reported, and applied only if it stays empty', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'knp-empty-')), 'targets.yaml');
  writeFileSync(path, '- {name: a, address: 192.0.2.1}\n');
  const { src, applied, reloads, lines } = source(path, { emptyHoldMs: 800 });
  await src.start();
  try {
    writeFileSync(path, '');
    await waitFor(() => reloads.includes('held'), 'the empty file held back');
    assert.match(src.problem() ?? '', /lists no targets; held back/);
    assert.ok(lines.some((l) => l.includes('"level":"warn"') && l.includes('keeping the last good targets')));
    assert.deepEqual(applied, [['a']], 'not applied while held');
    // Comes back within the hold: nothing was dropped, the problem clears.
    writeFileSync(path, '- {name: a, address: 192.0.2.1}\n');
    await waitFor(() => src.problem() === undefined, 'the hold ended');
    assert.deepEqual(applied, [['a']]);
    // `null` and stays so: applied after the hold, loudly.
    writeFileSync(path, 'null\n');
    await waitFor(() => applied.length === 2, 'the empty list applied after the hold');
    assert.deepEqual(applied.at(-1), []);
    assert.ok(lines.some((l) => l.includes('"level":"warn"') && l.includes('"msg":"targets file lists no targets"')), 'no targets is a warning');
  } finally {
    src.stop();
  }
});

test('bounded inputs: the parser comes from the extension or the content, never by trial', () => {
  assert.equal(targetsFileFormat('t.json'), 'json');
  assert.equal(targetsFileFormat('t.YML'), 'yaml');
  assert.equal(targetsFileFormat('targets', ' [1]'), 'json');
  assert.equal(targetsFileFormat('targets', '- a'), 'yaml');
  // Not strict JSON: refused as JSON, not handed to the YAML parser (24 s for 50 MB).
  assert.throws(() => parseTargetsFile('[{name: a, address: 192.0.2.1}]', 'nodes.json'), /is not valid JSON/);
  assert.throws(() => parseTargetsFile('[{name: a, address: 192.0.2.1}]', 'targets'), /is not valid JSON/);
  assert.equal(parseTargetsFile('[{name: a, address: 192.0.2.1}]', 't.yaml').targets.length, 1);
  assert.equal(parseTargetsFile('', 't.json').targets.length, 0);
});

test('bounded inputs: a file above the size limit is refused without being parsed, naming the limit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'knp-big-'));
  for (const [name, limit] of [['t.json', MAX_TARGETS_FILE_BYTES.json], ['t.yaml', MAX_TARGETS_FILE_BYTES.yaml], ['targets', MAX_TARGETS_FILE_BYTES.json]] as const) {
    const path = join(dir, name);
    // Not strict JSON, so that before the bound it went to the YAML parser.
    const entry = '{name: a, address: 192.0.2.1},';
    writeFileSync(path, `[${entry.repeat(Math.ceil((limit + 10) / entry.length))}]`);
    const { src } = source(path);
    const t0 = Date.now();
    await assert.rejects(src.start(), new RegExp(`is \\d+ bytes, above the limit of ${limit} bytes`));
    assert.ok(Date.now() - t0 < 5000, `refused in ${Date.now() - t0} ms`);
    src.stop();
  }
  // Without an extension, YAML content has the YAML bound.
  const path = join(dir, 'plain');
  const line = '- {name: a, address: 192.0.2.1}\n';
  writeFileSync(path, line.repeat(Math.ceil((MAX_TARGETS_FILE_BYTES.yaml + 10) / line.length)));
  await assert.rejects(source(path).src.start(), new RegExp(`bytes of YAML, above the limit of ${MAX_TARGETS_FILE_BYTES.yaml} bytes`));
});

test('bounded inputs: targets beyond the cap are refused with one line saying why', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'knp-cap-')), 'targets.json');
  writeFileSync(path, list(5));
  const { src, applied, lines } = source(path, { maxTargets: 3 });
  await src.start();
  src.stop();
  assert.deepEqual(applied, [['n1', 'n2', 'n3']]);
  const refused = lines.filter((l) => l.includes('more than the 3 one agent probes'));
  assert.equal(refused.length, 1, lines.join('\n'));
  assert.match(refused[0]!, /lists 5 targets.*the last 2 are not probed/);
  assert.equal(src.problem(), undefined, 'a log line, not a readiness reason');
});

test('a file replaced atomically is applied once its content settles; an unchanged file is not applied again', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'knp-atomic-')), 'targets.json');
  writeFileSync(path, list(2));
  const { src, applied, reloads } = source(path);
  await src.start();
  try {
    writeFileSync(`${path}.new`, list(2));
    renameSync(`${path}.new`, path); // same content, new inode: read, hashed, not applied
    writeFileSync(`${path}.new`, list(3));
    renameSync(`${path}.new`, path);
    await waitFor(() => applied.length === 2, 'the new list');
    await sleep(300);
    assert.deepEqual(applied.map((a) => a.length), [2, 3]);
    assert.deepEqual(reloads, ['success']);
  } finally {
    src.stop();
  }
});
