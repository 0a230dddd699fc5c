/**
 * Which nodes an agent probes.
 *
 * `full`: every other node. At N nodes that is N·(N−1) pairs: fine for a few hundred nodes,
 * 25 million pairs at 5,000.
 *
 * `sampled`: consistent-hash rings, one per zone. Every node has a position on a 32-bit
 * ring (a hash of its name). A source probes
 *   - in its own zone: every node if the zone has at most `zonePeers` others, else the
 *     `zonePeers` nodes that follow it on the zone's ring;
 *   - in each other zone: the `crossZonePeers` nodes that follow its own position on that
 *     zone's ring;
 *   - at most `budget` peers in all (cross-zone peers are cut first, then zones are dropped
 *     by a hash of (source, zone), so different sources keep different zones).
 * Why rings: in-zone in-degree is exactly min(zonePeers, zone size − 1), so every node is
 * probed by enough others to tell "this node is bad" from "that source is bad"; a node joining
 * or leaving changes the peers of only the few nodes just before it on each ring; and
 * nothing rotates, so series churn is what membership churn forces and no more.
 *
 * Everything is a pure function of the node list, so every agent computes the same
 * assignment, and an agent can count who probes it without asking anyone.
 */
export type MeshMode = 'full' | 'sampled';

export interface MeshSettings {
  /** 'auto' = full below `fullBelow` nodes, sampled from there. */
  mode: MeshMode | 'auto';
  fullBelow: number;
  zonePeers: number;
  crossZonePeers: number;
  budget: number;
}

export interface MeshNode {
  name: string;
  zone: string;
}

/** FNV-1a then a murmur3-style finaliser: fast, and well spread for similar names. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

interface Ring {
  /** Ascending positions, and the names at them. */
  pos: Uint32Array;
  names: string[];
}

/**
 * A precomputed view of the cluster: one ring per zone. Build it once per membership change
 * and ask it about any source.
 */
export class Mesh {
  readonly mode: MeshMode;
  readonly settings: MeshSettings;
  readonly #rings = new Map<string, Ring>();
  readonly #zoneOf = new Map<string, string>();
  readonly #position = new Map<string, number>();
  readonly #all: string[];

  constructor(nodes: readonly MeshNode[], settings: MeshSettings) {
    this.settings = settings;
    this.mode = settings.mode === 'auto' ? (nodes.length < settings.fullBelow ? 'full' : 'sampled') : settings.mode;
    this.#all = nodes.map((n) => n.name);
    const byZone = new Map<string, { p: number; name: string }[]>();
    for (const n of nodes) {
      const p = hash32(n.name);
      this.#position.set(n.name, p);
      this.#zoneOf.set(n.name, n.zone);
      const list = byZone.get(n.zone) ?? byZone.set(n.zone, []).get(n.zone)!;
      list.push({ p, name: n.name });
    }
    for (const [zone, list] of byZone) {
      list.sort((a, b) => a.p - b.p || (a.name < b.name ? -1 : 1));
      this.#rings.set(zone, { pos: Uint32Array.from(list, (x) => x.p), names: list.map((x) => x.name) });
    }
  }

  get zones(): string[] {
    return [...this.#rings.keys()].sort();
  }

  /** The peers `source` probes. */
  peersOf(source: string): string[] {
    if (!this.#position.has(source)) return [];
    if (this.mode === 'full') return this.#all.filter((n) => n !== source);
    const s = this.settings;
    const zone = this.#zoneOf.get(source)!;
    const p = this.#position.get(source)!;
    const out = this.#successors(this.#rings.get(zone)!, p, s.zonePeers, source);
    const room = Math.max(0, s.budget - out.length);
    const others = this.zones.filter((z) => z !== zone);
    if (others.length === 0 || room === 0) return out.slice(0, s.budget);
    let perZone = Math.min(s.crossZonePeers, Math.floor(room / others.length));
    let chosenZones = others;
    if (perZone === 0) {
      // Not even one peer per other zone fits: a per-source choice of zones, one peer each.
      perZone = 1;
      chosenZones = [...others].sort((a, b) => hash32(`${source}\u0000${a}`) - hash32(`${source}\u0000${b}`)).slice(0, room);
    }
    for (const z of chosenZones) out.push(...this.#successors(this.#rings.get(z)!, p, perZone, source));
    return out;
  }

  /** How many sources probe `dest` (its in-degree), from the same assignment. */
  probersOf(dest: string): number {
    if (!this.#position.has(dest)) return 0;
    // Every other node: no need to build N peer lists of N (25 million names at 5,000 nodes).
    if (this.mode === 'full') return this.#all.length - 1;
    let n = 0;
    for (const src of this.#all) if (src !== dest && this.peersOf(src).includes(dest)) n++;
    return n;
  }

  /** The `k` names after position `p` on `ring`, skipping `exclude`; all of them if the ring is small. */
  #successors(ring: Ring, p: number, k: number, exclude: string): string[] {
    const n = ring.names.length;
    const out: string[] = [];
    if (n === 0 || k <= 0) return out;
    // First index with pos > p (binary search), then walk forward with wrap-around.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ring.pos[mid]! <= p) lo = mid + 1;
      else hi = mid;
    }
    for (let i = 0; i < n && out.length < k; i++) {
      const name = ring.names[(lo + i) % n]!;
      if (name !== exclude) out.push(name);
    }
    return out;
  }
}
