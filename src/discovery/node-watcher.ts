/**
 * A Node informer that never goes blind: list, then watch from the list's resourceVersion,
 * keeping a compact cache of what probing needs.
 *
 * Built on @kubernetes/client-node's KubeConfig (in-cluster or kubeconfig auth), its typed
 * CoreV1Api list and its Watch stream, but not on its makeInformer, for two reasons measured
 * or read in client-node 2.0.1: makeInformer caches whole V1Node objects (tens of KB each,
 * hundreds of MB at 5,000 nodes), and it stops for good on most errors. Here:
 *  - every error restarts the loop with exponential backoff and jitter, for ever;
 *  - 410 Gone (the watch's resourceVersion was compacted away) re-lists at once, and the new
 *    list replaces the cache in one step, so nodes that still exist are never dropped;
 *  - a watch that goes quiet is cut by client-node after 30 s without data and by our own
 *    watchdog, and resumed from the last resourceVersion (bookmarks keep it fresh);
 *  - when the API server is unreachable, the last known nodes stay: the target set is never
 *    emptied because the API is away;
 *  - 401/403 give one clear log line naming the permission needed.
 *
 * The list and watch calls come in as functions (client-node's by default), so that the loop
 * can be driven by a fake in unit tests.
 */
import { CoreV1Api, Watch, type KubeConfig, type V1Node, type V1NodeList } from '@kubernetes/client-node';
import { RateLimitedLog, type Logger } from '../log.ts';
import { compactNode, type CompactNode } from './node.ts';

/** One page of the node list: CoreV1Api.listNode's request and answer. */
export type ListNodes = (request: { labelSelector?: string; limit: number; _continue?: string }) => Promise<V1NodeList>;

// A type, not an interface: client-node takes the query as a Record.
export type WatchQuery = {
  labelSelector?: string;
  resourceVersion?: string;
  allowWatchBookmarks: boolean;
  timeoutSeconds: number;
};

/**
 * A node watch with client-node's Watch.watch contract: `done` is called once, when the
 * stream ends or fails; the promise resolves, with a handle that cuts the stream, once the
 * response has started (or after `done` if it failed before).
 */
export type WatchNodes = (
  query: WatchQuery,
  onEvent: (type: string, obj: unknown) => void,
  done: (err: unknown) => void,
) => Promise<{ abort(): void }>;

export interface NodeWatcherOptions {
  /** Where client-node's list and watch connect; not needed when both `list` and `watch` are given. */
  kc?: KubeConfig;
  list?: ListNodes;
  watch?: WatchNodes;
  labelSelector: string;
  log: Logger;
  /** Called with the whole current set after the first list and after every change. */
  onNodes: (nodes: ReadonlyMap<string, CompactNode>) => void;
  /** Called for every restart of the list/watch loop, with a short reason. */
  onRestart?: (reason: string) => void;
  /** A watch with no data (events or bookmarks) for this long is restarted. */
  watchdogMs?: number;
  pageSize?: number;
  /** Timeout of one list page request. */
  requestTimeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** The jitter's source, uniform in [0, 1). */
  random?: () => number;
}

class Gone extends Error {}

type Phase = 'idle' | 'listing' | 'watching' | 'backoff' | 'stopped';

export class NodeWatcher {
  readonly #opts: Required<Omit<NodeWatcherOptions, 'onRestart' | 'kc' | 'list' | 'watch'>> & Pick<NodeWatcherOptions, 'onRestart'>;
  readonly #listPage: ListNodes;
  readonly #watchNodes: WatchNodes;
  #nodes = new Map<string, CompactNode>();
  #rv: string | undefined;
  #phase: Phase = 'idle';
  #controller: { abort(): void } | undefined;
  #wake: (() => void) | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #lastDataMs = 0;
  #failures = 0;
  readonly #errorLog = new RateLimitedLog(60_000);
  /** Wall-clock ms of the last successful list or watch data; 0 before the first. */
  lastContactMs = 0;
  /** True once the first list has completed. */
  synced = false;

  constructor(opts: NodeWatcherOptions) {
    this.#opts = {
      watchdogMs: 90_000,
      pageSize: 500,
      requestTimeoutMs: 30_000,
      backoffMinMs: 1000,
      backoffMaxMs: 60_000,
      random: Math.random,
      ...opts,
    };
    let { list, watch } = opts;
    if (!list || !watch) {
      if (!opts.kc) throw new Error('NodeWatcher: kc is needed unless both list and watch are given');
      const api = clientNodeApi(opts.kc);
      list ??= api.list;
      watch ??= api.watch;
    }
    this.#listPage = list;
    this.#watchNodes = watch;
  }

  get nodes(): ReadonlyMap<string, CompactNode> {
    return this.#nodes;
  }

  /** True while the loop is failing: the API has not answered for a while. */
  get failing(): boolean {
    return this.#failures > 0;
  }

  start(): void {
    this.#watchdog = setInterval(() => {
      if (this.#phase === 'watching' && Date.now() - this.#lastDataMs > this.#opts.watchdogMs) {
        this.#opts.log.warn('node watch went quiet; restarting it', { quiet_ms: Date.now() - this.#lastDataMs });
        this.#controller?.abort();
      }
    }, Math.min(10_000, this.#opts.watchdogMs / 3));
    this.#watchdog.unref();
    void this.#run();
  }

  stop(): void {
    this.#phase = 'stopped';
    clearInterval(this.#watchdog);
    this.#controller?.abort();
    this.#wake?.();
  }

  /** Read through a getter so that narrowing of #phase inside the loop does not hide stop(). */
  get #stopped(): boolean {
    return this.#phase === 'stopped';
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        if (this.#rv === undefined) await this.#list();
        await this.#watchOnce();
        this.#failures = 0;
      } catch (err) {
        if (this.#stopped) return;
        if (err instanceof Gone) {
          this.#rv = undefined;
          this.#opts.onRestart?.('expired');
          this.#opts.log.info('node watch expired (410 Gone); re-listing');
          continue;
        }
        this.#failures++;
        const reason = this.#report(err);
        this.#opts.onRestart?.(reason);
        const base = Math.min(this.#opts.backoffMaxMs, this.#opts.backoffMinMs * 2 ** Math.min(this.#failures - 1, 20));
        await this.#sleep(base * (0.5 + this.#opts.random() / 2));
      }
    }
  }

  async #list(): Promise<void> {
    this.#phase = 'listing';
    const next = new Map<string, CompactNode>();
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page: V1NodeList = await withTimeout(
        this.#listPage({ labelSelector: this.#opts.labelSelector || undefined, limit: this.#opts.pageSize, _continue: cont }),
        this.#opts.requestTimeoutMs,
        'node list',
      );
      for (const item of page.items) {
        const c = compactNode(item);
        if (c) next.set(c.name, c);
      }
      cont = page.metadata?._continue || undefined;
      rv = page.metadata?.resourceVersion;
    } while (cont !== undefined && !this.#stopped);
    this.#contact();
    // One swap: nodes present before and after keep their identity downstream.
    this.#nodes = next;
    this.#rv = rv;
    this.synced = true;
    this.#opts.log.info('nodes listed', { nodes: next.size, resource_version: rv });
    this.#opts.onNodes(this.#nodes);
  }

  #watchOnce(): Promise<void> {
    this.#phase = 'watching';
    this.#lastDataMs = Date.now();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let connected = false;
      const finish = (err: unknown) => {
        if (settled) return;
        settled = true;
        this.#controller = undefined;
        if (isTimeout(err) && !connected) reject(new Error('connecting to the API server timed out'));
        else if (err === null || err === undefined || isTimeout(err) || isAbort(err)) resolve(); // quiet or cut: resume from rv
        else reject(err);
      };
      this.#watchNodes(
        { labelSelector: this.#opts.labelSelector || undefined, resourceVersion: this.#rv, allowWatchBookmarks: true, timeoutSeconds: 300 },
        (type: string, obj: unknown) => {
          this.#lastDataMs = Date.now();
          try {
            this.#onEvent(type, obj);
          } catch (err) {
            this.#controller?.abort();
            finish(err);
          }
        },
        finish,
      ).then((c) => {
        // Resolves once the response has started (HTTP 200), unless it already failed.
        if (settled) {
          c.abort();
          return;
        }
        connected = true;
        this.#controller = c;
        this.#contact();
      }, finish);
    });
  }

  #onEvent(type: string, obj: unknown): void {
    if (type === 'ERROR') {
      const status = obj as { code?: number; reason?: string; message?: string };
      if (status.code === 410 || status.reason === 'Expired' || status.reason === 'Gone') throw new Gone(status.message ?? 'expired');
      throw Object.assign(new Error(status.message ?? 'watch error'), { statusCode: status.code });
    }
    const node = obj as V1Node;
    const rv = node.metadata?.resourceVersion;
    if (rv) this.#rv = rv;
    this.#contact();
    if (type === 'BOOKMARK') return;
    if (type === 'DELETED') {
      const name = node.metadata?.name;
      if (name && this.#nodes.delete(name)) this.#opts.onNodes(this.#nodes);
      return;
    }
    if (type === 'ADDED' || type === 'MODIFIED') {
      const c = compactNode(node);
      if (!c) return;
      const old = this.#nodes.get(c.name);
      this.#nodes.set(c.name, c);
      if (!old || !sameForProbing(old, c)) this.#opts.onNodes(this.#nodes);
    }
  }

  #contact(): void {
    this.lastContactMs = Date.now();
    this.#failures = 0;
  }

  /** Logs an error once a minute at most; returns the short reason for the restart counter. */
  #report(err: unknown): string {
    const code = statusOf(err);
    const message = err instanceof Error ? err.message : String(err);
    let reason: string;
    let text: string;
    if (code === 401 || code === 403) {
      reason = code === 401 ? 'unauthorized' : 'forbidden';
      text = `RBAC: the agent may not list/watch nodes (HTTP ${code}); its ServiceAccount needs a ClusterRole with get, list, watch on nodes`;
    } else if (code !== undefined) {
      reason = `http_${code}`;
      text = `node list/watch failed with HTTP ${code}`;
    } else {
      reason = 'unreachable';
      text = 'node list/watch failed: API server unreachable';
    }
    this.#errorLog.maybe((suppressed) =>
      this.#opts.log.warn(`${text}; keeping the last known nodes and retrying`, { error: message.slice(0, 300), nodes: this.#nodes.size, failures: this.#failures, suppressed }),
    );
    return reason;
  }

  #sleep(ms: number): Promise<void> {
    this.#phase = 'backoff';
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

/** client-node's typed CoreV1Api list and its Watch stream, authenticated by `kc`. */
function clientNodeApi(kc: KubeConfig): { list: ListNodes; watch: WatchNodes } {
  const api = kc.makeApiClient(CoreV1Api);
  const watch = new Watch(kc);
  return {
    list: (request) => api.listNode(request),
    watch: (query, onEvent, done) => watch.watch('/api/v1/nodes', query, onEvent, done),
  };
}

/** Fields whose change can change the targets; status heartbeats do not. */
function sameForProbing(a: CompactNode, b: CompactNode): boolean {
  return (
    a.ready === b.ready &&
    a.unschedulable === b.unschedulable &&
    a.zone === b.zone &&
    a.addresses.length === b.addresses.length &&
    a.addresses.every((x, i) => x.type === b.addresses[i]!.type && x.address === b.addresses[i]!.address)
  );
}

function statusOf(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown; code?: unknown };
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code; // client-node ApiException
  return undefined;
}

function isTimeout(err: unknown): boolean {
  return (err as { name?: string })?.name === 'TimeoutError';
}

function isAbort(err: unknown): boolean {
  return (err as { name?: string })?.name === 'AbortError';
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
