/**
 * Discovery memory benchmark against a real kube-apiserver: N Node objects of realistic size
 * (labels, annotations, 40 images, conditions: about 10 KB of JSON each), then the memory
 * retained by the discovery state once it has synced, for our NodeWatcher and, for
 * comparison, client-node's makeInformer on the same nodes.
 *
 *   node --expose-gc bench/discovery.ts [--nodes 5000]
 *
 * Retained memory = heap used (+ array buffers) after a full GC with the watcher synced,
 * minus the same before it started. Each variant runs in a fresh child process.
 */
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { KubeConfig, CoreV1Api, makeInformer, type V1Node } from '@kubernetes/client-node';
import { NodeWatcher } from '../src/discovery/node-watcher.ts';
import { createLogger } from '../src/log.ts';
import { findKubeBinaries, startKube } from '../test/support/kube.ts';
import { createNodes } from '../test/support/nodes.ts';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '5000' }, variant: { type: 'string' }, kubeconfig: { type: 'string' } } });

const gc = (globalThis as { gc?: () => void }).gc;
function retained(): number {
  for (let i = 0; i < 3; i++) gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function measure(variant: string, kubeconfig: string, n: number): Promise<{ mib: number; syncMs: number }> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  // Load the code paths first so that their compiled code is not counted as state.
  await kc.makeApiClient(CoreV1Api).listNode({ limit: 1 });
  const base = retained();
  const t0 = performance.now();
  let count = () => 0;
  let stop = () => {};
  if (variant === 'NodeWatcher') {
    const w = new NodeWatcher({ kc, labelSelector: '', log: createLogger({ level: 'error' }), onNodes: () => {} });
    w.start();
    count = () => w.nodes.size;
    stop = () => w.stop();
  } else {
    const api = kc.makeApiClient(CoreV1Api);
    const inf = makeInformer<V1Node>(kc, '/api/v1/nodes', () => api.listNode());
    await inf.start();
    count = () => inf.list().length;
    stop = () => void inf.stop();
  }
  while (count() < n) await new Promise((r) => setTimeout(r, 50));
  const syncMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 500));
  const mib = (retained() - base) / 2 ** 20;
  stop();
  return { mib, syncMs };
}

if (values.variant) {
  // Child: one measurement, printed as JSON.
  const r = await measure(values.variant, values.kubeconfig!, Number(values.nodes));
  console.log(JSON.stringify(r));
  process.exit(0);
}

const n = Number(values.nodes);
const bins = findKubeBinaries();
if ('missing' in bins) throw new Error(`kube binaries missing: ${bins.missing}; run bash scripts/tools.sh etcd kube-apiserver`);
const k = await startKube(bins);
try {
  const t0 = performance.now();
  await createNodes(k, Array.from({ length: n }, (_, i) => ({
    name: `node-${String(i).padStart(5, '0')}`,
    addresses: [{ type: 'InternalIP', address: `127.2.${Math.floor(i / 250)}.${(i % 250) + 1}` }],
    zone: `zone-${'abc'[i % 3]}`,
    realistic: true,
  })));
  const createS = (performance.now() - t0) / 1000;
  const sample = await k.requestOk('GET', '/api/v1/nodes/node-00000');
  const nodeKiB = JSON.stringify(sample).length / 1024;
  const rows: string[][] = [];
  for (const variant of ['NodeWatcher', 'makeInformer']) {
    const out = execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--variant', variant, '--kubeconfig', k.kubeconfigPath, '--nodes', String(n)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    const r = JSON.parse(out.trim().split('\n').pop()!) as { mib: number; syncMs: number };
    rows.push([variant === 'NodeWatcher' ? 'NodeWatcher (ours, compact cache)' : 'client-node makeInformer (full V1Node cache)', String(n), r.mib.toFixed(1), (r.syncMs / 1000).toFixed(1)]);
  }
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; kube-apiserver ${(await k.requestOk('GET', '/version')).gitVersion}`);
  console.log(`${n} Node objects of ${nodeKiB.toFixed(1)} KiB JSON each, created in ${createS.toFixed(0)} s`);
  console.log('');
  console.log('| discovery | nodes | retained MiB | time to sync s |');
  console.log('|---|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
} finally {
  await k.stop();
}
