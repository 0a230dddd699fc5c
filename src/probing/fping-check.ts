import { execFile, spawn } from 'node:child_process';

/**
 * Checks that the fping binary exists and is 5.x (the per-packet loop output this agent
 * parses). Resolves with the version; rejects with one line telling how to fix it.
 */
export function checkFping(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // EPERM is the kernel refusing to exec fping's file capability (CAP_NET_RAW missing from
    // the bounding set): the container's privileges, not a bad fping. Not fatal: the prober
    // names the cause in one line, /readyz reports it, and fping is retried. Some exec
    // failures throw from spawn itself instead of reaching the callback.
    const refused = (err: unknown) => (err as NodeJS.ErrnoException | null)?.code === 'EPERM';
    try {
      execFile(path, ['--version'], { timeout: 5000 }, (err, stdout, stderr) => {
        if (refused(err)) return resolve('unknown (exec refused: EPERM)');
        check(err, `${stdout}${stderr}`);
      });
    } catch (err) {
      if (refused(err)) return resolve('unknown (exec refused: EPERM)');
      reject(err as Error);
    }
    function check(err: Error | null, out: string): void {
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
    }
  });
}

/**
 * The smallest send gap `-i` (ms) this fping accepts from the uid the agent runs as. fping
 * refuses `-i` < 1 ms and `-p` < 10 ms to a non-root uid ("these options are too risky for mere
 * mortals") only when it was built with FPING_SAFE_LIMITS (`--enable-safe-limits`); Debian's
 * and Alpine's packages are not, so there any uid may go below. Asked of fping itself: with no
 * target on its argv and stdin at end of file it parses its options, checks them, and exits
 * having sent nothing.
 */
export function fpingMinIntervalMs(path: string): Promise<number> {
  if (process.getuid?.() === 0) return Promise.resolve(0);
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(path, ['-l', '-p', '10', '-i', '0.001'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
    } catch {
      // An exec the kernel refuses (EPERM) can throw from spawn itself: the prober reports it.
      resolve(0);
      return;
    }
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', () => resolve(0)); // checkFping reports a missing binary
    child.on('close', () => resolve(stderr.includes('too risky') ? 1 : 0));
  });
}
