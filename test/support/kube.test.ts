// Exercises test/support/kube.ts against the real etcd + kube-apiserver.
// The binaries come from scripts/tools.sh (./scripts/test builds them); missing ones fail the run.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startKube, findKubeBinaries, type Kube } from './kube.ts';

const found = findKubeBinaries();
if ('missing' in found) throw new Error(`kube binaries missing: ${found.missing}; run ./scripts/test or bash scripts/tools.sh etcd kube-apiserver`);
const bins = found;

let k: Kube;

before(async () => {
  k = await startKube(bins);
});

after(async () => {
  await k?.stop();
});

test('startKube', async (t) => {
  await t.test('serves the API on 127.0.0.1 with its own CA and writes an admin kubeconfig', async () => {
    assert.match(k.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(fs.readFileSync(k.caFile, 'utf8'), /BEGIN CERTIFICATE/);
    const kc = fs.readFileSync(k.kubeconfigPath, 'utf8');
    assert.ok(kc.includes(k.url) && kc.includes(k.adminToken));
    const v = await k.requestOk('GET', '/version');
    assert.equal(v.major, '1');
    assert.match(v.gitVersion, /^v1\.\d+\.\d+$/);
    const anon = await k.request('GET', '/api/v1/nodes', undefined, { token: null });
    assert.equal(anon.status, 401);
  });

  await t.test('creates a Node and reads it back', async () => {
    // Only data: nothing pings 10.213.9.2. A Node's status is kept on create
    // (as a kubelet registers itself).
    const created = await k.requestOk('POST', '/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 'z1' } },
      status: { addresses: [{ type: 'InternalIP', address: '10.213.9.2' }] },
    });
    assert.equal(created.metadata.name, 'node-a');
    const got = await k.requestOk('GET', '/api/v1/nodes/node-a');
    assert.deepEqual(got.status.addresses, [{ type: 'InternalIP', address: '10.213.9.2' }]);
    assert.equal(got.metadata.labels['topology.kubernetes.io/zone'], 'z1');
    assert.equal(got.spec.taints, undefined, 'no admission plugin adds taints');

    // Later changes go through the status subresource, as a kubelet's would.
    await k.requestOk('PATCH', '/api/v1/nodes/node-a/status',
      { status: { addresses: [{ type: 'InternalIP', address: '10.213.9.2' }, { type: 'Hostname', address: 'node-a' }] } },
      { contentType: 'application/merge-patch+json' });
    const again = await k.requestOk('GET', '/api/v1/nodes/node-a');
    assert.deepEqual(again.status.addresses.map((a: any) => a.type), ['InternalIP', 'Hostname']);
  });

  await t.test('a ServiceAccount token with node read access cannot read secrets', async () => {
    const ns = 'knp-system';
    await k.requestOk('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    await k.requestOk('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, {
      apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'kube-node-ping' },
    });
    await k.requestOk('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'kube-node-ping' },
      rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }],
    });
    await k.requestOk('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'kube-node-ping' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kube-node-ping' },
      subjects: [{ kind: 'ServiceAccount', name: 'kube-node-ping', namespace: ns }],
    });
    const token = await k.tokenForServiceAccount(ns, 'kube-node-ping');

    const who = await k.requestOk('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }, { token });
    assert.equal(who.status.userInfo.username, `system:serviceaccount:${ns}:kube-node-ping`);

    const nodes = await k.request('GET', '/api/v1/nodes', undefined, { token });
    assert.equal(nodes.status, 200, nodes.text);
    assert.ok(nodes.body.items.some((n: any) => n.metadata.name === 'node-a'));

    const secrets = await k.request('GET', '/api/v1/secrets', undefined, { token });
    assert.equal(secrets.status, 403, secrets.text);
    assert.equal(secrets.body.reason, 'Forbidden');

    const patch = await k.request('PATCH', '/api/v1/nodes/node-a', { metadata: { labels: { x: 'y' } } },
      { token, contentType: 'application/merge-patch+json' });
    assert.equal(patch.status, 403, 'get/list/watch only');

    const kc = await k.writeKubeconfig(token);
    assert.ok(fs.readFileSync(kc, 'utf8').includes(token));
  });

  await t.test('restartApiserver keeps URL, data and tokens', async () => {
    const before = await k.requestOk('GET', '/api/v1/nodes/node-a');
    await k.stopApiserver();
    await assert.rejects(k.request('GET', '/version'), /ECONNREFUSED/);
    await k.startApiserver();
    const after = await k.requestOk('GET', '/api/v1/nodes/node-a');
    assert.equal(after.metadata.uid, before.metadata.uid);
    await k.restartApiserver();
    const token = await k.tokenForServiceAccount('knp-system', 'kube-node-ping');
    const nodes = await k.request('GET', '/api/v1/nodes', undefined, { token });
    assert.equal(nodes.status, 200);
  });

  await t.test('compactEtcd makes old resourceVersions 410 Gone', async () => {
    const list1 = await k.requestOk('GET', '/api/v1/nodes');
    const oldRv: string = list1.metadata.resourceVersion;
    // Move on past oldRv, then compact everything up to now.
    await k.requestOk('PATCH', '/api/v1/nodes/node-a', { metadata: { labels: { step: '1' } } },
      { contentType: 'application/merge-patch+json' });
    const compacted = await k.compactEtcd();
    assert.ok(compacted > Number(oldRv), `compacted ${compacted} > ${oldRv}`);
    // Gone from etcd itself:
    const etcdRange = await fetch(`${k.etcdUrl}/v3/kv/range`, {
      method: 'POST',
      body: JSON.stringify({ key: Buffer.from('/registry/minions/node-a').toString('base64'), revision: oldRv }),
    });
    assert.match(await etcdRange.text(), /required revision has been compacted/);

    // The running apiserver's watch cache may still serve oldRv (see
    // compactEtcd's doc); a restarted one starts its cache at the current
    // revision, so reads at oldRv have to go to etcd.
    await k.restartApiserver();

    const exact = await k.request('GET', `/api/v1/nodes?resourceVersion=${oldRv}&resourceVersionMatch=Exact`);
    assert.equal(exact.status, 410, exact.text);
    assert.equal(exact.body.reason, 'Expired');

    // A watch from oldRv: 200 with an ERROR event carrying a 410 Status.
    const watch = await k.request('GET', `/api/v1/nodes?watch=1&resourceVersion=${oldRv}&timeoutSeconds=5`);
    const events = watch.text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.ok(
      watch.status === 410 || events.some((e) => e.type === 'ERROR' && e.object?.code === 410),
      `status ${watch.status}: ${watch.text.slice(0, 500)}`,
    );

    // Compacting again at an already compacted revision is a no-op, not an error.
    assert.equal(await k.compactEtcd(compacted), compacted);
  });
});
