import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { MetricData, MetricProducer, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { PROMOTED_RESOURCE_ATTRIBUTES } from '../telemetry/names.ts';

/** The text format version that Prometheus 3 requires in the Content-Type (it refuses a bare text/plain). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * Unit suffixes as Prometheus's own OTLP translation appends them, so a metric has the same
 * name whether it was scraped or pushed through a Collector (the JS exporter adds none).
 */
const UNIT_SUFFIX: Record<string, string> = { s: 'seconds', ms: 'milliseconds', By: 'bytes' };

export function withUnitSuffix(metric: MetricData): MetricData {
  const suffix = UNIT_SUFFIX[metric.descriptor.unit];
  if (suffix === undefined) return metric;
  const name = metric.descriptor.name;
  if (name.endsWith(`_${suffix}`) || name.endsWith(`.${suffix}`)) return metric;
  return { ...metric, descriptor: { ...metric.descriptor, name: `${name}_${suffix}` } };
}

const PROMOTED = new RegExp(`^(${PROMOTED_RESOURCE_ATTRIBUTES.map((a) => a.replaceAll('.', '\\.')).join('|')})$`);

/**
 * The scrape side: the OpenTelemetry Prometheus exporter as the reader (cumulative, pull),
 * mounted on our own HTTP server so that we control the Content-Type, the unit suffixes, and
 * which resource attributes become labels on every series.
 */
export class PrometheusEndpoint {
  readonly reader: PrometheusExporter;
  readonly #serializer: PrometheusSerializer;

  constructor(metricProducers: MetricProducer[]) {
    this.reader = new PrometheusExporter({ preventServerStart: true, metricProducers });
    // Scope labels stay off: Prometheus's OTLP receiver does not add them by default either.
    this.#serializer = new PrometheusSerializer(undefined, false, PROMOTED, false, true);
  }

  /** Collects and renders one page. */
  async render(): Promise<{ body: string; errors: unknown[] }> {
    const { resourceMetrics, errors } = await this.reader.collect();
    return { body: this.#serializer.serialize(renamed(resourceMetrics)), errors };
  }
}

function renamed(rm: ResourceMetrics): ResourceMetrics {
  return {
    resource: rm.resource,
    scopeMetrics: rm.scopeMetrics.map((sm) => ({ scope: sm.scope, metrics: sm.metrics.map(withUnitSuffix) })),
  };
}
