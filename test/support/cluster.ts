/**
 * A real multi-node Kubernetes cluster on one machine, for tests and `./scripts/demo --cluster`.
 *
 *   root namespace: etcd, kube-apiserver (production admission and authorization, listening on
 *                   the lab's root address), kube-controller-manager, kube-scheduler
 *   one lab host per node: containerd 2.x (runc) + kubelet + kube-proxy (nftables), each
 *                   node's InternalIP being that host's address
 *
 *   const c = await startCluster({ lab, nodes: ['node-1', 'node-2', 'node-3'], images: [agent, pause], sandboxImage: pause.ref });
 *   try { ... c.kube.request('GET', '/api/v1/nodes') ... } finally { await c.stop(); }
 *
 * Each node's programs share one mount namespace of their own (kubelet mounts the pods'
 * volumes, containerd bind-mounts them into containers) and one UTS namespace whose hostname
 * is the node's name (what hostNetwork pods see, as on a real node): a holder process enters
 * the host's network namespace, unshares those two and sleeps; the node's programs enter all
 * three with nsenter. Mounts made there never reach the machine's own namespace, and they vanish
 * when the last process of the node exits, so neither stop() nor a crashed run leaves any. The
 * machine's /sys (with its cgroup hierarchies, which `ip netns exec` would hide) stays visible.
 * Paths that kubelet and containerd hard-code and that nodes would share (/var/log/containers,
 * /var/lib/cni, /run/containerd) are bind-mounted from the node's own directory in that
 * namespace.
 *
 * Every program is killed with the test process (setpriv --pdeathsig, see launch()); the lab
 * kills whatever is left in its namespaces; pods' cgroups live under one cgroup per node,
 * `/kube-node-ping-cluster/<lab id>-<node>` in every v1 hierarchy, removed by stop() and, for a
 * crashed run, by the next startCluster().
 *
 * Side effects on the machine, as on any node: kubelet sets its kernel tunables
 * (vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1, kernel.keys.root_max*).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Host, Lab } from '../lab/lab.ts';
import { pidAlive } from '../lab/lab.ts';
import { freePorts, httpGet, issueCert, kubeconfigYaml, launch, startKube, tailFile, terminate, waitReady, type Kube, type Proc } from './kube.ts';
import { toolPath } from './tools.ts';

const execFileP = promisify(execFile);

export const SERVICE_CIDR = '10.96.0.0/16';
/** The `kubernetes` Service's cluster IP (the first of SERVICE_CIDR), where pods find the API server. */
export const KUBERNETES_SERVICE_IP = '10.96.0.1';
export const CLUSTER_CIDR = '10.244.0.0/16';
const CGROUP_PARENT = 'kube-node-ping-cluster';
const CGROUP_FS = '/sys/fs/cgroup';
const RUNC = '/usr/sbin/runc';
const NSENTER = '/usr/bin/nsenter';
const NODE_RE = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
/** Directories a node's programs write at fixed paths: each node gets its own, bind-mounted. */
const NODE_PRIVATE_DIRS = ['/var/log/containers', '/var/lib/cni', '/run/containerd'];

export interface ClusterOptions {
  lab: Lab;
  /** Node names (lab host names): at least one. */
  nodes: string[];
  /** docker-archive tars imported into every node's containerd (namespace k8s.io). */
  images: string[];
  /** The pod sandbox image (its ref, among `images`): nothing is pulled. */
  sandboxImage: string;
  /** Per program start-up deadline. Default 180 s: the machine is shared and loaded. */
  readyTimeoutMs?: number;
  /** Print progress lines (phase and duration) to stderr. */
  verbose?: boolean;
}

export interface ClusterNode {
  readonly name: string;
  readonly host: Host;
  /** The node's directory: containerd, kubelet, logs (containerd.log, kubelet.log, kube-proxy.log). */
  readonly dir: string;
  /** containerd's socket (for ctr --address). */
  readonly containerdSocket: string;
  /** The pods' cgroup parent, relative to each hierarchy. */
  readonly cgroupRoot: string;
  /** kubelet is running. */
  readonly kubeletRunning: boolean;
}

export interface Cluster {
  readonly kube: Kube;
  /** admin kubeconfig (for helm). */
  readonly kubeconfigPath: string;
  readonly dir: string;
  readonly nodes: readonly ClusterNode[];
  node(name: string): ClusterNode;
  /** Starts one more node (a new lab host) and waits until it is Ready. */
  addNode(name: string): Promise<ClusterNode>;
  /** Stops the node's kubelet only: its pods keep running, the node goes NotReady. */
  stopKubelet(name: string): Promise<void>;
  /** Starts the node's kubelet again. */
  startKubelet(name: string): Promise<void>;
  /**
   * Takes a node out as an operator would: stops its kubelet, kube-proxy and containerd and
   * kills its pods (the machine is gone), then deletes its Node object.
   */
  removeNode(name: string): Promise<void>;
  /** Waits until every named node (default all running) reports Ready. */
  waitNodesReady(names?: string[], timeoutMs?: number): Promise<void>;
  /**
   * PIDs of the processes in a container, from the node's cgroups (`containerID` as the API
   * reports it: containerd://<id>).
   */
  containerPids(nodeName: string, containerID: string): number[];
  /** Last lines of a node program's log. */
  logTail(nodeName: string, which: 'containerd' | 'kubelet' | 'kube-proxy', lines?: number): string;
  /** Kills everything, removes cgroups and the directory. Idempotent. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function log(verbose: boolean | undefined, msg: string): void {
  if (verbose) process.stderr.write(`cluster: ${msg}\n`);
}

// ---------------------------------------------------------------- cgroups

/** The v1 hierarchies (and the unified one of a hybrid setup) mounted under /sys/fs/cgroup. */
function cgroupHierarchies(): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    const mnt = f[4]!;
    const type = f[sep + 1];
    if ((type === 'cgroup' || type === 'cgroup2') && mnt.startsWith(`${CGROUP_FS}/`)) out.push(mnt);
  }
  return out;
}

/** Creates `rel` in every hierarchy (cpuset needs its cpus and mems filled in, as v1 does not inherit them). */
function createCgroup(rel: string): void {
  for (const h of cgroupHierarchies()) {
    let at = h;
    for (const part of rel.split('/').filter(Boolean)) {
      const parent = at;
      at = path.join(at, part);
      if (!fs.existsSync(at)) fs.mkdirSync(at);
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        const file = path.join(at, f);
        if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim() === '') {
          fs.writeFileSync(file, fs.readFileSync(path.join(parent, f), 'utf8').trim());
        }
      }
    }
  }
}

/** The cgroup directory `root` and every one below it, children before their parent; none if it is gone. */
function cgroupDirs(root: string): string[] {
  const dirs: string[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(d, e.name));
    dirs.push(d);
  };
  walk(root);
  return dirs;
}

/** Every PID in `rel` and below, in one hierarchy (pids). */
function cgroupPids(rel: string): number[] {
  const pids: number[] = [];
  for (const d of cgroupDirs(path.join(CGROUP_FS, 'pids', rel))) {
    try {
      for (const p of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.push(Number(p));
    } catch {
      // removed meanwhile
    }
  }
  return pids;
}

/** Kills every process under `rel` and removes it from every hierarchy, deepest first. */
async function removeCgroup(rel: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const pids = cgroupPids(rel);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await sleep(100);
  }
  for (const h of cgroupHierarchies()) {
    for (const d of cgroupDirs(path.join(h, rel))) {
      for (let i = 0; i < 20; i++) {
        try {
          fs.rmdirSync(d);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
          await sleep(100); // a process still exiting
        }
      }
    }
  }
}

/** The shared parent cgroup goes when the last cluster is gone (another run's nodes keep it). */
function removeEmptyParent(): void {
  for (const h of cgroupHierarchies()) {
    try {
      fs.rmdirSync(path.join(h, CGROUP_PARENT));
    } catch {
      // in use, or gone
    }
  }
}

/**
 * Removes what a crashed run left: node cgroups of labs that no longer run (the lab's
 * registry holds a live lab's record, and Lab.create() removed the dead ones' records and
 * killed what ran in their namespaces), and cluster directories whose owner is dead.
 */
async function cleanupStale(): Promise<void> {
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.join(CGROUP_FS, 'pids', CGROUP_PARENT));
  } catch {
    // none
  }
  for (const n of names) {
    const labId = n.split('-')[0]!;
    let live = false;
    try {
      const rec = JSON.parse(fs.readFileSync(`/run/kube-node-ping-lab/${labId}.json`, 'utf8')) as { pid: number };
      live = pidAlive(rec.pid);
    } catch {
      // no record: the lab is gone
    }
    if (!live) await removeCgroup(`${CGROUP_PARENT}/${n}`);
  }
  removeEmptyParent();
  for (const d of fs.readdirSync(os.tmpdir())) {
    if (!d.startsWith('knp-cluster-')) continue;
    const dir = path.join(os.tmpdir(), d);
    let owner = 0;
    try {
      owner = Number(fs.readFileSync(path.join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue; // being created, or not ours
    }
    if (owner > 0 && !pidAlive(owner)) await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

// ---------------------------------------------------------------- configs

function containerdConfig(dir: string, socket: string, sandboxImage: string, cniBin: string): string {
  const q = JSON.stringify;
  return `version = 4
root = ${q(path.join(dir, 'root'))}
state = ${q(path.join(dir, 'state'))}
# NRI listens on a fixed socket that several containerds would share; nothing here uses it.
disabled_plugins = ['io.containerd.nri.v1.nri']
# No /etc/containerd/conf.d/*.toml: the machine's own containerd settings stay out.
imports = []

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = ${q(socket)}
  [plugins.'io.containerd.server.v1.ttrpc']
    address = ${q(`${socket}.ttrpc`)}
  [plugins.'io.containerd.internal.v1.opt']
    path = ${q(path.join(dir, 'opt'))}
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = ${q(sandboxImage)}
  [plugins.'io.containerd.cri.v1.runtime']
    # The pause container asks for oom_score_adj -998, which this kind of VM refuses.
    restrict_oom_score_adj = true
    # Pod network namespaces under the node's own state, not in the machine's /run/netns.
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = ${q(RUNC)}
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [${q(cniBin)}]
      conf_dir = ${q(path.join(dir, 'cni'))}
`;
}

function cniConfig(podCidr: string, ipamDir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'knp-pods',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: podCidr }]], dataDir: ipamDir, routes: [{ dst: CLUSTER_CIDR }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2);
}

function kubeletConfig(n: { dir: string; socket: string; cgroupRoot: string; address: string; caFile: string; certFile: string; keyFile: string }): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // This machine mounts cgroup v1 hierarchies; kubelet 1.35+ refuses them unless told.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: n.cgroupRoot,
    containerRuntimeEndpoint: `unix://${n.socket}`,
    address: n.address,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    tlsCertFile: n.certFile,
    tlsPrivateKeyFile: n.keyFile,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: n.caFile } },
    authorization: { mode: 'Webhook' },
    registerNode: true,
    clusterDomain: 'cluster.local',
    podLogsDir: path.join(n.dir, 'pod-logs'),
    volumePluginDir: path.join(n.dir, 'volume-plugins'),
    failSwapOn: false,
    maxPods: 30,
    // A shared test machine: thresholds it will not reach (a few MiB, 1 % of the disk), and
    // no image garbage collection (the images are imported, never pulled again).
    evictionHard: { 'memory.available': '20Mi', 'nodefs.available': '1%', 'nodefs.inodesFree': '1%', 'imagefs.available': '1%', 'imagefs.inodesFree': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    nodeStatusUpdateFrequency: '5s',
    serializeImagePulls: false,
    logging: { format: 'text' },
  }, null, 2);
}

function kubeProxyConfig(kubeconfig: string, node: string): string {
  return JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: 'nftables',
    hostnameOverride: node,
    clientConnection: { kubeconfig },
    clusterCIDR: CLUSTER_CIDR,
    metricsBindAddress: '127.0.0.1:10249',
    healthzBindAddress: '127.0.0.1:10256',
    // The conntrack table is the machine's: leave its size and timeouts alone.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
  }, null, 2);
}

// ---------------------------------------------------------------- nodes

interface NodeState {
  name: string;
  host: Host;
  dir: string;
  socket: string;
  cgroupRoot: string;
  holder?: Proc;
  containerd?: Proc;
  kubelet?: Proc;
  proxy?: Proc;
  kubeletArgs: string[];
  removed: boolean;
}

/** Waits until the holder's `sleep` sits in a mount namespace of its own. */
async function holderReady(p: Proc, logFile: string, timeoutMs: number): Promise<void> {
  const own = fs.readlinkSync('/proc/self/ns/mnt');
  await waitReady('node namespace holder', p, logFile, timeoutMs, async () => {
    const pid = p.child.pid!;
    const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const mnt = fs.readlinkSync(`/proc/${pid}/ns/mnt`);
    return { ok: comm === 'sleep' && mnt !== own, detail: `${comm} ${mnt}` };
  });
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  if (opts.nodes.length === 0) throw new Error('startCluster: no nodes');
  for (const n of opts.nodes) if (!NODE_RE.test(n)) throw new Error(`startCluster: bad node name ${JSON.stringify(n)}`);
  const timeoutMs = opts.readyTimeoutMs ?? 180_000;
  const bin = {
    etcd: toolPath('etcd'),
    apiserver: toolPath('kube-apiserver'),
    controllerManager: toolPath('kube-controller-manager'),
    scheduler: toolPath('kube-scheduler'),
    kubelet: toolPath('kubelet'),
    proxy: toolPath('kube-proxy'),
    containerd: fs.realpathSync(toolPath('containerd')),
    cni: fs.realpathSync(toolPath('cni-plugins')),
  };
  const ctr = path.join(path.dirname(bin.containerd), 'ctr');
  const lab = opts.lab;

  await cleanupStale();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'knp-cluster-'));
  await fsp.writeFile(path.join(dir, 'owner.pid'), String(process.pid));

  const nodes = new Map<string, NodeState>();
  let kube: Kube | undefined;
  let cm: Proc | undefined;
  let sched: Proc | undefined;
  let stopped = false;
  let podSubnet = 0;

  const stopNode = async (s: NodeState) => {
    await terminate(s.kubelet, 5000);
    await terminate(s.proxy, 5000);
    await terminate(s.containerd, 5000);
    // The pods, and the shims that containerd left running.
    await removeCgroup(s.cgroupRoot.slice(1));
    await killNamespace(s.host);
    await terminate(s.holder, 2000);
  };

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.allSettled([...nodes.values()].map(stopNode));
    await terminate(sched);
    await terminate(cm);
    await kube?.stop();
    removeEmptyParent();
    await fsp.rm(dir, { recursive: true, force: true, maxRetries: 5 });
  };

  try {
    let t0 = Date.now();
    kube = await startKube({
      etcdBin: bin.etcd,
      apiserverBin: bin.apiserver,
      dataDir: path.join(dir, 'control-plane'),
      address: lab.rootV4,
      production: true,
      serviceClusterIpRange: SERVICE_CIDR,
      readyTimeoutMs: timeoutMs,
    });
    const k = kube;
    const pki = k.dir;
    log(opts.verbose, `etcd + kube-apiserver ready at ${k.url} in ${Date.now() - t0} ms`);

    const clientKubeconfig = async (name: string, cn: string, orgs: string[] = []) => {
      const c = await issueCert(pki, name, { cn, orgs, usage: 'client' });
      const f = path.join(pki, `${name}.kubeconfig`);
      await fsp.writeFile(f, kubeconfigYaml(k.url, k.caPem, cn, c), { mode: 0o600 });
      return f;
    };

    // --- kube-controller-manager and kube-scheduler ---------------------------
    t0 = Date.now();
    const [cmPort, schedPort] = (await freePorts(2)) as [number, number];
    const cmKubeconfig = await clientKubeconfig('controller-manager', 'system:kube-controller-manager');
    const cmLog = path.join(pki, 'kube-controller-manager.log');
    // What both controllers take alike: their client identity, a loopback-only health port, no
    // leader election (one replica each).
    const controllerArgs = (kubeconfig: string, port: number) => [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      '--leader-elect=false',
    ];
    cm = launch(bin.controllerManager, [
      ...controllerArgs(cmKubeconfig, cmPort),
      `--service-account-private-key-file=${k.saKeyFile}`,
      `--root-ca-file=${k.caFile}`,
      '--use-service-account-credentials=true',
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      `--cluster-cidr=${CLUSTER_CIDR}`,
      // Each node's CNI config names its own pod range; nothing reads spec.podCIDR.
      '--allocate-node-cidrs=false',
      // A stopped kubelet makes its node NotReady in 20 s rather than 50.
      '--node-monitor-grace-period=20s',
      '--profiling=false',
    ], cmLog);
    const schedKubeconfig = await clientKubeconfig('scheduler', 'system:kube-scheduler');
    const schedLog = path.join(pki, 'kube-scheduler.log');
    sched = launch(bin.scheduler, [...controllerArgs(schedKubeconfig, schedPort), '--profiling=false'], schedLog);
    const healthz = (port: number) => async () => {
      const r = await httpGet(`https://127.0.0.1:${port}/healthz`, { rejectUnauthorized: false });
      return { ok: r.status === 200, detail: `${r.status} ${r.text.slice(0, 300)}` };
    };
    await Promise.all([
      waitReady('kube-controller-manager', cm, cmLog, timeoutMs, healthz(cmPort)),
      waitReady('kube-scheduler', sched, schedLog, timeoutMs, healthz(schedPort)),
    ]);
    log(opts.verbose, `kube-controller-manager + kube-scheduler ready in ${Date.now() - t0} ms`);
    const proxyKubeconfig = await clientKubeconfig('kube-proxy', 'system:kube-proxy');

    // --- nodes ------------------------------------------------------------------
    const startNode = async (name: string): Promise<NodeState> => {
      if (nodes.has(name)) throw new Error(`node ${name} exists`);
      const t = Date.now();
      const host = await lab.addHost(name);
      const nd = path.join(dir, 'nodes', name);
      await fsp.mkdir(nd, { recursive: true });
      const s: NodeState = {
        name,
        host,
        dir: nd,
        socket: path.join(nd, 'containerd', 'containerd.sock'),
        cgroupRoot: `/${CGROUP_PARENT}/${lab.id}-${name}`,
        kubeletArgs: [],
        removed: false,
      };
      nodes.set(name, s);
      createCgroup(s.cgroupRoot);
      // In-cluster clients dial the `kubernetes` Service's IP; kube-proxy rewrites it to the
      // API server's address. The route is on-link on the lab link: a packet that kube-proxy
      // did not rewrite asks the lab bridge for an owner, finds none, and goes nowhere else.
      await execFileP('ip', ['-n', host.ns, 'route', 'add', SERVICE_CIDR, 'dev', host.ifname]);
      await lab.assertRoutes([lab.rootV4], host);

      // The holder: the node's mount namespace, with its private copies of the shared paths.
      const binds = path.join(nd, 'binds');
      const holderLog = path.join(nd, 'holder.log');
      const script = 'set -e; hostname "$1"; b=$2; shift 2; for d in "$@"; do mkdir -p "$d" "$b$d"; mount --bind "$b$d" "$d"; done; exec sleep infinity';
      s.holder = launch(NSENTER, [`--net=/run/netns/${host.ns}`, '--', 'unshare', '--mount', '--propagation', 'slave', '--uts', '--',
        'sh', '-c', script, 'sh', name, binds, ...NODE_PRIVATE_DIRS], holderLog);
      await holderReady(s.holder, holderLog, timeoutMs);
      const enter = ['-t', String(s.holder.child.pid), '-m', '-n', '-u', '--'];

      // containerd.
      const cd = path.join(nd, 'containerd');
      await fsp.mkdir(path.join(cd, 'cni'), { recursive: true });
      const podCidr = `10.244.${podSubnet++}.0/24`;
      await fsp.writeFile(path.join(cd, 'cni', '10-knp.conflist'), cniConfig(podCidr, path.join(cd, 'ipam')));
      await fsp.writeFile(path.join(cd, 'config.toml'), containerdConfig(cd, s.socket, opts.sandboxImage, bin.cni));
      const cdLog = path.join(nd, 'containerd.log');
      s.containerd = launch(NSENTER, [...enter, bin.containerd, '--config', path.join(cd, 'config.toml')], cdLog,
        { PATH: `${path.dirname(bin.containerd)}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` });
      await waitReady(`containerd on ${name}`, s.containerd, cdLog, timeoutMs, async () => {
        const r = await execFileP(ctr, ['--address', s.socket, 'version'], { timeout: 10_000 });
        return { ok: /Server:/.test(r.stdout), detail: r.stdout };
      });
      for (const archive of opts.images) {
        await execFileP(ctr, ['--address', s.socket, '-n', 'k8s.io', 'images', 'import', archive], { timeout: timeoutMs, maxBuffer: 16 << 20 })
          .catch((e: Error & { stderr?: string }) => {
            throw new Error(`ctr images import ${archive} on ${name}: ${e.stderr?.trim() || e.message}`);
          });
      }

      // kubelet: client certificate of its own node, serving certificate for its address.
      const kd = path.join(nd, 'kubelet');
      await fsp.mkdir(kd, { recursive: true });
      const client = await issueCert(pki, `kubelet-${name}`, { cn: `system:node:${name}`, orgs: ['system:nodes'], usage: 'client' });
      const serving = await issueCert(pki, `kubelet-${name}-serving`, { cn: name, usage: 'server', sans: [`IP:${host.v4}`, `DNS:${name}`] });
      const kubeletKubeconfig = path.join(kd, 'kubeconfig');
      await fsp.writeFile(kubeletKubeconfig, kubeconfigYaml(k.url, k.caPem, `system:node:${name}`, client), { mode: 0o600 });
      const kubeletCfg = path.join(kd, 'config.json');
      await fsp.writeFile(kubeletCfg, kubeletConfig({ dir: kd, socket: s.socket, cgroupRoot: s.cgroupRoot, address: host.v4, caFile: k.caFile, ...serving }));
      s.kubeletArgs = [...enter, bin.kubelet, `--config=${kubeletCfg}`, `--kubeconfig=${kubeletKubeconfig}`,
        `--root-dir=${path.join(kd, 'root')}`, `--cert-dir=${path.join(kd, 'pki')}`,
        `--hostname-override=${name}`, `--node-ip=${host.v4}`];
      s.kubelet = launch(NSENTER, s.kubeletArgs, path.join(nd, 'kubelet.log'));

      // kube-proxy.
      const proxyCfg = path.join(nd, 'kube-proxy.json');
      await fsp.writeFile(proxyCfg, kubeProxyConfig(proxyKubeconfig, name));
      s.proxy = launch(NSENTER, [...enter, bin.proxy, `--config=${proxyCfg}`], path.join(nd, 'kube-proxy.log'));
      log(opts.verbose, `node ${name} (${host.v4}) started in ${Date.now() - t}ms`);
      return s;
    };

    const readyNodes = async (names: string[]) => {
      const list = await k.requestOk('GET', '/api/v1/nodes');
      const ready = new Set<string>();
      for (const n of list.items ?? []) {
        if ((n.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True')) ready.add(n.metadata.name);
      }
      return names.filter((n) => !ready.has(n));
    };
    const waitNodesReady = async (names = [...nodes.values()].filter((s) => !s.removed && s.kubelet?.exitCode === undefined).map((s) => s.name), ms = timeoutMs) => {
      const deadline = Date.now() + ms;
      let missing = names;
      while (Date.now() < deadline) {
        for (const n of names) {
          const s = nodes.get(n)!;
          for (const [what, p] of [['kubelet', s.kubelet], ['containerd', s.containerd], ['kube-proxy', s.proxy]] as const) {
            if (p && p.exitCode !== undefined) {
              throw new Error(`${what} on ${n} exited (${p.exitCode}):\n${tailFile(path.join(s.dir, `${what}.log`), 30)}`);
            }
          }
        }
        missing = await readyNodes(names);
        if (missing.length === 0) return;
        await sleep(1000);
      }
      const why = missing.map((n) => `${n}:\n${tailFile(path.join(nodes.get(n)!.dir, 'kubelet.log'), 15)}`).join('\n');
      throw new Error(`nodes not Ready after ${ms} ms: ${missing.join(', ')}\n${why}`);
    };

    t0 = Date.now();
    // One node at a time: start-up is CPU-bound on a 2-core machine.
    for (const n of opts.nodes) await startNode(n);
    await waitNodesReady();
    log(opts.verbose, `${opts.nodes.length} nodes Ready in ${Date.now() - t0} ms`);

    const get = (name: string): NodeState => {
      const s = nodes.get(name);
      if (!s) throw new Error(`no node ${name}`);
      return s;
    };
    const view = (s: NodeState): ClusterNode => ({
      name: s.name,
      host: s.host,
      dir: s.dir,
      containerdSocket: s.socket,
      cgroupRoot: s.cgroupRoot,
      get kubeletRunning() {
        return s.kubelet !== undefined && s.kubelet.exitCode === undefined;
      },
    });

    const cluster: Cluster = {
      kube: k,
      kubeconfigPath: k.kubeconfigPath,
      dir,
      get nodes() {
        return [...nodes.values()].filter((s) => !s.removed).map(view);
      },
      node: (name) => view(get(name)),
      async addNode(name) {
        if (!NODE_RE.test(name)) throw new Error(`addNode: bad node name ${JSON.stringify(name)}`);
        const s = await startNode(name);
        await waitNodesReady([name]);
        return view(s);
      },
      async stopKubelet(name) {
        await terminate(get(name).kubelet);
      },
      async startKubelet(name) {
        const s = get(name);
        if (s.kubelet && s.kubelet.exitCode === undefined) throw new Error(`kubelet on ${name} is running`);
        s.kubelet = launch(NSENTER, s.kubeletArgs, path.join(s.dir, 'kubelet.log'));
      },
      async removeNode(name) {
        const s = get(name);
        await terminate(s.kubelet, 5000);
        await terminate(s.proxy, 5000);
        await terminate(s.containerd, 5000);
        await removeCgroup(s.cgroupRoot.slice(1));
        await killNamespace(s.host);
        s.removed = true;
        await k.requestOk('DELETE', `/api/v1/nodes/${name}`);
      },
      waitNodesReady,
      containerPids(nodeName, containerID) {
        const id = containerID.replace(/^containerd:\/\//, '');
        if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`containerPids: bad container ID ${JSON.stringify(containerID)}`);
        const root = path.join(CGROUP_FS, 'pids', get(nodeName).cgroupRoot);
        const find = (d: string): string | undefined => {
          for (const e of fs.readdirSync(d, { withFileTypes: true })) {
            if (!e.isDirectory()) continue;
            const p = path.join(d, e.name);
            if (e.name === id || e.name.endsWith(id)) return p;
            const f = find(p);
            if (f) return f;
          }
          return undefined;
        };
        const cg = find(root);
        if (!cg) throw new Error(`no cgroup for container ${id} under ${root}`);
        return cgroupPids(path.relative(path.join(CGROUP_FS, 'pids'), cg));
      },
      logTail(nodeName, which, lines = 40) {
        return tailFile(path.join(get(nodeName).dir, `${which}.log`), lines);
      },
      stop,
    };
    return cluster;
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

/** Kills every process left in a host's network namespace (the shims, the pods' processes). */
async function killNamespace(h: Host): Promise<void> {
  let out = '';
  try {
    out = (await execFileP('ip', ['netns', 'pids', h.ns])).stdout;
  } catch {
    return;
  }
  const pids = out.split(/\s+/).filter(Boolean).map(Number).filter((p) => p > 1 && p !== process.pid);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (let i = 0; i < 50 && pids.some(pidAlive); i++) await sleep(50);
}
