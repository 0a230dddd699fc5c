/**
 * The container images that scripts/images.sh built for the sources as they are now (the
 * agent's docker/Dockerfile image and the test cluster's pause image), each a docker-archive
 * tar that `podman load` and `ctr images import` take. Reading them builds nothing: the
 * script is asked for the manifest of the current content hash, so an image built before a
 * source change is never handed out as this one.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './agent.ts';

export interface BuiltImage {
  /** The image's name and tag, e.g. localhost/kube-node-ping:0123456789ab (the tag is the content hash). */
  ref: string;
  /** Absolute path of the docker-archive tar holding it, tagged `ref`. */
  archive: string;
  /** The image ID (sha256: of its config), as podman and containerd report it. */
  id: string;
  /** Uncompressed size of its layers. */
  sizeBytes: number;
}

/**
 * The containers.conf that podman and buildah need on this kind of machine (runc; ulimits it
 * allows), from scripts/images.sh: pass it as CONTAINERS_CONF.
 */
export function containersConf(): string {
  return execFileSync('bash', [join(REPO, 'scripts/images.sh'), '--containers-conf'], { encoding: 'utf8' }).trim();
}

function manifest(name: 'agent' | 'pause'): BuiltImage {
  let out: string;
  try {
    out = execFileSync('bash', [join(REPO, 'scripts/images.sh'), '--manifest', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim().split('\n').pop();
    throw new Error(stderr || `the ${name} image is not built: run ./scripts/test (or bash scripts/images.sh)`);
  }
  const m = JSON.parse(out) as BuiltImage;
  if (typeof m.ref !== 'string' || typeof m.archive !== 'string' || typeof m.id !== 'string' || typeof m.sizeBytes !== 'number') {
    throw new Error(`scripts/images.sh --manifest ${name} printed an unexpected manifest: ${out.trim()}`);
  }
  return m;
}

/** The agent's image, built from docker/Dockerfile on the local Debian + Node 24 base. */
export function agentImage(): BuiltImage {
  return manifest('agent');
}

/** The test cluster's pod sandbox image: FROM scratch, /pause as the entrypoint. */
export function pauseImage(): BuiltImage {
  return manifest('pause');
}
