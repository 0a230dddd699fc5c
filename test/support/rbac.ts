import type { Kube } from './kube.ts';

/**
 * A ServiceAccount in `namespace` with, if `bind`, a ClusterRole of get/list/watch on nodes
 * and nothing else (the chart's RBAC); returns a token for it.
 */
export async function nodeReaderToken(k: Kube, namespace: string, sa: string, bind: boolean): Promise<string> {
  await k.requestOk('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, { metadata: { name: sa } });
  if (bind) {
    await k.requestOk('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      metadata: { name: sa },
      rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }],
    });
    await k.requestOk('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      metadata: { name: sa },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: sa },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace }],
    });
  }
  return k.tokenForServiceAccount(namespace, sa);
}

/**
 * A kubeconfig for `token` whose server is `url` (a proxy in front of the API server). The
 * serving certificate names 127.0.0.1 and localhost, so another address verifies as localhost.
 */
export async function kubeconfigVia(k: Kube, token: string, url: string, file: string): Promise<string> {
  const { readFileSync, writeFileSync } = await import('node:fs');
  const path = await k.writeKubeconfig(token, file);
  let text = readFileSync(path, 'utf8').replaceAll(JSON.stringify(k.url), JSON.stringify(url));
  if (!url.includes('127.0.0.1')) text = text.replace(/^(\s+server: .*)$/m, '$1\n    tls-server-name: "localhost"');
  writeFileSync(path, text);
  return path;
}
