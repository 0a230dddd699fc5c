/**
 * Every metric and attribute name the agent exports. Dashboards, alert rules and the
 * Collector configuration are built on these strings: change them only as a breaking change.
 *
 * OTel names use dots; the Prometheus side (scrape or OTLP into Prometheus) reads them with
 * dots turned into underscores, a unit suffix for `s` (`_seconds`) and `_total` on counters.
 */
export const METRIC = {
  packetsSent: 'kube_node_ping.packets.sent',
  packetsReceived: 'kube_node_ping.packets.received',
  packetsDuplicate: 'kube_node_ping.packets.duplicate',
  rtt: 'kube_node_ping.rtt',
  outageOngoing: 'kube_node_ping.outage.ongoing',
  outageDuration: 'kube_node_ping.outage.duration',
  outages: 'kube_node_ping.outages',
  targets: 'kube_node_ping.targets',
  fpingProcesses: 'kube_node_ping.fping.processes',
  probesIntended: 'kube_node_ping.probes.intended',
  probesUnanswered: 'kube_node_ping.probes.unanswered',
  fpingRestarts: 'kube_node_ping.fping.restarts',
  fpingParseErrors: 'kube_node_ping.fping.parse_errors',
  exportFailures: 'kube_node_ping.export.failures',
  targetsReloads: 'kube_node_ping.targets.reloads',
  eventLoopDelayMax: 'kube_node_ping.eventloop.delay.max',
  discoveryRestarts: 'kube_node_ping.discovery.restarts',
  discoveryLastSyncAge: 'kube_node_ping.discovery.last_sync.age',
  discoveryNodes: 'kube_node_ping.discovery.nodes',
  meshPeers: 'kube_node_ping.mesh.peers',
  meshProbers: 'kube_node_ping.mesh.probers',
  meshSampled: 'kube_node_ping.mesh.sampled',
} as const;

/** Data-point attributes: they name the destination of a probe. */
export const ATTR = {
  destinationName: 'destination_name',
  destinationAddress: 'destination_address',
  destinationKind: 'destination_kind',
  destinationZone: 'destination_zone',
  /** Self metrics. */
  exporter: 'exporter',
  result: 'result',
  reason: 'reason',
} as const;

/** Resource attributes rendered as labels on every Prometheus series (no join with target_info). */
export const PROMOTED_RESOURCE_ATTRIBUTES = ['k8s.cluster.name', 'k8s.node.name', 'host.name', 'cloud.availability_zone'] as const;

export const SCOPE_NAME = 'kube-node-ping';
export const SERVICE_NAME = 'kube-node-ping';
