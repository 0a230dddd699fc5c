import { diag, DiagLogLevel } from '@opentelemetry/api';
import { MeterProvider, type IMetricReader } from '@opentelemetry/sdk-metrics';
import type { Server } from 'node:http';
import { discoveryEnabled, type Config } from './config/config.ts';
import { PrometheusEndpoint } from './export/prometheus.ts';
import { startHttpServer } from './http/server.ts';
import { RateLimitedLog, type Logger } from './log.ts';
import type { Spawner } from './probing/fping-process.ts';
import { agentTargetCapacity, TargetCap } from './probing/capacity.ts';
import { fpingMinIntervalMs } from './probing/fping-check.ts';
import { Prober } from './probing/prober.ts';
import { StaticFileSource } from './targets/static-file.ts';
import { EMBEDDED_TARGETS } from './targets/target.ts';
import { TargetSet } from './targets/target-set.ts';
import type { Discovery } from './discovery/discovery.ts';
import { SCOPE_NAME } from './telemetry/names.ts';
import { buildResource } from './telemetry/resource.ts';
import { SelfMetrics } from './telemetry/self-metrics.ts';
import { TargetMetrics } from './telemetry/target-metrics.ts';

export interface AgentDeps {
  log: Logger;
  version: string;
  spawner?: Spawner;
}

export interface RunningAgent {
  /** The bound HTTP port (useful with --prometheus-port picked by the OS in tests), or 0. */
  httpPort: number;
  metrics: TargetMetrics;
  prober: Prober;
  /** Re-reads the targets file now (SIGHUP). */
  reload(): void;
  /** Stops probing, flushes OTLP once, closes the HTTP server. */
  stop(): Promise<void>;
}

/** Coalesces bursts of node events (a cluster scaling up) into one fping restart per shard. */
const TARGET_DEBOUNCE_MS = 1000;

/** Wires config → targets (discovery, file) → probing → telemetry → HTTP. */
export async function startAgent(config: Config, deps: AgentDeps): Promise<RunningAgent> {
  const { log } = deps;
  routeOtelDiagnostics(log);

  const metrics = new TargetMetrics({
    bucketsMs: config.rttBuckets,
    outageThreshold: config.outageThreshold,
    timeoutMs: config.timeout,
    periodMs: config.period,
    version: deps.version,
    rttPer: config.rttHistogram === 'per-zone' ? 'zone' : 'destination',
    lean: config.pairMetrics === 'lean',
  });
  let self: SelfMetrics | undefined;
  const minIntervalMs = await fpingMinIntervalMs(config.fpingPath);
  const cap = new TargetCap(agentTargetCapacity(config.period, minIntervalMs), config.period, log.child({ component: 'prober' }));
  const prober: Prober = new Prober({
    settings: { fpingPath: config.fpingPath, periodMs: config.period, timeoutMs: config.timeout, packetSize: config.packetSize, minIntervalMs },
    maxTargetsPerProcess: config.maxTargetsPerFping,
    sink: metrics,
    events: { restart: () => self?.fpingRestart(), parseError: () => self?.parseError() },
    log: log.child({ component: 'prober' }),
    spawner: deps.spawner,
  });

  let targetsLoaded = false;
  // Nodes first: a configured target at a node's address is that node.
  const targets = new TargetSet(['nodes', 'file'], (all) => {
    const list = cap.apply(all);
    // Stats first, so that the first results of a new process find their destination.
    metrics.setTargets(list);
    prober.setTargets(list);
    targetsLoaded = true;
  }, TARGET_DEBOUNCE_MS);

  let discovery: Discovery | undefined;
  if (discoveryEnabled(config)) {
    // Loaded only when used: client-node and its HTTP stack cost tens of MB.
    const { startDiscovery } = await import('./discovery/discovery.ts');
    discovery = await startDiscovery(config, log.child({ component: 'discovery' }), {
      // Discovery already waits for node events to settle.
      onTargets: (list) => targets.set('nodes', list, true),
      onRestart: (reason) => self?.discoveryRestart(reason),
    });
  }

  const readers: IMetricReader[] = [];
  const prometheus = config.prometheusPort > 0 ? new PrometheusEndpoint([metrics]) : undefined;
  if (prometheus) readers.push(prometheus.reader);
  if (config.otlpEndpoint !== '') {
    // Loaded only when used: the gRPC and protobuf stacks cost about 20 MB of memory.
    const { createOtlpReader } = await import('./export/otlp.ts');
    readers.push(await createOtlpReader(config, [metrics], log, () => self?.exportFailure('otlp')));
  }
  const provider = new MeterProvider({ resource: buildResource(config, deps.version, discovery?.ownNode), readers });
  // Probes due and without a verdict are counted once a second, after reading fping's output.
  const sweep = setInterval(() => {
    prober.drain();
    metrics.sweep();
  }, 1000);
  self = new SelfMetrics(provider.getMeter(SCOPE_NAME, deps.version), { processes: () => prober.processes, probes: metrics, discovery: discovery?.watcher, mesh: discovery?.mesh });

  let source: StaticFileSource | undefined;
  if (config.targetsFile !== '') {
    source = new StaticFileSource({
      path: config.targetsFile,
      pollIntervalMs: config.targetsReloadInterval,
      log: log.child({ component: 'targets' }),
      onTargets: (list) => targets.set('file', list, !targetsLoaded),
      onReload: (ok) => self?.reload(ok),
    });
    await source.start();
  } else if (!discovery) {
    log.info('no targets file and no discovery: probing the embedded default', { targets: EMBEDDED_TARGETS.map((t) => t.address) });
    targets.set('file', EMBEDDED_TARGETS, true);
  }

  let server: Server | undefined;
  let httpPort = 0;
  if (config.prometheusPort > 0) {
    const started = await startHttpServer(config.prometheusPort, config.prometheusHost, {
      metrics: prometheus ? () => prometheus.render() : undefined,
      notReady: () =>
        discovery?.degraded() ??
        (!targetsLoaded ? 'targets not loaded' : metrics.size > 0 && prober.processes === 0 ? 'no fping process running' : undefined),
    }, log.child({ component: 'http' }));
    server = started.server;
    httpPort = started.port;
  }

  return {
    httpPort,
    metrics,
    prober,
    reload: () => source?.reload(),
    async stop() {
      source?.stop();
      discovery?.stop();
      targets.stop();
      clearInterval(sweep);
      self?.stop();
      await prober.stop();
      try {
        await provider.forceFlush();
      } catch (err) {
        log.warn('final OTLP flush failed', { error: (err as Error).message });
      }
      await provider.shutdown().catch(() => undefined);
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
    },
  };
}

/**
 * The SDK reports export and collection errors through its diag logger, which is silent
 * unless one is set. Route it into our log, rate-limited, one line each. A failed OTLP export
 * is left out: the reader reports it as an exception with its stack, and CountingExporter has
 * already counted it and logged one line.
 */
function routeOtelDiagnostics(log: Logger): void {
  const limit = new RateLimitedLog(60_000);
  const l = log.child({ component: 'otel' });
  const warn = (msg: string, ...args: unknown[]) => {
    if (msg.includes('metrics export failed')) return;
    limit.maybe((suppressed) => l.warn(exceptionMessage(msg), { detail: args.map(String).join(' ').slice(0, 500), suppressed }));
  };
  diag.setLogger(
    { error: warn, warn, info: () => {}, debug: () => {}, verbose: () => {} },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
}

/** The SDK's error handler hands exceptions over as JSON with their stack: the message is enough. */
function exceptionMessage(msg: string): string {
  if (!msg.startsWith('{')) return msg;
  try {
    const m = (JSON.parse(msg) as { message?: unknown }).message;
    return typeof m === 'string' ? m : msg;
  } catch {
    return msg;
  }
}
