/**
 * Kubernetes node discovery in two steps, so that what depends on the agent's own Node (the
 * resource attributes) can be built before any node event arrives: readOwnNode loads the
 * credentials and reads the own Node, then startDiscovery starts the list/watch.
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { ConfigError, type Config } from '../config/config.ts';
import type { Logger } from '../log.ts';
import type { Target } from '../targets/target.ts';
import type { MeshSettings } from '../mesh/mesh.ts';
import { compactNode, type CompactNode, type NodePolicy } from './node.ts';
import { NodeWatcher } from './node-watcher.ts';
import { selectTargets, type MeshState } from './selection.ts';

export interface DiscoveryHooks {
  onTargets(targets: Target[]): void;
  onRestart(reason: string): void;
}

/** The API server's credentials and this agent's own Node, as read at start-up. */
export interface Cluster {
  kc: KubeConfig;
  /** Undefined if NODE_NAME is unset or the Node could not be read. */
  ownNode: CompactNode | undefined;
}

export interface Discovery {
  watcher: NodeWatcher;
  mesh: MeshState;
  /** This agent's own Node as read at start-up, for resource attributes; undefined if it could not be read. */
  ownNode: CompactNode | undefined;
  /** Undefined when healthy; otherwise why readiness should fail. */
  degraded(): string | undefined;
  stop(): void;
}

/** After this long without an answer from the API server, readiness reports discovery as degraded. */
const DEGRADED_AFTER_MS = 60_000;
/** Node events are turned into targets after this much quiet (the first list at once). */
const NODES_DEBOUNCE_MS = 1000;
const OWN_NODE_TIMEOUT_MS = 5000;

/**
 * Loads the credentials (one that cannot work throws a ConfigError naming it) and reads this
 * agent's own Node; a Node that cannot be read is a warning, not a failure.
 */
export async function readOwnNode(config: Config, log: Logger): Promise<Cluster> {
  const kc = new KubeConfig();
  // Credentials that cannot work are a configuration error (exit 2, one line naming the file),
  // not the client's "No active cluster!" at the first request.
  const named = `--kubeconfig/KUBECONFIG ${JSON.stringify(config.kubeconfig)}`;
  if (config.kubeconfig !== '') {
    try {
      kc.loadFromFile(config.kubeconfig);
    } catch (err) {
      throw new ConfigError(`config: ${named} is not a kubeconfig: ${(err as Error).message.split('\n')[0]}`);
    }
    if (kc.getCurrentCluster() === null) throw new ConfigError(`config: ${named} is not a kubeconfig with a current context and its cluster`);
  } else if (config.kubernetesServiceHost !== '') {
    try {
      kc.loadFromCluster();
    } catch (err) {
      throw new ConfigError(`config: cannot load the in-cluster service account (KUBERNETES_SERVICE_HOST is set): ${(err as Error).message.split('\n')[0]}`);
    }
  } else {
    throw new ConfigError('config: --discovery kubernetes needs --kubeconfig or an in-cluster service account (KUBERNETES_SERVICE_HOST)');
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
  return { kc, ownNode };
}

/** Starts the node list/watch: the first list reaches `hooks.onTargets` at once, later changes debounced. */
export function startDiscovery({ kc, ownNode }: Cluster, config: Config, log: Logger, hooks: DiscoveryHooks): Discovery {
  const own = { name: config.nodeName, zone: ownNode?.zone ?? '' };
  const policy: Omit<NodePolicy, 'selfName'> = {
    addressTypes: config.nodeAddressTypes,
    ipFamilies: config.ipFamilies,
    skipNotReady: config.skipNotReady,
    skipCordoned: config.skipCordoned,
  };
  const settings: MeshSettings = {
    mode: config.meshMode,
    fullBelow: config.meshFullBelow,
    zonePeers: config.meshZonePeers,
    crossZonePeers: config.meshCrossZonePeers,
    budget: config.meshBudget,
  };
  const mesh: MeshState = { mode: 'full', peers: 0, probers: 0 };
  // Warn once per node and reason, not at every watch event.
  let warned = new Map<string, string>();
  const apply = (nodes: ReadonlyMap<string, CompactNode>) => {
    const { targets, skipped, mesh: state } = selectTargets(nodes, own, policy, settings);
    const now = new Map<string, string>();
    for (const s of skipped) {
      now.set(s.node, s.reason);
      if (warned.get(s.node) !== s.reason) log.warn('skipping node', { node: s.node, reason: s.reason });
    }
    warned = now;
    // In place: the self metrics observe this object.
    Object.assign(mesh, state);
    hooks.onTargets(targets);
  };
  let timer: NodeJS.Timeout | undefined;
  let first = true;
  const watcher = new NodeWatcher({
    kc,
    labelSelector: config.nodeSelector,
    log,
    onRestart: hooks.onRestart,
    onNodes: (nodes) => {
      clearTimeout(timer);
      if (first) {
        first = false;
        apply(nodes);
      } else {
        timer = setTimeout(() => apply(nodes), NODES_DEBOUNCE_MS);
      }
    },
  });
  watcher.start();
  return {
    watcher,
    mesh,
    ownNode,
    degraded() {
      if (!watcher.synced) return 'discovery: nodes not listed yet';
      const silent = Date.now() - watcher.lastContactMs;
      if (watcher.failing && silent > DEGRADED_AFTER_MS) return `discovery degraded: API server unreachable for ${Math.round(silent / 1000)} s; probing the last known nodes`;
      return undefined;
    },
    stop: () => {
      clearTimeout(timer);
      watcher.stop();
    },
  };
}
