/**
 * Writes charts/kube-node-ping/files/rules/kube-node-ping-evidence.rules.yaml: the pooled,
 * sample-size-aware verdicts (docs/alerts.md, "Pooled evidence"), from the constants of
 * sim/evidence.ts that the simulator's copy of the logic (sim/localise.ts) uses too.
 *
 *   node sim/evidence-rules.ts          # rewrite the rule file
 *   node sim/evidence-rules.ts --check  # exit 1 if the committed file differs
 *
 * The file is written with the production windows ([5m] fast, [15m] slow, `for: 1m`); the
 * chart's PrometheusRule template replaces them from prometheusRule.windows, exactly as
 * `withWindows` below does for the tests that compress time.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BURST_LOSS, FLAP_BURST_SHARE, FLAP_OUTAGES, FLAP_SHARE, MARGIN, MIN_PAIR_PROBES, MIN_PEERS, MIN_PROBES, PAIR_MARGIN, WINDOWS, Z } from './evidence.ts';

export const EVIDENCE_RULES_FILE = fileURLToPath(new URL('../charts/kube-node-ping/files/rules/kube-node-ping-evidence.rules.yaml', import.meta.url));

const F = `[${WINDOWS.fast}]`;
const S = `[${WINDOWS.slow}]`;
const B = `[${WINDOWS.burst}]`;
const SENT = 'kube_node_ping_packets_sent_total';
const RECV = 'kube_node_ping_packets_received_total';
const OUTAGES = 'kube_node_ping_outages_total';
const CL = 'k8s_cluster_name';
const DL = 'k8s_cluster_name, destination_name, destination_kind';
const SL = 'k8s_cluster_name, k8s_node_name';
const PL = 'k8s_cluster_name, k8s_node_name, destination_name, destination_kind';
const ZPL = 'k8s_cluster_name, cloud_availability_zone, destination_zone';
const ZLL = 'k8s_cluster_name, zone, peer_zone';
const ZONED = 'destination_kind="node", cloud_availability_zone!="", destination_zone!=""';
const TOL = 'kube_node_ping_cluster:loss_tolerated:slow';
const PAIR_TOL = 'kube_node_ping_cluster:pair_loss_tolerated:slow';

/** Raw series minus the node pairs that a blamed zone uplink explains. */
const keep = (x: string) => `(${x} unless on (${ZPL}) kube_node_ping_zone_pair:explained:slow)`;
/**
 * For a destination's pool: also without the sources that the 5 % rules blame, and for a
 * source's pool without the destinations they blame (a dead node would otherwise make every
 * one of its probers a suspect, and leave nothing to judge).
 */
const keepD = (x: string) => `(${keep(x)} unless on (${CL}, k8s_node_name) label_replace(kube_node_ping_node:blamed, "k8s_node_name", "$1", "node", "(.*)"))`;
const keepS = (x: string) => `(${keep(x)} unless on (${CL}, destination_name) label_replace(kube_node_ping_node:blamed, "destination_name", "$1", "node", "(.*)"))`;
/** The one-sided score test of sim/evidence.ts `exceeds`: lost − sent·t > z·√(sent·t·(1−t)), t per cluster. */
const score = (lost: string, sent: string, tol: string) =>
  `(${lost} - ${sent} * on (${CL}) group_left ${tol}) > ${Z} * sqrt(${sent} * on (${CL}) group_left () (${tol} * (1 - ${tol})))`;
const wilson = (side: '-' | '+', p: string, n: string) =>
  `(${p} + ${(Z * Z) / 2} / ${n} ${side} ${Z} * sqrt(${p} * (1 - ${p}) / ${n} + ${(Z * Z) / 4} / ${n} ^ 2)) / (1 + ${Z * Z} / ${n})`;
/** The same series for the reverse pair (source and destination swapped), through a scratch label. */
const reverse = (x: string) =>
  `label_replace(label_replace(label_replace(label_replace(${x}, "scratch", "$1", "k8s_node_name", "(.*)"), "k8s_node_name", "$1", "destination_name", "(.*)"), "destination_name", "$1", "scratch", "(.*)"), "scratch", "", "", "")`;
const toNode = (x: string, from: string) => `label_replace(${x}, "node", "$1", "${from}", "(.*)")`;
const withReason = (x: string, r: string) => `label_replace(${x}, "reason", "${r}", "", "")`;
const zoneOut = (x: string) => `max by (${ZLL}) (label_replace(label_replace(${x}, "zone", "$1", "cloud_availability_zone", "(.*)"), "peer_zone", "$1", "destination_zone", "(.*)"))`;
const zoneIn = (x: string) => `max by (${ZLL}) (label_replace(label_replace(${x}, "zone", "$1", "destination_zone", "(.*)"), "peer_zone", "$1", "cloud_availability_zone", "(.*)"))`;
/** One (zone, peer_zone = zone) series per zone: PromQL cannot compare two labels. */
const SELF_ZONE = `label_replace(max by (${CL}, zone) (kube_node_ping_zone_link:packets_sent_out:slow), "peer_zone", "$1", "zone", "(.*)")`;
const BLAMED_ANY = '(kube_node_ping_node:blamed or kube_node_ping_node:suspected:slow)';
/** A query's first value in an annotation (Prometheus template functions). */
const q = (expr: string, args: string, fn: string) => `{{ with query (printf "${expr}" ${args}) }}{{ . | first | value | ${fn} }}{{ end }}`;
const COUNT = 'printf "%.0f"';

interface Rule {
  comment?: string;
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  severity?: string;
  summary?: string;
  description?: string;
}

function rules(): Rule[] {
  const r: Rule[] = [];
  // ---- baseline ------------------------------------------------------------------------------
  r.push({
    comment: 'The cluster\'s own loss: the median over node destinations of their pooled loss (robust to a few bad nodes).',
    record: 'kube_node_ping_cluster:loss_baseline:slow',
    expr: `quantile by (${CL}) (0.5, clamp_min(1 - sum by (${DL}) (increase(${RECV}{destination_kind="node"}${S})) / (sum by (${DL}) (increase(${SENT}{destination_kind="node"}${S})) > 0), 0))`,
  });
  r.push({ record: TOL, expr: `kube_node_ping_cluster:loss_baseline:slow + ${MARGIN}` });
  r.push({ record: PAIR_TOL, expr: `kube_node_ping_cluster:loss_baseline:slow + ${PAIR_MARGIN}` });

  // ---- zones -----------------------------------------------------------------------------------
  r.push({ comment: 'Zone pairs: node pairs whose two zones are known, pooled.', record: 'kube_node_ping_zone_pair:packets_sent:slow', expr: `sum by (${ZPL}) (increase(${SENT}{${ZONED}}${S}))` });
  r.push({ record: 'kube_node_ping_zone_pair:packets_lost:slow', expr: `clamp_min(kube_node_ping_zone_pair:packets_sent:slow - sum by (${ZPL}) (increase(${RECV}{${ZONED}}${S})), 0)` });
  r.push({
    comment: 'A zone pair loses more than the tolerated loss explains (value: its loss).',
    record: 'kube_node_ping_zone_pair:lossy:slow',
    expr: `kube_node_ping_zone_pair:packets_lost:slow / kube_node_ping_zone_pair:packets_sent:slow
  and ${score('kube_node_ping_zone_pair:packets_lost:slow', 'kube_node_ping_zone_pair:packets_sent:slow', TOL)}
  and kube_node_ping_zone_pair:packets_sent:slow >= ${MIN_PROBES}`,
  });
  r.push({ comment: 'Seen from each zone: out is zone -> peer_zone, in is peer_zone -> zone.', record: 'kube_node_ping_zone_link:packets_sent_out:slow', expr: zoneOut('kube_node_ping_zone_pair:packets_sent:slow') });
  r.push({ record: 'kube_node_ping_zone_link:packets_sent_in:slow', expr: zoneIn('kube_node_ping_zone_pair:packets_sent:slow') });
  r.push({ record: 'kube_node_ping_zone_link:lossy_out:slow', expr: zoneOut('kube_node_ping_zone_pair:lossy:slow') });
  r.push({ record: 'kube_node_ping_zone_link:lossy_in:slow', expr: zoneIn('kube_node_ping_zone_pair:lossy:slow') });
  r.push({
    record: 'kube_node_ping_zone:peers:slow',
    expr: `count by (${CL}, zone) (kube_node_ping_zone_link:packets_sent_out:slow and kube_node_ping_zone_link:packets_sent_in:slow unless on (${ZLL}) ${SELF_ZONE})`,
  });
  r.push({
    record: 'kube_node_ping_zone:peers_lossy:slow',
    expr: `count by (${CL}, zone) (kube_node_ping_zone_link:lossy_out:slow and kube_node_ping_zone_link:lossy_in:slow unless on (${ZLL}) ${SELF_ZONE})
  or kube_node_ping_zone:peers:slow * 0`,
  });
  r.push({
    comment: 'Verdict: more than half of the peer zones lossy both ways, the zone\'s own pairs not (value: that share).',
    record: 'kube_node_ping_zone:uplink_lossy:slow',
    expr: `kube_node_ping_zone:peers_lossy:slow / kube_node_ping_zone:peers:slow > 0.5
  and kube_node_ping_zone:peers:slow >= 2
  unless on (${CL}, zone) (kube_node_ping_zone_link:lossy_out:slow and on (${ZLL}) ${SELF_ZONE})`,
  });
  r.push({
    comment: 'Zone pairs across a blamed uplink (this verdict or the 5 % one): left out of everything below.',
    record: 'kube_node_ping_zone_pair:explained:slow',
    expr: `(
    kube_node_ping_zone_pair:packets_sent:slow and on (${CL}, cloud_availability_zone) label_replace(kube_node_ping_zone:uplink_lossy:slow or kube_node_ping_zone:uplink_blamed, "cloud_availability_zone", "$1", "zone", "(.*)")
  or
    kube_node_ping_zone_pair:packets_sent:slow and on (${CL}, destination_zone) label_replace(kube_node_ping_zone:uplink_lossy:slow or kube_node_ping_zone:uplink_blamed, "destination_zone", "$1", "zone", "(.*)")
)
unless on (${ZPL}) label_replace(max by (${CL}, cloud_availability_zone) (kube_node_ping_zone_pair:packets_sent:slow), "destination_zone", "$1", "cloud_availability_zone", "(.*)")`,
  });

  // ---- pass 1: every kept pair -----------------------------------------------------------------
  r.push({ comment: 'Pass 1, destinations: every kept pair, pooled.', record: 'kube_node_ping_destination:packets_sent:slow', expr: `sum by (${DL}) ${keepD(`increase(${SENT}${S})`)}` });
  r.push({ record: 'kube_node_ping_destination:packets_lost:slow', expr: `clamp_min(kube_node_ping_destination:packets_sent:slow - sum by (${DL}) ${keepD(`increase(${RECV}${S})`)}, 0)` });
  r.push({ record: 'kube_node_ping_destination:sources:slow', expr: `count by (${DL}) (sum by (${PL}) ${keepD(`increase(${SENT}${S})`)} > 0)` });
  r.push({ comment: 'Pass 1, sources (node destinations only).', record: 'kube_node_ping_source:packets_sent:slow', expr: `sum by (${SL}) ${keepS(`increase(${SENT}{destination_kind="node"}${S})`)}` });
  r.push({ record: 'kube_node_ping_source:packets_lost:slow', expr: `clamp_min(kube_node_ping_source:packets_sent:slow - sum by (${SL}) ${keepS(`increase(${RECV}{destination_kind="node"}${S})`)}, 0)` });
  r.push({ record: 'kube_node_ping_source:destinations:slow', expr: `count by (${SL}) (sum by (${PL}) ${keepS(`increase(${SENT}{destination_kind="node"}${S})`)} > 0)` });
  const pairLoss = (k: (x: string) => string, sel: string) =>
    `(1 - sum by (${PL}) ${k(`increase(${RECV}${sel}${S})`)} / (sum by (${PL}) ${k(`increase(${SENT}${sel}${S})`)} > 0))`;
  r.push({
    comment: 'For the alert text ("how many see it"): the probers (destinations) whose own pair loses more than the tolerated loss, proven or not.',
    record: 'kube_node_ping_destination:sources_above_tolerated:slow',
    expr: `count by (${DL}) (${pairLoss(keepD, '')} > on (${CL}) group_left ${TOL})
  or kube_node_ping_destination:sources:slow * 0`,
  });
  r.push({
    record: 'kube_node_ping_source:destinations_above_tolerated:slow',
    expr: `count by (${SL}) (${pairLoss(keepS, '{destination_kind="node"}')} > on (${CL}) group_left ${TOL})
  or kube_node_ping_source:destinations:slow * 0`,
  });
  r.push({
    comment: 'Suspects: pooled loss above the tolerated loss on all of their pairs.',
    record: 'kube_node_ping_destination:suspect:slow',
    expr: `kube_node_ping_destination:packets_lost:slow / kube_node_ping_destination:packets_sent:slow
  and ${score('kube_node_ping_destination:packets_lost:slow', 'kube_node_ping_destination:packets_sent:slow', TOL)}
  and kube_node_ping_destination:packets_sent:slow >= ${MIN_PROBES}`,
  });
  r.push({
    record: 'kube_node_ping_source:suspect:slow',
    expr: `kube_node_ping_source:packets_lost:slow / kube_node_ping_source:packets_sent:slow
  and ${score('kube_node_ping_source:packets_lost:slow', 'kube_node_ping_source:packets_sent:slow', TOL)}
  and kube_node_ping_source:packets_sent:slow >= ${MIN_PROBES}`,
  });

  // ---- pass 2: a destination without the suspect sources, a source without the suspect destinations
  const noSuspectSources = (x: string) => `(${keepD(x)} unless on (${SL}) kube_node_ping_source:suspect:slow)`;
  const noSuspectDestinations = (x: string) => `(${keepS(x)} unless on (${DL}) kube_node_ping_destination:suspect:slow)`;
  r.push({
    comment: 'Pass 2: a destination judged on the probes of sources that are not suspects themselves, and a source on its non-suspect destinations.',
    record: 'kube_node_ping_destination:packets_sent_clean:slow',
    expr: `sum by (${DL}) ${noSuspectSources(`increase(${SENT}${S})`)}`,
  });
  r.push({ record: 'kube_node_ping_destination:packets_lost_clean:slow', expr: `clamp_min(kube_node_ping_destination:packets_sent_clean:slow - sum by (${DL}) ${noSuspectSources(`increase(${RECV}${S})`)}, 0)` });
  r.push({ record: 'kube_node_ping_source:packets_sent_clean:slow', expr: `sum by (${SL}) ${noSuspectDestinations(`increase(${SENT}{destination_kind="node"}${S})`)}` });
  r.push({ record: 'kube_node_ping_source:packets_lost_clean:slow', expr: `clamp_min(kube_node_ping_source:packets_sent_clean:slow - sum by (${SL}) ${noSuspectDestinations(`increase(${RECV}{destination_kind="node"}${S})`)}, 0)` });
  for (const level of ['destination', 'source'] as const) {
    const p = `kube_node_ping_${level}:loss_ratio:slow`;
    const n = `kube_node_ping_${level}:packets_sent_clean:slow`;
    r.push({
      comment: level === 'destination' ? 'Estimated loss and its Wilson interval (same z as the test), for the alert text and the dashboards.' : undefined,
      record: p,
      expr: `clamp(kube_node_ping_${level}:packets_lost_clean:slow / (${n} > 0), 0, 1)`,
    });
    r.push({ record: `kube_node_ping_${level}:loss_lower:slow`, expr: wilson('-', p, n) });
    r.push({ record: `kube_node_ping_${level}:loss_upper:slow`, expr: wilson('+', p, n) });
  }
  r.push({
    comment: 'The fast window, for the multi-window verdict: the loss must still be there.',
    record: 'kube_node_ping_destination:loss_ratio:fast',
    expr: `clamp_min(1 - sum by (${DL}) ${keepD(`increase(${RECV}${F})`)} / (sum by (${DL}) ${keepD(`increase(${SENT}${F})`)} > 0), 0)`,
  });
  r.push({
    record: 'kube_node_ping_source:loss_ratio:fast',
    expr: `clamp_min(1 - sum by (${SL}) ${keepS(`increase(${RECV}{destination_kind="node"}${F})`)} / (sum by (${SL}) ${keepS(`increase(${SENT}{destination_kind="node"}${F})`)} > 0), 0)`,
  });

  // ---- flaps --------------------------------------------------------------------------------
  r.push({
    comment: `Flaps: the probers that saw the destination go away at least ${FLAP_OUTAGES} times (outages of at least the agent's outage threshold, however short).`,
    record: 'kube_node_ping_destination:sources_flapping:slow',
    expr: `count by (${DL}) (sum by (${PL}) ${keepD(`increase(${OUTAGES}${S})`)} >= ${FLAP_OUTAGES})
  or kube_node_ping_destination:sources:slow * 0`,
  });
  r.push({
    comment: `Flaps from loss bursts (lean pair metrics have no outage counter): the evaluations at which the destination's pooled loss over ${B} is above ${BURST_LOSS}.`,
    record: 'kube_node_ping_destination:loss_ratio:burst',
    expr: `clamp_min(1 - sum by (${DL}) ${keepD(`increase(${RECV}${B})`)} / (sum by (${DL}) ${keepD(`increase(${SENT}${B})`)} > 0), 0)`,
  });
  r.push({ record: 'kube_node_ping_destination:bursting:burst', expr: `kube_node_ping_destination:loss_ratio:burst > ${BURST_LOSS}` });
  r.push({
    record: 'kube_node_ping_destination:bursts_share:slow',
    expr: `count_over_time(kube_node_ping_destination:bursting:burst${S}) / count_over_time(kube_node_ping_destination:loss_ratio:burst${S})`,
  });
  r.push({
    comment: `Verdict (value: the estimated loss): more than ${FLAP_SHARE * 100} % of the probers saw ${FLAP_OUTAGES} outages or more, or the pooled loss is\nproven and at least ${FLAP_BURST_SHARE * 100} % of the evaluations burst.`,
    record: 'kube_node_ping_destination:flapping:slow',
    expr: `kube_node_ping_destination:loss_ratio:slow
  and on (${DL}) (
      kube_node_ping_destination:sources_flapping:slow / kube_node_ping_destination:sources:slow > ${FLAP_SHARE}
    or
      kube_node_ping_destination:bursts_share:slow >= ${FLAP_BURST_SHARE}
      and ${score('kube_node_ping_destination:packets_lost_clean:slow', 'kube_node_ping_destination:packets_sent_clean:slow', TOL)}
  )
  and kube_node_ping_destination:sources:slow >= ${MIN_PEERS}`,
  });

  // ---- verdicts -------------------------------------------------------------------------------
  for (const level of ['destination', 'source'] as const) {
    const peers = level === 'destination' ? 'kube_node_ping_destination:sources:slow' : 'kube_node_ping_source:destinations:slow';
    r.push({
      comment: level === 'destination' ? 'Verdicts (value: the estimated loss): the slow window proves it, the fast window shows it is still there.' : undefined,
      record: `kube_node_ping_${level}:drizzling:slow`,
      expr: `kube_node_ping_${level}:loss_ratio:slow
  and ${score(`kube_node_ping_${level}:packets_lost_clean:slow`, `kube_node_ping_${level}:packets_sent_clean:slow`, TOL)}
  and kube_node_ping_${level}:loss_ratio:fast > on (${CL}) group_left ${TOL}
  and kube_node_ping_${level}:packets_sent_clean:slow >= ${MIN_PROBES}
  and ${peers} >= ${MIN_PEERS}${level === 'destination' ? '\n  unless kube_node_ping_destination:flapping:slow' : ''}`,
    });
  }
  const blamedDestinationAsSource = `label_replace(kube_node_ping_destination:flapping:slow{destination_kind="node"} or kube_node_ping_destination:drizzling:slow{destination_kind="node"}, "k8s_node_name", "$1", "destination_name", "(.*)")`;
  r.push({
    comment:
      'One series per suspected node: flapping, else lossy (as a destination), else source_lossy (a node that is a\n' +
      'suspected destination is not also named as a source). A node the 5 % rules blame is left to them.',
    record: 'kube_node_ping_node:suspected:slow',
    expr: `max by (${CL}, node, reason) (
    ${withReason(toNode('kube_node_ping_destination:flapping:slow{destination_kind="node"}', 'destination_name'), 'flapping')}
  or
    ${withReason(toNode('kube_node_ping_destination:drizzling:slow{destination_kind="node"}', 'destination_name'), 'lossy')}
  or
    ${withReason(toNode(`kube_node_ping_source:drizzling:slow unless on (${SL}) ${blamedDestinationAsSource}`, 'k8s_node_name'), 'source_lossy')}
)
unless on (${CL}, node) kube_node_ping_node:blamed`,
  });
  r.push({
    comment: 'When the suspicion began: its previous value while it lasts, the evaluation time when it starts.',
    record: 'kube_node_ping_node:suspected_since:slow',
    expr: `kube_node_ping_node:suspected_since:slow and kube_node_ping_node:suspected:slow
or time() + 0 * kube_node_ping_node:suspected:slow`,
  });

  // ---- alerts ---------------------------------------------------------------------------------
  const nodeArgs = '$labels.k8s_cluster_name $labels.node';
  const dq = (rec: string, fn: string) => q(`${rec}{k8s_cluster_name=%q, destination_name=%q, destination_kind=\\"node\\"}`, nodeArgs, fn);
  const sq = (rec: string, fn: string) => q(`${rec}{k8s_cluster_name=%q, k8s_node_name=%q}`, nodeArgs, fn);
  const since = q('kube_node_ping_node:suspected_since:slow{k8s_cluster_name=%q, node=%q}', nodeArgs, 'humanizeTimestamp');
  const baseline = q('kube_node_ping_cluster:loss_baseline:slow{k8s_cluster_name=%q}', '$labels.k8s_cluster_name', 'humanizePercentage');
  const dInterval = `${dq('kube_node_ping_destination:loss_lower:slow', 'humanizePercentage')} to ${dq('kube_node_ping_destination:loss_upper:slow', 'humanizePercentage')}`;
  r.push({
    alert: 'KubeNodePingNodeFlapping',
    expr: 'kube_node_ping_node:suspected:slow{reason="flapping"}',
    for: WINDOWS.for,
    severity: 'warning',
    summary: 'Node {{ $labels.node }} keeps going away for short times',
    description:
      `${dq('kube_node_ping_destination:sources_flapping:slow', COUNT)} of the ${dq('kube_node_ping_destination:sources:slow', COUNT)} nodes that probe {{ $labels.node }} (cluster {{ $labels.k8s_cluster_name }}) ` +
      `saw it go away at least ${FLAP_OUTAGES} times over ${S}, or its loss came in bursts in ${dq('kube_node_ping_destination:bursts_share:slow', 'humanizePercentage')} of the evaluations; ` +
      `each time too briefly for the outage alerts. It lost {{ $value | humanizePercentage }} of their probes (${dInterval}). Suspected since ${since}.`,
  });
  r.push({
    alert: 'KubeNodePingNodeDrizzling',
    expr: 'kube_node_ping_node:suspected:slow{reason="lossy"}',
    for: WINDOWS.for,
    severity: 'warning',
    summary: 'Node {{ $labels.node }} loses a small share of the packets sent to it',
    description:
      `Node {{ $labels.node }} (cluster {{ $labels.k8s_cluster_name }}) lost {{ $value | humanizePercentage }} of the probes of its ${dq('kube_node_ping_destination:sources:slow', COUNT)} probers ` +
      `(${dq('kube_node_ping_destination:sources_above_tolerated:slow', COUNT)} of them each see more than the tolerated loss) ` +
      `over ${S} (${dInterval}; the cluster's baseline is ${baseline}): the node or its network is at fault, not the sources. Suspected since ${since}.`,
  });
  r.push({
    alert: 'KubeNodePingSourceDrizzling',
    expr: 'kube_node_ping_node:suspected:slow{reason="source_lossy"}',
    for: WINDOWS.for,
    severity: 'warning',
    summary: 'Node {{ $labels.node }} loses a small share of its own probes to the other nodes',
    description:
      `Node {{ $labels.node }} (cluster {{ $labels.k8s_cluster_name }}) lost {{ $value | humanizePercentage }} of its probes to ${sq('kube_node_ping_source:destinations:slow', COUNT)} destinations ` +
      `(${sq('kube_node_ping_source:destinations_above_tolerated:slow', COUNT)} of them each more than the tolerated loss) ` +
      `over ${S} (${sq('kube_node_ping_source:loss_lower:slow', 'humanizePercentage')} to ${sq('kube_node_ping_source:loss_upper:slow', 'humanizePercentage')}; the cluster's baseline is ${baseline}), ` +
      `which the other nodes reach: the source node (its network, or its agent) is at fault. Suspected since ${since}.`,
  });
  r.push({
    alert: 'KubeNodePingZoneUplinkLossy',
    expr: 'kube_node_ping_zone:uplink_lossy:slow unless on (k8s_cluster_name, zone) kube_node_ping_zone:uplink_blamed',
    for: WINDOWS.for,
    severity: 'warning',
    summary: 'The network between zone {{ $labels.zone }} and the other zones loses a small share of the packets',
    description:
      `{{ $value | humanizePercentage }} of the other zones lose more than the cluster's baseline (${baseline}) explains to and from zone {{ $labels.zone }} ` +
      `(cluster {{ $labels.k8s_cluster_name }}) over ${S}, while the zone's own pairs do not: the zone's uplink is at fault, not its nodes.`,
  });
  // A link pools both directions where both are probed (a pair and its reverse): the alert names each direction.
  const both = (x: string) => `(${x} + ${reverse(x)} or ${x})`;
  const PS = both(`sum by (${PL}) ${keep(`increase(${SENT}{destination_kind="node"}${S})`)}`);
  const PR = both(`sum by (${PL}) ${keep(`increase(${RECV}{destination_kind="node"}${S})`)}`);
  const PSF = both(`sum by (${PL}) (increase(${SENT}{destination_kind="node"}${F}))`);
  const PRF = both(`sum by (${PL}) (increase(${RECV}{destination_kind="node"}${F}))`);
  r.push({
    alert: 'KubeNodePingLinkDrizzling',
    expr: `(1 - ${PR} / ${PS})
  and ${score(`(${PS} - ${PR})`, PS, PAIR_TOL)}
  and ${PS} >= ${MIN_PAIR_PROBES}
  and (1 - ${PRF} / ${PSF}) > on (${CL}) group_left ${PAIR_TOL}
  unless on (${CL}, destination_name) label_replace(${BLAMED_ANY}, "destination_name", "$1", "node", "(.*)")
  unless on (${CL}, k8s_node_name) label_replace(${BLAMED_ANY}, "k8s_node_name", "$1", "node", "(.*)")
  unless on (${PL}) (kube_node_ping_pair:loss_ratio_kept:rate5m > 0.05)
  unless on (${PL}) ${reverse('(kube_node_ping_pair:loss_ratio_kept:rate5m > 0.05)')}`,
    for: WINDOWS.for,
    severity: 'warning',
    summary: 'The link from {{ $labels.k8s_node_name }} to {{ $labels.destination_name }} loses a small share of the packets',
    description:
      `{{ $value | humanizePercentage }} of the probes between nodes {{ $labels.k8s_node_name }} and {{ $labels.destination_name }} (cluster {{ $labels.k8s_cluster_name }}; both ways where both probe) ` +
      `were lost over ${S}, more than the cluster's baseline (${baseline}) and the pair's sample size explain. Neither end nor a zone uplink is suspected: the path between them is.`,
  });
  return r;
}

/** Double-quoted YAML scalar. */
const dq1 = (s: string) => JSON.stringify(s);
const block = (s: string, indent: string) => `|\n${s.split('\n').map((l) => indent + l).join('\n')}`;

export function renderEvidenceRules(): string {
  const out: string[] = [
    '# Generated by sim/evidence-rules.ts from the constants of sim/evidence.ts: edit those, then run',
    '# `node sim/evidence-rules.ts`. The logic is written down in docs/alerts.md ("Pooled evidence") and in',
    '# TypeScript in sim/localise.ts (localiseEvidence); test/rules/ checks both on the same scenarios.',
    '#',
    `# Windows: ${F} fast, ${S} slow, ${B} burst, \`for: ${WINDOWS.for}\`. The chart replaces these from`,
    '# prometheusRule.windows (fast, slow, burst, for); keep them unique tokens of this file.',
    '#',
    `# Thresholds: tolerated loss = cluster baseline + ${MARGIN} (nodes, sources, zone pairs) or + ${PAIR_MARGIN} (a pair);`,
    `# a count is "more" when lost − sent·t > ${Z}·√(sent·t·(1−t)) (the Wilson lower bound at z = ${Z} is above t);`,
    `# judged only with at least ${MIN_PROBES} probes (${MIN_PAIR_PROBES} for a pair) and ${MIN_PEERS} probers or destinations.`,
    'groups:',
    '  - name: kube-node-ping.evidence',
    '    rules:',
  ];
  for (const r of rules()) {
    if (r.comment) for (const l of r.comment.split('\n')) out.push(`      # ${l}`);
    out.push(r.record ? `      - record: ${r.record}` : `      - alert: ${r.alert}`);
    out.push(`        expr: ${r.expr.includes('\n') || r.expr.length > 100 ? block(r.expr, '          ') : r.expr}`);
    if (r.for) out.push(`        for: ${r.for}`);
    if (r.severity) out.push('        labels:', `          severity: ${r.severity}`);
    if (r.alert) {
      out.push('        annotations:');
      out.push(`          summary: ${dq1(r.summary!)}`);
      out.push(`          description: ${dq1(r.description!)}`);
      out.push(`          runbook_url: https://runbooks.invalid/kube-node-ping/${r.alert}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * The evidence rules with other windows, as the chart's PrometheusRule template makes them
 * from prometheusRule.windows (through placeholders, so that a new value never matches an old token).
 */
export function withWindows(text: string, w: { fast: string; slow: string; burst: string; for: string }): string {
  return text
    .replaceAll(S, '[@SLOW@]')
    .replaceAll(F, '[@FAST@]')
    .replaceAll(B, '[@BURST@]')
    .replaceAll(`for: ${WINDOWS.for}`, 'for: @FOR@')
    .replaceAll('@SLOW@', w.slow)
    .replaceAll('@FAST@', w.fast)
    .replaceAll('@BURST@', w.burst)
    .replaceAll('@FOR@', w.for);
}

if (process.argv[1] === fileURLToPath(import.meta.url) && !process.argv.includes('--series')) {
  const text = renderEvidenceRules();
  if (process.argv.includes('--check')) {
    let old = '';
    try {
      old = readFileSync(EVIDENCE_RULES_FILE, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (old !== text) {
      console.error(`${EVIDENCE_RULES_FILE} is out of date: run node sim/evidence-rules.ts`);
      process.exit(1);
    }
  } else {
    writeFileSync(EVIDENCE_RULES_FILE, text);
    console.log(`wrote ${EVIDENCE_RULES_FILE}`);
  }
}

/** Recording rules whose series exist only for the entities under a verdict (none in a healthy cluster). */
const SPARSE = /:(suspect|lossy|drizzling|flapping|bursting|explained|uplink_lossy|suspected|suspected_since|lossy_out|lossy_in|bursts_share)(:|$)/;

/**
 * Series the evidence rules record at `nodes` nodes in `zones` zones: `upper` counts every rule
 * fully populated, `healthy` leaves out the verdict-like ones (SPARSE). Levels: cluster 1,
 * zone `zones`, zone_pair and zone_link `zones²`, destination, source and node `nodes`.
 */
export function evidenceSeries(nodes: number, zones: number): { upper: number; healthy: number; perLevel: Record<string, number> } {
  const per: Record<string, number> = { cluster: 1, zone: zones, zone_pair: zones * zones, zone_link: zones * zones, destination: nodes, source: nodes, node: nodes };
  const perLevel: Record<string, number> = {};
  let upper = 0;
  let healthy = 0;
  for (const r of rules()) {
    if (!r.record) continue;
    const level = /^kube_node_ping_([a-z_]+):/.exec(r.record)![1]!;
    const n = per[level];
    if (n === undefined) throw new Error(`${r.record}: no cardinality for level ${level}`);
    perLevel[level] = (perLevel[level] ?? 0) + 1;
    upper += n;
    if (!SPARSE.test(r.record)) healthy += n;
  }
  return { upper, healthy, perLevel };
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes('--series')) {
  for (const [n, z] of [[5000, 3], [5000, 10]] as const) console.log(`${n} nodes, ${z} zones:`, JSON.stringify(evidenceSeries(n, z)));
}
