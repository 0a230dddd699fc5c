import { execFile } from 'node:child_process';

/**
 * Checks that the fping binary exists and is 5.x (the per-packet loop output this agent
 * parses). Resolves with the version; rejects with one line telling how to fix it.
 */
export function checkFping(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(path, ['--version'], { timeout: 5000 }, (err, stdout, stderr) => {
      const out = `${stdout}${stderr}`;
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error(`fping not found at ${JSON.stringify(path)}: install it (Debian/Ubuntu: apt-get install fping; Alpine: apk add fping) or set --fping-path`));
        return;
      }
      if (err && (err as NodeJS.ErrnoException).code === 'EACCES') {
        reject(new Error(`fping at ${JSON.stringify(path)} is not executable`));
        return;
      }
      const m = /Version (\d+)\.(\d+)/.exec(out);
      if (!m) {
        reject(new Error(`${JSON.stringify(path)} does not look like fping: --version printed ${JSON.stringify(out.trim().slice(0, 80))}`));
        return;
      }
      if (Number(m[1]) < 5) {
        reject(new Error(`fping ${m[1]}.${m[2]} at ${JSON.stringify(path)} is too old: 5.0 or later is needed`));
        return;
      }
      resolve(`${m[1]}.${m[2]}`);
    });
  });
}
