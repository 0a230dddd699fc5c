import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { Config } from '../config/config.ts';
import type { CompactNode } from '../discovery/node.ts';
import { SERVICE_NAME } from './names.ts';

/**
 * The resource names the source of every measurement: this node, with its zone and region
 * from its Node object's topology labels when discovery could read it. Outside a cluster
 * k8s.node.name is absent and host.name identifies the source. OTEL_RESOURCE_ATTRIBUTES
 * (already parsed into config) overrides what is detected.
 */
export function buildResource(config: Config, version: string, ownNode?: CompactNode): Resource {
  const attrs: Record<string, string> = {
    'service.name': SERVICE_NAME,
    'service.version': version,
    'service.instance.id': randomUUID(),
    'host.name': hostname(),
  };
  if (config.nodeName) attrs['k8s.node.name'] = config.nodeName;
  if (config.podName) attrs['k8s.pod.name'] = config.podName;
  if (config.podNamespace) attrs['k8s.namespace.name'] = config.podNamespace;
  if (config.clusterName) attrs['k8s.cluster.name'] = config.clusterName;
  if (ownNode?.uid) attrs['k8s.node.uid'] = ownNode.uid;
  if (ownNode?.zone) attrs['cloud.availability_zone'] = ownNode.zone;
  if (ownNode?.region) attrs['cloud.region'] = ownNode.region;
  return resourceFromAttributes({ ...attrs, ...config.resourceAttributes });
}
