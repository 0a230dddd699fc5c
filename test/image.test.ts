/**
 * The container image (docker/Dockerfile) and its privilege model, proven without a container
 * engine (none runs here):
 *
 *  - hadolint passes, and the Dockerfile says what the chart and this test rely on (base, user,
 *    entrypoint, port, how fping gets its capability, no setuid files);
 *  - the agent runs the way the image runs it (/app: src compiled to dist/, package.json and the
 *    production dependencies only, all root-owned and world-readable) with exactly the user,
 *    groups and capabilities the chart's DaemonSet asks for, emulated with setpriv as a
 *    container runtime sets them (no inheritable or ambient capabilities, a bounding set of
 *    NET_RAW, no_new_privs from allowPrivilegeEscalation: false), in a network namespace of
 *    its own whose net.ipv4.ping_group_range is "1 0", so unprivileged ICMP sockets cannot
 *    stand in for a missing capability;
 *  - it probes loopback, given as the chart's external-targets ConfigMap (replies counted on
 *    /metrics), and the negative controls get no reply: without fping's file capability, with
 *    no_new_privs (which makes the capability inert), and root without NET_RAW.
 *
 * setpriv execs node, and node execs fping, as in the pod. Letting setpriv exec a capability
 * binary directly would prove nothing about no_new_privs: the kernel then caps the new
 * privileges by setpriv's own permitted set, which still holds NET_RAW.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { one, privilegesOf, render, scenarios, type Privileges } from './chart/helm.ts';
import { NODE_FLAGS, REPO, parseExposition, sleep, valueOf, type Sample } from './support/agent.ts';
import { toolPath } from './support/tools.ts';

const execFileP = promisify(execFile);
const DOCKERFILE_PATH = join(REPO, 'docker/Dockerfile');
const DOCKERFILE = readFileSync(DOCKERFILE_PATH, 'utf8');
const HADOLINT = toolPath('hadolint');
const SETPRIV = '/usr/bin/setpriv';
const SETCAP = ['/usr/sbin/setcap', '/sbin/setcap'].find(existsSync);
const GETCAP = ['/usr/sbin/getcap', '/sbin/getcap'].find(existsSync);
const SYSTEM_FPING = '/usr/bin/fping';
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

  test('the fping this test installs is the version the image pins', () => {
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

  test('no production dependency needs an install script (the image runs npm ci --ignore-scripts)', () => {
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8'));
    // protobufjs's postinstall only prints a version-scheme warning.
    const known = new Set(['node_modules/protobufjs']);
    const scripted = Object.entries<any>(lock.packages).filter(([k, v]) => k !== '' && !v.dev && v.hasInstallScript).map(([k]) => k);
    assert.deepEqual(scripted.filter((k) => !known.has(k)), []);
  });
});

describe('the agent as the image runs it, under the chart\'s privileges', () => {
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
    assert.ok(SETCAP && GETCAP, 'setcap/getcap (libcap2-bin) are installed');
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
    app = join(root, 'app');
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    // As the build stage does: src/ compiled to dist/ with tsconfig.build.json.
    execFileSync(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(REPO, 'tsconfig.build.json'), '--outDir', join(app, 'dist')]);
    for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(REPO, f), join(app, f));
    execFileSync('chmod', ['-R', 'u=rwX,go=rX', app]);
    // What `npm ci --omit=dev` installs: the lock file's packages that are not dev-only (nested
    // ones come with their parent). Hard links (fast; never written to), so check, not chmod,
    // that any user may read them.
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8'));
    for (const [k, v] of Object.entries<any>(lock.packages)) {
      if (k === '' || v.dev || k.slice('node_modules/'.length).includes('/node_modules/')) continue;
      mkdirSync(dirname(join(app, k)), { recursive: true });
      try {
        execFileSync('cp', ['-al', join(REPO, k), join(app, k)]);
      } catch {
        rmSync(join(app, k), { recursive: true, force: true });
        execFileSync('cp', ['-a', join(REPO, k), join(app, k)]);
      }
    }
    const unreadable = execFileSync('find', [join(app, 'node_modules'), '(', '-type', 'f', '!', '-perm', '-o+r', ')', '-o', '(', '-type', 'd', '!', '-perm', '-o+rx', ')'], { encoding: 'utf8' });
    assert.equal(unreadable, '', 'production dependencies readable by any user');
    // The image's node is the base image's; here the project's, reachable by any user.
    mkdirSync(join(root, 'bin'));
    node = join(root, 'bin/node');
    try {
      linkSync(realpathSync(process.execPath), node);
    } catch {
      copyFileSync(realpathSync(process.execPath), node);
    }
    chmodSync(node, 0o755);

    // fping installed as the image installs it: Debian's binary, no setuid bit, the Dockerfile's setcap.
    fpingCap = join(root, 'bin/fping');
    fpingPlain = join(root, 'bin/fping-without-capability');
    for (const f of [fpingCap, fpingPlain]) {
      copyFileSync(SYSTEM_FPING, f); // copyFile copies no extended attributes, so no capability
      chmodSync(f, 0o755);
    }
    execFileSync(SETCAP!, [imageFpingCaps(), fpingCap]);
    assert.match(execFileSync(GETCAP!, [fpingCap], { encoding: 'utf8' }), /cap_net_raw[=+]ep/);
    assert.equal(execFileSync(GETCAP!, [fpingPlain], { encoding: 'utf8' }).trim(), '', 'the control copy has no capability');
    assert.equal(statSync(fpingCap).mode & 0o6000, 0, 'not setuid/setgid');

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
  const capBits = (hex: string | undefined) => BigInt(`0x${hex ?? '0'}`);
  const hasCap = (hex: string | undefined, cap: number) => (capBits(hex) & (1n << BigInt(cap))) !== 0n;

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
    assert.equal(sent(r.samples, '127.0.0.1'), 0);
    assert.ok((valueOf(r.samples, 'kube_node_ping_fping_restarts_total') ?? 0) > 0, `fping was not restarted:\n${r.logs}`);
    assert.match(r.logs, /fping exited.*can't create socket/);
  });

  test('control: with no_new_privs the file capability is inert, no reply', async () => {
    const r = await runAgent(setprivArgs(nonRoot, { noNewPrivs: true }), fpingCap, 5_000);
    assert.ok(r.samples.length > 0, `never scraped the agent:\n${r.logs}`);
    assert.equal(received(r.samples, '127.0.0.1') + received(r.samples, '::1'), 0);
    assert.ok((valueOf(r.samples, 'kube_node_ping_fping_restarts_total') ?? 0) > 0, `fping was not restarted:\n${r.logs}`);
    assert.match(r.logs, /fping exited.*can't create socket/);
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

  test('control: root without NET_RAW gets no reply', async () => {
    // The Debian binary: the file-capability copy could not even be exec'd (EPERM, the
    // kernel's answer to a capability it cannot grant), which would stop the agent.
    const r = await runAgent(setprivArgs(rootMode, { caps: [] }), fpingPlain, 5_000);
    assert.ok(r.samples.length > 0, `never scraped the agent:\n${r.logs}`);
    assert.equal(received(r.samples, '127.0.0.1') + received(r.samples, '::1'), 0);
  });
});

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

