/**
 * Firing alerts in a real Prometheus, told apart by what they judge. The shipped rules keep the
 * agents' own health (event-loop stalls, restarts, a missing agent) in the group
 * `kube-node-ping.agents`; every other group judges the network. A healthy network on a loaded
 * test machine may truthfully fire agent-health alerts (an event loop blocked for a second on
 * 2 cores running 20 agents and a Go build): the assertions that nothing healthy is blamed are
 * about the network verdicts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { REPO } from './agent.ts';

export const RULES_FILE = join(REPO, 'charts/kube-node-ping/files/rules/kube-node-ping.rules.yaml');
const AGENT_GROUP = 'kube-node-ping.agents';

export interface Firing {
  alertname: string;
  labels: Record<string, string>;
}

let agentAlerts: Set<string> | undefined;

/** Names of the alerts that judge the agents themselves, read from the shipped rules. */
export function agentHealthAlerts(): Set<string> {
  if (!agentAlerts) {
    const doc = parseYaml(readFileSync(RULES_FILE, 'utf8')) as { groups: { name: string; rules: { alert?: string }[] }[] };
    const group = doc.groups.find((g) => g.name === AGENT_GROUP);
    if (!group) throw new Error(`${RULES_FILE} has no group ${AGENT_GROUP}`);
    agentAlerts = new Set(group.rules.flatMap((r) => (r.alert ? [r.alert] : [])));
  }
  return agentAlerts;
}

/** The firing alerts that judge the network (nodes, links, sources, zones, RTT). */
export function networkVerdicts(alerts: readonly Firing[]): Firing[] {
  const agent = agentHealthAlerts();
  return alerts.filter((a) => !agent.has(a.alertname));
}

/** Whom the alerts blame, as sorted "alertname:node" strings. */
export function blamed(alerts: readonly Firing[]): string[] {
  return alerts.map((a) => `${a.alertname}:${a.labels['destination_name'] ?? a.labels['k8s_node_name'] ?? a.labels['node'] ?? '?'}`).sort();
}
