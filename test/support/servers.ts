/**
 * Real Prometheus 3 and OpenTelemetry Collector processes for integration tests, on
 * 127.0.0.1 ports picked at start, in a temporary directory, stopped by `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep } from './agent.ts';
import { toolPath } from './tools.ts';
import { PROMOTED_RESOURCE_ATTRIBUTES } from '../../src/telemetry/names.ts';

interface Server {
  child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

function startProcess(cmd: string, args: string[], env: Record<string, string> = {}): Server {
  const child = spawn(cmd, args, { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-20_000)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-20_000)));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return {
    child,
    logs: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function waitHttp(url: string, server: Server, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (server.child.exitCode !== null) throw new Error(`${what} exited (${server.child.exitCode}):\n${server.logs()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${what} not ready at ${url} within ${ms} ms:\n${server.logs()}`);
    await sleep(200);
  }
}

export interface PrometheusServer {
  url: string;
  /** Instant query; returns the result vector. */
  query(q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  logs(): string;
  stop(): Promise<void>;
}

export interface ScrapeJob {
  job: string;
  targets: string[];
  intervalS?: number;
}

/** The resource attributes the agent renders as labels on its own page. */
export const PROMOTED: readonly string[] = PROMOTED_RESOURCE_ATTRIBUTES;

/**
 * Prometheus 3 with the OTLP receiver on, promoting the same resource attributes the agent's page carries.
 * `extra.scrapeConfigs` are Prometheus `scrape_configs` entries as they are written in
 * prometheus.yml (kubernetes_sd_configs, relabelling), after the static jobs.
 */
export async function startPrometheus(jobs: ScrapeJob[], extra: { ruleFiles?: string[]; scrapeConfigs?: Record<string, unknown>[] } = {}): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'knp-prom-'));
  const port = await freePort();
  const config = {
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    otlp: { promote_resource_attributes: PROMOTED },
    rule_files: extra.ruleFiles ?? [],
    scrape_configs: [
      ...jobs.map((j) => ({ job_name: j.job, scrape_interval: `${j.intervalS ?? 1}s`, static_configs: [{ targets: j.targets }] })),
      ...(extra.scrapeConfigs ?? []),
    ],
  };
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config));
  const server = startProcess(toolPath('prometheus'), [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--web.enable-otlp-receiver',
    '--log.level=warn',
  ]);
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/-/ready`, server, 'prometheus');
  return {
    url,
    logs: server.logs,
    async query(q) {
      const r = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = (await r.json()) as { status: string; error?: string; data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
      if (body.status !== 'success') throw new Error(`PromQL ${q}: ${body.error}`);
      return body.data.result;
    },
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface CollectorServer {
  grpcEndpoint: string;
  httpEndpoint: string;
  logs(): string;
  stop(): Promise<void>;
}

const COLLECTOR_CONFIG = fileURLToPath(new URL('../../otel/collector-test.yaml', import.meta.url));

/** The Collector built from otel/builder-config.yaml, forwarding to Prometheus's OTLP receiver. */
export async function startCollector(prometheusUrl: string, ports?: { grpc: number; http: number }): Promise<CollectorServer> {
  const grpc = ports?.grpc ?? (await freePort());
  const http = ports?.http ?? (await freePort());
  const health = await freePort();
  const server = startProcess(toolPath('otelcol'), ['--config', COLLECTOR_CONFIG], {
    OTLP_GRPC_PORT: String(grpc),
    OTLP_HTTP_PORT: String(http),
    HEALTH_CHECK_PORT: String(health),
    PROM_OTLP_ENDPOINT: `${prometheusUrl}/api/v1/otlp/v1/metrics`,
  });
  await waitHttp(`http://127.0.0.1:${health}/`, server, 'otelcol');
  return { grpcEndpoint: `http://127.0.0.1:${grpc}`, httpEndpoint: `http://127.0.0.1:${http}`, logs: server.logs, stop: server.stop };
}
