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
import type { ClientHttp2Session } from 'node:http2';
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
 *
 * Connections stay bounded too. Against an endpoint that accepts TCP and never answers,
 * grpc-js 1.14 waits for the HTTP/2 handshake without a deadline, keeps reconnecting in the
 * background, and never closes an attempt's socket, not even when its channel is closed:
 * 1 → 29 connections in 11 minutes. So:
 *  - until an export has succeeded (at start, and after every failure), `preflight` checks the
 *    endpoint with a handshake of our own that has a deadline and always closes its socket,
 *    and the export is handed to gRPC only once that works (not through a proxy, which
 *    grpc-js takes from grpc_proxy/https_proxy/http_proxy and our check would bypass);
 *  - given a factory (gRPC only), a failed export retires its exporter (its channel stops
 *    reconnecting) and the next export gets a fresh one;
 *  - an export never starts while the previous one is in flight.
 */
export class CountingExporter implements PushMetricExporter {
  readonly #make: () => PushMetricExporter;
  readonly #renew: boolean;
  #inner: PushMetricExporter;
  readonly #onFailure: (error: string) => void;
  readonly #log: Logger;
  readonly #limit = new RateLimitedLog(60_000);
  readonly #maxPoints: number;
  #failing = false;
  #inFlight = false;
  /** The export in flight, settled once its result is counted. */
  #current: Promise<void> = Promise.resolve();
  #healthy = false;
  #retiring: Promise<void>[] = [];
  readonly #preflight: (() => Promise<string | undefined>) | undefined;

  /** `inner`: an exporter, or a factory of them, which lets a failed one be replaced. */
  constructor(
    inner: PushMetricExporter | (() => PushMetricExporter),
    log: Logger,
    onFailure: (error: string) => void,
    maxPointsPerRequest = 1000,
    /** Resolves undefined when the endpoint can take an export, else why not. */
    preflight?: () => Promise<string | undefined>,
  ) {
    this.#preflight = preflight;
    this.#renew = typeof inner === 'function';
    this.#make = typeof inner === 'function' ? inner : () => inner;
    this.#inner = this.#make();
    this.#maxPoints = maxPointsPerRequest;
    this.#log = log;
    this.#onFailure = onFailure;
  }

  export(metrics: ResourceMetrics, done: (result: ExportResult) => void): void {
    if (this.#inFlight) {
      // The reader gave up waiting (its timeout) but the requests have not ended: do not
      // stack another set of requests, and connections, on top.
      this.#failed({ code: ExportResultCode.FAILED, error: new Error('the previous export has not ended yet') }, done);
      return;
    }
    this.#inFlight = true;
    const inner = this.#inner;
    this.#current = this.#checkThenExport(inner, metrics).then((result) => {
      this.#inFlight = false;
      this.#healthy = result.code === ExportResultCode.SUCCESS;
      if (result.code === ExportResultCode.SUCCESS) {
        if (this.#failing) this.#log.info('OTLP export recovered');
        this.#failing = false;
        done(result);
      } else {
        if (this.#renew && inner === this.#inner) this.#retire(inner);
        this.#failed(result, done);
      }
    });
  }

  #failed(result: ExportResult, done: (result: ExportResult) => void): void {
    this.#failing = true;
    this.#onFailure(result.error?.message ?? 'export failed');
    this.#limit.maybe((suppressed) =>
      this.#log.warn('OTLP export failed; will retry at the next interval', { error: result.error?.message, suppressed }),
    );
    done(result);
  }

  async #checkThenExport(inner: PushMetricExporter, metrics: ResourceMetrics): Promise<ExportResult> {
    if (!this.#healthy && this.#preflight) {
      const problem = await this.#preflight();
      if (problem !== undefined) return { code: ExportResultCode.FAILED, error: new Error(problem) };
    }
    return this.#exportInBatches(inner, splitResourceMetrics(metrics, this.#maxPoints));
  }

  /** Shuts a failed exporter down (closing its connections) and makes the next one. */
  #retire(inner: PushMetricExporter): void {
    this.#inner = this.#make();
    const p = inner.shutdown().catch(() => undefined);
    this.#retiring.push(p);
    void p.then(() => {
      this.#retiring = this.#retiring.filter((x) => x !== p);
    });
  }

  /**
   * One request per batch, one after the other, yielding to the event loop in between: the
   * exporter serialises a request in one synchronous block (about 60 ms for 5,000
   * destinations), which would hold up the draining of fping's output.
   */
  async #exportInBatches(inner: PushMetricExporter, batches: ResourceMetrics[]): Promise<ExportResult> {
    for (const batch of batches) {
      const result = await new Promise<ExportResult>((resolve) => inner.export(batch, resolve));
      if (result.code !== ExportResultCode.SUCCESS) return result;
      await new Promise((r) => setImmediate(r));
    }
    return { code: ExportResultCode.SUCCESS };
  }

  /**
   * Waits for the export in flight to be counted: the reader's own timeout may have given up
   * on it, and the agent's stop() reads the count to say whether the final flush failed.
   */
  async forceFlush(): Promise<void> {
    await this.#current;
    await this.#inner.forceFlush();
  }

  async shutdown(): Promise<void> {
    await Promise.all([this.#inner.shutdown(), ...this.#retiring]);
  }

  selectAggregationTemporality(): AggregationTemporality {
    return AggregationTemporality.CUMULATIVE;
  }
}

/** Imports only the exporter of the configured protocol. */
export async function createOtlpReader(config: Config, producers: MetricProducer[], log: Logger, onFailure: (error: string) => void): Promise<PeriodicExportingMetricReader> {
  const url = otlpUrl(config.otlpEndpoint, config.otlpProtocol, config.otlpEndpointKind);
  const common = { url, timeoutMillis: config.exportTimeout, temporalityPreference: AggregationTemporality.CUMULATIVE };
  let make: () => PushMetricExporter;
  if (config.otlpProtocol === 'grpc') {
    const [{ Metadata }, { OTLPMetricExporter }] = await Promise.all([import('@grpc/grpc-js'), import('@opentelemetry/exporter-metrics-otlp-grpc')]);
    const metadata = new Metadata();
    for (const [k, v] of Object.entries(config.otlpHeaders)) metadata.set(k, v);
    make = () => new OTLPMetricExporter({ ...common, metadata });
  } else {
    const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-proto');
    make = () => new OTLPMetricExporter({ ...common, headers: config.otlpHeaders });
  }
  log.info('OTLP export on', { url, protocol: config.otlpProtocol, interval_ms: config.exportInterval });
  return new PeriodicExportingMetricReader({
    // Only gRPC needs a failed exporter replaced (its channel keeps reconnecting); each
    // replacement costs some 8 KB that the HTTP exporter, whose sockets time out, need not pay.
    exporter: new CountingExporter(config.otlpProtocol === 'grpc' ? make : make(), log, onFailure, undefined, config.otlpProtocol === 'grpc' && config.grpcProxy === '' ? () => http2Handshake(url, config.exportTimeout) : undefined),
    exportIntervalMillis: config.exportInterval,
    exportTimeoutMillis: config.exportTimeout,
    metricProducers: producers,
  });
}

/**
 * Opens an HTTP/2 connection to `url` and waits for the server's SETTINGS, within `timeoutMs`;
 * the socket is always destroyed. Undefined unless the endpoint stayed silent, else why.
 */
export async function http2Handshake(url: string, timeoutMs: number): Promise<string | undefined> {
  const { connect } = await import('node:http2');
  return new Promise((resolve) => {
    let session: ClientHttp2Session | undefined;
    const finish = (problem: string | undefined) => {
      clearTimeout(timer);
      session?.destroy();
      resolve(problem);
    };
    const timer = setTimeout(() => finish(`${url} did not complete an HTTP/2 handshake within ${timeoutMs} ms`), timeoutMs);
    try {
      session = connect(url);
    } catch (err) {
      finish(`${url}: ${(err as Error).message}`);
      return;
    }
    // Only silence is held back here: a refused connection or a TLS error (a CA that only the
    // gRPC exporter knows, from OTEL_EXPORTER_OTLP_CERTIFICATE) is left to gRPC, which fails
    // fast on those and says so in its own words.
    session.once('remoteSettings', () => finish(undefined));
    session.once('error', () => finish(undefined));
    session.once('close', () => finish(undefined));
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
