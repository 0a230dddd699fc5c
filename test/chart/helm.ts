/**
 * Renders charts/kube-node-ping with the pinned helm (scripts/tools.sh helm) and parses the
 * result. Shared by test/chart.test.ts and test/image.test.ts.
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { toolPath } from '../support/tools.ts';

export const CHART = fileURLToPath(new URL('../../charts/kube-node-ping/', import.meta.url));

/** The ci/*-values.yaml scenarios by name: "default", "full", ... */
export function scenarios(): { name: string; file: string }[] {
  return readdirSync(join(CHART, 'ci'))
    .filter((f) => f.endsWith('-values.yaml'))
    .sort()
    .map((f) => ({ name: f.slice(0, -'-values.yaml'.length), file: join(CHART, 'ci', f) }));
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm; never throws for a non-zero exit. */
export function helm(args: string[]): Promise<Run> {
  const bin = toolPath('helm');
  return new Promise((resolve, reject) => {
    // HELM_* dirs in a place of our own: no user config, no plugins, no repositories.
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/nonexistent', HELM_CACHE_HOME: '/tmp/knp-helm/cache', HELM_CONFIG_HOME: '/tmp/knp-helm/config', HELM_DATA_HOME: '/tmp/knp-helm/data' };
    execFile(bin, args, { env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

/** A Kubernetes object as rendered: kind, metadata and the rest, loosely typed. */
export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: any;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  valuesFiles?: string[];
  set?: string[];
  /** Chart directory; default the repository's chart. */
  chart?: string;
}

/** `helm template` → its text; throws with helm's stderr on failure. */
export async function templateText(o: RenderOptions = {}): Promise<string> {
  const args = ['template', o.release ?? 'knp', o.chart ?? CHART, '--namespace', o.namespace ?? 'monitoring'];
  for (const f of o.valuesFiles ?? []) args.push('--values', f);
  for (const s of o.set ?? []) args.push('--set', s);
  const r = await helm(args);
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `helm template` → its objects, in helm's order. */
export async function render(o: RenderOptions = {}): Promise<KObject[]> {
  return parseObjects(await templateText(o));
}

export function parseObjects(text: string): KObject[] {
  const out: KObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    const v = doc.toJS();
    if (v !== null && v !== undefined) out.push(v as KObject);
  }
  return out;
}

/** The one object of this kind (and name, if given); throws unless exactly one. */
export function one(objs: KObject[], kind: string, name?: string): KObject {
  const m = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (m.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${m.length}`);
  return m[0]!;
}

/** The agent container's user and privileges, as the rendered DaemonSet asks for them. */
export interface Privileges {
  uid: number;
  gid: number;
  /** Capabilities added after `drop: [ALL]`, lower case without CAP_: ["net_raw"]. */
  caps: string[];
  /** no_new_privs: allowPrivilegeEscalation false. */
  noNewPrivs: boolean;
}

export function privilegesOf(ds: KObject): Privileges {
  const pod = ds['spec'].template.spec;
  const c = pod.containers.find((x: any) => x.name === 'agent');
  const sc = { ...pod.securityContext, ...c.securityContext };
  if (!Array.isArray(sc.capabilities?.drop) || !sc.capabilities.drop.includes('ALL')) throw new Error('the agent container does not drop ALL capabilities');
  if (typeof sc.runAsUser !== 'number' || typeof sc.runAsGroup !== 'number') throw new Error('runAsUser/runAsGroup are not set');
  return {
    uid: sc.runAsUser,
    gid: sc.runAsGroup,
    caps: (sc.capabilities.add ?? []).map((x: string) => x.toLowerCase()),
    noNewPrivs: sc.allowPrivilegeEscalation === false,
  };
}
