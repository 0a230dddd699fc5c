/**
 * Builds the Grafana dashboards into charts/kube-node-ping/files/dashboards/*.json.
 *
 *   npm run dashboards                  # (re)write the JSON files
 *   node dashboards/build.ts --check    # exit 1 if a committed file differs from a fresh build
 *
 * The output depends on nothing but the source (no ids, dates or versions from the machine),
 * so a fresh build of an unchanged source is byte-for-byte the committed file.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { agents } from './agents.ts';
import { overview } from './overview.ts';
import { source } from './source.ts';

export const OUT_DIR = fileURLToPath(new URL('../charts/kube-node-ping/files/dashboards/', import.meta.url));

/** File name → dashboard. */
export function dashboards(): Map<string, Dashboard> {
  return new Map([
    ['kube-node-ping-overview.json', overview()],
    ['kube-node-ping-node.json', source()],
    ['kube-node-ping-agents.json', agents()],
  ]);
}

export function render(d: Dashboard): string {
  return `${JSON.stringify(d, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  const built = dashboards();
  let stale = 0;
  if (!check) {
    mkdirSync(OUT_DIR, { recursive: true });
    // A dashboard that is no longer built leaves the chart too.
    for (const f of readdirSync(OUT_DIR)) if (f.endsWith('.json') && !built.has(f)) rmSync(join(OUT_DIR, f));
  }
  for (const [file, d] of built) {
    const path = join(OUT_DIR, file);
    const text = render(d);
    if (check) {
      let old = '';
      try {
        old = readFileSync(path, 'utf8');
      } catch {
        // missing counts as stale
      }
      if (old !== text) {
        console.error(`${path} is out of date: run npm run dashboards`);
        stale++;
      }
    } else {
      writeFileSync(path, text);
      console.log(`wrote ${path}`);
    }
  }
  process.exit(stale ? 1 : 0);
}
