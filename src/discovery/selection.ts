/**
 * Which nodes this agent probes: the mesh assignment first, then the address policy.
 *
 * A pure function of the node list and this agent's own node, so that every agent given the
 * same list makes the same choice, and so that it can be tested without a cluster.
 */
import type { Target } from '../targets/target.ts';
import { Mesh, type MeshMode, type MeshSettings } from '../mesh/mesh.ts';
import { targetsFromNodes, type CompactNode, type NodePolicy, type Skipped } from './node.ts';

export interface MeshState {
  mode: MeshMode;
  /** Nodes this agent probes. */
  peers: number;
  /** Agents that probe this node, by the same deterministic assignment. */
  probers: number;
}

/** This agent's node: its name ('' when NODE_NAME is unset) and its zone as read at start-up. */
export interface OwnNode {
  name: string;
  zone: string;
}

export interface Selection {
  targets: Target[];
  /** Nodes the mesh assigned but that have no usable address, with why. */
  skipped: Skipped[];
  mesh: MeshState;
}

/**
 * The targets of the agent on `own` among `nodes` (the watcher's cache, in its order), under
 * the address `policy` and the `mesh` settings.
 */
export function selectTargets(
  nodes: ReadonlyMap<string, CompactNode>,
  own: OwnNode,
  policy: Omit<NodePolicy, 'selfName'>,
  mesh: MeshSettings,
): Selection {
  // Our own node takes part even if the selector leaves it out.
  const members = [...nodes.values()].map((n) => ({ name: n.name, zone: n.zone }));
  if (own.name !== '' && !nodes.has(own.name)) members.push({ name: own.name, zone: own.zone });
  const m = new Mesh(members, mesh);
  let eligible: Iterable<CompactNode> = nodes.values();
  if (m.mode === 'sampled') {
    const peers = new Set(m.peersOf(own.name));
    eligible = [...nodes.values()].filter((n) => peers.has(n.name));
  }
  const { targets, skipped } = targetsFromNodes(eligible, { ...policy, selfName: own.name });
  return {
    targets,
    skipped,
    mesh: { mode: m.mode, peers: new Set(targets.map((t) => t.name)).size, probers: m.probersOf(own.name) },
  };
}
