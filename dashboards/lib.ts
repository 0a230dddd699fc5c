/**
 * What the kube-node-ping dashboards share: the data source, the variables, the PromQL of loss,
 * RTT and outages, and a few panel shapes (the source × destination matrix, merged tables).
 *
 * Every query reads the raw metrics with the dashboard's own window ($__range for "over the
 * time range" tables, $__rate_interval for time series), so the dashboards work without the
 * recording rules; only the panels titled "(rules)" read the rule file's verdicts.
 */
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

export const TAG = 'kube-node-ping';
export const UID = {
  overview: 'kube-node-ping-overview',
  node: 'kube-node-ping-node',
  agents: 'kube-node-ping-agents',
} as const;

export const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };

// ---- variables ---------------------------------------------------------------------------

export function datasourceVariable(): dashboard.DatasourceVariableBuilder {
  return new dashboard.DatasourceVariableBuilder('datasource').label('Data source').type('prometheus');
}

function labelValues(name: string, metric: string, label: string, selector: string): dashboard.QueryVariableBuilder {
  const q = `label_values(${metric}${selector ? `{${selector}}` : ''}, ${label})`;
  return new dashboard.QueryVariableBuilder(name)
    .datasource(DATASOURCE)
    .query({ qryType: 1, query: q, refId: 'PrometheusVariableQueryEditor-VariableQuery' })
    .definition(q)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc);
}

export function clusterVariable(): dashboard.QueryVariableBuilder {
  // An agent without --cluster-name has no k8s_cluster_name: the variable is then empty and
  // =~"" matches the series without the label.
  return labelValues('cluster', 'kube_node_ping_targets', 'k8s_cluster_name', '').label('Cluster');
}

/** Sources: the nodes whose agents report. */
export function sourceVariable(opts: { multi: boolean }): dashboard.QueryVariableBuilder {
  const v = labelValues('source', 'kube_node_ping_targets', 'k8s_node_name', 'k8s_cluster_name=~"$cluster"').label('Source node');
  return opts.multi ? v.multi(true).includeAll(true).allValue('.*') : v;
}

export function destinationVariable(): dashboard.QueryVariableBuilder {
  return labelValues('destination', 'kube_node_ping_packets_sent_total', 'destination_name', 'k8s_cluster_name=~"$cluster"')
    .label('Destination')
    .multi(true)
    .includeAll(true)
    .allValue('.*');
}

export function quantileVariable(): dashboard.CustomVariableBuilder {
  return new dashboard.CustomVariableBuilder('quantile')
    .label('RTT quantile')
    .values('0.5,0.9,0.99')
    .current({ text: '0.99', value: '0.99', selected: true });
}

export function links(): dashboard.DashboardLinkBuilder {
  return new dashboard.DashboardLinkBuilder('kube-node-ping')
    .type(dashboard.DashboardLinkType.Dashboards)
    .tags([TAG])
    .asDropdown(false)
    .includeVars(true)
    .keepTime(true);
}

// ---- PromQL --------------------------------------------------------------------------------

/** Series selector of the per-destination metrics. */
export function sel(o: { source?: string; destination?: string } = {}): string {
  return `k8s_cluster_name=~"$cluster", k8s_node_name=~"${o.source ?? '$source'}", destination_name=~"${o.destination ?? '$destination'}"`;
}
export const SELF = 'k8s_cluster_name=~"$cluster", k8s_node_name=~"$source"';

/** Loss ratio per `by` over `window`: 1 - received / sent, pairs that sent nothing left out. */
export function loss(by: string, window: string, s = sel()): string {
  return (
    `clamp_min(1 - sum by (${by}) (increase(kube_node_ping_packets_received_total{${s}}[${window}]))` +
    ` / (sum by (${by}) (increase(kube_node_ping_packets_sent_total{${s}}[${window}])) > 0), 0)`
  );
}

/**
 * With --rtt-histogram per-zone, node destinations share one histogram per destination zone,
 * without a destination_name: grouped by destination_name too, such series are named
 * "zone <destination_zone>" (as the rule file does), instead of one nameless mix of zones.
 */
function zoneNamed(by: string, expr: (by: string) => string): string {
  if (!by.split(/,\s*/).includes('destination_name')) return expr(by);
  return (
    'label_replace(label_replace(label_join(' +
    expr(`${by}, destination_zone`) +
    ', "name_zone", ";", "destination_name", "destination_zone"), "destination_name", "zone $1", "name_zone", ";(.+)"), "name_zone", "", "", "")'
  );
}

/** RTT quantile per `by` (buckets summed over addresses and ingestion paths; no literal le). */
export function rttQuantile(q: string, by: string, window: string, s = sel()): string {
  return zoneNamed(by, (b) => `histogram_quantile(${q}, sum by (le, ${b}) (rate(kube_node_ping_rtt_seconds_bucket{${s}}[${window}])))`);
}

export function rttMean(by: string, window: string, s = sel()): string {
  return zoneNamed(
    by,
    (b) => `sum by (${b}) (rate(kube_node_ping_rtt_seconds_sum{${s}}[${window}])) / (sum by (${b}) (rate(kube_node_ping_rtt_seconds_count{${s}}[${window}])) > 0)`,
  );
}

/** The longest outage per `by` seen over `window` (from the gauge: works with --pair-metrics lean). */
export function longestOutage(by: string, window: string, s = sel()): string {
  return `max by (${by}) (max_over_time(kube_node_ping_outage_ongoing_seconds{${s}}[${window}]))`;
}

export const PAIR = 'k8s_node_name, destination_name';

// ---- queries -------------------------------------------------------------------------------

export function instant(expr: string, refId = 'A'): prometheus.DataqueryBuilder {
  return new prometheus.DataqueryBuilder().datasource(DATASOURCE).expr(expr).instant().format(prometheus.PromQueryFormat.Table).refId(refId);
}

export function range(expr: string, legend: string, refId = 'A'): prometheus.DataqueryBuilder {
  return new prometheus.DataqueryBuilder().datasource(DATASOURCE).expr(expr).range().legendFormat(legend).refId(refId);
}

// ---- panels --------------------------------------------------------------------------------

export function thresholds(steps: [number | null, string][]): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps(steps.map(([value, color]) => ({ value, color })));
}

export const LOSS_THRESHOLDS = () =>
  thresholds([
    [null, 'green'],
    [0.001, 'yellow'],
    [0.05, 'orange'],
    [0.2, 'red'],
  ]);
export const RTT_THRESHOLDS = () =>
  thresholds([
    [null, 'green'],
    [0.002, 'yellow'],
    [0.01, 'orange'],
    [0.05, 'red'],
  ]);
export const OUTAGE_THRESHOLDS = () =>
  thresholds([
    [null, 'green'],
    [1, 'orange'],
    [60, 'red'],
  ]);

/**
 * A source × destination matrix: an instant table query grouped by (k8s_node_name,
 * destination_name), turned into one row per source and one column per destination by the
 * groupingToMatrix transformation, each cell coloured by its value. Grafana names the first
 * column "<rowField>\\<columnField>"; clicking a source there opens its Node dashboard.
 */
export function matrix(o: {
  title: string;
  description: string;
  expr: string;
  unit: string;
  thresholds: dashboard.ThresholdsConfigBuilder;
  decimals?: number;
  rowField?: string;
  columnField?: string;
}): table.PanelBuilder {
  const rowField = o.rowField ?? 'k8s_node_name';
  const columnField = o.columnField ?? 'destination_name';
  const nodes = rowField === 'k8s_node_name';
  const p = new table.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .withTarget(instant(o.expr))
    .withTransformation({
      id: 'groupingToMatrix',
      options: { columnField, rowField, valueField: 'Value', emptyValue: 'null' },
    })
    .unit(o.unit)
    .thresholds(o.thresholds)
    .colorScheme(new dashboard.FieldColorBuilder().mode(dashboard.FieldColorModeId.Thresholds))
    .cellOptions({ type: common.TableCellDisplayMode.ColorBackground, mode: common.TableCellBackgroundDisplayMode.Basic })
    .align(common.FieldTextAlignment.Center)
    .noValue('no data')
    .overrideByName(`${rowField}\\${columnField}`, [
      { id: 'displayName', value: nodes ? 'source \\ destination' : 'source zone \\ destination zone' },
      { id: 'custom.cellOptions', value: { type: 'auto' } },
      { id: 'custom.align', value: 'left' },
      ...(nodes
        ? [
            {
              id: 'links',
              value: [{ title: 'Drill down into ${__value.text}', url: `/d/${UID.node}?var-source=\${__value.raw}&\${datasource:queryparam}&\${cluster:queryparam}&\${__url_time_range}` }],
            },
          ]
        : []),
    ])
    .span(24)
    .height(10);
  if (o.decimals !== undefined) p.decimals(o.decimals);
  return p;
}

/**
 * A table of several instant queries joined on their labels: `columns` maps refId → header,
 * `labels` maps label → header (other labels and the time are hidden).
 */
export function mergedTable(o: {
  title: string;
  description: string;
  queries: { refId: string; expr: string; header: string; unit: string }[];
  labels: Record<string, string>;
  sortBy: string;
  limit?: number;
}): table.PanelBuilder {
  const rename: Record<string, string> = { ...o.labels };
  const include: Record<string, boolean> = {};
  const index: Record<string, number> = {};
  let i = 0;
  for (const l of Object.keys(o.labels)) {
    include[l] = true;
    index[l] = i++;
  }
  for (const q of o.queries) {
    rename[`Value #${q.refId}`] = q.header;
    include[`Value #${q.refId}`] = true;
    index[`Value #${q.refId}`] = i++;
  }
  const p = new table.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .targets(o.queries.map((q) => instant(q.expr, q.refId)))
    .withTransformation({ id: 'merge', options: {} })
    .withTransformation({ id: 'organize', options: { includeByName: include, indexByName: index, renameByName: rename } })
    .withTransformation({ id: 'sortBy', options: { sort: [{ field: o.sortBy, desc: true }] } });
  if (o.limit) p.withTransformation({ id: 'limit', options: { limitField: o.limit } });
  for (const q of o.queries) p.overrideByName(q.header, [{ id: 'unit', value: q.unit }]);
  return p.filterable(true);
}

export function timeSeries(o: { title: string; description: string; unit: string; queries: prometheus.DataqueryBuilder[]; span?: number; min?: number; max?: number }): timeseries.PanelBuilder {
  const p = new timeseries.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .targets(o.queries)
    .unit(o.unit)
    .legend(new common.VizLegendOptionsBuilder().displayMode(common.LegendDisplayMode.Table).placement(common.LegendPlacement.Right).showLegend(true).calcs(['max', 'lastNotNull']))
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending))
    .span(o.span ?? 12)
    .height(8);
  if (o.min !== undefined) p.min(o.min);
  if (o.max !== undefined) p.max(o.max);
  return p;
}

export function statPanel(o: { title: string; description: string; expr: string; unit: string; thresholds: dashboard.ThresholdsConfigBuilder; span?: number }): stat.PanelBuilder {
  return new stat.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .withTarget(instant(o.expr))
    .unit(o.unit)
    .thresholds(o.thresholds)
    .colorMode(common.BigValueColorMode.Background)
    .graphMode(common.BigValueGraphMode.None)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .span(o.span ?? 4)
    .height(4);
}

export function row(title: string): dashboard.RowBuilder {
  return new dashboard.RowBuilder(title);
}

export function baseDashboard(o: { uid: string; title: string; description: string }): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder(o.title)
    .uid(o.uid)
    .description(o.description)
    .tags([TAG])
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: 'now-1h', to: 'now' })
    .refresh('1m')
    .timezone('browser')
    .link(links());
}

/**
 * Panel ids in layout order, so that the JSON does not depend on anything but the source; and
 * an empty annotation list, which Grafana expects to find.
 */
export function numberPanels(d: dashboard.Dashboard): dashboard.Dashboard {
  d.annotations = { list: [], ...d.annotations };
  let id = 1;
  for (const p of d.panels ?? []) {
    (p as { id?: number }).id = id++;
    for (const q of (p as { panels?: { id?: number }[] }).panels ?? []) q.id = id++;
  }
  return d;
}
