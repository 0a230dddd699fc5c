import { createHash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { watch, type FSWatcher, type Stats } from 'node:fs';
import { dirname, basename, extname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseYaml } from 'yaml';
import type { Logger } from '../log.ts';
import { buildTargets, type Rejected, type Target } from './target.ts';

/**
 * Largest targets file read, by parser. JSON.parse takes about 20 ms for 4 MiB (some 50,000
 * entries); the YAML parser builds a document tree and took 24 s and 2 GB for 50 MB, so its
 * bound is four times smaller (about 0.3 s). A larger file is refused without being read.
 */
export const MAX_TARGETS_FILE_BYTES = { json: 4 * 1024 * 1024, yaml: 1024 * 1024 } as const;

/**
 * Most targets taken from the file; the entries beyond it are refused with one line. The
 * limit of what one agent can probe at its rate belongs to the prober, which sets this
 * through the `maxTargets` option; the default here only stops a runaway file.
 */
export const DEFAULT_MAX_FILE_TARGETS = 20_000;

export type TargetsFileFormat = 'json' | 'yaml';

/**
 * The parser for a file: from its extension (.json, .yaml, .yml), else from its content (a
 * first character `[` or `{` is JSON). Never by trial: a large file that fails as JSON must
 * not fall through to the far slower YAML parser.
 */
export function targetsFileFormat(path: string, text?: string): TargetsFileFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  return text !== undefined && /^\s*[[{]/.test(text) ? 'json' : 'yaml';
}

/**
 * Parses a targets file. Accepted shapes (JSON or YAML, see targetsFileFormat):
 *  - a list of {name, address, kind?};
 *  - the 2019 recipe's nodes.json: a list of {name, ipAddress};
 *  - a mapping {targets: [...]} of either.
 * An empty document (empty file, `null`, `[]`) is an empty list. Throws with a one-line
 * message for a file that does not parse or is not a list; bad entries are returned as
 * rejected so that one typo does not stop the others being probed. Entries beyond
 * `maxTargets` are refused, and `capped` says how many.
 */
export function parseTargetsFile(text: string, path: string, maxTargets = DEFAULT_MAX_FILE_TARGETS): { targets: Target[]; rejected: Rejected[]; capped: number } {
  const format = targetsFileFormat(path, text);
  let doc: unknown;
  try {
    doc = format === 'json' ? (text.trim() === '' ? null : JSON.parse(text)) : parseYaml(text);
  } catch (err) {
    throw new Error(`targets file ${path} is not valid ${format === 'json' ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) doc = [];
  if (typeof doc === 'object' && !Array.isArray(doc) && doc !== null && 'targets' in doc) doc = (doc as { targets: unknown }).targets ?? [];
  if (!Array.isArray(doc)) throw new Error(`targets file ${path} must hold a list of {name, address}`);
  const entries = doc.map((e: unknown) => {
    if (typeof e !== 'object' || e === null) return { address: e };
    const o = e as Record<string, unknown>;
    return { name: o['name'], address: o['address'] ?? o['ipAddress'], kind: o['kind'] };
  });
  const built = buildTargets(entries, 'node');
  const capped = Math.max(0, built.targets.length - maxTargets);
  if (capped > 0) built.targets.length = maxTargets;
  return { ...built, capped };
}

export interface StaticFileSourceOptions {
  path: string;
  pollIntervalMs: number;
  log: Logger;
  onTargets: (targets: Target[]) => void;
  /** Called after each load attempt: applied, failed, or an empty list held back. */
  onReload?: (result: 'success' | 'failure' | 'held') => void;
  /** Most targets taken from the file (see DEFAULT_MAX_FILE_TARGETS). */
  maxTargets?: number;
  /** A changed file must read the same twice this far apart before it is applied. */
  settleMs?: number;
  /** A file that had targets and now lists none is held back this long before it is applied. */
  emptyHoldMs?: number;
}

/** What identifies a version of the file without reading it. */
function signature(st: Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/**
 * Watches a targets file. Directory events catch the symlink swap that Kubernetes uses to
 * update a mounted ConfigMap; a poll covers filesystems without events.
 *
 * A file can be read mid-write (`cat > file` and many editors truncate, then write), so:
 *  - only a changed file is read (inode, size, mtime, ctime), and only a changed content
 *    (SHA-256) is parsed;
 *  - a changed file is read twice, `settleMs` apart, and applied only if both reads agree;
 *    otherwise it is tried again, so a torn read is never applied nor reported as bad;
 *  - a file that does not parse keeps the last good list (a typo loses nothing measured);
 *  - a file that had targets and now lists none is held back for `emptyHoldMs` (logged and
 *    counted as `held`), and applied only if it is still empty then: a writer that stalls
 *    between truncating and writing does not drop every series.
 */
export class StaticFileSource {
  readonly #opts: StaticFileSourceOptions;
  readonly #settleMs: number;
  readonly #emptyHoldMs: number;
  readonly #maxTargets: number;
  /** Signature and hash of the version applied, or of the bad version already reported. */
  #seenSignature: string | undefined;
  #appliedHash: string | undefined;
  #badHash: string | undefined;
  #appliedCount = 0;
  #emptySince: number | undefined;
  #problem: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #watcher: FSWatcher | undefined;
  #loading: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(opts: StaticFileSourceOptions) {
    this.#opts = opts;
    this.#settleMs = opts.settleMs ?? 200;
    this.#emptyHoldMs = opts.emptyHoldMs ?? 30_000;
    this.#maxTargets = opts.maxTargets ?? DEFAULT_MAX_FILE_TARGETS;
  }

  /** Why the file's list is not what is probed (an emptied file held back), or undefined. */
  problem(): string | undefined {
    return this.#problem;
  }

  /** Loads once; throws with a one-line message if the first load fails, so that start-up names the problem. */
  async start(): Promise<void> {
    let read: { text: string; sig: string } | undefined;
    for (let attempt = 0; read === undefined; attempt++) {
      read = await this.#stableRead();
      if (read === undefined && attempt >= 20) throw new Error(`targets file ${this.#opts.path} kept changing while it was read`);
    }
    this.#apply(read.text, read.sig, true);
    this.#timer = setInterval(() => this.reload(), this.#opts.pollIntervalMs);
    this.#timer.unref();
    try {
      this.#watcher = watch(dirname(this.#opts.path), { persistent: false }, (_event, file) => {
        if (file === null || file === basename(this.#opts.path) || file.startsWith('..')) this.reload();
      });
      this.#watcher.on('error', () => this.#watcher?.close());
    } catch {
      // Polling alone still works.
    }
  }

  /** Re-reads the file now; concurrent calls coalesce into one more read. */
  reload(): void {
    if (this.#stopped) return;
    if (this.#loading) {
      this.#again = true;
      return;
    }
    this.#loading = this.#load()
      .catch((err: Error) => this.#fail(err.message, undefined))
      .finally(() => {
        this.#loading = undefined;
        if (this.#again) {
          this.#again = false;
          this.reload();
        }
      });
  }

  /** Reads the file, checking its size before and while reading. Throws a one-line message. */
  async #read(): Promise<{ text: string; sig: string }> {
    const path = this.#opts.path;
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw new Error(`targets file ${path} cannot be read: ${(err as Error).message}`);
    }
    try {
      const st = await fh.stat();
      const format = targetsFileFormat(path);
      // Without an extension the format is known only from the content: the larger bound.
      const limit = extname(path) === '' ? MAX_TARGETS_FILE_BYTES.json : MAX_TARGETS_FILE_BYTES[format];
      const tooLarge = (size: number) =>
        new Error(`targets file ${path} is ${size} bytes, above the limit of ${limit} bytes for ${extname(path) === '' ? 'a targets file' : format.toUpperCase()}`);
      if (st.size > limit) throw tooLarge(st.size);
      // The file may grow between the stat and the read: never read past the limit.
      const buf = Buffer.alloc(Math.min(limit + 1, Math.max(st.size, 4096)));
      let n = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n === buf.length) {
          if (n > limit) throw tooLarge(n);
          break;
        }
      }
      const text = buf.toString('utf8', 0, n);
      if (format === 'yaml' && extname(path) === '' && n > MAX_TARGETS_FILE_BYTES.yaml && targetsFileFormat(path, text) === 'yaml') {
        throw new Error(`targets file ${path} is ${n} bytes of YAML, above the limit of ${MAX_TARGETS_FILE_BYTES.yaml} bytes for YAML`);
      }
      return { text, sig: signature(st) };
    } finally {
      await fh.close();
    }
  }

  /** Two reads `settleMs` apart; undefined while they disagree (the file is being written). */
  async #stableRead(): Promise<{ text: string; sig: string } | undefined> {
    const a = await this.#read();
    await sleep(this.#settleMs);
    const b = await this.#read();
    return a.text === b.text && a.sig === b.sig ? b : undefined;
  }

  async #load(): Promise<void> {
    let st: Stats;
    try {
      st = await stat(this.#opts.path);
    } catch (err) {
      this.#fail(`targets file ${this.#opts.path} cannot be read: ${(err as Error).message}`, undefined);
      return;
    }
    // Unchanged since the version applied or already reported: nothing is read.
    if (signature(st) === this.#seenSignature && this.#emptySince === undefined) return;
    let read: { text: string; sig: string } | undefined;
    try {
      read = await this.#stableRead();
    } catch (err) {
      // Too large or unreadable: reported once until the file changes.
      this.#fail((err as Error).message, signature(st));
      return;
    }
    if (read === undefined) {
      this.#retryIn(this.#settleMs);
      return;
    }
    const hash = createHash('sha256').update(read.text).digest('hex');
    if (hash === this.#appliedHash || hash === this.#badHash) {
      this.#seenSignature = read.sig;
      if (hash === this.#appliedHash) this.#endHold();
      return;
    }
    let parsed: ReturnType<typeof parseTargetsFile>;
    try {
      parsed = parseTargetsFile(read.text, this.#opts.path, this.#maxTargets);
    } catch (err) {
      this.#badHash = hash;
      this.#fail((err as Error).message, read.sig);
      return;
    }
    if (parsed.targets.length === 0 && this.#appliedCount > 0) {
      const now = Date.now();
      if (this.#emptySince === undefined) {
        this.#emptySince = now;
        this.#problem = `targets file ${this.#opts.path} lists no targets; held back for ${this.#emptyHoldMs / 1000} s, still probing its last ${this.#appliedCount}`;
        this.#opts.log.warn('targets file lists no targets; keeping the last good targets until it has stayed empty', {
          path: this.#opts.path, hold_ms: this.#emptyHoldMs, kept: this.#appliedCount,
        });
        this.#opts.onReload?.('held');
      }
      if (now - this.#emptySince < this.#emptyHoldMs) {
        this.#retryIn(this.#emptySince + this.#emptyHoldMs - now);
        return;
      }
    }
    this.#apply(read.text, read.sig, false, parsed, hash);
  }

  #retryIn(ms: number): void {
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => this.reload(), ms);
    this.#retry.unref();
  }

  #endHold(): void {
    if (this.#emptySince === undefined) return;
    this.#emptySince = undefined;
    this.#problem = undefined;
    clearTimeout(this.#retry);
    this.#opts.log.info('targets file lists its targets again', { path: this.#opts.path, targets: this.#appliedCount });
  }

  /** `sig`: the version that failed, not read again until it changes; undefined retries at every poll. */
  #fail(error: string, sig: string | undefined): void {
    this.#seenSignature = sig;
    this.#opts.log.error('targets file reload failed; keeping the last good targets', { path: this.#opts.path, error });
    this.#opts.onReload?.('failure');
  }

  #apply(text: string, sig: string, first: boolean, parsed = parseTargetsFile(text, this.#opts.path, this.#maxTargets), hash = createHash('sha256').update(text).digest('hex')): void {
    const { targets, rejected, capped } = parsed;
    for (const r of rejected) this.#opts.log.warn('skipping target', { path: this.#opts.path, entry: r.entry, reason: r.reason });
    if (capped > 0) {
      this.#opts.log.error(`targets file lists ${targets.length + capped} targets, more than the ${this.#maxTargets} one agent probes; the last ${capped} are not probed`, {
        path: this.#opts.path, max_targets: this.#maxTargets, refused: capped,
      });
    }
    this.#seenSignature = sig;
    this.#appliedHash = hash;
    this.#badHash = undefined;
    this.#emptySince = undefined;
    clearTimeout(this.#retry);
    this.#appliedCount = targets.length;
    // The cap is told by the log line above, not by readiness: the agent still probes what
    // it can, and an unready DaemonSet would stall a rollout for it.
    this.#problem = undefined;
    this.#opts.log.info(first ? 'targets loaded' : 'targets reloaded', { path: this.#opts.path, targets: targets.length, skipped: rejected.length });
    if (targets.length === 0) this.#opts.log.warn('targets file lists no targets', { path: this.#opts.path });
    this.#opts.onTargets(targets);
    if (!first) this.#opts.onReload?.('success');
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
    this.#watcher?.close();
  }
}
