/**
 * kube-node-ping / Node: one node seen both ways, what it sees as a source (outgoing) and how
 * the other nodes see it as a destination (incoming). A bad outgoing view with a good incoming
 * one points at the node's own probing; both bad point at the node; neither at a link.
 */
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as heatmap from '@grafana/grafana-foundation-sdk/heatmap';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import {
  DATASOURCE,
  UID,
  baseDashboard,
  clusterVariable,
  datasourceVariable,
  destinationVariable,
  longestOutage,
  loss,
  mergedTable,
  numberPanels,
  range,
  row,
  rttMean,
  rttQuantile,
  sel,
  sourceVariable,
  timeSeries,
} from './lib.ts';

/** Probes from other nodes to the selected node. */
const INCOMING = 'k8s_cluster_name=~"$cluster", destination_name=~"$source"';

export function source(): dashboard.Dashboard {
  const d = baseDashboard({
    uid: UID.node,
    title: 'kube-node-ping / Node',
    description: 'One node of the cluster: what its agent sees (outgoing) and what the other agents see of it (incoming).',
  })
    .withVariable(datasourceVariable())
    .withVariable(clusterVariable())
    .withVariable(sourceVariable({ multi: false }).label('Node'))
    .withVariable(destinationVariable());

  d.withRow(row('Outgoing: what $source sees'))
    .withPanel(
      timeSeries({
        title: 'Loss from $source',
        description: 'Loss ratio of the probes from $source to each destination, over $__rate_interval.',
        unit: 'percentunit',
        min: 0,
        max: 1,
        queries: [range(loss('destination_name', '$__rate_interval'), '{{destination_name}}')],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Ongoing outage from $source',
        description: 'How long each destination has not answered $source (0 while it answers).',
        unit: 's',
        min: 0,
        queries: [range(`max by (destination_name) (kube_node_ping_outage_ongoing_seconds{${sel()}})`, '{{destination_name}}')],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'RTT p50 from $source',
        description: 'Median RTT from $source to each destination, over $__rate_interval.',
        unit: 's',
        min: 0,
        queries: [range(rttQuantile('0.5', 'destination_name', '$__rate_interval'), '{{destination_name}}')],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'RTT p99 from $source',
        description: '99th percentile of the RTT from $source to each destination, over $__rate_interval.',
        unit: 's',
        min: 0,
        queries: [range(rttQuantile('0.99', 'destination_name', '$__rate_interval'), '{{destination_name}}')],
      }),
    )
    .withPanel(
      new heatmap.PanelBuilder()
        .title('RTT distribution from $source (selected destinations)')
        .description(
          'Replies per RTT bucket and $__rate_interval, summed over the selected destinations. Agents sending over different paths ' +
            '(scrape and OTLP) into one Prometheus write bucket bounds differently ("1.0" and "1"), which shows as separate rows.',
        )
        .datasource(DATASOURCE)
        .withTarget(
          new prometheus.DataqueryBuilder()
            .datasource(DATASOURCE)
            .expr(`sum by (le) (increase(kube_node_ping_rtt_seconds_bucket{${sel()}}[$__rate_interval]))`)
            .format(prometheus.PromQueryFormat.Heatmap)
            .legendFormat('{{le}}')
            .range()
            .refId('A'),
        )
        .calculate(false)
        .rowsFrame(new heatmap.RowsHeatmapOptionsBuilder().layout(common.HeatmapCellLayout.Le))
        .yAxis(new heatmap.YAxisConfigBuilder().unit('s'))
        .color(new heatmap.HeatmapColorOptionsBuilder().mode(heatmap.HeatmapColorMode.Scheme).scheme('Oranges').fill('dark-orange').scale(heatmap.HeatmapColorScale.Exponential).exponent(0.5).steps(64).reverse(false))
        .span(24)
        .height(8),
    )
    .withPanel(
      mergedTable({
        title: 'Destinations of $source over the time range',
        description: 'Per destination: loss, RTT and outages from $source over the dashboard time range (outage time and count: not with --pair-metrics lean).',
        queries: [
          { refId: 'A', expr: loss('destination_name', '$__range'), header: 'Loss', unit: 'percentunit' },
          { refId: 'B', expr: rttQuantile('0.5', 'destination_name', '$__range'), header: 'RTT p50', unit: 's' },
          { refId: 'C', expr: rttQuantile('0.99', 'destination_name', '$__range'), header: 'RTT p99', unit: 's' },
          { refId: 'D', expr: rttMean('destination_name', '$__range'), header: 'RTT mean', unit: 's' },
          { refId: 'E', expr: longestOutage('destination_name', '$__range'), header: 'Longest outage', unit: 's' },
          { refId: 'F', expr: `sum by (destination_name) (increase(kube_node_ping_outage_duration_seconds_total{${sel()}}[$__range]))`, header: 'Outage time', unit: 's' },
          { refId: 'G', expr: `sum by (destination_name) (increase(kube_node_ping_outages_total{${sel()}}[$__range]))`, header: 'Outages', unit: 'none' },
        ],
        labels: { destination_name: 'Destination' },
        sortBy: 'Loss',
      })
        .span(24)
        .height(8),
    );

  d.withRow(row('Incoming: how the other nodes see $source'))
    .withPanel(
      timeSeries({
        title: 'Loss to $source',
        description: 'Loss ratio of the probes from each other node to $source, over $__rate_interval.',
        unit: 'percentunit',
        min: 0,
        max: 1,
        queries: [range(loss('k8s_node_name', '$__rate_interval', INCOMING), '{{k8s_node_name}}')],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'RTT p50 to $source',
        description: 'Median RTT from each other node to $source, over $__rate_interval (no data when the agents keep RTT histograms per destination zone).',
        unit: 's',
        min: 0,
        queries: [range(rttQuantile('0.5', 'k8s_node_name', '$__rate_interval', INCOMING), '{{k8s_node_name}}')],
      }),
    )
    .withPanel(
      mergedTable({
        title: 'Sources probing $source over the time range',
        description: 'Per source node: loss, RTT and outages of its probes to $source over the dashboard time range.',
        queries: [
          { refId: 'A', expr: loss('k8s_node_name', '$__range', INCOMING), header: 'Loss', unit: 'percentunit' },
          { refId: 'B', expr: rttQuantile('0.5', 'k8s_node_name', '$__range', INCOMING), header: 'RTT p50', unit: 's' },
          { refId: 'C', expr: rttQuantile('0.99', 'k8s_node_name', '$__range', INCOMING), header: 'RTT p99', unit: 's' },
          { refId: 'D', expr: longestOutage('k8s_node_name', '$__range', INCOMING), header: 'Longest outage', unit: 's' },
        ],
        labels: { k8s_node_name: 'Source' },
        sortBy: 'Loss',
      })
        .span(24)
        .height(8),
    );

  d.withRow(row('Verdicts on $source (rules)'))
    .withPanel(
      timeSeries({
        title: 'As a source: destinations with loss (rules, 5m)',
        description:
          'Destinations of $source, those it sees with more than 5 % loss, and those of them that no destination verdict explains. ' +
          'More than half unexplained (with at least 3 destinations) blames $source as a degraded source.',
        unit: 'none',
        min: 0,
        queries: [
          range('kube_node_ping_source:destinations:count{k8s_cluster_name=~"$cluster", k8s_node_name=~"$source"}', 'destinations', 'A'),
          range('kube_node_ping_source:destinations_lossy:count{k8s_cluster_name=~"$cluster", k8s_node_name=~"$source"}', 'with loss', 'B'),
          range('kube_node_ping_source:destinations_lossy_unexplained:count{k8s_cluster_name=~"$cluster", k8s_node_name=~"$source"}', 'unexplained', 'C'),
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'As a destination: sources seeing loss (rules, 5m)',
        description:
          'Sources probing $source, those seeing more than 5 % loss, and those seeing it down. More than half (with at least 3 sources) ' +
          'blames $source as lossy or unreachable.',
        unit: 'none',
        min: 0,
        queries: [
          range('kube_node_ping_destination:sources:count{k8s_cluster_name=~"$cluster", destination_name=~"$source"}', 'sources', 'A'),
          range('kube_node_ping_destination:sources_lossy:count{k8s_cluster_name=~"$cluster", destination_name=~"$source"}', 'seeing loss', 'B'),
          range('kube_node_ping_destination:sources_down:count{k8s_cluster_name=~"$cluster", destination_name=~"$source"}', 'seeing it down', 'C'),
        ],
      }),
    );

  return numberPanels(d.build());
}
