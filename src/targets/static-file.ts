import { readFile, stat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { dirname, basename } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Logger } from '../log.ts';
import { buildTargets, type Target } from './target.ts';

/**
 * Parses a targets file. Accepted shapes (JSON or YAML):
 *  - a list of {name, address, kind?};
 *  - the 2019 recipe's nodes.json: a list of {name, ipAddress};
 *  - a mapping {targets: [...]} of either.
 * Throws with a one-line message for a file that is not a list; bad entries are returned
 * as rejected so that one typo does not stop the others being probed.
 */
export function parseTargetsFile(text: string, path: string) {
  let doc: unknown;
  try {
    // JSON first: the YAML parser builds a document tree that costs tens of MB at 5,000 entries.
    doc = /^\s*[[{]/.test(text) ? parseJsonOrYaml(text) : parseYaml(text);
  } catch (err) {
    throw new Error(`targets file ${path} is not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) doc = [];
  if (typeof doc === 'object' && !Array.isArray(doc) && doc !== null && 'targets' in doc) doc = (doc as { targets: unknown }).targets;
  if (!Array.isArray(doc)) throw new Error(`targets file ${path} must hold a list of {name, address}`);
  const entries = doc.map((e: unknown) => {
    if (typeof e !== 'object' || e === null) return { address: e };
    const o = e as Record<string, unknown>;
    return { name: o['name'], address: o['address'] ?? o['ipAddress'], kind: o['kind'] };
  });
  return buildTargets(entries, 'node');
}

function parseJsonOrYaml(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return parseYaml(text); // YAML flow style such as [{name: a, address: 10.0.0.1}]
  }
}

export interface StaticFileSourceOptions {
  path: string;
  pollIntervalMs: number;
  log: Logger;
  onTargets: (targets: Target[]) => void;
  /** Called after each load attempt, successful or not. */
  onReload?: (ok: boolean) => void;
}

/**
 * Watches a targets file. A file that fails to parse keeps the last good list (nothing
 * measured is lost because of a typo). Directory events catch the symlink swap that
 * Kubernetes uses to update a mounted ConfigMap; a poll covers filesystems without events.
 */
export class StaticFileSource {
  readonly #opts: StaticFileSourceOptions;
  #lastText: string | undefined;
  #lastBadText: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #watcher: FSWatcher | undefined;
  #loading: Promise<void> | undefined;
  #again = false;

  constructor(opts: StaticFileSourceOptions) {
    this.#opts = opts;
  }

  /** Loads once; throws if the first load fails, so that start-up names the problem. */
  async start(): Promise<void> {
    const text = await readFile(this.#opts.path, 'utf8').catch((err: Error) => {
      throw new Error(`targets file ${this.#opts.path} cannot be read: ${err.message}`);
    });
    this.#apply(text, true);
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
    if (this.#loading) {
      this.#again = true;
      return;
    }
    this.#loading = this.#load().finally(() => {
      this.#loading = undefined;
      if (this.#again) {
        this.#again = false;
        this.reload();
      }
    });
  }

  async #load(): Promise<void> {
    let text: string;
    try {
      await stat(this.#opts.path);
      text = await readFile(this.#opts.path, 'utf8');
    } catch (err) {
      this.#fail(`targets file ${this.#opts.path} cannot be read: ${(err as Error).message}`, undefined);
      return;
    }
    // A broken file is reported once, not at every poll, until its content changes.
    if (text === this.#lastText || text === this.#lastBadText) return;
    try {
      this.#apply(text, false);
    } catch (err) {
      this.#fail((err as Error).message, text);
    }
  }

  #fail(error: string, text: string | undefined): void {
    this.#lastBadText = text;
    this.#opts.log.error('targets file reload failed; keeping the last good targets', { path: this.#opts.path, error });
    this.#opts.onReload?.(false);
  }

  #apply(text: string, first: boolean): void {
    const { targets, rejected } = parseTargetsFile(text, this.#opts.path);
    for (const r of rejected) this.#opts.log.warn('skipping target', { path: this.#opts.path, entry: r.entry, reason: r.reason });
    this.#lastText = text;
    this.#opts.log.info(first ? 'targets loaded' : 'targets reloaded', { path: this.#opts.path, targets: targets.length, skipped: rejected.length });
    this.#opts.onTargets(targets);
    if (!first) this.#opts.onReload?.(true);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#watcher?.close();
  }
}
