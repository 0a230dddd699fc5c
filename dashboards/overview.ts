/**
 * kube-node-ping / Overview: the whole cluster as a source × destination matrix (loss, RTT,
 * outage time over the dashboard's time range), the worst links, outages over time, and the
 * rule file's verdicts.
 */
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';
import * as common from '@grafana/grafana-foundation-sdk/common';
import {
  DATASOURCE,
  LOSS_THRESHOLDS,
  OUTAGE_THRESHOLDS,
  PAIR,
  RTT_THRESHOLDS,
  UID,
  baseDashboard,
  clusterVariable,
  datasourceVariable,
  destinationVariable,
  instant,
  longestOutage,
  loss,
  matrix,
  mergedTable,
  numberPanels,
  quantileVariable,
  range,
  row,
  rttMean,
  rttQuantile,
  sel,
  sourceVariable,
  statPanel,
  thresholds,
  timeSeries,
} from './lib.ts';
import * as table from '@grafana/grafana-foundation-sdk/table';

const NEUTRAL = () => thresholds([[null, 'blue']]);
/** A count where any is one too many. */
const ANY_IS_RED = () =>
  thresholds([
    [null, 'green'],
    [1, 'red'],
  ]);
const PAIR_LEGEND = '{{k8s_node_name}} → {{destination_name}}';

export function overview(): dashboard.Dashboard {
  const d = baseDashboard({
    uid: UID.overview,
    title: 'kube-node-ping / Overview',
    description: 'Packet loss, RTT and outages between the nodes of the cluster, measured by the kube-node-ping agents.',
  })
    .withVariable(datasourceVariable())
    .withVariable(clusterVariable())
    .withVariable(sourceVariable({ multi: true }))
    .withVariable(destinationVariable())
    .withVariable(quantileVariable());

  d.withRow(row('Summary'))
    .withPanel(
      statPanel({
        title: 'Agents reporting',
        description: 'Nodes whose kube-node-ping agent currently sends metrics (scraped or over OTLP).',
        expr: 'count(count by (k8s_node_name) (kube_node_ping_targets{k8s_cluster_name=~"$cluster", k8s_node_name=~"$source"}))',
        unit: 'none',
        thresholds: NEUTRAL(),
      }),
    )
    .withPanel(
      statPanel({
        title: 'Destinations probed',
        description: 'Distinct destinations (nodes and external addresses) that the selected sources probe.',
        expr: `count(count by (destination_name) (kube_node_ping_packets_sent_total{${sel()}}))`,
        unit: 'none',
        thresholds: NEUTRAL(),
      }),
    )
    .withPanel(
      statPanel({
        title: 'Pairs with loss > 5 %',
        description: 'Source → destination pairs that lost more than 5 % of their probes over the time range.',
        expr: `count(${loss(PAIR, '$__range')} > 0.05) or vector(0)`,
        unit: 'none',
        thresholds: ANY_IS_RED(),
      }),
    )
    .withPanel(
      statPanel({
        title: 'Worst pair loss',
        description: 'The highest loss ratio of any source → destination pair over the time range.',
        expr: `max(${loss(PAIR, '$__range')})`,
        unit: 'percentunit',
        thresholds: LOSS_THRESHOLDS(),
      }),
    )
    .withPanel(
      statPanel({
        title: 'Pairs in outage now',
        description: 'Pairs whose destination has not answered the last probes (outage_ongoing > 0).',
        expr: `count(max by (${PAIR}) (kube_node_ping_outage_ongoing_seconds{${sel()}}) > 0) or vector(0)`,
        unit: 'none',
        thresholds: ANY_IS_RED(),
      }),
    )
    .withPanel(
      statPanel({
        title: 'Blamed now (rules)',
        description:
          'Zone uplinks and nodes the alert rules blame (a zone uplink, an unreachable or lossy node, a degraded source). Needs the ' +
          'kube-node-ping rule file; 0 without it.',
        expr: '(count(kube_node_ping_node:blamed{k8s_cluster_name=~"$cluster"}) or vector(0)) + (count(kube_node_ping_zone:uplink_blamed{k8s_cluster_name=~"$cluster"}) or vector(0))',
        unit: 'none',
        thresholds: ANY_IS_RED(),
      }),
    );

  d.withRow(row('Source × destination, over the time range'))
    .withPanel(
      matrix({
        title: 'Packet loss: source (rows) → destination (columns)',
        description:
          'Share of the probes from each source node (row) to each destination (column) that got no reply, over the dashboard time range. ' +
          'A bad column is a destination most sources cannot reach; a bad row is a source that reaches few. Click a source to drill down.',
        expr: loss(PAIR, '$__range'),
        unit: 'percentunit',
        thresholds: LOSS_THRESHOLDS(),
        decimals: 1,
      }),
    )
    .withPanel(
      matrix({
        title: 'RTT p50: source → destination',
        description: 'Median round-trip time of the replies from each source to each destination over the time range (interpolated within the histogram bucket).',
        expr: rttQuantile('0.5', PAIR, '$__range'),
        unit: 's',
        thresholds: RTT_THRESHOLDS(),
      }),
    )
    .withPanel(
      matrix({
        title: 'RTT p$quantile: source → destination',
        description: 'The chosen quantile (variable "RTT quantile") of the round-trip time from each source to each destination over the time range.',
        expr: rttQuantile('$quantile', PAIR, '$__range'),
        unit: 's',
        thresholds: RTT_THRESHOLDS(),
      }),
    )
    .withPanel(
      matrix({
        title: 'Longest outage: source → destination',
        description:
          'The longest time each destination went without answering each source (an outage: 3 or more probes lost in a row) ' +
          'within the time range, as sampled by the scrapes.',
        expr: longestOutage(PAIR, '$__range'),
        unit: 's',
        thresholds: OUTAGE_THRESHOLDS(),
        decimals: 0,
      }),
    )
    .withPanel(
      matrix({
        title: 'Packet loss between zones: source zone → destination zone',
        description:
          'Loss over all the probes from the nodes of one zone (cloud_availability_zone of the source) to the nodes of another ' +
          '(destination_zone), over the time range. A row and a column bad except on the diagonal is a zone uplink. Empty zone ' +
          'names: the zone is not known (no topology label on the nodes, or not discovered from Kubernetes).',
        expr: loss('cloud_availability_zone, destination_zone', '$__range', `${sel()}, destination_kind="node"`),
        unit: 'percentunit',
        thresholds: LOSS_THRESHOLDS(),
        decimals: 1,
        rowField: 'cloud_availability_zone',
        columnField: 'destination_zone',
      }).height(8),
    );

  d.withRow(row('Worst links'))
    .withPanel(
      mergedTable({
        title: 'Worst links over the time range',
        description:
          'The 25 pairs with the highest loss over the time range, with their RTT and outages. Outage time and count need the per-pair ' +
          'outage counters, which agents running with --pair-metrics lean do not export.',
        queries: [
          { refId: 'A', expr: loss(PAIR, '$__range'), header: 'Loss', unit: 'percentunit' },
          { refId: 'B', expr: rttQuantile('0.5', PAIR, '$__range'), header: 'RTT p50', unit: 's' },
          { refId: 'C', expr: rttQuantile('0.99', PAIR, '$__range'), header: 'RTT p99', unit: 's' },
          { refId: 'D', expr: rttMean(PAIR, '$__range'), header: 'RTT mean', unit: 's' },
          { refId: 'E', expr: longestOutage(PAIR, '$__range'), header: 'Longest outage', unit: 's' },
          { refId: 'F', expr: `sum by (${PAIR}) (increase(kube_node_ping_outage_duration_seconds_total{${sel()}}[$__range]))`, header: 'Outage time', unit: 's' },
          { refId: 'G', expr: `sum by (${PAIR}) (increase(kube_node_ping_outages_total{${sel()}}[$__range]))`, header: 'Outages', unit: 'none' },
        ],
        labels: { k8s_node_name: 'Source', destination_name: 'Destination' },
        sortBy: 'Loss',
        limit: 25,
      })
        .span(24)
        .height(9),
    )
    .withPanel(
      timeSeries({
        title: 'Loss over time, 10 worst pairs',
        description: 'Loss ratio per pair over $__rate_interval; at each instant the 10 worst pairs.',
        unit: 'percentunit',
        min: 0,
        queries: [range(`topk(10, ${loss(PAIR, '$__rate_interval')})`, PAIR_LEGEND)],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'RTT p99 over time, 10 worst pairs',
        description: '99th percentile of the RTT per pair over $__rate_interval; at each instant the 10 highest.',
        unit: 's',
        min: 0,
        queries: [range(`topk(10, ${rttQuantile('0.99', PAIR, '$__rate_interval')})`, PAIR_LEGEND)],
      }),
    );

  d.withRow(row('Outages'))
    .withPanel(
      new statetimeline.PanelBuilder()
        .title('Sources in outage, per destination')
        .description('For each destination, how many sources see it in outage (no reply to the last probes): 0 is green; a whole-red line is a dead node.')
        .datasource(DATASOURCE)
        .withTarget(range(`sum by (destination_name) (max by (${PAIR}) (kube_node_ping_outage_ongoing_seconds{${sel()}}) > bool 0)`, '{{destination_name}}'))
        .unit('none')
        .thresholds(
          thresholds([
            [null, 'green'],
            [1, 'orange'],
            [2, 'red'],
          ]),
        )
        .colorScheme(new dashboard.FieldColorBuilder().mode(dashboard.FieldColorModeId.Thresholds))
        .showValue(common.VisibilityMode.Never)
        .mergeValues(true)
        .span(24)
        .height(8),
    )
    .withPanel(
      timeSeries({
        title: 'Longest ongoing outage per destination',
        description: 'kube_node_ping_outage_ongoing_seconds, the longest over the sources: how long the destination has been silent.',
        unit: 's',
        min: 0,
        queries: [range(`max by (destination_name) (kube_node_ping_outage_ongoing_seconds{${sel()}})`, '{{destination_name}}')],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Outages started per destination',
        description: 'Outages (3 consecutive lost probes by default) started, summed over the sources, per $__rate_interval. Not with --pair-metrics lean.',
        unit: 'none',
        min: 0,
        queries: [range(`sum by (destination_name) (increase(kube_node_ping_outages_total{${sel()}}[$__rate_interval]))`, '{{destination_name}}')],
      }).drawStyle(common.GraphDrawStyle.Bars),
    );

  d.withRow(row('Localisation (rules)'))
    .withPanel(
      new table.PanelBuilder()
        .title('Blamed nodes now (rules)')
        .description(
          'What the alert rules blame: a destination unreachable or lossy from most of its sources, or a source that sees loss to most ' +
            'destinations that the others reach. Value: the share of sources (or destinations) behind the verdict. Empty without the rule file.',
        )
        .datasource(DATASOURCE)
        .withTarget(instant('kube_node_ping_node:blamed{k8s_cluster_name=~"$cluster"}'))
        .withTransformation({
          id: 'organize',
          options: { includeByName: { node: true, reason: true, Value: true }, indexByName: { node: 0, reason: 1, Value: 2 }, renameByName: { node: 'Node', reason: 'Reason', Value: 'Share' } },
        })
        .unit('percentunit')
        .noValue('nothing blamed')
        .span(8)
        .height(8),
    )
    .withPanel(
      mergedTable({
        title: 'Destinations: sources that see loss (rules, 5m)',
        description: 'Per destination: the sources probing it, those seeing more than 5 % loss, those seeing it down (> 50 % loss or an outage > 60 s).',
        queries: [
          { refId: 'A', expr: 'kube_node_ping_destination:sources:count{k8s_cluster_name=~"$cluster", destination_name=~"$destination"}', header: 'Sources', unit: 'none' },
          { refId: 'B', expr: 'kube_node_ping_destination:sources_lossy:count{k8s_cluster_name=~"$cluster", destination_name=~"$destination"}', header: 'Seeing loss', unit: 'none' },
          { refId: 'C', expr: 'kube_node_ping_destination:sources_down:count{k8s_cluster_name=~"$cluster", destination_name=~"$destination"}', header: 'Seeing it down', unit: 'none' },
        ],
        labels: { destination_name: 'Destination', destination_kind: 'Kind' },
        sortBy: 'Seeing loss',
      })
        .span(8)
        .height(8),
    )
    .withPanel(
      mergedTable({
        title: 'Sources: destinations with loss (rules, 5m)',
        description: 'Per source: its destinations, those it sees with more than 5 % loss, and those of them no destination verdict explains.',
        queries: [
          { refId: 'A', expr: 'kube_node_ping_source:destinations:count{k8s_cluster_name=~"$cluster", k8s_node_name=~"$source"}', header: 'Destinations', unit: 'none' },
          { refId: 'B', expr: 'kube_node_ping_source:destinations_lossy:count{k8s_cluster_name=~"$cluster", k8s_node_name=~"$source"}', header: 'With loss', unit: 'none' },
          { refId: 'C', expr: 'kube_node_ping_source:destinations_lossy_unexplained:count{k8s_cluster_name=~"$cluster", k8s_node_name=~"$source"}', header: 'Unexplained', unit: 'none' },
        ],
        labels: { k8s_node_name: 'Source' },
        sortBy: 'Unexplained',
      })
        .span(8)
        .height(8),
    );

  // Pooled evidence (kube-node-ping-evidence.rules.yaml): every series carries a `node` label so
  // that the destination-side and source-side figures merge into one row per node.
  const CL = 'k8s_cluster_name=~"$cluster"';
  const asNode = (rec: string) => `max by (node) (label_replace(${rec}{${CL}, destination_kind="node"}, "node", "$1", "destination_name", "(.*)"))`;
  const sourceAsNode = (rec: string) => `max by (node) (label_replace(${rec}{${CL}}, "node", "$1", "k8s_node_name", "(.*)"))`;
  d.withRow(row('Pooled evidence (rules, slow window)'))
    .withPanel(
      new table.PanelBuilder()
        .title('Verdicts now (rules): pooled evidence and 5 % rules')
        .description(
          'The nodes that the pooled evidence suspects (flapping, lossy as a destination, source_lossy; value: the estimated loss) and ' +
            'the ones the 5 % rules blame (value: the share of sources). One row per node and reason. Empty without the rule files.',
        )
        .datasource(DATASOURCE)
        .withTarget(instant(`kube_node_ping_node:suspected:slow{${CL}} or kube_node_ping_node:blamed{${CL}}`))
        .withTransformation({
          id: 'organize',
          options: { includeByName: { node: true, reason: true, Value: true }, indexByName: { node: 0, reason: 1, Value: 2 }, renameByName: { node: 'Node', reason: 'Reason', Value: 'Value' } },
        })
        .unit('percentunit')
        .noValue('nothing suspected or blamed')
        .span(8)
        .height(10),
    )
    .withPanel(
      mergedTable({
        title: 'Per node: pooled loss as destination and as source, with its interval, and flaps (rules, slow window)',
        description:
          'Over the slow window (default 15m), summed over the pairs the evidence rules keep: the loss of the probes sent to the node ' +
            '(without the sources that are suspects themselves) and of its own probes (without the suspect destinations), each with ' +
            'its Wilson interval at z = 4; its probers, those whose own pair loses more than the tolerated loss, those that saw it go ' +
            'away at least twice, and the share of evaluations at which its ' +
            'loss came in a burst. A node is suspected when the lower bound is above the cluster baseline + 0.3 % (docs/alerts.md).',
        queries: [
          { refId: 'A', expr: asNode('kube_node_ping_destination:loss_ratio:slow'), header: 'As destination', unit: 'percentunit' },
          { refId: 'B', expr: asNode('kube_node_ping_destination:loss_lower:slow'), header: 'Dest. lower', unit: 'percentunit' },
          { refId: 'C', expr: asNode('kube_node_ping_destination:loss_upper:slow'), header: 'Dest. upper', unit: 'percentunit' },
          { refId: 'D', expr: sourceAsNode('kube_node_ping_source:loss_ratio:slow'), header: 'As source', unit: 'percentunit' },
          { refId: 'E', expr: sourceAsNode('kube_node_ping_source:loss_lower:slow'), header: 'Source lower', unit: 'percentunit' },
          { refId: 'F', expr: sourceAsNode('kube_node_ping_source:loss_upper:slow'), header: 'Source upper', unit: 'percentunit' },
          { refId: 'G', expr: asNode('kube_node_ping_destination:sources:slow'), header: 'Probers', unit: 'none' },
          { refId: 'J', expr: asNode('kube_node_ping_destination:sources_above_tolerated:slow'), header: 'Probers seeing loss', unit: 'none' },
          { refId: 'H', expr: asNode('kube_node_ping_destination:sources_flapping:slow'), header: 'Probers seeing flaps', unit: 'none' },
          { refId: 'I', expr: asNode('kube_node_ping_destination:bursts_share:slow'), header: 'Bursting', unit: 'percentunit' },
        ],
        labels: { node: 'Node' },
        sortBy: 'Dest. lower',
      })
        .span(16)
        .height(10),
    )
    .withPanel(
      timeSeries({
        title: 'Pooled loss per node as destination, 10 highest lower bounds (rules, slow window)',
        description: 'The estimated loss of the probes sent to each node (pass 2) over the slow window, for the 10 nodes whose Wilson lower bound is highest, and the cluster baseline.',
        unit: 'percentunit',
        queries: [
          range(`${asNode('kube_node_ping_destination:loss_ratio:slow')} and on (node) topk(10, ${asNode('kube_node_ping_destination:loss_lower:slow')})`, '{{node}}'),
          range(`max(kube_node_ping_cluster:loss_baseline:slow{${CL}})`, 'baseline', 'B'),
        ],
        span: 24,
      }),
    );

  return numberPanels(d.build());
}
