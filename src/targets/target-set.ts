import type { Target } from './target.ts';

/**
 * Merges the targets of several sources (Kubernetes nodes, the targets file) into the one set
 * that is probed, deduplicated by address (the first source listed wins), and applies it
 * after a short quiet period so that a burst of watch events restarts fping once.
 */
export class TargetSet {
  readonly #order: readonly string[];
  readonly #sources = new Map<string, readonly Target[]>();
  readonly #apply: (targets: Target[]) => void;
  readonly #debounceMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(order: readonly string[], apply: (targets: Target[]) => void, debounceMs: number) {
    this.#order = order;
    this.#apply = apply;
    this.#debounceMs = debounceMs;
  }

  /** Replaces one source's targets; `now` applies at once (first load), otherwise after the quiet period. */
  set(source: string, targets: readonly Target[], now = false): void {
    if (!this.#order.includes(source)) throw new Error(`unknown target source ${source}`);
    this.#sources.set(source, targets);
    clearTimeout(this.#timer);
    if (now) this.flush();
    else this.#timer = setTimeout(() => this.flush(), this.#debounceMs);
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#apply(this.merged());
  }

  merged(): Target[] {
    const seen = new Set<string>();
    const out: Target[] = [];
    for (const source of this.#order) {
      for (const t of this.#sources.get(source) ?? []) {
        if (seen.has(t.address)) continue;
        seen.add(t.address);
        out.push(t);
      }
    }
    return out;
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}
