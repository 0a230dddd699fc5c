import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import {
  AggregationTemporality,
  PeriodicExportingMetricReader,
  type MetricProducer,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import type { Config } from '../config/config.ts';
import { RateLimitedLog, type Logger } from '../log.ts';

/** The URL the exporter posts to: for http/protobuf a base endpoint gets /v1/metrics, as OTEL_EXPORTER_OTLP_ENDPOINT does. */
export function otlpUrl(endpoint: string, protocol: Config['otlpProtocol']): string {
  if (protocol === 'grpc') return endpoint;
  const u = new URL(endpoint);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/metrics';
  return u.toString();
}

/**
 * Wraps an OTLP exporter so that every failure is counted and logged at most once a minute
 * with the count held back. The JS exporters neither retry gRPC failures nor buffer; with
 * cumulative temporality nothing is lost by a failed push: the next one carries the totals.
 * So memory stays bounded by one export, however long the collector is away.
 */
export class CountingExporter implements PushMetricExporter {
  readonly #inner: PushMetricExporter;
  readonly #onFailure: () => void;
  readonly #log: Logger;
  readonly #limit = new RateLimitedLog(60_000);
  #failing = false;

  constructor(inner: PushMetricExporter, log: Logger, onFailure: () => void) {
    this.#inner = inner;
    this.#log = log;
    this.#onFailure = onFailure;
  }

  export(metrics: ResourceMetrics, done: (result: ExportResult) => void): void {
    this.#inner.export(metrics, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        if (this.#failing) this.#log.info('OTLP export recovered');
        this.#failing = false;
      } else {
        this.#failing = true;
        this.#onFailure();
        this.#limit.maybe((suppressed) =>
          this.#log.warn('OTLP export failed; will retry at the next interval', { error: result.error?.message, suppressed }),
        );
      }
      done(result);
    });
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  selectAggregationTemporality(): AggregationTemporality {
    return AggregationTemporality.CUMULATIVE;
  }
}

/** Imports only the exporter of the configured protocol. */
export async function createOtlpReader(config: Config, producers: MetricProducer[], log: Logger, onFailure: () => void): Promise<PeriodicExportingMetricReader> {
  const url = otlpUrl(config.otlpEndpoint, config.otlpProtocol);
  const common = { url, timeoutMillis: config.exportTimeout, temporalityPreference: AggregationTemporality.CUMULATIVE };
  let inner: PushMetricExporter;
  if (config.otlpProtocol === 'grpc') {
    const [{ Metadata }, { OTLPMetricExporter }] = await Promise.all([import('@grpc/grpc-js'), import('@opentelemetry/exporter-metrics-otlp-grpc')]);
    const metadata = new Metadata();
    for (const [k, v] of Object.entries(config.otlpHeaders)) metadata.set(k, v);
    inner = new OTLPMetricExporter({ ...common, metadata });
  } else {
    const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-proto');
    inner = new OTLPMetricExporter({ ...common, headers: config.otlpHeaders });
  }
  log.info('OTLP export on', { url, protocol: config.otlpProtocol, interval_ms: config.exportInterval });
  return new PeriodicExportingMetricReader({
    exporter: new CountingExporter(inner, log, onFailure),
    exportIntervalMillis: config.exportInterval,
    exportTimeoutMillis: config.exportTimeout,
    metricProducers: producers,
  });
}
