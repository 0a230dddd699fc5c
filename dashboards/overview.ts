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

  return numberPanels(d.build());
}
