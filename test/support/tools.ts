/** Where scripts/tools.sh put the Go-built test programs. */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function toolPath(name: string): string {
  const dir = process.env['KNP_TOOLS_BIN'] ?? join(process.env['KNP_CACHE_DIR'] ?? join(homedir(), '.cache/kube-node-ping'), 'bin');
  const p = join(dir, name);
  if (!existsSync(p)) throw new Error(`${p} is missing: run ./scripts/test (or bash scripts/tools.sh ${name}) to build it`);
  return p;
}
