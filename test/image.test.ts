/**
 * The container image that users run, built here from docker/Dockerfile (scripts/images.sh:
 * buildah on a local Debian 12 + Node 24 base, since no registry is reachable) and checked
 * three ways:
 *
 *  - the Dockerfile itself: hadolint, the context its .dockerignore lets in, no install scripts;
 *  - the built image, read from its own layers (podman image mount): uid 65532, the chart's
 *    entrypoint, fping present with exactly cap_net_raw=ep, nothing setuid or setgid, only the
 *    lock file's production packages, and its size;
 *  - the image in a container runtime (podman with runc) in a network namespace this test
 *    creates, so nothing but loopback is probed: with NET_RAW it probes 127.0.0.1 and ::1
 *    (the embedded default); without it, the agent says why in one line and is not ready;
 *  - the image's own files (its /app, node and fping with the capability the build gave it)
 *    under exactly the privileges the chart's DaemonSet asks for, set with setpriv as a
 *    Kubernetes runtime sets them. podman cannot show the file-capability model: with a
 *    non-root --user it puts --cap-add into the *ambient* set, which Kubernetes never does,
 *    so fping would get NET_RAW whatever its file capability. The cluster test (kubelet +
 *    containerd) runs the same model for real; this keeps it proven where that test does not run.
 *
 * These fail on the Dockerfile before issue 9 (it purged fping with libcap2-bin): no
 * /usr/bin/fping in the image, so every check of fping and every probe fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { one, privilegesOf, render, scenarios, type Privileges } from './chart/helm.ts';
import { NODE_FLAGS, REPO, parseExposition, sleep, valueOf, type Sample } from './support/agent.ts';
import { agentImage, containersConf, type BuiltImage } from './support/image.ts';
import { toolPath } from './support/tools.ts';

const execFileP = promisify(execFile);
const DOCKERFILE_PATH = join(REPO, 'docker/Dockerfile');
const DOCKERFILE = readFileSync(DOCKERFILE_PATH, 'utf8');
const HADOLINT = toolPath('hadolint');
const SETPRIV = '/usr/bin/setpriv';
const GETCAP = ['/usr/sbin/getcap', '/sbin/getcap'].find(existsSync);
const CAP_NET_RAW = 13;

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function instructions(): { op: string; args: string }[] {
  const out: { op: string; args: string }[] = [];
  let cur = '';
  for (const raw of DOCKERFILE.split('\n')) {
    const line = raw.trim();
    if (cur === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    cur += (cur ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (!line.endsWith('\\')) {
      const m = /^(\S+)\s+(.*)$/.exec(cur)!;
      out.push({ op: m[1]!.toUpperCase(), args: m[2]! });
      cur = '';
    }
  }
  return out;
}

/** The capability text the image gives fping, e.g. "cap_net_raw+ep". */
function imageFpingCaps(): string {
  const m = /\bsetcap\s+(\S+)\s+\/usr\/bin\/fping\b/.exec(DOCKERFILE);
  assert.ok(m, 'docker/Dockerfile sets a file capability on /usr/bin/fping');
  return m[1]!;
}

describe('docker/Dockerfile', () => {
  test('hadolint passes', async () => {
    const r = await execFileP(HADOLINT, ['--no-color', '--failure-threshold', 'info', DOCKERFILE_PATH]).catch((e) => e);
    assert.equal(r.code ?? 0, 0, `hadolint:\n${r.stdout}${r.stderr}`);
  });

  test('says what the chart and this test rely on', () => {
    const ins = instructions();
    const froms = ins.filter((i) => i.op === 'FROM');
    const arg = ins.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='));
    assert.equal(arg?.args, 'NODE_IMAGE=node:24-bookworm-slim', 'a Node 24 Debian 12 base');
    assert.deepEqual(froms.map((f) => f.args), ['${NODE_IMAGE} AS build', '${NODE_IMAGE}']);
    const runs = ins.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    assert.match(runs, /tsc -p tsconfig\.build\.json/, 'compiled to dist/');
    assert.match(runs, /npm prune --omit=dev/, 'only production dependencies stay');
    assert.match(runs, /apt-get install -y --no-install-recommends fping=\S+/);
    assert.match(runs, /find \/ -xdev -perm \/6000 -type f -exec chmod a-s \{\} \+/, 'setuid/setgid bits stripped');
    assert.equal(imageFpingCaps(), 'cap_net_raw+ep');
    const last = ins.slice(ins.findLastIndex((i) => i.op === 'FROM'));
    assert.deepEqual(last.filter((i) => i.op === 'USER').map((i) => i.args), ['65532:65532']);
    assert.deepEqual(last.filter((i) => i.op === 'EXPOSE').map((i) => i.args), ['9464']);
    assert.deepEqual(last.filter((i) => i.op === 'ENTRYPOINT').map((i) => JSON.parse(i.args)), [['node', ...NODE_FLAGS, '/app/dist/main.js']]);
    assert.ok(last.some((i) => i.op === 'COPY' && i.args === '--from=build /app /app'));
    const build = ins.slice(0, ins.findLastIndex((i) => i.op === 'FROM'));
    assert.ok(build.some((i) => i.op === 'COPY' && /^package\.json package-lock\.json tsconfig\.json tsconfig\.build\.json /.test(i.args)), 'package.json reaches /app (type: module, version)');
    assert.ok(build.some((i) => i.op === 'COPY' && /^src\/ /.test(i.args)));
  });

  test('the host\'s fping, which the lab tests run, is the version the image pins', () => {
    const pinned = /fping=(\S+)/.exec(DOCKERFILE)![1];
    const here = execFileSync('dpkg-query', ['-W', '-f=${Version}', 'fping'], { encoding: 'utf8' });
    assert.equal(here, pinned, 'the Debian 12 fping here is the one the image installs');
  });

  test('.dockerignore keeps the context to package*.json, the TypeScript configs and src/ without tests', () => {
    const ignore = readFileSync(join(REPO, 'docker/Dockerfile.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    assert.equal(ignore[0], '*', 'allow-list: everything is out unless let in');
    assert.deepEqual(ignore.filter((l) => l.startsWith('!')).sort(), ['!package-lock.json', '!package.json', '!src/', '!tsconfig.build.json', '!tsconfig.json']);
    assert.ok(ignore.includes('src/**/*.test.ts'));
  });

  test('buildah sends exactly the files that scripts/images.sh hashes into the image\'s cache key', async () => {
    const hashed = execFileSync('bash', [join(REPO, 'scripts/images.sh'), '--context-files'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    assert.ok(hashed.includes('package-lock.json') && hashed.includes('src/main.ts'));
    // The same context and ignore file as the real build, copied whole into a scratch image.
    const dir = mkdtempSync(join(tmpdir(), 'knp-context-'));
    const tag = `localhost/knp-context-check:${process.pid}`;
    try {
      writeFileSync(join(dir, 'Containerfile'), 'FROM scratch\nCOPY . /context/\n');
      await execFileP('buildah', ['bud', '--quiet', '--layers=false', '--pull=never', '-f', join(dir, 'Containerfile'), '--ignorefile', join(REPO, 'docker/Dockerfile.dockerignore'), '-t', tag, REPO], { env: PODMAN_ENV });
      const rootfs = (await podman(['image', 'mount', tag])).stdout.trim();
      const sent = execFileSync('find', ['.', '-type', 'f'], { cwd: join(rootfs, 'context'), encoding: 'utf8' }).split('\n').filter(Boolean).map((f) => f.slice(2)).sort();
      assert.deepEqual(sent, [...hashed].sort());
    } finally {
      await podman(['image', 'unmount', tag]).catch(() => undefined);
      await podman(['rmi', '-f', tag]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('no production dependency needs an install script (the image runs npm ci --ignore-scripts)', () => {
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8'));
    // protobufjs's postinstall only prints a version-scheme warning.
    const known = new Set(['node_modules/protobufjs']);
    const scripted = Object.entries<any>(lock.packages).filter(([k, v]) => k !== '' && !v.dev && v.hasInstallScript).map(([k]) => k);
    assert.deepEqual(scripted.filter((k) => !known.has(k)), []);
  });
});

const PODMAN_ENV = { ...process.env, CONTAINERS_CONF: containersConf() };
/** podman, with our containers.conf (runc; ulimits this machine allows). */
function podman(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return execFileP('podman', args, { env: PODMAN_ENV, maxBuffer: 64 << 20 });
}

/** The image, loaded into podman's storage if it is only in its archive, and its rootfs mounted read-only. */
async function mountImage(img: BuiltImage): Promise<string> {
  const exists = await podman(['image', 'exists', img.ref]).then(() => true, () => false);
  if (!exists) await podman(['load', '--quiet', '-i', img.archive]);
  const { stdout } = await podman(['image', 'mount', img.ref]);
  return stdout.trim();
}

/** Package directories under a node_modules tree, as lock-file keys ("node_modules/a/node_modules/@s/b"). */
function installedPackages(dir: string, prefix = 'node_modules'): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name === '.bin') continue;
    const names = e.name.startsWith('@') ? readdirSync(join(dir, e.name), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `${e.name}/${d.name}`) : [e.name];
    for (const n of names) {
      const key = `${prefix}/${n}`;
      assert.ok(existsSync(join(dir, n, 'package.json')), `${key} in the image is not a package`);
      out.push(key);
      if (existsSync(join(dir, n, 'node_modules'))) out.push(...installedPackages(join(dir, n, 'node_modules'), `${key}/node_modules`));
    }
  }
  return out;
}

describe('the built image (scripts/images.sh), read from its layers', () => {
  let img: BuiltImage;
  let rootfs: string;
  let config: { User?: string; Entrypoint?: string[]; Cmd?: string[] | null; ExposedPorts?: Record<string, unknown>; Env?: string[] };

  before(async () => {
    img = agentImage();
    rootfs = await mountImage(img);
    const { stdout } = await podman(['image', 'inspect', '--format', '{{json .Config}}', img.ref]);
    config = JSON.parse(stdout);
  });
  after(async () => {
    if (img) await podman(['image', 'unmount', img.ref]).catch(() => undefined);
  });

  test('its size (the manifest is podman\'s view of the archive)', async (t) => {
    const { stdout } = await podman(['image', 'inspect', '--format', '{{.Id}} {{.Size}}', img.ref]);
    assert.equal(stdout.trim(), `${img.id.replace(/^sha256:/, '')} ${img.sizeBytes}`);
    assert.ok(statSync(img.archive).size >= img.sizeBytes, 'the archive holds every layer, uncompressed');
    // Printed with the test output; README.md ("Image") quotes it.
    t.diagnostic(`${img.ref}: ${(img.sizeBytes / 1e6).toFixed(0)} MB uncompressed (${(img.sizeBytes / 2 ** 20).toFixed(0)} MiB), archive ${img.archive}`);
    console.log(`image ${img.ref}: ${(img.sizeBytes / 1e6).toFixed(0)} MB uncompressed`);
  });

  test('runs as 65532:65532, with the entrypoint and port the chart relies on', async () => {
    assert.equal(config.User, '65532:65532');
    assert.deepEqual(config.Entrypoint, ['node', ...NODE_FLAGS, '/app/dist/main.js']);
    assert.ok(config.Cmd === null || config.Cmd === undefined || config.Cmd.length === 0, `no CMD to be appended to the chart's args: ${JSON.stringify(config.Cmd)}`);
    assert.deepEqual(Object.keys(config.ExposedPorts ?? {}), ['9464/tcp']);
    // The chart sets args only, never command: the image's entrypoint is what runs.
    const objs = await render({ valuesFiles: [scenarios().find((s) => s.name === 'default')!.file] });
    const agent = one(objs, 'DaemonSet')['spec'].template.spec.containers.find((c: any) => c.name === 'agent');
    assert.equal(agent.command, undefined);
    assert.ok((agent.args as string[]).every((a) => a.startsWith('--')), 'flags for the agent, not a program');
    assert.ok((agent.args as string[]).includes(`--prometheus-port=9464`));
  });

  test('/usr/bin/fping is there with exactly cap_net_raw=ep, and runs', async () => {
    const fping = join(rootfs, 'usr/bin/fping');
    assert.ok(existsSync(fping), 'the image has /usr/bin/fping');
    assert.equal(statSync(fping).mode & 0o7777, 0o755);
    // getcap prints "=ep" only when effective and permitted are set and inheritable is not.
    assert.equal(execFileSync(GETCAP!, [fping], { encoding: 'utf8' }).trim(), `${fping} cap_net_raw=ep`);
    // As uid 65532 with NET_RAW, as in the pod (without it the kernel refuses the exec).
    const { stdout } = await podman(['run', '--rm', '--network=none', '--cap-drop=ALL', '--cap-add=NET_RAW', '--entrypoint', '/usr/bin/fping', img.ref, '--version']);
    // The version the Dockerfile pins, as dpkg recorded it in the image, and as fping says.
    const pinned = /fping=(\S+)/.exec(DOCKERFILE)![1]!;
    assert.equal(execFileSync('dpkg-query', [`--admindir=${join(rootfs, 'var/lib/dpkg')}`, '-W', '-f=${Version}', 'fping'], { encoding: 'utf8' }), pinned);
    assert.match(stdout, new RegExp(`^/usr/bin/fping: Version ${pinned.replace(/-.*$/, '').replace(/\./g, '\\.')}$`, 'm'));
  });

  test('no file is setuid or setgid', () => {
    const found = execFileSync('find', [rootfs, '-xdev', '-type', 'f', '-perm', '/6000'], { encoding: 'utf8' });
    assert.equal(found, '');
  });

  test('/app holds dist/, package.json and exactly the lock file\'s production packages', () => {
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8'));
    const prod = Object.entries<any>(lock.packages).filter(([k, v]) => k !== '' && !v.dev).map(([k]) => k).sort();
    const inImage = installedPackages(join(rootfs, 'app/node_modules')).sort();
    assert.deepEqual(inImage, prod);
    for (const dev of ['node_modules/typescript', 'node_modules/node', 'node_modules/@grafana/grafana-foundation-sdk']) assert.ok(!existsSync(join(rootfs, 'app', dev)), `${dev} is a dev dependency`);
    assert.deepEqual(readdirSync(join(rootfs, 'app')).sort(), ['dist', 'node_modules', 'package-lock.json', 'package.json']);
    assert.equal(JSON.parse(readFileSync(join(rootfs, 'app/package.json'), 'utf8')).version, JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version);
    assert.ok(existsSync(join(rootfs, 'app/dist/main.js')));
    const tests = execFileSync('find', [join(rootfs, 'app/dist'), '-name', '*.test.*'], { encoding: 'utf8' });
    assert.equal(tests, '', 'no tests in dist/');
  });

  test('the build\'s CA bundle and npmrc (bind-mounted over /usr/local/etc) left nothing behind', () => {
    assert.deepEqual(readdirSync(join(rootfs, 'usr/local/etc')), []);
    assert.equal(existsSync(join(rootfs, 'usr/local/etc/npmrc')), false);
  });
});

describe('the image under podman (runc), in a network namespace of its own', () => {
  const NS = `knp-img-pod-${process.pid}`;
  let img: BuiltImage;
  const names: string[] = [];

  before(async () => {
    img = agentImage();
    await mountImage(img);
    await podman(['image', 'unmount', img.ref]);
    execFileSync('ip', ['netns', 'add', NS]);
    execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    // A new namespace's default: no group may open unprivileged ICMP sockets, so only
    // CAP_NET_RAW can make fping work.
    assert.equal(execFileSync('ip', ['netns', 'exec', NS, 'cat', '/proc/sys/net/ipv4/ping_group_range'], { encoding: 'utf8' }).trim().split(/\s+/).join(' '), '1 0');
  });
  after(async () => {
    for (const n of names) await podman(['rm', '-f', '-t', '2', n]).catch(() => undefined);
    try {
      execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
    } catch {
      // not created
    }
  });

  /**
   * Starts the image detached in our namespace with `opts` (user, capabilities) and no
   * arguments: the embedded default targets. One at a time: they share the namespace's port.
   */
  async function run(name: string, opts: string[]): Promise<string> {
    for (const n of names.splice(0)) await podman(['rm', '-f', '-t', '2', n]);
    const full = `knp-img-${process.pid}-${name}`;
    names.push(full);
    await podman(['run', '-d', '--name', full, '--runtime', 'runc', '--network', `ns:/run/netns/${NS}`, ...opts, img.ref]);
    return full;
  }
  const get = (path: string) => execFileP('ip', ['netns', 'exec', NS, 'curl', '-s', '--max-time', '2', '-w', '\n%{http_code}', `http://127.0.0.1:9464${path}`]).then(
    (r) => {
      const i = r.stdout.lastIndexOf('\n');
      return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
    },
    () => ({ status: 0, body: '' }),
  );
  const logs = async (name: string) => {
    const r = await podman(['logs', name]);
    return r.stdout + r.stderr;
  };
  const running = async (name: string) => (await podman(['inspect', '--format', '{{.State.Running}}', name])).stdout.trim() === 'true';
  const received = (s: Sample[], address: string) => valueOf(s, 'kube_node_ping_packets_received_total', { destination_address: address }) ?? 0;

  test('root holding NET_RAW alone: probes 127.0.0.1 and ::1 (the embedded default) and is ready', async () => {
    const name = await run('root', ['--user', '0:0', '--cap-drop=ALL', '--cap-add=NET_RAW']);
    let samples: Sample[] = [];
    let ready = 0;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      await sleep(500);
      assert.ok(await running(name), `the container exited:\n${await logs(name)}`);
      const m = await get('/metrics');
      if (m.status === 200) samples = parseExposition(m.body);
      ready = (await get('/readyz')).status;
      if (received(samples, '127.0.0.1') > 0 && received(samples, '::1') > 0 && ready === 200) break;
    }
    assert.ok(received(samples, '127.0.0.1') > 0 && received(samples, '::1') > 0, `no replies: v4=${received(samples, '127.0.0.1')} v6=${received(samples, '::1')}\n${await logs(name)}`);
    assert.equal(ready, 200);
    // The run was what it claims: the agent (PID 1 of the container) is uid 0 with NET_RAW alone.
    const pid = (await podman(['inspect', '--format', '{{.State.Pid}}', name])).stdout.trim();
    const st = procStatus(Number(pid));
    assert.match(st['Uid'] ?? '', /^0\s+0\s+0\s+0$/);
    assert.equal(capBits(st['CapBnd']), 1n << BigInt(CAP_NET_RAW));
    assert.equal(capBits(st['CapEff']), 1n << BigInt(CAP_NET_RAW));
  });

  for (const c of [
    { name: 'nonroot-no-net-raw', what: "the image's uid 65532 with NET_RAW dropped (exec refused: EPERM)", opts: ['--cap-drop=ALL'], cause: /^fping cannot open an ICMP socket: the kernel refused to exec it \(EPERM\)/ },
    // Root without NET_RAW fares the same (EPERM). The other form, fping running and saying
    // "can't create socket", needs NET_RAW in the bounding set but in no other set, which
    // podman cannot express; the setpriv tests below show it.
  ]) {
    test(`control: ${c.what}: one line names the cause and the fix, /readyz is 503 with it, the agent keeps running`, async () => {
      const name = await run(c.name, c.opts);
      let text = '';
      let readyz = { status: 0, body: '' };
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        await sleep(500);
        text = await logs(name);
        readyz = await get('/readyz');
        if (readyz.status === 503 && /fping cannot open an ICMP socket/.test(readyz.body) && /fping cannot open an ICMP socket/.test(text)) break;
      }
      const lines = text.split('\n').filter((l) => l.includes('fping cannot open an ICMP socket'));
      assert.ok(lines.length >= 1, `no line names the cause:\n${text}`);
      // Logged once (then once per 10 minutes), however often fping is retried meanwhile.
      assert.equal(lines.length, 1, lines.join('\n'));
      const rec = JSON.parse(lines[0]!);
      assert.equal(rec.level, 'error');
      assert.match(rec.msg, c.cause);
      assert.match(rec.msg, /allowPrivilegeEscalation: true \(chart securityMode nonRoot\)/);
      assert.match(rec.msg, /uid 0 holding NET_RAW \(securityMode root\)/);
      assert.match(rec.msg, /ping_group_range/);
      assert.doesNotMatch(text, /"fping exited; restarting"/, 'no restart noise at the default level');
      assert.equal(readyz.status, 503);
      assert.equal(readyz.body.trim(), `not ready: ${rec.msg}`);
      assert.ok(await running(name), 'the agent never exits because fping cannot run');
      const m = await get('/metrics');
      assert.equal(m.status, 200);
      const samples = parseExposition(m.body);
      assert.equal(received(samples, '127.0.0.1') + received(samples, '::1'), 0);
      assert.ok((valueOf(samples, 'kube_node_ping_fping_restarts_total') ?? 0) > 0, 'fping is retried');
    });
  }
});

describe('the image\'s own files under the chart\'s privileges (setpriv, as a Kubernetes runtime sets them)', () => {
  const NS = `knp-img-${process.pid}`;
  let root: string;
  let app: string;
  let node: string;
  let fpingCap: string;
  let fpingPlain: string;
  let chartArgs: string[];
  let nonRoot: Privileges;
  let rootMode: Privileges;

  before(async () => {
    assert.ok(GETCAP, 'getcap (libcap2-bin) is installed');
    assert.ok(existsSync(SETPRIV), 'setpriv (util-linux) is installed');
    // An image-like tree, root-owned and world-readable, outside the repository.
    root = mkdtempSync(join(tmpdir(), 'knp-image-'));
    chmodSync(root, 0o755);

    // The chart's user, capabilities and arguments; loopback as its external targets, so the
    // targets file the chart writes is the one the agent reads.
    const loopback = ['externalTargets[0].name=lo-v4', 'externalTargets[0].address=127.0.0.1', 'externalTargets[1].name=lo-v6', 'externalTargets[1].address=::1'];
    for (const s of scenarios()) {
      if (s.name !== 'default' && s.name !== 'root') continue;
      const objs = await render({ valuesFiles: [s.file], set: loopback });
      const ds = one(objs, 'DaemonSet');
      if (s.name === 'root') {
        rootMode = privilegesOf(ds);
        continue;
      }
      nonRoot = privilegesOf(ds);
      const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-targets'))!;
      const targetsFile = join(root, 'targets.yaml');
      writeFileSync(targetsFile, cm['data']['targets.yaml'], { mode: 0o644 });
      chartArgs = (ds['spec'].template.spec.containers.find((c: any) => c.name === 'agent').args as string[])
        .map((a) => (a.startsWith('--targets-file=') ? `--targets-file=${targetsFile}` : a));
      assert.ok(chartArgs.includes(`--targets-file=${targetsFile}`));
    }
    // The image's /app, node and fping, copied out of its layers: root-owned, world-readable,
    // and fping with the capability the build gave it (cp keeps the security.capability xattr).
    const img = agentImage();
    const rootfs = await mountImage(img);
    try {
      execFileSync('cp', ['-a', join(rootfs, 'app'), root]);
      mkdirSync(join(root, 'bin'));
      execFileSync('cp', ['-a', '--preserve=all', join(rootfs, 'usr/local/bin/node'), join(root, 'bin/node')]);
      execFileSync('cp', ['-a', '--preserve=all', join(rootfs, 'usr/bin/fping'), join(root, 'bin/fping')]);
    } finally {
      await podman(['image', 'unmount', img.ref]);
    }
    app = join(root, 'app');
    node = join(root, 'bin/node');
    fpingCap = join(root, 'bin/fping');
    fpingPlain = join(root, 'bin/fping-without-capability');
    copyFileSync(fpingCap, fpingPlain); // copyFile copies no extended attributes, so no capability
    chmodSync(fpingPlain, 0o755);
    assert.equal(execFileSync(GETCAP!, [fpingCap], { encoding: 'utf8' }).trim(), `${fpingCap} cap_net_raw=ep`, 'the image\'s fping, capability kept');
    assert.equal(execFileSync(GETCAP!, [fpingPlain], { encoding: 'utf8' }).trim(), '', 'the control copy has no capability');
    const unreadable = execFileSync('find', [root, '(', '-type', 'f', '!', '-perm', '-o+r', ')', '-o', '(', '-type', 'd', '!', '-perm', '-o+rx', ')'], { encoding: 'utf8' });
    assert.equal(unreadable, '', 'the image\'s files are readable by any user');

    execFileSync('ip', ['netns', 'add', NS]);
    execFileSync('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    // No unprivileged ICMP in this namespace: only CAP_NET_RAW can make fping work.
    execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-q', '-w', 'net.ipv4.ping_group_range=1 0']);
    assert.equal(execFileSync('ip', ['netns', 'exec', NS, 'cat', '/proc/sys/net/ipv4/ping_group_range'], { encoding: 'utf8' }).trim().split(/\s+/).join(' '), '1 0');
  });

  after(() => {
    try {
      execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
    } catch {
      // not created
    }
    if (root) rmSync(root, { recursive: true, force: true });
  });

  interface Run {
    samples: Sample[];
    logs: string;
    /** /proc/<pid>/status of the agent and of its fping children, taken while running. */
    agentStatus: Record<string, string>;
    fpingStatus: Record<string, string>[];
  }

  /** setpriv as a container runtime sets up the chart's user: no supplementary groups, no inheritable or ambient capabilities. */
  function setprivArgs(p: Privileges, over: { caps?: string[]; noNewPrivs?: boolean } = {}): string[] {
    const caps = over.caps ?? p.caps;
    return [
      `--reuid=${p.uid}`, `--regid=${p.gid}`, '--clear-groups',
      '--inh-caps=-all', `--bounding-set=-all${caps.map((c) => `,+${c}`).join('')}`,
      ...((over.noNewPrivs ?? p.noNewPrivs) ? ['--no-new-privs'] : []),
    ];
  }

  /** Runs the agent as the image's ENTRYPOINT with the chart's args for `ms`, then scrapes /metrics from inside the namespace. */
  async function runAgent(priv: string[], fping: string, ms: number, until?: (s: Sample[]) => boolean): Promise<Run> {
    const argv = ['netns', 'exec', NS, SETPRIV, ...priv, '--', node, ...NODE_FLAGS, join(app, 'dist/main.js'), ...chartArgs, `--fping-path=${fping}`, '--period=200ms'];
    const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/nonexistent', NODE_NAME: 'image-test', POD_NAME: 'kube-node-ping-image-test', POD_NAMESPACE: 'test' };
    const child: ChildProcess = spawn('ip', argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let logs = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (logs += d));
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    const port = /--prometheus-port=(\d+)/.exec(chartArgs.join(' '))![1];
    let samples: Sample[] = [];
    let agentStatus: Record<string, string> = {};
    let fpingStatus: Record<string, string>[] = [];
    try {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        await sleep(500);
        if (child.exitCode !== null) throw new Error(`the agent exited with ${child.exitCode}:\n${logs}`);
        const r = await execFileP('ip', ['netns', 'exec', NS, 'curl', '-sf', '--max-time', '2', `http://127.0.0.1:${port}/metrics`]).catch(() => undefined);
        if (!r) continue;
        samples = parseExposition(r.stdout);
        agentStatus = procStatus(child.pid!);
        const kids = childrenOf(child.pid!).map(procStatus).filter((s) => s['Name'] === 'fping' || /fping/.test(s['Name'] ?? ''));
        if (kids.length > 0) fpingStatus = kids;
        if (until?.(samples) && fpingStatus.length > 0) break;
      }
    } finally {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    return { samples, logs, agentStatus, fpingStatus };
  }

  const received = (s: Sample[], address: string) => valueOf(s, 'kube_node_ping_packets_received_total', { destination_address: address }) ?? 0;
  const sent = (s: Sample[], address: string) => valueOf(s, 'kube_node_ping_packets_sent_total', { destination_address: address }) ?? 0;
  const answered = (s: Sample[]) => received(s, '127.0.0.1') > 0 && received(s, '::1') > 0;

  test('the chart asks for what this test emulates', () => {
    assert.deepEqual(nonRoot, { uid: 65532, gid: 65532, caps: ['net_raw'], noNewPrivs: false });
    assert.deepEqual(rootMode, { uid: 0, gid: 0, caps: ['net_raw'], noNewPrivs: true });
  });

  test('non-root (the default): uid 65532, fping\'s file capability → replies from 127.0.0.1 and ::1', async () => {
    const r = await runAgent(setprivArgs(nonRoot), fpingCap, 20_000, answered);
    assert.ok(answered(r.samples), `no replies: received v4=${received(r.samples, '127.0.0.1')} v6=${received(r.samples, '::1')}\n${r.logs}`);
    // From the chart's targets ConfigMap, as external destinations.
    assert.ok((valueOf(r.samples, 'kube_node_ping_packets_received_total', { destination_name: 'lo-v6', destination_kind: 'external' }) ?? 0) > 0);
    // The agent holds nothing; fping holds CAP_NET_RAW and only it, as uid 65532.
    assert.match(r.agentStatus['Uid'] ?? '', /^65532\s+65532\s+65532\s+65532$/);
    assert.equal(capBits(r.agentStatus['CapEff']), 0n, 'the agent has no effective capability');
    assert.equal(capBits(r.agentStatus['CapPrm']), 0n, 'the agent has no permitted capability');
    assert.equal(capBits(r.agentStatus['CapBnd']), 1n << BigInt(CAP_NET_RAW), 'bounding set: NET_RAW only');
    assert.equal(r.agentStatus['NoNewPrivs'], '0');
    assert.ok(r.fpingStatus.length > 0, 'saw fping running');
    for (const f of r.fpingStatus) {
      assert.match(f['Uid'] ?? '', /^65532\s+65532\s+65532\s+65532$/);
      assert.equal(capBits(f['CapEff']), 1n << BigInt(CAP_NET_RAW), 'fping: exactly CAP_NET_RAW');
    }
  });

  test('control: without the file capability, no reply (fping cannot open a socket and is restarted)', async () => {
    const r = await runAgent(setprivArgs(nonRoot), fpingPlain, 5_000);
    assert.ok(r.samples.length > 0, `never scraped the agent:\n${r.logs}`);
    assert.equal(received(r.samples, '127.0.0.1') + received(r.samples, '::1'), 0);
    // Every probe that was due is accounted for, as lost and unanswered (no verdict from fping):
    // the loss is visible, and so is that it never left this agent.
    assert.equal(valueOf(r.samples, 'kube_node_ping_probes_unanswered_total'), sent(r.samples, '127.0.0.1') + sent(r.samples, '::1'));
    assert.ok((valueOf(r.samples, 'kube_node_ping_fping_restarts_total') ?? 0) > 0, `fping was not restarted:\n${r.logs}`);
    assert.deepEqual(errorsIn(r.logs).map((m) => /^fping cannot open an ICMP socket \("can't create socket \(must run as root\?\)"\): it holds no CAP_NET_RAW/.test(m)), [true], r.logs);
  });

  test('control: with no_new_privs the file capability is inert, no reply', async () => {
    const r = await runAgent(setprivArgs(nonRoot, { noNewPrivs: true }), fpingCap, 5_000);
    assert.ok(r.samples.length > 0, `never scraped the agent:\n${r.logs}`);
    assert.equal(received(r.samples, '127.0.0.1') + received(r.samples, '::1'), 0);
    assert.ok((valueOf(r.samples, 'kube_node_ping_fping_restarts_total') ?? 0) > 0, `fping was not restarted:\n${r.logs}`);
    assert.deepEqual(errorsIn(r.logs).map((m) => /^fping cannot open an ICMP socket \(.*\): it holds no CAP_NET_RAW, because .* no_new_privs \(allowPrivilegeEscalation: false\)/.test(m)), [true], r.logs);
  });

  test('root mode: uid 0 holding NET_RAW alone, no_new_privs → replies, with or without the file capability', async () => {
    for (const fping of [fpingCap, fpingPlain]) {
      const r = await runAgent(setprivArgs(rootMode), fping, 20_000, answered);
      assert.ok(answered(r.samples), `no replies with ${fping}:\n${r.logs}`);
      assert.equal(r.agentStatus['NoNewPrivs'], '1');
      assert.equal(capBits(r.agentStatus['CapEff']), 1n << BigInt(CAP_NET_RAW), 'root holds NET_RAW and nothing else');
      for (const f of r.fpingStatus) assert.equal(capBits(f['CapEff']), 1n << BigInt(CAP_NET_RAW));
    }
  });

  test('control: root without NET_RAW gets no reply, and the log says why', async () => {
    // The image's fping cannot even be exec'd (EPERM, the kernel's answer to a file capability
    // it cannot grant); a copy without the capability runs and finds no socket.
    for (const [fping, cause] of [
      [fpingCap, /^fping cannot open an ICMP socket: the kernel refused to exec it \(EPERM\)/],
      [fpingPlain, /^fping cannot open an ICMP socket \("can't create socket \(must run as root\?\)"\): it holds no CAP_NET_RAW/],
    ] as const) {
      const r = await runAgent(setprivArgs(rootMode, { caps: [] }), fping, 5_000);
      assert.ok(r.samples.length > 0, `never scraped the agent:\n${r.logs}`);
      assert.equal(received(r.samples, '127.0.0.1') + received(r.samples, '::1'), 0);
      assert.deepEqual(errorsIn(r.logs).map((m) => cause.test(m)), [true], r.logs);
    }
  });
});

/** The messages of the agent's error-level log lines. */
function errorsIn(logs: string): string[] {
  return logs.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string; msg: string }).filter((r) => r.level === 'error').map((r) => r.msg);
}

const capBits = (hex: string | undefined) => BigInt(`0x${hex ?? '0'}`);

/** /proc/<pid>/status as a map (Uid, CapEff, NoNewPrivs, ...); empty once the process is gone. */
function procStatus(pid: number): Record<string, string> {
  try {
    return Object.fromEntries(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter(Boolean).map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i), l.slice(i + 1).trim()];
    }));
  } catch {
    return {};
  }
}

/** Direct children of `pid`. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

