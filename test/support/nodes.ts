/**
 * Node objects as a real cluster has them (labels, annotations, images, conditions), created
 * through the API of the test kube-apiserver. No kubelet: the status is set at creation and
 * changed through the /status subresource.
 */
import type { Kube } from './kube.ts';

export interface NodeSpec {
  name: string;
  addresses: { type: string; address: string }[];
  zone?: string;
  ready?: boolean;
  unschedulable?: boolean;
  /** Add the bulk a kubelet-managed node carries (about 10 KB of JSON). */
  realistic?: boolean;
}

export function nodeObject(s: NodeSpec): Record<string, unknown> {
  const labels: Record<string, string> = { 'kubernetes.io/hostname': s.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64' };
  if (s.zone) {
    labels['topology.kubernetes.io/zone'] = s.zone;
    labels['topology.kubernetes.io/region'] = s.zone.replace(/-[a-z]$/, '');
  }
  const annotations: Record<string, string> = {};
  const images: { names: string[]; sizeBytes: number }[] = [];
  if (s.realistic) {
    for (let i = 0; i < 20; i++) labels[`example.com/label-${i}`] = `value-${i}-${s.name}`;
    annotations['node.alpha.kubernetes.io/ttl'] = '0';
    annotations['volumes.kubernetes.io/controller-managed-attach-detach'] = 'true';
    annotations['csi.volume.kubernetes.io/nodeid'] = JSON.stringify({ 'ebs.csi.aws.com': `i-${s.name}` });
    annotations['example.com/config'] = 'x'.repeat(1500);
    for (let i = 0; i < 40; i++) images.push({ names: [`registry.example.com/team-${i % 7}/image-${i}@sha256:${'ab'.repeat(32)}`, `registry.example.com/team-${i % 7}/image-${i}:v1.${i}`], sizeBytes: 10_000_000 + i });
  }
  const now = new Date().toISOString();
  const cond = (type: string, status: string) => ({ type, status, lastHeartbeatTime: now, lastTransitionTime: now, reason: `Kubelet${type}`, message: `kubelet reports ${type}=${status}` });
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: s.name, labels, annotations },
    spec: { unschedulable: s.unschedulable ?? false, podCIDR: '10.244.0.0/24' },
    status: {
      addresses: [...s.addresses, { type: 'Hostname', address: s.name }],
      conditions: [cond('MemoryPressure', 'False'), cond('DiskPressure', 'False'), cond('PIDPressure', 'False'), cond('Ready', s.ready === false ? 'False' : 'True')],
      capacity: { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '100Gi' },
      allocatable: { cpu: '7800m', memory: '30Gi', pods: '110', 'ephemeral-storage': '95Gi' },
      nodeInfo: { kubeletVersion: 'v1.37.2', containerRuntimeVersion: 'containerd://2.1.0', osImage: 'Debian GNU/Linux 12', kernelVersion: '6.1.0', architecture: 'amd64', operatingSystem: 'linux', machineID: s.name, systemUUID: s.name, bootID: s.name, kubeProxyVersion: '' },
      images,
    },
  };
}

export async function createNode(k: Kube, s: NodeSpec): Promise<void> {
  await k.requestOk('POST', '/api/v1/nodes', nodeObject(s));
}

/** Replaces a node's addresses through the status subresource, as a kubelet would. */
export async function setNodeAddresses(k: Kube, name: string, addresses: { type: string; address: string }[]): Promise<void> {
  await k.requestOk('PATCH', `/api/v1/nodes/${name}/status`, { status: { addresses: [...addresses, { type: 'Hostname', address: name }] } }, { contentType: 'application/strategic-merge-patch+json' });
}

export async function deleteNode(k: Kube, name: string): Promise<void> {
  await k.requestOk('DELETE', `/api/v1/nodes/${name}`);
}

/** Creates many nodes with bounded concurrency. */
export async function createNodes(k: Kube, specs: NodeSpec[], concurrency = 16): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < specs.length) await createNode(k, specs[next++]!);
  }));
}
