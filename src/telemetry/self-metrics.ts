import type { Counter, Meter } from '@opentelemetry/api';
import { ATTR, METRIC } from './names.ts';

/**
 * The agent's own health, through ordinary SDK instruments: few attribute sets, none of
 * which ever goes away.
 */
export class SelfMetrics {
  readonly #restarts: Counter;
  readonly #parseErrors: Counter;
  readonly #exportFailures: Counter;
  readonly #reloads: Counter;

  constructor(meter: Meter, observe: { processes: () => number }) {
    this.#restarts = meter.createCounter(METRIC.fpingRestarts, { description: 'fping processes that exited unexpectedly and were restarted.', unit: '{restart}' });
    this.#parseErrors = meter.createCounter(METRIC.fpingParseErrors, { description: 'Lines of fping output that could not be parsed.', unit: '{line}' });
    this.#exportFailures = meter.createCounter(METRIC.exportFailures, { description: 'Failed metric exports.', unit: '{export}' });
    this.#reloads = meter.createCounter(METRIC.targetsReloads, { description: 'Target list reloads by result.', unit: '{reload}' });
    meter
      .createObservableGauge(METRIC.fpingProcesses, { description: 'fping processes running.', unit: '{process}' })
      .addCallback((r) => r.observe(observe.processes()));
    // Every label set exists from the start, so that a series reads 0 rather than being absent.
    this.#restarts.add(0);
    this.#parseErrors.add(0);
    this.#exportFailures.add(0, { [ATTR.exporter]: 'otlp' });
    this.#reloads.add(0, { [ATTR.result]: 'success' });
    this.#reloads.add(0, { [ATTR.result]: 'failure' });
  }

  fpingRestart(): void {
    this.#restarts.add(1);
  }

  parseError(): void {
    this.#parseErrors.add(1);
  }

  exportFailure(exporter: string): void {
    this.#exportFailures.add(1, { [ATTR.exporter]: exporter });
  }

  reload(ok: boolean): void {
    this.#reloads.add(1, { [ATTR.result]: ok ? 'success' : 'failure' });
  }
}
