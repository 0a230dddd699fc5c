import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { MetricProducer } from '@opentelemetry/sdk-metrics';
import { ATTR, PROMOTED_RESOURCE_ATTRIBUTES } from '../telemetry/names.ts';
import { Exposition } from './exposition.ts';

/** The text format version that Prometheus 3 requires in the Content-Type (it refuses a bare text/plain). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const PROMOTED = new RegExp(`^(${PROMOTED_RESOURCE_ATTRIBUTES.map((a) => a.replaceAll('.', '\\.')).join('|')})$`);

/** One rendered page: the chunks come out one at a time so the caller can yield between them. */
export interface Page {
  chunks: Iterable<string>;
  errors: unknown[];
}

/**
 * The scrape side: the OpenTelemetry Prometheus exporter is the reader (cumulative, pull) and
 * collects from the SDK and our producers; the page is rendered by our Exposition (same
 * names, unit suffixes, resource labels on every series, and a fraction of the cost) on our
 * own HTTP server, which sends the Content-Type Prometheus 3 requires.
 */
export class PrometheusEndpoint {
  readonly reader: PrometheusExporter;
  readonly #exposition = new Exposition({ promote: PROMOTED, dataPointLabels: Object.values(ATTR) });

  constructor(metricProducers: MetricProducer[]) {
    this.reader = new PrometheusExporter({ preventServerStart: true, metricProducers });
  }

  async render(): Promise<Page> {
    const { resourceMetrics, errors } = await this.reader.collect();
    return { chunks: this.#exposition.render(resourceMetrics), errors };
  }

  /** The whole page as one string (tests, benchmarks). */
  async text(): Promise<string> {
    const page = await this.render();
    return [...page.chunks].join('');
  }
}
