/**
 * Synthetic clusters for the alert rules, and what must fire in each.
 *
 * Each scenario describes its inputs (nodes, the loss and RTT of every pair minute by minute,
 * the state of each agent) and the complete expected outcome at given times: for every alert
 * of the rule file, the exact set of label sets that must be firing (an alert not listed must
 * not fire at all). `generate.ts` renders them into promtool unit tests (test/rules/*.test.yaml);
 * the expectations are written by hand here, not computed, so they are an independent oracle.
 * A simulator of the localisation logic can replay the same scenarios.
 *
 * Conventions of the synthetic data: one probe per second per pair (60 per minute), samples
 * every minute; `loss(src, dst, m)` is the fraction of the probes lost in the minute ending
 * at minute m; a pair that loses everything in a minute is in an outage that grows by 60 s.
 */

import { wilson } from '../../sim/evidence.ts';

export const CLUSTER = 'lab';
/** One probe per second per pair. */
export const PROBES_PER_MINUTE = 60;
export const JOB = 'kube-node-ping';

export type AlertName =
  | 'KubeNodePingZoneUplinkDegraded'
  | 'KubeNodePingNodeUnreachable'
  | 'KubeNodePingNodeLossy'
  | 'KubeNodePingExternalUnreachable'
  | 'KubeNodePingSourceDegraded'
  | 'KubeNodePingPacketLoss'
  | 'KubeNodePingHighRTT'
  | 'KubeNodePingAgentDown'
  | 'KubeNodePingAgentMissing'
  | 'KubeNodePingAgentsAbsent'
  | 'KubeNodePingFpingRestarting'
  | 'KubeNodePingNotProbing'
  | 'KubeNodePingExportFailing'
  | 'KubeNodePingFpingParseErrors'
  | 'KubeNodePingProbingBehind'
  | 'KubeNodePingTargetsReloadFailing'
  | 'KubeNodePingEventLoopStalled'
  | 'KubeNodePingNodeFlapping'
  | 'KubeNodePingNodeDrizzling'
  | 'KubeNodePingSourceDrizzling'
  | 'KubeNodePingZoneUplinkLossy'
  | 'KubeNodePingLinkDrizzling';

/** The severity each alert must carry. */
export const SEVERITY: Record<AlertName, string> = {
  KubeNodePingZoneUplinkDegraded: 'critical',
  KubeNodePingNodeUnreachable: 'critical',
  KubeNodePingNodeLossy: 'warning',
  KubeNodePingExternalUnreachable: 'warning',
  KubeNodePingSourceDegraded: 'warning',
  KubeNodePingPacketLoss: 'warning',
  KubeNodePingHighRTT: 'warning',
  KubeNodePingAgentDown: 'warning',
  KubeNodePingAgentMissing: 'warning',
  KubeNodePingAgentsAbsent: 'warning',
  KubeNodePingFpingRestarting: 'warning',
  KubeNodePingNotProbing: 'warning',
  KubeNodePingExportFailing: 'warning',
  KubeNodePingFpingParseErrors: 'info',
  KubeNodePingProbingBehind: 'warning',
  KubeNodePingTargetsReloadFailing: 'warning',
  KubeNodePingEventLoopStalled: 'info',
  KubeNodePingNodeFlapping: 'warning',
  KubeNodePingNodeDrizzling: 'warning',
  KubeNodePingSourceDrizzling: 'warning',
  KubeNodePingZoneUplinkLossy: 'warning',
  KubeNodePingLinkDrizzling: 'warning',
};

export interface AgentState {
  /** From this minute on the agent sends nothing (its series go stale). Default: never. */
  goneAt?: number;
  /** How a gone agent looks to Prometheus: scraped and failing (`up` 0), or not there at all (no `up`). */
  gone?: 'down' | 'missing';
  fpingRestartsPerMinute?: number;
  fpingProcesses?: number;
  exportFailuresPerMinute?: number;
  parseErrorsPerMinute?: number;
  reloadFailuresPerMinute?: number;
  eventLoopDelaySeconds?: number;
  /** Share of the probes due that get no verdict (fping cannot send them, or is stopped or starved). */
  unansweredShare?: number;
}

export interface ExpectedAlert {
  labels: Record<string, string>;
  /** The alert's value, where its annotations print it. */
  value?: number;
  /** Values of the recording rules its annotations query, by rule name. */
  queries?: Record<string, number>;
}

export interface ExpectedSample {
  labels: Record<string, string>;
  value: number;
}

export interface Check {
  /** Minutes from the start. */
  at: number;
  /** Every alert of the rule file is checked: the ones not listed here must not fire. */
  firing: Partial<Record<AlertName, ExpectedAlert[]>>;
  /** PromQL expressions (recording rules) and their exact results (promtool compares floats exactly: round() where needed). */
  exprs?: { expr: string; samples: ExpectedSample[] }[];
}

export interface Scenario {
  name: string;
  /** Which promtool file it goes to: test/rules/<file>.test.yaml. */
  file: 'localisation' | 'rtt' | 'agents';
  description: string;
  /** Nodes: each runs an agent (unless told otherwise) that probes every other node and every external. */
  nodes: string[];
  externals?: string[];
  /** Node → zone: the source's cloud_availability_zone and the destination's destination_zone. */
  zones?: Record<string, string>;
  minutes: number;
  /** Fraction of the probes from src to dst lost in the minute ending at minute m (default 0). */
  loss?: (src: string, dst: string, m: number) => number;
  /** Outages started in the minute ending at minute m (default: one when a minute loses everything after one that did not). */
  outagesStarted?: (src: string, dst: string, m: number) => number;
  /** Seconds; when given, RTT histograms are generated too. */
  rtt?: (src: string, dst: string, m: number) => number;
  /** RTT histograms as --rtt-histogram per-zone makes them: one per source and destination zone. */
  rttPerZone?: boolean;
  agents?: Record<string, AgentState>;
  /** Series written as is. */
  extraSeries?: { series: string; values: string }[];
  checks: Check[];
}

// ---- label helpers for the expectations ------------------------------------------------

export const pair = (src: string, dst: string, kind = 'node') => ({
  k8s_cluster_name: CLUSTER,
  k8s_node_name: src,
  destination_name: dst,
  destination_kind: kind,
});
export const destination = (dst: string, kind = 'node') => ({ k8s_cluster_name: CLUSTER, destination_name: dst, destination_kind: kind });
export const source = (src: string) => ({ k8s_cluster_name: CLUSTER, k8s_node_name: src });
export const scrapeTarget = (node: string) => ({ job: JOB, instance: `${node}:9464` });
export const blamed = (node: string, reason: 'unreachable' | 'lossy' | 'source_degraded') => ({ k8s_cluster_name: CLUSTER, node, reason });
export const zone = (z: string) => ({ k8s_cluster_name: CLUSTER, zone: z });
export const suspected = (node: string, reason: 'flapping' | 'lossy' | 'source_lossy') => ({ k8s_cluster_name: CLUSTER, node, reason });

/**
 * What the evidence alerts' annotations query, from counts worked out by hand in each scenario:
 * the pooled probes sent and lost (pass 2) give the estimate and its Wilson interval.
 */
function evidenceQueries(level: 'destination' | 'source', peers: number, lost: number, sent: number, baseline: number, since: number, seeing = peers): Record<string, number> {
  const w = wilson(lost, sent);
  return {
    [level === 'destination' ? 'kube_node_ping_destination:sources:slow' : 'kube_node_ping_source:destinations:slow']: peers,
    [level === 'destination' ? 'kube_node_ping_destination:sources_above_tolerated:slow' : 'kube_node_ping_source:destinations_above_tolerated:slow']: seeing,
    [`kube_node_ping_${level}:loss_ratio:slow`]: lost / sent,
    [`kube_node_ping_${level}:loss_lower:slow`]: w.lower,
    [`kube_node_ping_${level}:loss_upper:slow`]: w.upper,
    'kube_node_ping_cluster:loss_baseline:slow': baseline,
    'kube_node_ping_node:suspected_since:slow': since,
  };
}

const FIVE = ['a', 'b', 'c', 'd', 'e'];
const SIX = ['a', 'b', 'c', 'd', 'e', 'f'];
/** Three zones of two nodes. */
const ZONES: Record<string, string> = { a: 'z1', b: 'z1', c: 'z2', d: 'z2', e: 'z3', f: 'z3' };
const inZ3 = (n: string) => ZONES[n] === 'z3';
const others = (all: string[], n: string) => all.filter((x) => x !== n);

// ---- the scenarios -----------------------------------------------------------------------

export const SCENARIOS: Scenario[] = [
  {
    name: 'healthy cluster',
    file: 'localisation',
    description: 'Five nodes, no loss: nothing fires, every recording rule has its series.',
    nodes: FIVE,
    minutes: 20,
    checks: [
      {
        at: 15,
        firing: {},
        exprs: [
          { expr: 'kube_node_ping_pair:loss_ratio:rate5m{k8s_node_name="a", destination_name="b"}', samples: [{ labels: pair('a', 'b'), value: 0 }] },
          { expr: 'kube_node_ping_destination:sources:count{destination_name="c"}', samples: [{ labels: destination('c'), value: 4 }] },
          { expr: 'kube_node_ping_destination:sources_lossy:count{destination_name="c"}', samples: [{ labels: destination('c'), value: 0 }] },
          { expr: 'kube_node_ping_destination:sources_down:count{destination_name="c"}', samples: [{ labels: destination('c'), value: 0 }] },
          { expr: 'kube_node_ping_source:destinations:count{k8s_node_name="a"}', samples: [{ labels: source('a'), value: 4 }] },
          { expr: 'kube_node_ping_source:destinations_lossy:count{k8s_node_name="a"}', samples: [{ labels: source('a'), value: 0 }] },
          { expr: 'kube_node_ping_node:blamed', samples: [] },
        ],
      },
    ],
  },
  {
    name: 'one lossy link',
    file: 'localisation',
    description: 'a → c loses 10 %, every other pair (c → a included) is clean: the pair alert names the link, no node is blamed.',
    nodes: FIVE,
    minutes: 20,
    loss: (s, d) => (s === 'a' && d === 'c' ? 0.1 : 0),
    checks: [
      { at: 4, firing: {} }, // pending: loss alerts wait 5 minutes
      {
        at: 15,
        firing: { KubeNodePingPacketLoss: [{ labels: pair('a', 'c'), value: 0.1 }] },
        exprs: [
          { expr: 'round(kube_node_ping_pair:loss_ratio:rate5m{k8s_node_name="a", destination_name="c"}, 0.000001)', samples: [{ labels: pair('a', 'c'), value: 0.1 }] },
          { expr: 'kube_node_ping_destination:sources_lossy:count{destination_name="c"}', samples: [{ labels: destination('c'), value: 1 }] },
          { expr: 'kube_node_ping_source:destinations_lossy:count{k8s_node_name="a"}', samples: [{ labels: source('a'), value: 1 }] },
          { expr: 'kube_node_ping_source:destinations_lossy_unexplained:count{k8s_node_name="a"}', samples: [{ labels: source('a'), value: 1 }] },
          { expr: 'kube_node_ping_node:blamed', samples: [] },
        ],
      },
    ],
  },
  {
    name: 'a node dies',
    file: 'localisation',
    description:
      'Node c (and its agent) dies at minute 5: the four other nodes see every probe to it lost. The node is blamed as unreachable within ' +
      'three minutes; none of the four lossy pairs raises a pair alert (not even briefly), no healthy source is blamed, and the missing ' +
      'agent is reported by the scrape (up = 0) but not as "agent missing" (the dead node explains it).',
    nodes: FIVE,
    minutes: 20,
    loss: (_s, d, m) => (d === 'c' && m > 5 ? 1 : 0),
    agents: { c: { goneAt: 6, gone: 'down' } },
    checks: [
      // Minute 6: 1 of 5 minutes lost (20 %), outage 60 s: lossy, not yet down.
      { at: 6, firing: {} },
      // Minute 7: outage 120 s > 60 s from all four sources: unreachable (pending for 1m).
      { at: 7, firing: {}, exprs: [{ expr: 'kube_node_ping_node:blamed', samples: [{ labels: blamed('c', 'unreachable'), value: 1 }] }] },
      { at: 8, firing: { KubeNodePingNodeUnreachable: [{ labels: destination('c'), value: 1 }] } },
      {
        at: 15,
        firing: {
          KubeNodePingNodeUnreachable: [{ labels: destination('c'), value: 1 }],
          KubeNodePingAgentDown: [{ labels: scrapeTarget('c') }],
        },
        exprs: [
          { expr: 'kube_node_ping_destination:sources:count{destination_name="c"}', samples: [{ labels: destination('c'), value: 4 }] },
          { expr: 'kube_node_ping_destination:sources_down:count{destination_name="c"}', samples: [{ labels: destination('c'), value: 4 }] },
          { expr: 'kube_node_ping_source:destinations_lossy_unexplained:count{k8s_node_name="a"}', samples: [{ labels: source('a'), value: 0 }] },
          { expr: 'kube_node_ping_node:blamed', samples: [{ labels: blamed('c', 'unreachable'), value: 1 }] },
        ],
      },
    ],
  },
  {
    name: 'a node network breaks, its agent still reports',
    file: 'localisation',
    description:
      'Every probe from and to c is lost, and c\'s agent is still scraped: c is blamed once, as unreachable; the source verdict for c ' +
      '(it sees all its destinations down) is suppressed, and none of the eight lossy pairs raises a pair alert.',
    nodes: FIVE,
    minutes: 20,
    loss: (s, d) => (s === 'c' || d === 'c' ? 1 : 0),
    checks: [
      {
        at: 15,
        firing: { KubeNodePingNodeUnreachable: [{ labels: destination('c'), value: 1 }] },
        exprs: [
          { expr: 'kube_node_ping_source:destinations_lossy_unexplained:count{k8s_node_name="c"}', samples: [{ labels: source('c'), value: 4 }] },
          { expr: 'kube_node_ping_source:degraded', samples: [] },
          { expr: 'kube_node_ping_node:blamed', samples: [{ labels: blamed('c', 'unreachable'), value: 1 }] },
        ],
      },
    ],
  },
  {
    name: 'a bad source',
    file: 'localisation',
    description:
      'Node a loses every probe it sends while every other node reaches a and each other: a is blamed as a degraded source, no ' +
      'destination is blamed (each is down from one source in four), and a\'s four lossy pairs raise no pair alert.',
    nodes: FIVE,
    minutes: 20,
    loss: (s) => (s === 'a' ? 1 : 0),
    checks: [
      {
        at: 15,
        firing: { KubeNodePingSourceDegraded: [{ labels: source('a'), value: 1 }] },
        exprs: [
          { expr: 'kube_node_ping_destination:sources_down:count{destination_name="b"}', samples: [{ labels: destination('b'), value: 1 }] },
          { expr: 'kube_node_ping_destination:unreachable', samples: [] },
          { expr: 'kube_node_ping_node:blamed', samples: [{ labels: blamed('a', 'source_degraded'), value: 1 }] },
        ],
      },
    ],
  },
  {
    name: 'a lossy node',
    file: 'localisation',
    description:
      'Node c loses 20 % in both directions: every source sees c lossy (not down), and c sees every destination lossy. c is blamed ' +
      'once, as a lossy destination; its source verdict is suppressed; no pair alert.',
    nodes: FIVE,
    minutes: 20,
    loss: (s, d) => (s === 'c' || d === 'c' ? 0.2 : 0),
    checks: [
      {
        at: 15,
        firing: { KubeNodePingNodeLossy: [{ labels: destination('c'), value: 1 }] },
        exprs: [
          { expr: 'kube_node_ping_destination:sources_lossy:count{destination_name="c"}', samples: [{ labels: destination('c'), value: 4 }] },
          { expr: 'kube_node_ping_destination:sources_down:count{destination_name="c"}', samples: [{ labels: destination('c'), value: 0 }] },
          { expr: 'kube_node_ping_node:blamed', samples: [{ labels: blamed('c', 'lossy'), value: 1 }] },
        ],
      },
    ],
  },
  {
    name: 'three nodes drop incoming probes',
    file: 'localisation',
    description:
      'Six nodes; c, d and e lose 20 % of the probes sent to them (their own probes are fine). Every healthy node sees three of ' +
      'its five destinations lossy, more than half, yet is not blamed as a degraded source: those losses are explained by the ' +
      'three lossy-destination verdicts.',
    nodes: ['a', 'b', 'c', 'd', 'e', 'f'],
    minutes: 20,
    loss: (_s, d) => (['c', 'd', 'e'].includes(d) ? 0.2 : 0),
    checks: [
      {
        at: 15,
        firing: {
          KubeNodePingNodeLossy: [
            { labels: destination('c'), value: 1 },
            { labels: destination('d'), value: 1 },
            { labels: destination('e'), value: 1 },
          ],
        },
        exprs: [
          { expr: 'kube_node_ping_source:destinations_lossy:count{k8s_node_name="a"}', samples: [{ labels: source('a'), value: 3 }] },
          { expr: 'kube_node_ping_source:destinations_lossy_unexplained:count{k8s_node_name="a"}', samples: [{ labels: source('a'), value: 0 }] },
          { expr: 'kube_node_ping_source:degraded', samples: [] },
        ],
      },
    ],
  },
  {
    name: 'limit: half the nodes lossy both ways',
    file: 'localisation',
    description:
      'The documented limit of majority voting. Six nodes; c, d and e lose 20 % both ways. A healthy node is probed by five ' +
      'sources of which three are bad, so more than half see it lossy: every node is blamed as a lossy destination, the bad ' +
      'ones at 100 %, the healthy ones at 60 % (the value tells them apart). No pair alert.',
    nodes: ['a', 'b', 'c', 'd', 'e', 'f'],
    minutes: 20,
    loss: (s, d) => (['c', 'd', 'e'].includes(s) || ['c', 'd', 'e'].includes(d) ? 0.2 : 0),
    checks: [
      {
        at: 15,
        firing: {
          KubeNodePingNodeLossy: [
            { labels: destination('a'), value: 0.6 },
            { labels: destination('b'), value: 0.6 },
            { labels: destination('c'), value: 1 },
            { labels: destination('d'), value: 1 },
            { labels: destination('e'), value: 1 },
            { labels: destination('f'), value: 0.6 },
          ],
        },
      },
    ],
  },
  {
    name: 'two nodes die',
    file: 'localisation',
    description: 'Six nodes, c and d dead with their agents from the start: both are blamed, nobody else, and no pair alert.',
    nodes: ['a', 'b', 'c', 'd', 'e', 'f'],
    minutes: 20,
    loss: (_s, d) => (d === 'c' || d === 'd' ? 1 : 0),
    agents: { c: { goneAt: 0, gone: 'down' }, d: { goneAt: 0, gone: 'down' } },
    checks: [
      {
        at: 15,
        firing: {
          KubeNodePingNodeUnreachable: [
            { labels: destination('c'), value: 1 },
            { labels: destination('d'), value: 1 },
          ],
          KubeNodePingAgentDown: [{ labels: scrapeTarget('c') }, { labels: scrapeTarget('d') }],
        },
        exprs: [
          { expr: 'kube_node_ping_source:destinations:count{k8s_node_name="a"}', samples: [{ labels: source('a'), value: 5 }] },
          { expr: 'kube_node_ping_source:destinations_lossy:count{k8s_node_name="a"}', samples: [{ labels: source('a'), value: 2 }] },
          { expr: 'kube_node_ping_source:destinations_lossy_unexplained:count{k8s_node_name="a"}', samples: [{ labels: source('a'), value: 0 }] },
        ],
      },
    ],
  },
  {
    name: 'too few sources to localise',
    file: 'localisation',
    description:
      'Three nodes, c dead: only two sources probe c (fewer than 3), so no node is blamed and the two lossy pairs alert on their own; ' +
      'a and b each see one destination of two lossy (not more than half), so neither is a degraded source. Without a dead-node ' +
      'verdict, the missing agent of c is reported too.',
    nodes: ['a', 'b', 'c'],
    minutes: 20,
    loss: (_s, d) => (d === 'c' ? 1 : 0),
    agents: { c: { goneAt: 0, gone: 'down' } },
    checks: [
      {
        at: 15,
        firing: {
          KubeNodePingPacketLoss: [
            { labels: pair('a', 'c'), value: 1 },
            { labels: pair('b', 'c'), value: 1 },
          ],
          KubeNodePingAgentDown: [{ labels: scrapeTarget('c') }],
          KubeNodePingAgentMissing: [{ labels: source('c') }],
        },
      },
    ],
  },
  {
    name: 'too few destinations to blame a source',
    file: 'localisation',
    description:
      'Three nodes; a loses every probe it sends. a has only two destinations (fewer than 3), so it is not blamed as a source ' +
      'and its two lossy pairs alert on their own.',
    nodes: ['a', 'b', 'c'],
    minutes: 20,
    loss: (s) => (s === 'a' ? 1 : 0),
    checks: [
      {
        at: 15,
        firing: {
          KubeNodePingPacketLoss: [
            { labels: pair('a', 'b'), value: 1 },
            { labels: pair('a', 'c'), value: 1 },
          ],
        },
      },
    ],
  },
  {
    name: 'an external destination is down',
    file: 'localisation',
    description: 'Four nodes probe each other and an external address that stops answering: the external destination is blamed, no node, no pair.',
    nodes: ['a', 'b', 'c', 'd'],
    externals: ['dns'],
    minutes: 20,
    loss: (_s, d) => (d === 'dns' ? 1 : 0),
    checks: [
      {
        at: 15,
        firing: { KubeNodePingExternalUnreachable: [{ labels: destination('dns', 'external'), value: 1 }] },
        exprs: [{ expr: 'kube_node_ping_node:blamed', samples: [{ labels: blamed('dns', 'unreachable'), value: 1 }] }],
      },
    ],
  },
  {
    name: 'a zone uplink is lossy',
    file: 'localisation',
    description:
      'Six nodes in three zones; every packet crossing zone z3\'s uplink has a 30 % chance of being lost (in-zone traffic is ' +
      'clean). z3 is blamed alone: z1 and z2 each see one of their two peer zones lossy (not more than half), and once the ' +
      'crossing pairs are explained by the uplink, no node (e and f would otherwise look lossy to most sources) and no pair is.',
    nodes: SIX,
    zones: ZONES,
    minutes: 20,
    loss: (s, d) => (inZ3(s) !== inZ3(d) ? 0.3 : 0),
    checks: [
      {
        at: 15,
        firing: { KubeNodePingZoneUplinkDegraded: [{ labels: zone('z3'), value: 1 }] },
        exprs: [
          { expr: 'kube_node_ping_zone:peers:count', samples: ['z1', 'z2', 'z3'].map((z) => ({ labels: zone(z), value: 2 })) },
          {
            expr: 'kube_node_ping_zone:peers_lossy:count',
            samples: [
              { labels: zone('z1'), value: 1 },
              { labels: zone('z2'), value: 1 },
              { labels: zone('z3'), value: 2 },
            ],
          },
          { expr: 'kube_node_ping_zone:own_loss_ratio:rate5m{zone="z3"}', samples: [{ labels: { ...zone('z3'), peer_zone: 'z3' }, value: 0 }] },
          { expr: 'count(kube_node_ping_pair:zone_explained)', samples: [{ labels: {}, value: 16 }] },
          { expr: 'kube_node_ping_destination:sources:count{destination_name="e"}', samples: [{ labels: destination('e'), value: 1 }] },
          { expr: 'kube_node_ping_node:blamed', samples: [] },
        ],
      },
    ],
  },
  {
    name: 'a lossy zone is not an uplink',
    file: 'localisation',
    description:
      'The same three zones, but z3\'s nodes lose 30 % on everything, in-zone traffic included: with its own loss above 5 % the ' +
      'zone is not blamed, and its two nodes are (lossy destinations).',
    nodes: SIX,
    zones: ZONES,
    minutes: 20,
    loss: (s, d) => (inZ3(s) || inZ3(d) ? 0.3 : 0),
    checks: [
      {
        at: 15,
        firing: {
          KubeNodePingNodeLossy: [
            { labels: destination('e'), value: 1 },
            { labels: destination('f'), value: 1 },
          ],
        },
        exprs: [{ expr: 'kube_node_ping_zone:uplink_blamed', samples: [] }],
      },
    ],
  },
  {
    name: 'one-way loss into a zone is not an uplink',
    file: 'localisation',
    description:
      'Three zones; the nodes of z3 drop every probe that comes from another zone, while their own probes (and in-zone ones) ' +
      'get through. Loss into z3 without loss out of it is not an uplink fault (both ways are needed): e and f are blamed, ' +
      'each unreachable from four of its five sources.',
    nodes: SIX,
    zones: ZONES,
    minutes: 20,
    loss: (s, d) => (inZ3(d) && !inZ3(s) ? 1 : 0),
    checks: [
      {
        at: 15,
        firing: {
          KubeNodePingNodeUnreachable: [
            { labels: destination('e'), value: 0.8 },
            { labels: destination('f'), value: 0.8 },
          ],
        },
        exprs: [{ expr: 'kube_node_ping_zone:uplink_blamed', samples: [] }],
      },
    ],
  },
  {
    name: 'a node dies in a zoned cluster',
    file: 'localisation',
    description:
      'Three zones; node e (zone z3) and its agent are dead. Traffic into z3 is lossy but traffic out of it is not, so no zone ' +
      'is blamed: the dead node is, as without zones.',
    nodes: SIX,
    zones: ZONES,
    minutes: 20,
    loss: (_s, d) => (d === 'e' ? 1 : 0),
    agents: { e: { goneAt: 0, gone: 'down' } },
    checks: [
      {
        at: 15,
        firing: {
          KubeNodePingNodeUnreachable: [{ labels: destination('e'), value: 1 }],
          KubeNodePingAgentDown: [{ labels: scrapeTarget('e') }],
        },
        exprs: [{ expr: 'kube_node_ping_zone:uplink_blamed', samples: [] }],
      },
    ],
  },
  // ---- light faults: the pooled evidence (kube-node-ping-evidence.rules.yaml) --------------
  // Checks at minute 14: the 15-minute window still holds the first sample (0 at minute 0),
  // so Prometheus does not extrapolate and the counts below are exact.
  {
    name: 'a node drizzles',
    file: 'localisation',
    description:
      'Node c loses 2 of every 60 packets each way (3.3 %, under the 5 % of the pair rules): no pair and no 5 % verdict fires, ' +
      'but pooled over its four probers (112 lost of 3,360 after 14 minutes) c is far above the cluster baseline (the median ' +
      'destination, 0.83 %: each other node has c among its probers). It is named once, as a drizzling destination, from ' +
      'minute 5 (the first with 1,000 probes), firing from minute 6; its source side is not named separately.',
    nodes: FIVE,
    minutes: 20,
    loss: (s, d) => (s === 'c' || d === 'c' ? 2 / 60 : 0),
    checks: [
      { at: 4, firing: {}, exprs: [{ expr: 'kube_node_ping_node:suspected:slow', samples: [] }] },
      {
        at: 14,
        firing: { KubeNodePingNodeDrizzling: [{ labels: suspected('c', 'lossy'), value: 112 / 3360, queries: evidenceQueries('destination', 4, 112, 3360, 28 / 3360, 300) }] },
        exprs: [
          { expr: 'kube_node_ping_destination:packets_sent_clean:slow{destination_name="c"}', samples: [{ labels: destination('c'), value: 3360 }] },
          { expr: 'kube_node_ping_destination:packets_lost_clean:slow{destination_name="c"}', samples: [{ labels: destination('c'), value: 112 }] },
          { expr: 'kube_node_ping_source:suspect:slow', samples: [{ labels: source('c'), value: 112 / 3360 }] },
          { expr: 'kube_node_ping_node:suspected_since:slow', samples: [{ labels: suspected('c', 'lossy'), value: 300 }] },
          { expr: 'kube_node_ping_node:blamed', samples: [] },
        ],
      },
    ],
  },
  {
    name: 'a source drizzles',
    file: 'localisation',
    description:
      'Node a loses 2 of every 60 replies to its own probes; everyone else is clean. Each destination sees a little of it ' +
      '(one prober in four), none enough to be suspected; a, pooled over its four destinations, is named as a drizzling source.',
    nodes: FIVE,
    minutes: 20,
    loss: (s) => (s === 'a' ? 2 / 60 : 0),
    checks: [
      {
        at: 14,
        firing: { KubeNodePingSourceDrizzling: [{ labels: suspected('a', 'source_lossy'), value: 112 / 3360, queries: evidenceQueries('source', 4, 112, 3360, 28 / 3360, 300) }] },
        exprs: [{ expr: 'kube_node_ping_destination:suspect:slow', samples: [] }],
      },
    ],
  },
  {
    name: 'a node and a source drizzle at once',
    file: 'localisation',
    description:
      'Six nodes: c loses 2 of 60 packets each way, and a loses 2 of 60 of the replies to its own probes (a → c loses 4). In a ' +
      'first pass both are suspects (c as a destination and a source, a as a source). Then c is judged without the probes of the ' +
      'suspect source a, and a without its suspect destination c: both remain, each at 112 lost of 3,360 against a baseline of ' +
      '1.33 % (the median destination has both among its probers). c is named once (lossy), a as a source; nobody else.',
    nodes: SIX,
    minutes: 20,
    loss: (s, d) => ((s === 'c' || d === 'c' ? 2 : 0) + (s === 'a' ? 2 : 0)) / 60,
    checks: [
      {
        at: 14,
        firing: {
          KubeNodePingNodeDrizzling: [{ labels: suspected('c', 'lossy'), value: 112 / 3360, queries: evidenceQueries('destination', 5, 112, 3360, 56 / 4200, 300) }],
          KubeNodePingSourceDrizzling: [{ labels: suspected('a', 'source_lossy'), value: 112 / 3360, queries: evidenceQueries('source', 5, 112, 3360, 56 / 4200, 300) }],
        },
        exprs: [
          { expr: 'kube_node_ping_source:suspect:slow', samples: [{ labels: source('a'), value: 168 / 4200 }, { labels: source('c'), value: 140 / 4200 }] },
          { expr: 'kube_node_ping_destination:suspect:slow', samples: [{ labels: destination('c'), value: 168 / 4200 }] },
        ],
      },
    ],
  },
  {
    name: 'a node flaps',
    file: 'localisation',
    description:
      'Node d is away for 10 s every 5 minutes, both ways (minutes 5 and 10): too short for the outage alerts and 3.3 % over ' +
      '5 minutes. From minute 10 all four probers have seen it go away twice: it is named as flapping, not as lossy.',
    nodes: FIVE,
    minutes: 20,
    loss: (s, d, m) => ((s === 'd' || d === 'd') && m % 5 === 0 ? 10 / 60 : 0),
    outagesStarted: (s, d, m) => ((s === 'd' || d === 'd') && m % 5 === 0 ? 1 : 0),
    checks: [
      {
        at: 14,
        firing: { KubeNodePingNodeFlapping: [{ labels: suspected('d', 'flapping'), value: 80 / 3360, queries: { ...evidenceQueries('destination', 4, 80, 3360, 20 / 3360, 600), 'kube_node_ping_destination:sources_flapping:slow': 4, 'kube_node_ping_destination:bursts_share:slow': 2 / 14 } }] },
        exprs: [{ expr: 'kube_node_ping_destination:sources_flapping:slow{destination_name="d"}', samples: [{ labels: destination('d'), value: 4 }] }],
      },
    ],
  },
  {
    name: 'a node drizzles while another is dead',
    file: 'localisation',
    description:
      'Six nodes: e is dead with its agent, c loses 2 of 60 packets each way. Every source sees e down; the evidence leaves the ' +
      'destination the 5 % rules blame out of each source\'s pool (else every source would be a suspect and nothing could be ' +
      'judged), so c is still named, once, beside e.',
    nodes: SIX,
    minutes: 20,
    loss: (s, d) => (d === 'e' ? 1 : s === 'c' || d === 'c' ? 2 / 60 : 0),
    agents: { e: { goneAt: 0, gone: 'down' } },
    checks: [
      {
        at: 14,
        firing: {
          KubeNodePingNodeUnreachable: [{ labels: destination('e'), value: 1 }],
          KubeNodePingAgentDown: [{ labels: scrapeTarget('e') }],
          KubeNodePingNodeDrizzling: [{ labels: suspected('c', 'lossy'), value: 112 / 3360, queries: evidenceQueries('destination', 4, 112, 3360, 28 / 3360, 300) }],
        },
      },
    ],
  },
  {
    name: 'a link drizzles',
    file: 'localisation',
    description:
      'a → c and c → a each lose 1 of 60 probes. Pooled over both directions (28 lost of 1,680) the link is far above a baseline ' +
      'of 0, while neither a nor c is: each direction alerts, and nothing else does.',
    nodes: FIVE,
    minutes: 20,
    loss: (s, d) => ((s === 'a' && d === 'c') || (s === 'c' && d === 'a') ? 1 / 60 : 0),
    checks: [
      {
        at: 14,
        firing: {
          KubeNodePingLinkDrizzling: [
            { labels: pair('a', 'c'), value: 28 / 1680, queries: { 'kube_node_ping_cluster:loss_baseline:slow': 0 } },
            { labels: pair('c', 'a'), value: 28 / 1680, queries: { 'kube_node_ping_cluster:loss_baseline:slow': 0 } },
          ],
        },
        exprs: [{ expr: 'kube_node_ping_node:suspected:slow', samples: [] }],
      },
    ],
  },
  {
    name: 'a zone uplink drizzles',
    file: 'localisation',
    description:
      'Three zones of two nodes; every probe crossing zone z3\'s uplink loses 2 of 60 (under the 5 % of the zone rule). Pooled, ' +
      'both directions between z3 and each other zone are far above the baseline (1.33 %) while z3\'s own pair is clean: z3 is ' +
      'named, and the pairs across its uplink are left out of the node verdicts, so e and f are not.',
    nodes: SIX,
    zones: ZONES,
    minutes: 20,
    loss: (s, d) => (inZ3(s) !== inZ3(d) ? 2 / 60 : 0),
    checks: [
      {
        at: 14,
        firing: { KubeNodePingZoneUplinkLossy: [{ labels: zone('z3'), value: 1, queries: { 'kube_node_ping_cluster:loss_baseline:slow': 56 / 4200 } }] },
        exprs: [
          { expr: 'count(kube_node_ping_zone_pair:explained:slow)', samples: [{ labels: {}, value: 4 }] },
          { expr: 'kube_node_ping_node:suspected:slow', samples: [] },
        ],
      },
    ],
  },
  {
    name: 'background noise is not blamed',
    file: 'localisation',
    description:
      'Six nodes with the noise of a healthy cluster: a → b loses 1 probe every 3 minutes (0.56 %), c → e a burst of 3 at minute ' +
      '7 (an outage for the agent), f → d a burst of 2 at minute 9, and every pair into a loses 1 probe at minute 12. Nothing fires.',
    nodes: SIX,
    minutes: 20,
    loss: (s, d, m) => ((s === 'a' && d === 'b' && m % 3 === 0 ? 1 : 0) + (s === 'c' && d === 'e' && m === 7 ? 3 : 0) + (s === 'f' && d === 'd' && m === 9 ? 2 : 0) + (d === 'a' && m === 12 ? 1 : 0)) / 60,
    outagesStarted: (s, d, m) => (s === 'c' && d === 'e' && m === 7 ? 1 : 0),
    checks: [
      { at: 14, firing: {}, exprs: [{ expr: 'kube_node_ping_node:suspected:slow', samples: [] }, { expr: 'kube_node_ping_zone:uplink_lossy:slow', samples: [] }] },
    ],
  },
  {
    name: 'RTT above normal',
    file: 'rtt',
    description:
      'Three nodes at 0.5 ms for a day. Then a → b goes to 10 ms (20 x its normal, above 2 ms): alert. b → c goes from 0.2 ms to ' +
      '0.9 ms (4.5 x, but under the 2 ms floor): no alert.',
    nodes: ['a', 'b', 'c'],
    minutes: 1440 + 30,
    rtt: (s, d, m) => {
      if (s === 'a' && d === 'b' && m > 1445) return 0.01;
      if (s === 'b' && d === 'c') return m > 1445 ? 0.0009 : 0.0002;
      return 0.0005;
    },
    checks: [
      { at: 1450, firing: {} }, // pending: 10 minutes
      {
        at: 1465,
        firing: { KubeNodePingHighRTT: [{ labels: pair('a', 'b'), value: 0.01 }] },
        exprs: [
          { expr: 'round(kube_node_ping_pair:rtt_seconds:mean5m{k8s_node_name="a", destination_name="b"}, 0.000001)', samples: [{ labels: pair('a', 'b'), value: 0.01 }] },
          { expr: 'round(kube_node_ping_pair:rtt_seconds:mean5m_median1d{k8s_node_name="a", destination_name="b"}, 0.000001)', samples: [{ labels: pair('a', 'b'), value: 0.0005 }] },
          // Every reply in the (5 ms, 10 ms] bucket: linear interpolation inside it.
          { expr: 'kube_node_ping_pair:rtt_seconds:p50_5m{k8s_node_name="a", destination_name="b"}', samples: [{ labels: pair('a', 'b'), value: 0.0075 }] },
          { expr: 'kube_node_ping_pair:rtt_seconds:p99_5m{k8s_node_name="a", destination_name="b"}', samples: [{ labels: pair('a', 'b'), value: 0.00995 }] },
        ],
      },
    ],
  },
  {
    name: 'RTT histograms per destination zone',
    file: 'rtt',
    description:
      'With --rtt-histogram per-zone the agent keeps one histogram per destination zone: the pair RTT rules name those series ' +
      '"zone <z>" instead of leaving destination_name empty and mixing zones.',
    nodes: ['a', 'b', 'c', 'd'],
    zones: { a: 'z1', b: 'z1', c: 'z2', d: 'z2' },
    minutes: 20,
    rttPerZone: true,
    rtt: (s, d) => (s === 'a' && (d === 'c' || d === 'd') ? 0.003 : 0.001),
    checks: [
      {
        at: 15,
        firing: {},
        exprs: [
          {
            expr: 'round(kube_node_ping_pair:rtt_seconds:mean5m{k8s_node_name="a"}, 0.000001)',
            samples: [
              { labels: { ...pair('a', 'zone z1'), cloud_availability_zone: 'z1', destination_zone: 'z1' }, value: 0.001 },
              { labels: { ...pair('a', 'zone z2'), cloud_availability_zone: 'z1', destination_zone: 'z2' }, value: 0.003 },
            ],
          },
          { expr: 'count(kube_node_ping_pair:rtt_seconds:p99_5m{destination_name=~"zone .+"})', samples: [{ labels: {}, value: 8 }] },
        ],
      },
    ],
  },
  {
    name: 'unhealthy agents',
    file: 'agents',
    description:
      'Six nodes, no loss; the agents are sick in different ways: a restarts fping every minute, b fails every OTLP export, ' +
      'c has targets and no fping, d cannot parse some fping lines and fails to reload its targets file, e stalls for 2 s and ' +
      'gets no verdict for 30 % of its probes (a starved agent), and f has no agent at all (others probe it fine).',
    nodes: ['a', 'b', 'c', 'd', 'e', 'f'],
    minutes: 20,
    agents: {
      a: { fpingRestartsPerMinute: 1 },
      b: { exportFailuresPerMinute: 1 },
      c: { fpingProcesses: 0 },
      d: { parseErrorsPerMinute: 1, reloadFailuresPerMinute: 1 },
      e: { eventLoopDelaySeconds: 2, unansweredShare: 0.3 },
      f: { goneAt: 0, gone: 'missing' },
    },
    checks: [
      {
        at: 15,
        firing: {
          KubeNodePingFpingRestarting: [{ labels: source('a') }],
          KubeNodePingExportFailing: [{ labels: { ...source('b'), exporter: 'otlp' } }],
          KubeNodePingNotProbing: [{ labels: source('c') }],
          KubeNodePingFpingParseErrors: [{ labels: source('d') }],
          KubeNodePingTargetsReloadFailing: [{ labels: source('d') }],
          KubeNodePingEventLoopStalled: [{ labels: source('e') }],
          KubeNodePingProbingBehind: [{ labels: source('e'), value: 0.3 }],
          KubeNodePingAgentMissing: [{ labels: source('f') }],
        },
      },
    ],
  },
  {
    name: 'no agent anywhere',
    file: 'agents',
    description: 'Prometheus has other data but no kube-node-ping series at all.',
    nodes: [],
    minutes: 20,
    extraSeries: [{ series: 'up{job="something-else", instance="x:80"}', values: '1x20' }],
    checks: [
      { at: 10, firing: {} },
      { at: 16, firing: { KubeNodePingAgentsAbsent: [{ labels: {} }] } },
    ],
  },
];

/** Outages started on a pair in the minute ending at m: the scenario's own count, else one whenever a minute loses everything after one that did not. */
export function outagesStarted(s: Scenario, src: string, dst: string, m: number): number {
  const loss = (x: number) => s.loss?.(src, dst, x) ?? 0;
  return s.outagesStarted?.(src, dst, m) ?? (loss(m) >= 1 && loss(m - 1) < 1 ? 1 : 0);
}

/** Exposed for a simulator: the pairs a scenario probes. */
export function pairsOf(s: Scenario): { src: string; dst: string; kind: 'node' | 'external' }[] {
  const out: { src: string; dst: string; kind: 'node' | 'external' }[] = [];
  for (const src of s.nodes) {
    for (const dst of others(s.nodes, src)) out.push({ src, dst, kind: 'node' });
    for (const dst of s.externals ?? []) out.push({ src, dst, kind: 'external' });
  }
  return out;
}
