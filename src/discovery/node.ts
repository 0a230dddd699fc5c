/**
 * What the agent keeps of a Node object, and the policy that turns nodes into targets.
 *
 * A real V1Node is tens of KB (images, annotations, managed fields). The discovery state keeps
 * only the handful of fields below, so 5,000 nodes stay a few MB.
 */
import type { V1Node } from '@kubernetes/client-node';
import { canonicalAddress, type Target } from '../targets/target.ts';

export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const REGION_LABEL = 'topology.kubernetes.io/region';

export interface NodeAddress {
  type: string;
  address: string;
}

export interface CompactNode {
  name: string;
  uid: string;
  zone: string;
  region: string;
  addresses: NodeAddress[];
  ready: boolean;
  unschedulable: boolean;
}

/** Keeps only what probing and labelling need. Strings are copied so the big object can be collected. */
export function compactNode(node: V1Node): CompactNode | undefined {
  const name = node.metadata?.name;
  if (!name) return undefined;
  const labels = node.metadata?.labels ?? {};
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  return {
    name: copy(name),
    uid: copy(node.metadata?.uid ?? ''),
    zone: copy(labels[ZONE_LABEL] ?? ''),
    region: copy(labels[REGION_LABEL] ?? ''),
    addresses: (node.status?.addresses ?? []).map((a) => ({ type: copy(a.type), address: copy(a.address) })),
    ready,
    unschedulable: node.spec?.unschedulable === true,
  };
}

/**
 * A slice of a large JSON string shares the parent's memory in V8; a copy does not keep the
 * whole list response alive.
 */
function copy(s: string): string {
  return s.length === 0 ? '' : (' ' + s).slice(1);
}

export type IpFamily = 'ipv4' | 'ipv6';

export interface NodePolicy {
  /** This agent's node: never probed. */
  selfName: string;
  /** Address types in order of preference, e.g. InternalIP then ExternalIP. */
  addressTypes: readonly string[];
  /** One target per enabled family that the node has an address for. */
  ipFamilies: readonly IpFamily[];
  skipNotReady: boolean;
  skipCordoned: boolean;
}

export interface Skipped {
  node: string;
  reason: string;
}

/**
 * The targets a set of nodes gives under `policy`: per node and enabled family, the first
 * address of the most preferred type. Nodes with no usable address are returned in `skipped`.
 */
export function targetsFromNodes(nodes: Iterable<CompactNode>, policy: NodePolicy): { targets: Target[]; skipped: Skipped[] } {
  const targets: Target[] = [];
  const skipped: Skipped[] = [];
  for (const n of nodes) {
    if (n.name === policy.selfName) continue;
    if (policy.skipNotReady && !n.ready) continue;
    if (policy.skipCordoned && n.unschedulable) continue;
    let found = 0;
    const invalid: string[] = [];
    for (const family of policy.ipFamilies) {
      const want = family === 'ipv4' ? 4 : 6;
      let chosen: string | undefined;
      for (const type of policy.addressTypes) {
        for (const a of n.addresses) {
          if (a.type !== type) continue;
          const canon = canonicalAddress(a.address);
          if (!canon) {
            invalid.push(`${a.type} ${JSON.stringify(a.address)}`);
            continue;
          }
          if (canon.family === want) {
            chosen = canon.address;
            break;
          }
        }
        if (chosen) break;
      }
      if (chosen) {
        targets.push({ name: n.name, address: chosen, family: want, kind: 'node', zone: n.zone });
        found++;
      }
    }
    if (found === 0) {
      const why = invalid.length > 0 ? `invalid addresses ${invalid.join(', ')}` : `no ${policy.addressTypes.join('/')} address of family ${policy.ipFamilies.join('/')}`;
      skipped.push({ node: n.name, reason: why });
    }
  }
  return { targets, skipped };
}
