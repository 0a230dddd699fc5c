import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import type { Target } from '../targets/target.ts';
import { compactNode, targetsFromNodes, type CompactNode, type NodePolicy } from './node.ts';
import { NodeWatcher } from './node-watcher.ts';

/** Discovery runs with --discovery kubernetes, or with auto in a pod or with a kubeconfig. */
export function discoveryEnabled(config: Config): boolean {
  if (config.discovery === 'off') return false;
  if (config.discovery === 'kubernetes') return true;
  return config.kubeconfig !== '' || config.kubernetesServiceHost !== '';
}

export interface DiscoveryHooks {
  onTargets(targets: Target[]): void;
  onRestart(reason: string): void;
}

export interface Discovery {
  watcher: NodeWatcher;
  /** This agent's own Node as read at start-up, for resource attributes; undefined if it could not be read. */
  ownNode: CompactNode | undefined;
  /** Undefined when healthy; otherwise why readiness should fail. */
  degraded(): string | undefined;
  stop(): void;
}

/** After this long without an answer from the API server, readiness reports discovery as degraded. */
const DEGRADED_AFTER_MS = 60_000;
const OWN_NODE_TIMEOUT_MS = 5000;

export async function startDiscovery(config: Config, log: Logger, hooks: DiscoveryHooks): Promise<Discovery> {
  const kc = new KubeConfig();
  try {
    if (config.kubeconfig !== '') kc.loadFromFile(config.kubeconfig);
    else if (config.kubernetesServiceHost !== '') kc.loadFromCluster();
    else throw new Error('neither --kubeconfig nor an in-cluster service account (KUBERNETES_SERVICE_HOST) is available');
  } catch (err) {
    throw new Error(`discovery: cannot load Kubernetes credentials: ${(err as Error).message}`);
  }

  let ownNode: CompactNode | undefined;
  if (config.nodeName !== '') {
    try {
      const api = kc.makeApiClient(CoreV1Api);
      const node = await Promise.race([
        api.readNode({ name: config.nodeName }),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${OWN_NODE_TIMEOUT_MS} ms`)), OWN_NODE_TIMEOUT_MS).unref()),
      ]);
      ownNode = compactNode(node);
    } catch (err) {
      log.warn('cannot read this agent\'s own Node; zone and region resource attributes are left out until the next restart', {
        node: config.nodeName,
        error: (err as Error).message.slice(0, 200),
      });
    }
  } else {
    log.warn('NODE_NAME is not set: this agent cannot exclude its own node or name its source');
  }

  const policy: NodePolicy = {
    selfName: config.nodeName,
    addressTypes: config.nodeAddressTypes,
    ipFamilies: config.ipFamilies,
    skipNotReady: config.skipNotReady,
    skipCordoned: config.skipCordoned,
  };
  // Warn once per node and reason, not at every watch event.
  let warned = new Map<string, string>();
  const watcher = new NodeWatcher({
    kc,
    labelSelector: config.nodeSelector,
    log,
    onRestart: hooks.onRestart,
    onNodes: (nodes) => {
      const { targets, skipped } = targetsFromNodes(nodes.values(), policy);
      const now = new Map<string, string>();
      for (const s of skipped) {
        now.set(s.node, s.reason);
        if (warned.get(s.node) !== s.reason) log.warn('skipping node', { node: s.node, reason: s.reason });
      }
      warned = now;
      hooks.onTargets(targets);
    },
  });
  watcher.start();
  return {
    watcher,
    ownNode,
    degraded() {
      if (!watcher.synced) return 'discovery: nodes not listed yet';
      const silent = Date.now() - watcher.lastContactMs;
      if (watcher.failing && silent > DEGRADED_AFTER_MS) return `discovery degraded: API server unreachable for ${Math.round(silent / 1000)} s; probing the last known nodes`;
      return undefined;
    },
    stop: () => watcher.stop(),
  };
}
