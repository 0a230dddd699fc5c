#!/usr/bin/env node
/**
 * Entry point: parse config, start the agent, stop cleanly on SIGTERM/SIGINT, reload the
 * targets file on SIGHUP. Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration
 * or missing fping.
 */
import { readFileSync } from 'node:fs';
import type { RunningAgent } from './agent.ts';

// Signals that arrive while the modules load are held, and handled once the handlers below
// are in place: without a handler SIGHUP kills the process and SIGTERM exits 143, silently.
// Everything else is imported dynamically so that this runs first.
const EARLY_SIGNALS = ['SIGHUP', 'SIGTERM', 'SIGINT'] as const;
const early: NodeJS.Signals[] = [];
const holdSignal = (signal: NodeJS.Signals) => early.push(signal);
for (const s of EARLY_SIGNALS) process.on(s, holdSignal);

const [{ ConfigError, loadConfig }, { createLogger }, { checkFping }] = await Promise.all([
  import('./config/config.ts'),
  import('./log.ts'),
  import('./probing/fping-check.ts'),
]);

const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
const SHUTDOWN_LIMIT_MS = 5000;

function fail(message: string, code: number): never {
  process.stderr.write(`kube-node-ping: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig({ argv: process.argv.slice(2), env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2);
    throw err;
  }
  if (loaded.kind === 'help') {
    process.stdout.write(loaded.text);
    return;
  }
  if (loaded.kind === 'version') {
    process.stdout.write(`kube-node-ping ${VERSION}\n`);
    return;
  }
  const config = loaded.config;
  const log = createLogger({ level: config.logLevel });

  // Signals are handled from here on, start-up included.
  let agent: RunningAgent | undefined;
  let stopping = false;
  process.on('SIGHUP', () => {
    if (!agent) {
      log.info('SIGHUP during start-up: the targets file is being read already');
      return;
    }
    log.info('SIGHUP: reloading targets');
    agent.reload();
  });
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal, starting: agent === undefined });
    setTimeout(() => {
      log.error('shutdown took too long; exiting', { limit_ms: SHUTDOWN_LIMIT_MS });
      process.exit(1);
    }, SHUTDOWN_LIMIT_MS).unref();
    // During start-up the agent is stopped as soon as it is up (fping may already run).
    if (agent) finish(agent);
  };
  const finish = (a: RunningAgent) =>
    a.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: Error) => {
        log.error('shutdown failed', { error: err.message });
        process.exit(1);
      },
    );
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  for (const s of EARLY_SIGNALS) process.off(s, holdSignal);
  for (const s of early.splice(0)) process.emit(s, s);

  let fpingVersion: string;
  try {
    fpingVersion = await checkFping(config.fpingPath);
  } catch (err) {
    fail((err as Error).message, 2);
  }
  if (stopping) {
    log.info('stopped');
    process.exit(0);
  }

  try {
    // Imported only now, so that the signal handlers above are in place while the SDK, gRPC
    // and the Kubernetes client load (most of the start-up time).
    const { startAgent } = await import('./agent.ts');
    agent = await startAgent(config, { log, version: VERSION });
  } catch (err) {
    fail((err as Error).message, err instanceof ConfigError ? 2 : 1);
  }
  if (stopping) {
    finish(agent);
    return;
  }
  log.info('kube-node-ping started', { version: VERSION, fping: fpingVersion, period_ms: config.period, http_port: agent.httpPort });
}

main().catch((err: Error) => fail(`unexpected error: ${err.stack ?? err.message}`, 1));
