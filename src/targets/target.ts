import { isIP } from 'node:net';

/** Where a target came from. Kept as a label so that node and external series can be told apart. */
export type TargetKind = 'node' | 'external';

/**
 * One destination to probe. Series identity is (name, address): the other fields become
 * labels as first seen and a later change to them does not start a new series.
 */
export interface Target {
  readonly name: string;
  readonly address: string;
  readonly family: 4 | 6;
  readonly kind: TargetKind;
  /** The node's topology.kubernetes.io/zone, if any. */
  readonly zone?: string;
}

/**
 * Canonical IP literal for `raw`, or undefined. Only what this returns ever reaches fping's
 * argv: no names (fping would resolve them), no zone ids, no leading dashes.
 */
export function canonicalAddress(raw: string): { address: string; family: 4 | 6 } | undefined {
  const s = raw.trim();
  const family = isIP(s);
  if (family === 4) return { address: s, family: 4 };
  if (family === 6) {
    if (s.includes('%')) return undefined;
    // The URL parser writes IPv6 in its RFC 5952 form, so "::0001" and "::1" are one target.
    const host = new URL(`http://[${s}]/`).hostname;
    return { address: host.slice(1, -1), family: 6 };
  }
  return undefined;
}

/**
 * Why `address` (canonical) can never answer a unicast ICMP echo, or undefined. fping sends
 * to such an address without a word and gets no verdict back (or the kernel refuses the send),
 * so it would sit at 0 probes sent for ever: rejected with the reason instead. A subnet's
 * directed broadcast cannot be told from a host without the mask, and is not caught here.
 */
export function notUnicast(address: string, family: 4 | 6): string | undefined {
  if (family === 4) {
    const first = Number(address.slice(0, address.indexOf('.')));
    if (address === '255.255.255.255') return 'the limited broadcast address';
    if (first >= 224 && first <= 239) return 'a multicast address';
    if (first >= 240) return 'in 240.0.0.0/4, reserved and never routed';
    if (first === 0) return 'in 0.0.0.0/8, "this network", not a host';
    return undefined;
  }
  if (address === '::') return 'the unspecified address';
  if (address.startsWith('ff')) return 'a multicast address';
  // The canonical (RFC 5952) form of ::ffff:a.b.c.d as the URL parser writes it: ::ffff:x:y.
  if (/^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(address)) return 'an IPv4-mapped IPv6 address (probe the IPv4 address instead)';
  return undefined;
}

export interface Rejected {
  entry: string;
  reason: string;
}

/**
 * Validates raw entries into targets, deduplicated by address (the first wins). Entries that
 * cannot be probed are returned in `rejected` so the caller can warn and keep the rest.
 */
export function buildTargets(entries: readonly { name?: unknown; address?: unknown; kind?: unknown }[], defaultKind: TargetKind): {
  targets: Target[];
  rejected: Rejected[];
} {
  const targets: Target[] = [];
  const rejected: Rejected[] = [];
  const seen = new Set<string>();
  for (const e of entries) {
    const label = JSON.stringify(e);
    if (typeof e.address !== 'string') {
      rejected.push({ entry: label, reason: 'address is missing' });
      continue;
    }
    const canon = canonicalAddress(e.address);
    if (!canon) {
      rejected.push({ entry: label, reason: `address ${JSON.stringify(e.address)} is not an IPv4 or IPv6 literal` });
      continue;
    }
    const why = notUnicast(canon.address, canon.family);
    if (why !== undefined) {
      rejected.push({ entry: label, reason: `address ${canon.address} is ${why}: it can never answer a unicast echo` });
      continue;
    }
    const name = typeof e.name === 'string' && e.name.trim() !== '' ? e.name.trim() : canon.address;
    if (name.length > 253) {
      rejected.push({ entry: label, reason: 'name is longer than 253 characters' });
      continue;
    }
    let kind = defaultKind;
    if (e.kind !== undefined) {
      if (e.kind !== 'node' && e.kind !== 'external') {
        rejected.push({ entry: label, reason: `kind ${JSON.stringify(e.kind)} is not node or external` });
        continue;
      }
      kind = e.kind;
    }
    if (seen.has(canon.address)) {
      rejected.push({ entry: label, reason: `address ${canon.address} is listed twice; the first entry is kept` });
      continue;
    }
    seen.add(canon.address);
    targets.push({ name, address: canon.address, family: canon.family, kind });
  }
  return { targets, rejected };
}

/** With no file and no cluster, the agent probes loopback so that the first run shows metrics. */
export const EMBEDDED_TARGETS: readonly Target[] = [
  { name: 'localhost-v4', address: '127.0.0.1', family: 4, kind: 'external' },
  { name: 'localhost-v6', address: '::1', family: 6, kind: 'external' },
];

export function targetKey(t: Target): string {
  return `${t.name}\u0000${t.address}`;
}
