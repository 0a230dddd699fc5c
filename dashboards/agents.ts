/**
 * kube-node-ping / Agents: the agents' own health, so that a gap in the measurements can be
 * told from a network fault.
 */
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { SELF, UID, baseDashboard, clusterVariable, datasourceVariable, mergedTable, numberPanels, range, row, sourceVariable, statPanel, thresholds, timeSeries } from './lib.ts';

/** The scrape job, as the chart's ServiceMonitor (the Service name) or PodMonitor (<namespace>/<name>) names it. */
const JOB = 'job=~".*kube-node-ping.*"';

const sumBy = (by: string, m: string, fn?: string) => (fn ? `sum by (${by}) (${fn}(${m}{${SELF}}[$__rate_interval]))` : `sum by (${by}) (${m}{${SELF}})`);

export function agents(): dashboard.Dashboard {
  const d = baseDashboard({
    uid: UID.agents,
    title: 'kube-node-ping / Agents',
    description: 'The health of the kube-node-ping agents: targets, fping processes and restarts, parse errors, export failures, stalls.',
  })
    .withVariable(datasourceVariable())
    .withVariable(clusterVariable())
    .withVariable(sourceVariable({ multi: true }));

  const green = (warnAt: number) =>
    thresholds([
      [null, 'green'],
      [warnAt, 'red'],
    ]);

  d.withRow(row('Now'))
    .withPanel(
      statPanel({
        title: 'Agents reporting',
        description: 'Nodes whose agent sends metrics (scraped or over OTLP).',
        expr: `count(count by (k8s_node_name) (kube_node_ping_targets{${SELF}}))`,
        unit: 'none',
        thresholds: thresholds([[null, 'blue']]),
      }),
    )
    .withPanel(
      statPanel({
        title: 'Scrape targets down',
        description: `Agents Prometheus fails to scrape (up == 0 for ${JOB}). Agents that only push OTLP have no up series.`,
        expr: `count(up{${JOB}} == 0) or vector(0)`,
        unit: 'none',
        thresholds: green(1),
      }),
    )
    .withPanel(
      statPanel({
        title: 'Agents with targets but no fping',
        description: 'Agents that have destinations to probe and no fping process running.',
        expr: `count(sum by (k8s_node_name) (kube_node_ping_targets{${SELF}}) > 0 unless on (k8s_node_name) sum by (k8s_node_name) (kube_node_ping_fping_processes{${SELF}}) > 0) or vector(0)`,
        unit: 'none',
        thresholds: green(1),
      }),
    )
    .withPanel(
      statPanel({
        title: 'fping restarts',
        description: 'fping processes that died and were restarted, over the time range, all agents.',
        expr: `sum(increase(kube_node_ping_fping_restarts_total{${SELF}}[$__range]))`,
        unit: 'none',
        thresholds: green(1),
      }),
    )
    .withPanel(
      statPanel({
        title: 'Export failures',
        description: 'Failed OTLP exports over the time range, all agents.',
        expr: `sum(increase(kube_node_ping_export_failures_total{${SELF}}[$__range]))`,
        unit: 'none',
        thresholds: green(1),
      }),
    )
    .withPanel(
      statPanel({
        title: 'Longest event-loop stall',
        description: 'The longest an agent\'s event loop was blocked in the last one to two minutes (fping output waits meanwhile).',
        expr: `max(kube_node_ping_eventloop_delay_max_seconds{${SELF}})`,
        unit: 's',
        thresholds: thresholds([
          [null, 'green'],
          [0.1, 'orange'],
          [1, 'red'],
        ]),
      }),
    );

  d.withRow(row('Per agent'))
    .withPanel(
      mergedTable({
        title: 'Agents',
        description: 'One line per agent: its targets and fping processes now, and its troubles over the time range.',
        queries: [
          { refId: 'A', expr: `sum by (k8s_node_name) (kube_node_ping_targets{${SELF}})`, header: 'Targets', unit: 'none' },
          { refId: 'B', expr: `sum by (k8s_node_name) (kube_node_ping_fping_processes{${SELF}})`, header: 'fping processes', unit: 'none' },
          { refId: 'C', expr: `sum by (k8s_node_name) (rate(kube_node_ping_packets_sent_total{${SELF}}[$__range]))`, header: 'Probes/s', unit: 'none' },
          { refId: 'D', expr: `sum by (k8s_node_name) (increase(kube_node_ping_fping_restarts_total{${SELF}}[$__range]))`, header: 'fping restarts', unit: 'none' },
          { refId: 'E', expr: `sum by (k8s_node_name) (increase(kube_node_ping_fping_parse_errors_total{${SELF}}[$__range]))`, header: 'Parse errors', unit: 'none' },
          { refId: 'F', expr: `sum by (k8s_node_name) (increase(kube_node_ping_export_failures_total{${SELF}}[$__range]))`, header: 'Export failures', unit: 'none' },
          { refId: 'G', expr: `sum by (k8s_node_name) (increase(kube_node_ping_targets_reloads_total{${SELF}, result="failure"}[$__range]))`, header: 'Reload failures', unit: 'none' },
          { refId: 'H', expr: `max by (k8s_node_name) (kube_node_ping_eventloop_delay_max_seconds{${SELF}})`, header: 'Longest stall', unit: 's' },
        ],
        labels: { k8s_node_name: 'Node' },
        sortBy: 'fping restarts',
      })
        .span(24)
        .height(9),
    );

  d.withRow(row('Over time'))
    .withPanel(
      timeSeries({
        title: 'Targets',
        description: 'Destinations each agent probes, by kind.',
        unit: 'none',
        min: 0,
        queries: [range(sumBy('k8s_node_name, destination_kind', 'kube_node_ping_targets'), '{{k8s_node_name}} {{destination_kind}}')],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Probes per second',
        description: 'Probes that got a verdict (reply or timeout), per agent: targets ÷ period when all is well.',
        unit: 'none',
        min: 0,
        queries: [range(sumBy('k8s_node_name', 'kube_node_ping_packets_sent_total', 'rate'), '{{k8s_node_name}}')],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'fping processes and restarts',
        description: 'fping processes running per agent, and restarts per $__rate_interval.',
        unit: 'none',
        min: 0,
        queries: [
          range(sumBy('k8s_node_name', 'kube_node_ping_fping_processes'), '{{k8s_node_name}} processes', 'A'),
          range(sumBy('k8s_node_name', 'kube_node_ping_fping_restarts_total', 'increase'), '{{k8s_node_name}} restarts', 'B'),
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Parse errors and target reloads',
        description: 'fping lines that could not be parsed, and targets-file reloads by result, per $__rate_interval.',
        unit: 'none',
        min: 0,
        queries: [
          range(sumBy('k8s_node_name', 'kube_node_ping_fping_parse_errors_total', 'increase'), '{{k8s_node_name}} parse errors', 'A'),
          range(sumBy('k8s_node_name, result', 'kube_node_ping_targets_reloads_total', 'increase'), '{{k8s_node_name}} reload {{result}}', 'B'),
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Export failures',
        description: 'Failed exports per agent and exporter, per $__rate_interval.',
        unit: 'none',
        min: 0,
        queries: [range(sumBy('k8s_node_name, exporter', 'kube_node_ping_export_failures_total', 'increase'), '{{k8s_node_name}} {{exporter}}')],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Event-loop stalls',
        description: 'Longest event-loop delay per agent in the last one to two minutes.',
        unit: 's',
        min: 0,
        queries: [range(`max by (k8s_node_name) (kube_node_ping_eventloop_delay_max_seconds{${SELF}})`, '{{k8s_node_name}}')],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Scrape up',
        description: `Prometheus's up series for ${JOB}: 1 when the last scrape of the agent succeeded.`,
        unit: 'none',
        min: 0,
        max: 1,
        queries: [range(`up{${JOB}}`, '{{instance}}')],
        span: 24,
      }),
    );

  return numberPanels(d.build());
}
