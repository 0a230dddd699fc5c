/**
 * The list/watch loop driven by a fake API server: the paths that otherwise run only against
 * a real kube-apiserver (test/discovery.test.ts). Timers and Date are node:test's mock, so
 * minutes of backoff and watchdog take no time and do not depend on a quiet machine.
 */
import { afterEach, beforeEach, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException, type V1Node, type V1NodeList } from '@kubernetes/client-node';
import type { LogFields, Logger } from '../log.ts';
import { NodeWatcher, type ListNodes, type NodeWatcherOptions, type WatchNodes, type WatchQuery } from './node-watcher.ts';

interface Line {
  level: string;
  msg: string;
  fields: LogFields | undefined;
}

function recordingLog(lines: Line[]): Logger {
  const at = (level: string) => (msg: string, fields?: LogFields) => void lines.push({ level, msg, fields });
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), enabled: () => true, child: () => log };
  return log;
}

function v1(name: string, rv: string, address = '10.0.0.1'): V1Node {
  return {
    metadata: { name, uid: `uid-${name}`, resourceVersion: rv },
    status: { addresses: [{ type: 'InternalIP', address }], conditions: [{ type: 'Ready', status: 'True' }] },
  } as V1Node;
}

function page(items: V1Node[], rv: string, cont = ''): V1NodeList {
  return { items, metadata: { resourceVersion: rv, _continue: cont } } as V1NodeList;
}

/** One watch request as the fake API server sees it. */
class Stream {
  readonly query: WatchQuery;
  aborted = false;
  readonly #onEvent: (type: string, obj: unknown) => void;
  readonly #done: (err: unknown) => void;

  constructor(query: WatchQuery, onEvent: (type: string, obj: unknown) => void, done: (err: unknown) => void) {
    this.query = query;
    this.#onEvent = onEvent;
    this.#done = done;
  }

  send(type: string, obj: unknown): void {
    if (!this.aborted) this.#onEvent(type, obj);
  }

  /** The stream ends: null when the server closes it, an error when it breaks. */
  end(err: unknown): void {
    this.#done(err);
  }

  /** Like client-node: cutting an open stream ends it with an AbortError. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    queueMicrotask(() => this.#done(new DOMException('This operation was aborted', 'AbortError')));
  }
}

/**
 * A scripted API server. `lists` answers list requests in order (the last one repeats);
 * a watch connects at once unless `refuseWatch` says how it fails before its response.
 */
class FakeApi {
  readonly listRequests: Parameters<ListNodes>[0][] = [];
  readonly streams: Stream[] = [];
  lists: ((request: Parameters<ListNodes>[0]) => Promise<V1NodeList>)[] = [];
  refuseWatch: unknown = undefined;

  readonly list: ListNodes = (request) => {
    this.listRequests.push(request);
    const answer = this.lists.length > 1 ? this.lists.shift()! : this.lists[0]!;
    return answer(request);
  };

  readonly watch: WatchNodes = async (query, onEvent, done) => {
    const s = new Stream(query, onEvent, done);
    this.streams.push(s);
    if (this.refuseWatch !== undefined) done(this.refuseWatch);
    return s;
  };

  get lastStream(): Stream {
    return this.streams.at(-1)!;
  }
}

/** Lets the loop's promise chains run to their next timer (all of them are microtasks). */
const settle = () => new Promise<void>((r) => setImmediate(r));

async function advance(ms: number): Promise<void> {
  mock.timers.tick(ms);
  await settle();
}

interface Harness {
  watcher: NodeWatcher;
  lines: Line[];
  restarts: string[];
  /** Node names at every onNodes call, copied then (the watcher hands over its live map). */
  snapshots: string[][];
}

let running: NodeWatcher | undefined;

function start(api: FakeApi, opts: Partial<NodeWatcherOptions> = {}): Harness {
  const lines: Line[] = [];
  const restarts: string[] = [];
  const snapshots: string[][] = [];
  const watcher = new NodeWatcher({
    list: api.list,
    watch: api.watch,
    labelSelector: '',
    log: recordingLog(lines),
    onNodes: (nodes) => snapshots.push([...nodes.keys()].sort()),
    onRestart: (reason) => restarts.push(reason),
    ...opts,
  });
  running = watcher;
  watcher.start();
  return { watcher, lines, restarts, snapshots };
}

beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 }));
afterEach(() => {
  running?.stop();
  running = undefined;
  mock.timers.reset();
});

test('paging: every page is asked for with the previous _continue, and the nodes arrive once, all together', async () => {
  const api = new FakeApi();
  api.lists = [
    async () => page([v1('a', '3'), v1('b', '4')], '5', 'token-1'),
    async () => page([v1('c', '6'), v1('d', '6')], '6', 'token-2'),
    async () => page([v1('e', '7')], '7'),
  ];
  const h = start(api, { labelSelector: 'pool=x', pageSize: 2 });
  await settle();
  assert.deepEqual(api.listRequests.map((r) => [r.labelSelector, r.limit, r._continue]), [
    ['pool=x', 2, undefined],
    ['pool=x', 2, 'token-1'],
    ['pool=x', 2, 'token-2'],
  ]);
  assert.deepEqual(h.snapshots, [['a', 'b', 'c', 'd', 'e']], 'one call after the last page, not one per page');
  assert.equal(h.watcher.synced, true);
  assert.deepEqual(h.lines.find((l) => l.msg === 'nodes listed')?.fields, { nodes: 5, resource_version: '7' });
  // The watch starts from the last page's resourceVersion, with the same selector.
  assert.deepEqual(api.lastStream.query, { labelSelector: 'pool=x', resourceVersion: '7', allowWatchBookmarks: true, timeoutSeconds: 300 });
});

test('410 Gone: re-listed at once, and the new list replaces the cache in one step', async () => {
  const api = new FakeApi();
  api.lists = [async () => page([v1('a', '8'), v1('b', '9')], '10')];
  const h = start(api, { pageSize: 1 });
  await settle();
  const first = api.lastStream;
  first.send('MODIFIED', v1('b', '11', '10.0.0.2'));
  assert.deepEqual(h.snapshots, [['a', 'b'], ['a', 'b']]);

  // b is deleted while the watch is away; the re-list comes in two pages.
  let cacheDuringList: string[] | undefined;
  api.lists = [
    async () => page([v1('a', '19')], '20', 'more'),
    async () => {
      cacheDuringList = [...h.watcher.nodes.keys()].sort();
      return page([v1('c', '20')], '20');
    },
  ];
  first.send('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 11 (15)' });
  await settle();

  assert.equal(first.aborted, true, 'the expired stream is cut');
  assert.deepEqual(h.restarts, ['expired']);
  assert.ok(h.lines.some((l) => l.level === 'info' && l.msg === 'node watch expired (410 Gone); re-listing'));
  assert.equal(api.listRequests.length, 3, 'the first list, then two pages at once, with no backoff');
  assert.deepEqual(cacheDuringList, ['a', 'b'], 'the old cache stays whole while the new list is read');
  // a was never dropped: the only change seen downstream is b leaving and c arriving together.
  assert.deepEqual(h.snapshots, [['a', 'b'], ['a', 'b'], ['a', 'c']]);
  assert.equal(api.lastStream.query.resourceVersion, '20', 'the new watch starts from the new list');
  assert.equal(h.watcher.failing, false);
});

test('watchdog: a watch silent for 90 s is cut and resumed from the last resourceVersion, without a re-list', async () => {
  const api = new FakeApi();
  api.lists = [async () => page([v1('a', '1')], '2')];
  const h = start(api);
  await settle();
  const first = api.lastStream;
  // Data, then bookmarks, keep it alive well past the watchdog's 90 s.
  first.send('MODIFIED', v1('a', '3', '10.0.0.9'));
  let lastRv = '';
  for (let t = 0; t < 180_000; t += 30_000) {
    await advance(30_000);
    lastRv = String(4 + t / 30_000);
    first.send('BOOKMARK', { metadata: { resourceVersion: lastRv } });
  }
  assert.equal(first.aborted, false, 'a watch that gets bookmarks is left alone');

  // Then silence: cut after more than 90 s (checked every 10 s), not before.
  await advance(90_000);
  assert.equal(first.aborted, false);
  await advance(10_000);
  assert.equal(first.aborted, true);
  const warn = h.lines.find((l) => l.msg === 'node watch went quiet; restarting it');
  assert.equal(warn?.level, 'warn');
  assert.ok((warn.fields?.['quiet_ms'] as number) > 90_000);
  await settle();
  assert.equal(api.streams.length, 2);
  assert.equal(api.lastStream.query.resourceVersion, lastRv);
  assert.equal(api.listRequests.length, 1, 'no re-list');
  assert.deepEqual(h.restarts, [], 'a quiet watch resumed is not a restart of the loop');
  assert.deepEqual(h.snapshots, [['a'], ['a']]);
});

test('backoff: grows twofold with jitter in [base/2, base), capped at 60 s, and starts over after contact', async () => {
  const api = new FakeApi();
  api.lists = [async () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' }))];
  // Jitter factors 0.5 + r/2: 0.5, 0.75 and 0.95 in turn.
  const rs = [0, 0.5, 0.9];
  let i = 0;
  const h = start(api, { random: () => rs[i++ % rs.length]! });
  await settle();
  const bases = [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000];
  for (const [k, base] of bases.entries()) {
    const delay = base * (0.5 + rs[k % rs.length]! / 2);
    const n = api.listRequests.length;
    await advance(delay - 1);
    assert.equal(api.listRequests.length, n, `retry ${k + 1} not before ${delay} ms`);
    await advance(1);
    assert.equal(api.listRequests.length, n + 1, `retry ${k + 1} after ${delay} ms`);
  }
  assert.equal(h.watcher.failing, true);
  assert.equal(h.watcher.synced, false);
  assert.deepEqual(new Set(h.restarts), new Set(['unreachable']));
  assert.equal(h.restarts.length, bases.length + 1);
  const warnings = h.lines.filter((l) => l.msg === 'node list/watch failed: API server unreachable; keeping the last known nodes and retrying');
  assert.ok(warnings.length >= 2 && warnings.length <= 6, `about one warning a minute, not one per retry: ${warnings.length}`);

  // The API answers: the list succeeds, then the watch breaks. The next wait is 1 s again.
  api.lists = [async () => page([v1('a', '1')], '2')];
  const next = i % rs.length;
  await advance(60_000 * (0.5 + rs[(i - 1) % rs.length]! / 2));
  assert.equal(h.watcher.synced, true);
  assert.equal(h.watcher.failing, false);
  assert.equal(h.watcher.lastContactMs, Date.now());
  api.lastStream.end(new Error('socket hang up'));
  await settle();
  assert.equal(h.watcher.failing, true);
  const delay = 1000 * (0.5 + rs[next]! / 2);
  const watches = api.streams.length;
  await advance(delay - 1);
  assert.equal(api.streams.length, watches);
  await advance(1);
  assert.equal(api.streams.length, watches + 1, `after contact the backoff starts over at ${delay} ms`);
  assert.equal(api.listRequests.length, bases.length + 2, 'resumed by a watch from the known resourceVersion, not a list');
});

test('RBAC: 403 on the list gives one line naming the permission, and the forbidden reason at every retry', async () => {
  const api = new FakeApi();
  // What CoreV1Api.listNode throws for a ServiceAccount without the ClusterRole.
  api.lists = [async () => Promise.reject(new ApiException(403, 'Forbidden', { kind: 'Status', reason: 'Forbidden', code: 403 }, {}))];
  const h = start(api, { random: () => 0 });
  await settle();
  for (let t = 0; t < 30_000; t += 500) await advance(500);
  assert.ok(h.restarts.length >= 4, `retried: ${h.restarts.length}`);
  assert.deepEqual(new Set(h.restarts), new Set(['forbidden']));
  const rbac = h.lines.filter((l) => l.msg.includes('RBAC'));
  assert.equal(rbac.length, 1, 'one line, not one per retry');
  assert.equal(rbac[0]!.level, 'warn');
  assert.equal(rbac[0]!.msg, 'RBAC: the agent may not list/watch nodes (HTTP 403); its ServiceAccount needs a ClusterRole with get, list, watch on nodes; keeping the last known nodes and retrying');
  assert.equal(h.watcher.synced, false);
});

test('RBAC: 401 when the watch starts gives the unauthorized reason and the same line', async () => {
  const api = new FakeApi();
  api.lists = [async () => page([v1('a', '1')], '2')];
  // What client-node's Watch reports for a response other than 200.
  api.refuseWatch = Object.assign(new Error('Unauthorized'), { statusCode: 401 });
  const h = start(api, { random: () => 0 });
  await settle();
  await advance(500);
  await advance(1000);
  assert.deepEqual(h.restarts, ['unauthorized', 'unauthorized', 'unauthorized']);
  assert.equal(api.listRequests.length, 1, 'the known nodes are kept; only the watch is retried');
  const rbac = h.lines.filter((l) => l.msg.includes('RBAC'));
  assert.equal(rbac.length, 1);
  assert.match(rbac[0]!.msg, /^RBAC: the agent may not list\/watch nodes \(HTTP 401\); its ServiceAccount needs a ClusterRole with get, list, watch on nodes/);
  assert.deepEqual(h.snapshots, [['a']], 'an RBAC error does not empty the nodes');
});
