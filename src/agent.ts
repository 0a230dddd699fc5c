import { diag, DiagLogLevel } from '@opentelemetry/api';
import { MeterProvider, type IMetricReader } from '@opentelemetry/sdk-metrics';
import type { Server } from 'node:http';
import { ConfigError, discoveryEnabled, type Config } from './config/config.ts';
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

/** Coalesces bursts of target changes (a cluster scaling up) into one change of the fping processes. */
const TARGET_DEBOUNCE_MS = 1000;
/** How often the cause of a lasting ICMP denial is logged again (fping keeps retrying meanwhile). */
const ICMP_DENIED_LOG_MS = 10 * 60_000;
/** Stop's budgets: together well inside main's 5 s limit, with room for prober.stop(). */
const FINAL_FLUSH_MS = 3000;
const SHUTDOWN_AFTER_FLUSH_MS = 500;

/** 'ok', or why the promise did not settle well within `ms`. */
async function withinMs(p: Promise<unknown>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((r) => (timer = setTimeout(() => r(`not done within ${ms} ms`), ms)));
  try {
    return await Promise.race([p.then(() => 'ok', (err: Error) => err?.message ?? String(err)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

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
  // Why fping has no ICMP socket, while that lasts: one error line (then one per
  // ICMP_DENIED_LOG_MS), and /readyz answers 503 with it, so the pod never becomes Ready.
  let icmpDenied: string | undefined;
  const icmpDeniedLog = new RateLimitedLog(ICMP_DENIED_LOG_MS);
  const proberLog = log.child({ component: 'prober' });
  const minIntervalMs = await fpingMinIntervalMs(config.fpingPath);
  const cap = new TargetCap(agentTargetCapacity(config.period, minIntervalMs), config.period, proberLog);
  const prober: Prober = new Prober({
    settings: { fpingPath: config.fpingPath, periodMs: config.period, timeoutMs: config.timeout, packetSize: config.packetSize, minIntervalMs },
    maxTargetsPerProcess: config.maxTargetsPerFping,
    sink: metrics,
    events: {
      restart: () => self?.fpingRestart(),
      parseError: () => self?.parseError(),
      icmpDenied: (message) => {
        if (icmpDenied !== message) icmpDeniedLog.reset();
        icmpDenied = message;
        icmpDeniedLog.maybe((suppressed) => proberLog.error(message, { suppressed }));
      },
      probing: () => {
        if (icmpDenied === undefined) return;
        icmpDenied = undefined;
        icmpDeniedLog.reset();
        proberLog.info('fping has its ICMP socket again');
      },
    },
    log: proberLog,
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
    const { readOwnNode, startDiscovery } = await import('./discovery/discovery.ts');
    const discoveryLog = log.child({ component: 'discovery' });
    discovery = startDiscovery(await readOwnNode(config, discoveryLog), config, discoveryLog, {
      // Discovery already waits for node events to settle.
      onTargets: (list) => targets.set('nodes', list, true),
      onRestart: (reason) => self?.discoveryRestart(reason),
    });
  }

  const readers: IMetricReader[] = [];
  // The reader swallows a failed export (forceFlush resolves): stop() tells it from this.
  let otlpFailure = { count: 0, error: '' };
  const prometheus = config.prometheusPort > 0 ? new PrometheusEndpoint([metrics]) : undefined;
  if (prometheus) readers.push(prometheus.reader);
  if (config.otlpEndpoint !== '') {
    // Loaded only when used: the gRPC and protobuf stacks cost about 20 MB of memory.
    const { createOtlpReader } = await import('./export/otlp.ts');
    readers.push(await createOtlpReader(config, [metrics], log, (error) => {
      otlpFailure = { count: otlpFailure.count + 1, error };
      self?.exportFailure('otlp');
    }));
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
      onReload: (result) => self?.reload(result),
    });
    // A file that cannot be used at start is a configuration error (exit 2), not a crash.
    await source.start().catch((err: Error) => {
      throw new ConfigError(`config: ${err.message}`);
    });
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
        icmpDenied ??
        discovery?.degraded() ??
        source?.problem() ??
        (!targetsLoaded ? 'targets not loaded' : metrics.size === 0 && !discovery ? 'no targets to probe' : metrics.size > 0 && prober.processes === 0 ? 'no fping process running' : undefined),
    }, log.child({ component: 'http' })).catch((err: NodeJS.ErrnoException) => {
      // Name the setting: a second agent on the same port is a configuration mistake.
      const where = `${config.prometheusHost || '*'}:${config.prometheusPort}`;
      if (err.code === 'EADDRINUSE') throw new ConfigError(`config: --prometheus-port ${config.prometheusPort} is already in use (${where})`);
      if (err.code === 'EADDRNOTAVAIL') throw new ConfigError(`config: --prometheus-host ${JSON.stringify(config.prometheusHost)} is not an address of this machine`);
      if (err.code === 'EACCES') throw new ConfigError(`config: --prometheus-port ${config.prometheusPort} needs privileges to listen on (${where})`);
      throw err;
    });
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
      // A collector that is down would hold the flush for the whole export timeout and the
      // process past its shutdown limit: the flush gets a budget of its own, and its failure
      // is logged.
      const failuresBefore = otlpFailure.count;
      const flushed = await withinMs(provider.forceFlush(), FINAL_FLUSH_MS);
      if (flushed !== 'ok') log.warn('final OTLP flush failed', { error: flushed });
      else if (otlpFailure.count > failuresBefore) log.warn('final OTLP flush failed', { error: otlpFailure.error });
      await withinMs(provider.shutdown(), SHUTDOWN_AFTER_FLUSH_MS);
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
    },
  };
}

/**
 * The SDK reports export and collection errors through its diag logger, which is silent
 * unless one is set. Route it into our log, rate-limited, one line each. A failed or timed-out
 * OTLP export is left out: the reader reports it as an exception with its stack, and
 * CountingExporter has already counted it and logged one line.
 */
function routeOtelDiagnostics(log: Logger): void {
  const limit = new RateLimitedLog(60_000);
  const l = log.child({ component: 'otel' });
  const warn = (msg: string, ...args: unknown[]) => {
    // The reader's own timeout report doubles CountingExporter's line for the same failure.
    if (msg.includes('metrics export failed') || msg.includes('metrics export timed out')) return;
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
