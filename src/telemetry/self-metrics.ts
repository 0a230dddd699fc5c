import type { Counter, Meter } from '@opentelemetry/api';
import { monitorEventLoopDelay, type ELDHistogram } from 'node:perf_hooks';
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
  readonly #loopDelay: ELDHistogram;
  #previousMaxNs = 0;
  readonly #rotate: NodeJS.Timeout;

  readonly #discoveryRestarts: Counter;

  constructor(
    meter: Meter,
    observe: {
      processes: () => number;
      /** Probes due so far, and those of them that got no verdict in time (TargetMetrics.sweep). */
      probes?: { intended: number; unanswered: number };
      discovery?: { lastContactMs: number; nodes: ReadonlyMap<string, unknown> };
      mesh?: { mode: string; peers: number; probers: number };
    },
  ) {
    this.#restarts = meter.createCounter(METRIC.fpingRestarts, { description: 'fping processes that exited unexpectedly and were restarted.', unit: '{restart}' });
    this.#parseErrors = meter.createCounter(METRIC.fpingParseErrors, { description: 'Lines of fping output that could not be parsed.', unit: '{line}' });
    this.#exportFailures = meter.createCounter(METRIC.exportFailures, { description: 'Failed metric exports.', unit: '{export}' });
    this.#reloads = meter.createCounter(METRIC.targetsReloads, { description: 'Target list reloads by result.', unit: '{reload}' });
    meter
      .createObservableGauge(METRIC.fpingProcesses, { description: 'fping processes running.', unit: '{process}' })
      .addCallback((r) => r.observe(observe.processes()));
    const probes = observe.probes;
    if (probes) {
      meter
        .createObservableCounter(METRIC.probesIntended, { description: 'Probes due: one per destination per period, summed over time.', unit: '{probe}' })
        .addCallback((r) => r.observe(Math.floor(probes.intended)));
      meter
        .createObservableCounter(METRIC.probesUnanswered, {
          description: 'Probes that were due and got no verdict from fping in time (not sent, or fping stalled); counted as sent and lost.',
          unit: '{probe}',
        })
        .addCallback((r) => r.observe(probes.unanswered));
    }
    this.#discoveryRestarts = meter.createCounter(METRIC.discoveryRestarts, { description: 'Restarts of the node list/watch loop, by reason.', unit: '{restart}' });
    const d = observe.discovery;
    if (d) {
      meter
        .createObservableGauge(METRIC.discoveryLastSyncAge, { description: 'Seconds since the API server last answered the node list/watch.', unit: 's' })
        .addCallback((r) => {
          if (d.lastContactMs > 0) r.observe((Date.now() - d.lastContactMs) / 1000);
        });
      meter
        .createObservableGauge(METRIC.discoveryNodes, { description: 'Nodes known to discovery (before the selection policy).', unit: '{node}' })
        .addCallback((r) => r.observe(d.nodes.size));
      for (const reason of ['expired', 'unreachable', 'forbidden']) this.#discoveryRestarts.add(0, { [ATTR.reason]: reason });
    }
    const mesh = observe.mesh;
    if (mesh) {
      // No mode attribute: with --mesh-mode auto the mode changes as the cluster grows, and an
      // observable's attribute set that stops being observed would be exported for ever.
      meter
        .createObservableGauge(METRIC.meshPeers, { description: 'Nodes this agent probes.', unit: '{node}' })
        .addCallback((r) => r.observe(mesh.peers));
      meter
        .createObservableGauge(METRIC.meshProbers, { description: 'Agents that probe this node, from the deterministic assignment.', unit: '{agent}' })
        .addCallback((r) => r.observe(mesh.probers));
      meter
        .createObservableGauge(METRIC.meshSampled, { description: '1 while the mesh is sampled (zone rings), 0 while it is full.', unit: '' })
        .addCallback((r) => r.observe(mesh.mode === 'sampled' ? 1 : 0));
    }
    // The longest the event loop was blocked (fping output waits meanwhile) in the last one
    // to two minutes: a window of its own, so that two readers do not reset each other.
    // A 100 ms sampling timer: any stall of 100 ms or more is seen whole (the alert is at 1 s).
    // At 20 ms the timer alone cost the idle agent about 2 ms of CPU a second, half its fixed
    // cost, and 2 µs per probe at 1,000 targets (bench/README.md).
    this.#loopDelay = monitorEventLoopDelay({ resolution: 100 });
    this.#loopDelay.enable();
    this.#rotate = setInterval(() => {
      this.#previousMaxNs = this.#loopDelay.max;
      this.#loopDelay.reset();
    }, 60_000);
    this.#rotate.unref();
    meter
      .createObservableGauge(METRIC.eventLoopDelayMax, { description: 'Longest event-loop delay in the last 60 to 120 s.', unit: 's' })
      .addCallback((r) => r.observe(Math.max(this.#previousMaxNs, this.#loopDelay.max) / 1e9));
    // Every label set exists from the start, so that a series reads 0 rather than being absent.
    this.#restarts.add(0);
    this.#parseErrors.add(0);
    this.#exportFailures.add(0, { [ATTR.exporter]: 'otlp' });
    this.#reloads.add(0, { [ATTR.result]: 'success' });
    this.#reloads.add(0, { [ATTR.result]: 'failure' });
    this.#reloads.add(0, { [ATTR.result]: 'held' });
  }

  stop(): void {
    clearInterval(this.#rotate);
    this.#loopDelay.disable();
  }

  discoveryRestart(reason: string): void {
    this.#discoveryRestarts.add(1, { [ATTR.reason]: reason });
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

  /** `held`: a targets file that lost all its targets, kept back (see StaticFileSource). */
  reload(result: 'success' | 'failure' | 'held'): void {
    this.#reloads.add(1, { [ATTR.result]: result });
  }
}
