/**
 * The chart as a user runs it in the real cluster of test/support/cluster.ts, shared by
 * test/kubernetes.test.ts and `./scripts/demo --cluster`: `helm install` with the values a user
 * sets for an image of their own, and a Prometheus that finds the agents the way a user without
 * the operator does (kubernetes_sd_configs against the API server, a ServiceAccount token of
 * its own with the least RBAC) and loads the chart's rules.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHART, helm } from '../chart/helm.ts';
import { REPO } from './agent.ts';
import type { Cluster } from './cluster.ts';
import { startPrometheus, type PrometheusServer } from './servers.ts';

export const RULES = join(REPO, 'charts/kube-node-ping/files/rules/kube-node-ping.rules.yaml');

/** `--set` arguments a user gives for an image of their own: registry, repository, tag, pull policy. */
export function imageValues(ref: string): string[] {
  const m = /^([^/]+)\/(.+):([^:/]+)$/.exec(ref);
  if (!m) throw new Error(`image ref ${ref} is not registry/repository:tag`);
  return ['--set', `image.registry=${m[1]}`, '--set', `image.repository=${m[2]}`, '--set', `image.tag=${m[3]}`, '--set', 'image.pullPolicy=Never'];
}

/** `helm install` (or `upgrade`) of the chart; throws with helm's stderr unless it succeeds. */
export async function helmRelease(cluster: Cluster, verb: 'install' | 'upgrade', release: string, namespace: string, args: string[]): Promise<void> {
  const r = await helm([verb, release, CHART, '--namespace', namespace, ...(verb === 'install' ? ['--create-namespace'] : []),
    '--kubeconfig', cluster.kubeconfigPath, ...args, '--wait', '--timeout', '6m']);
  if (r.code !== 0) throw new Error(`helm ${verb} ${release} exited ${r.code}: ${r.stderr.trim()}`);
}

/**
 * The shipped rules with time compressed by `factor`: every range and `for` duration divided
 * by it (at least 1 s), expressions and thresholds unchanged. Returns the file written in `dir`.
 */
export function compressedRules(dir: string, factor: number): string {
  const seconds = { s: 1, m: 60, h: 3600, d: 86400 } as const;
  const compress = (d: string) => {
    const m = /^(\d+)([smhd])$/.exec(d);
    if (!m) throw new Error(`duration ${d} in the rules is not N[smhd]`);
    return `${Math.max(1, Math.round((Number(m[1]) * seconds[m[2] as keyof typeof seconds]) / factor))}s`;
  };
  const text = readFileSync(RULES, 'utf8')
    .replace(/\[(\d+[smhd])\]/g, (_, d: string) => `[${compress(d)}]`)
    .replace(/^(\s+for: )(\d+[smhd])$/gm, (_, p: string, d: string) => `${p}${compress(d)}`);
  const file = join(dir, 'rules.yaml');
  writeFileSync(file, text);
  return file;
}

/**
 * A Prometheus in the root namespace that discovers the agents' pods in `namespace` (role pod,
 * port named metrics), as the ServiceAccount observability/prometheus whose only grant is a
 * Role to get, list and watch pods there. Job "kube-node-ping".
 */
export async function startDiscoveringPrometheus(cluster: Cluster, namespace: string, dir: string, ruleFiles: string[]): Promise<PrometheusServer> {
  const k = cluster.kube;
  await k.requestOk('POST', '/api/v1/namespaces', { metadata: { name: 'observability' } });
  await k.requestOk('POST', '/api/v1/namespaces/observability/serviceaccounts', { metadata: { name: 'prometheus' } });
  await k.requestOk('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles`, {
    metadata: { name: 'prometheus-discovery' },
    rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }],
  });
  await k.requestOk('POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/rolebindings`, {
    metadata: { name: 'prometheus-discovery' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'prometheus-discovery' },
    subjects: [{ kind: 'ServiceAccount', name: 'prometheus', namespace: 'observability' }],
  });
  const tokenFile = join(dir, 'prometheus.token');
  writeFileSync(tokenFile, await k.tokenForServiceAccount('observability', 'prometheus', { expirationSeconds: 86_400 }), { mode: 0o600 });
  return startPrometheus([], {
    ruleFiles,
    scrapeConfigs: [{
      job_name: 'kube-node-ping',
      scrape_interval: '1s',
      kubernetes_sd_configs: [{
        role: 'pod',
        api_server: k.url,
        namespaces: { names: [namespace] },
        tls_config: { ca_file: k.caFile },
        authorization: { credentials_file: tokenFile },
      }],
      relabel_configs: [
        { source_labels: ['__meta_kubernetes_pod_label_app_kubernetes_io_name'], regex: 'kube-node-ping', action: 'keep' },
        { source_labels: ['__meta_kubernetes_pod_container_port_name'], regex: 'metrics', action: 'keep' },
        { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
      ],
    }],
  });
}
