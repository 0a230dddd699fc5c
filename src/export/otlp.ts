import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import {
  AggregationTemporality,
  PeriodicExportingMetricReader,
  type MetricData,
  type MetricProducer,
  type PushMetricExporter,
  type ResourceMetrics,
  type ScopeMetrics,
} from '@opentelemetry/sdk-metrics';
import type { Config } from '../config/config.ts';
import { RateLimitedLog, type Logger } from '../log.ts';

/**
 * The URL the exporter posts to, by the OTel specification for http/protobuf: the
 * signal-specific OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is used as is; the generic
 * OTEL_EXPORTER_OTLP_ENDPOINT is a base to which /v1/metrics is always appended, after any
 * path it has. --otlp-endpoint gets /v1/metrics only when it has no path. gRPC has no path.
 */
export function otlpUrl(endpoint: string, protocol: Config['otlpProtocol'], kind: Config['otlpEndpointKind'] = 'flag'): string {
  if (protocol === 'grpc' || kind === 'metrics') return endpoint;
  const u = new URL(endpoint);
  if (kind === 'base') u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/metrics`;
  else if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/metrics';
  return u.toString();
}

/**
 * Wraps an OTLP exporter so that every failure is counted and logged at most once a minute
 * with the count held back, and large collections go out as several smaller requests. The JS exporters neither retry gRPC failures nor buffer; with
 * cumulative temporality nothing is lost by a failed push: the next one carries the totals.
 * So memory stays bounded by one export, however long the collector is away.
 */
export class CountingExporter implements PushMetricExporter {
  readonly #inner: PushMetricExporter;
  readonly #onFailure: () => void;
  readonly #log: Logger;
  readonly #limit = new RateLimitedLog(60_000);
  readonly #maxPoints: number;
  #failing = false;

  constructor(inner: PushMetricExporter, log: Logger, onFailure: () => void, maxPointsPerRequest = 1000) {
    this.#inner = inner;
    this.#maxPoints = maxPointsPerRequest;
    this.#log = log;
    this.#onFailure = onFailure;
  }

  export(metrics: ResourceMetrics, done: (result: ExportResult) => void): void {
    void this.#exportInBatches(splitResourceMetrics(metrics, this.#maxPoints)).then((result) => {
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

  /**
   * One request per batch, one after the other, yielding to the event loop in between: the
   * exporter serialises a request in one synchronous block (about 60 ms for 5,000
   * destinations), which would hold up the draining of fping's output.
   */
  async #exportInBatches(batches: ResourceMetrics[]): Promise<ExportResult> {
    for (const batch of batches) {
      const result = await new Promise<ExportResult>((resolve) => this.#inner.export(batch, resolve));
      if (result.code !== ExportResultCode.SUCCESS) return result;
      await new Promise((r) => setImmediate(r));
    }
    return { code: ExportResultCode.SUCCESS };
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
  const url = otlpUrl(config.otlpEndpoint, config.otlpProtocol, config.otlpEndpointKind);
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

/**
 * Splits a collection into parts of at most `maxPoints` data points (a histogram point counts
 * as one), keeping every metric's descriptor, so that each part is a complete OTLP request.
 */
export function splitResourceMetrics(rm: ResourceMetrics, maxPoints: number): ResourceMetrics[] {
  const parts: ResourceMetrics[] = [];
  let current: ScopeMetrics[] = [];
  let room = maxPoints;
  const flush = () => {
    if (current.length > 0) parts.push({ resource: rm.resource, scopeMetrics: current });
    current = [];
    room = maxPoints;
  };
  for (const sm of rm.scopeMetrics) {
    for (const m of sm.metrics) {
      let from = 0;
      const points = m.dataPoints as unknown[];
      do {
        if (room === 0) flush();
        const take = Math.min(room, points.length - from);
        const slice = { ...m, dataPoints: points.slice(from, from + take) } as MetricData;
        let scope = current[current.length - 1];
        if (!scope || scope.scope !== sm.scope) {
          scope = { scope: sm.scope, metrics: [] };
          current.push(scope);
        }
        scope.metrics.push(slice);
        from += take;
        room -= take;
      } while (from < points.length);
    }
  }
  flush();
  return parts.length > 0 ? parts : [rm];
}
