// A real, throwaway Kubernetes control plane for tests: etcd + kube-apiserver,
// built from pinned Go modules by tools/kube/build.sh, listening on 127.0.0.1
// only. No kubelet, no controller-manager, no scheduler: Node objects are only
// data, and nothing reconciles (namespaces never finish terminating, pods are
// never scheduled, ServiceAccounts get no automatic tokens — use
// tokenForServiceAccount()).
//
//   const k = await startKube({ etcdBin, apiserverBin });
//   try { ... k.request('GET', '/api/v1/nodes') ... } finally { await k.stop(); }
//
// Binaries: see kubeToolsBin() (env KNP_TOOLS_BIN, default
// ~/.cache/kube-node-ping/bin/ holding `etcd` and `kube-apiserver`).

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface StartKubeOptions {
  /** etcd binary (v3.6+). */
  etcdBin: string;
  /** kube-apiserver binary. */
  apiserverBin: string;
  /**
   * Directory for certificates, keys, etcd data and the two server logs.
   * Given: used as is (created if missing) and left in place by stop().
   * Omitted: a fresh directory under os.tmpdir(), removed by stop().
   */
  dataDir?: string;
  /** How long to wait for each server to become ready. Default 120 s (builds may share the CPUs). */
  readyTimeoutMs?: number;
  /**
   * kube-apiserver's watch cache (default true, as in a real cluster). With
   * false every list/watch goes to etcd, so compactEtcd() makes any watch
   * from an older resourceVersion end in 410 Gone at once.
   */
  watchCache?: boolean;
  /** --service-cluster-ip-range. Default 10.96.0.0/16 (only data: nothing routes it). */
  serviceClusterIpRange?: string;
  /** Extra kube-apiserver flags, appended last (later flags win). */
  extraApiserverArgs?: string[];
  /**
   * Address kube-apiserver binds and advertises (default 127.0.0.1). With another local
   * address (a lab's root address, which network namespaces reach), the `kubernetes` Service's
   * endpoints name it, so the endpoint reconciler stays on as in production, and the serving
   * certificate names it, the first service IP and kubernetes.default.svc.cluster.local too.
   */
  address?: string;
  /**
   * Production settings instead of the test defaults: every default admission plugin plus
   * NodeRestriction, --authorization-mode=Node,RBAC, client certificates signed by the CA
   * (--client-ca-file; see issueClientCert()), a client certificate for the kubelets' APIs
   * (logs, exec). Default false: most admission plugins off, RBAC only (see the top of this file).
   */
  production?: boolean;
}

export interface KubeResponse<T = any> {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON when the body is JSON, else the raw text. */
  body: T;
  text: string;
}

export interface RequestOptions {
  /** Bearer token; default the admin token. Pass null for an anonymous request. */
  token?: string | null;
  headers?: Record<string, string>;
  /** Content-Type for a body; default application/json. */
  contentType?: string;
}

export interface Kube {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  /** Static token of user "knp-admin" in group system:masters. */
  readonly adminToken: string;
  /** PEM file of the CA that signed the serving certificate. */
  readonly caFile: string;
  /** The same CA, PEM text. */
  readonly caPem: string;
  /** kubeconfig for the admin token (context "knp-test"). */
  readonly kubeconfigPath: string;
  /** http://127.0.0.1:PORT, etcd's client URL (plain HTTP, no auth). */
  readonly etcdUrl: string;
  /** Directory holding certificates, data and logs (etcd.log, kube-apiserver.log). */
  readonly dir: string;
  /** The CA's private key (signs serving and client certificates), PEM file. */
  readonly caKeyFile: string;
  /** The key that signs ServiceAccount tokens (kube-controller-manager needs it), PEM file. */
  readonly saKeyFile: string;

  /** Authenticated request to the API server; never throws for an HTTP status. */
  request<T = any>(method: string, apiPath: string, body?: unknown, opts?: RequestOptions): Promise<KubeResponse<T>>;
  /** Like request() but throws (with status and body) unless the status is 2xx. */
  requestOk<T = any>(method: string, apiPath: string, body?: unknown, opts?: RequestOptions): Promise<T>;
  /** A bound token for an existing ServiceAccount via the TokenRequest API. */
  tokenForServiceAccount(namespace: string, name: string, opts?: { expirationSeconds?: number; audiences?: string[] }): Promise<string>;
  /** Writes a kubeconfig using `token` (default in dir) and returns its path. */
  writeKubeconfig(token: string, file?: string): Promise<string>;
  /** Stops kube-apiserver (SIGTERM, then SIGKILL); etcd keeps running. The URL stays reserved. */
  stopApiserver(): Promise<void>;
  /** Starts kube-apiserver again on the same port and waits for /readyz. */
  startApiserver(): Promise<void>;
  /** stopApiserver() then startApiserver(): same URL, CA and tokens. */
  restartApiserver(): Promise<void>;
  /** etcd's current revision (the newest resourceVersion anywhere in the cluster). */
  etcdRevision(): Promise<number>;
  /**
   * Compacts etcd (physically, via its gRPC gateway) and returns the revision
   * compacted to: every resourceVersion below it is gone from etcd, and a
   * request that has to read one there gets 410 Gone (Expired). Without
   * `revision` it first writes twice outside /registry and compacts at the
   * newest revision, so every RV that existed before the call expires, even
   * for a watch (which starts at RV+1). Compacting again at an already
   * compacted revision is a no-op.
   *
   * A running kube-apiserver's watch cache hides this for a while, as in a
   * real cluster: watches are served from its own event history (410 only
   * once the RV has rolled out of it), and exact-RV lists from its snapshots
   * until it notices the compaction (polled every 15 s). For an immediate
   * 410 on old RVs, compact then restartApiserver() (fresh cache), or start
   * with watchCache: false.
   */
  compactEtcd(revision?: number): Promise<number>;
  /** Last `lines` lines of a server log. */
  logTail(which: 'etcd' | 'kube-apiserver', lines?: number): string;
  /** Kills both servers and removes the directory unless dataDir was given. Idempotent. */
  stop(): Promise<void>;
}

/** Directory holding the built `etcd` and `kube-apiserver` (env KNP_TOOLS_BIN). */
export function kubeToolsBin(): string {
  return process.env['KNP_TOOLS_BIN'] || path.join(os.homedir(), '.cache', 'kube-node-ping', 'bin');
}

/**
 * Paths of both binaries, or a reason why they are missing (for a test's skip
 * message).
 */
export function findKubeBinaries(): { etcdBin: string; apiserverBin: string } | { missing: string } {
  const dir = kubeToolsBin();
  const etcdBin = path.join(dir, 'etcd');
  const apiserverBin = path.join(dir, 'kube-apiserver');
  const missing = [etcdBin, apiserverBin].filter((p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    return {
      missing:
        `not built: ${missing.join(', ')} ` +
        `(build with tools/kube/build.sh etcd|kube-apiserver OUTDIR, then set KNP_TOOLS_BIN=OUTDIR ` +
        `or link them into ${dir})`,
    };
  }
  return { etcdBin, apiserverBin };
}

// Default-on admission plugins of kube-apiserver v1.37 except NamespaceLifecycle:
// nothing mutates what tests write (e.g. TaintNodesByCondition would add a
// not-ready taint to every new Node) and nothing needs objects that only
// controllers would create (ServiceAccount wants a "default" SA in each
// namespace for pods). Must name only plugins the binary knows.
const DISABLED_ADMISSION_PLUGINS = [
  'LimitRanger',
  'ServiceAccount',
  'TaintNodesByCondition',
  'PodSecurity',
  'Priority',
  'DefaultTolerationSeconds',
  'DefaultStorageClass',
  'StorageObjectInUseProtection',
  'PodGroupProtection',
  'PersistentVolumeClaimResize',
  'RuntimeClass',
  'CertificateApproval',
  'CertificateSigning',
  'ClusterTrustBundleAttest',
  'CertificateSubjectRestriction',
  'DefaultIngressClass',
  'PodTopologyLabels',
  'NodeDeclaredFeatureValidator',
  'PodResizeValidator',
  'MutatingAdmissionPolicy',
  'MutatingAdmissionWebhook',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionWebhook',
  'ResourceQuota',
];

/** The first address of an IPv4 range: the `kubernetes` Service's cluster IP. */
function firstServiceIp(cidr: string): string {
  const [base, len] = cidr.split('/');
  if (!base || !net.isIPv4(base) || !len) throw new Error(`startKube: serviceClusterIpRange ${JSON.stringify(cidr)} is not an IPv4 CIDR`);
  const n = base.split('.').reduce((a, o) => a * 256 + Number(o), 0) + 1;
  return [24, 16, 8, 0].map((sh) => Math.floor(n / 2 ** sh) % 256).join('.');
}

const SA_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/** Children still running, killed synchronously if the test process exits without stop(). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

/** Free TCP ports on 127.0.0.1 (held together so they differ, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      s.listen(0, '127.0.0.1');
      await once(s, 'listening');
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

export function tailFile(file: string, lines = 40): string {
  let text: string;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      text = buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    return `(no log: ${(err as Error).message})`;
  }
  return text.split('\n').slice(-lines - 1).join('\n').trimEnd();
}

export async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await execFileP('openssl', args, { cwd });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** CA (self-signed) + serving cert for 127.0.0.1/localhost + service-account key, all EC P-256. */
async function makePki(dir: string, sans: string[]): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '7', '-subj', '/CN=knp-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  await openssl(['req', ...ec, '-keyout', 'serving.key', '-out', 'serving.csr', '-subj', '/CN=kube-apiserver'], dir);
  await fsp.writeFile(path.join(dir, 'serving.ext'),
    'basicConstraints=critical,CA:FALSE\n' +
    'keyUsage=critical,digitalSignature\n' +
    'extendedKeyUsage=serverAuth\n' +
    `subjectAltName=${['IP:127.0.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', ...sans].join(',')}\n`);
  await openssl(['x509', '-req', '-in', 'serving.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'serving.crt', '-days', '7', '-extfile', 'serving.ext'], dir);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', 'sa.key'], dir);
  await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

/**
 * A certificate signed by the CA in `dir` (ca.crt, ca.key), EC P-256, valid 7 days:
 * `<name>.crt` and `<name>.key` in `dir`. A client certificate's CN is the user and each O a
 * group, as kube-apiserver reads them (e.g. CN=system:node:n1, O=system:nodes).
 */
export async function issueCert(dir: string, name: string, o: { cn: string; orgs?: string[]; usage: 'client' | 'server' | 'both'; sans?: string[] }): Promise<{ certFile: string; keyFile: string }> {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(name)) throw new Error(`issueCert: bad file name ${JSON.stringify(name)}`);
  for (const v of [o.cn, ...(o.orgs ?? [])]) if (!/^[A-Za-z0-9:._-]+$/.test(v)) throw new Error(`issueCert: bad subject part ${JSON.stringify(v)}`);
  const subj = `/${[...(o.orgs ?? []).map((g) => `O=${g}`), `CN=${o.cn}`].join('/')}`;
  const eku = { client: 'clientAuth', server: 'serverAuth', both: 'serverAuth,clientAuth' }[o.usage];
  const ext = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', `extendedKeyUsage=${eku}`];
  if (o.sans?.length) ext.push(`subjectAltName=${o.sans.join(',')}`);
  await fsp.writeFile(path.join(dir, `${name}.ext`), `${ext.join('\n')}\n`);
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], dir);
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '7', '-extfile', `${name}.ext`], dir);
  return { certFile: path.join(dir, `${name}.crt`), keyFile: path.join(dir, `${name}.key`) };
}

/**
 * A kubeconfig for `url`: `auth` is a bearer token, or a client certificate and key (files).
 */
export function kubeconfigYaml(url: string, caPem: string, user: string, auth: string | { certFile: string; keyFile: string }): string {
  const ca = Buffer.from(caPem).toString('base64');
  // JSON strings are valid YAML scalars, so quoting with JSON.stringify is safe.
  const q = JSON.stringify;
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: knp-test',
    '  cluster:',
    `    server: ${q(url)}`,
    `    certificate-authority-data: ${q(ca)}`,
    'users:',
    `- name: ${q(user)}`,
    '  user:',
    ...(typeof auth === 'string'
      ? [`    token: ${q(auth)}`]
      : [`    client-certificate: ${q(auth.certFile)}`, `    client-key: ${q(auth.keyFile)}`]),
    'contexts:',
    '- name: knp-test',
    '  context:',
    '    cluster: knp-test',
    `    user: ${q(user)}`,
    'current-context: knp-test',
    '',
  ].join('\n');
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
});

export interface Proc {
  child: ChildProcess;
  exited: Promise<number | null>;
  exitCode: number | null | undefined; // undefined while running
}

/**
 * Starts `bin` with its output appended to `logFile`, killed (SIGKILL) when this process
 * dies however it dies. The environment is PATH and HOME only, plus `extraEnv`.
 */
export function launch(bin: string, args: string[], logFile: string, extraEnv: Record<string, string> = {}): Proc {
  installExitHook();
  const fd = fs.openSync(logFile, 'a');
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/tmp', ...extraEnv };
  let child: ChildProcess;
  try {
    // With setpriv (util-linux) the server gets SIGKILL when this process
    // dies, however it dies (the 'exit' hook above misses signals).
    child = SETPRIV
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args], { stdio: ['ignore', fd, fd], env })
      : spawn(bin, args, { stdio: ['ignore', fd, fd], env });
  } finally {
    fs.closeSync(fd);
  }
  const proc: Proc = {
    child,
    exitCode: undefined,
    exited: new Promise((resolve) => {
      child.on('error', (err) => {
        fs.appendFileSync(logFile, `\n[kube.ts] spawn ${bin} failed: ${err.message}\n`);
        live.delete(child);
        proc.exitCode = null;
        resolve(null);
      });
      child.on('exit', (code, signal) => {
        live.delete(child);
        proc.exitCode = code ?? null;
        if (signal) fs.appendFileSync(logFile, `\n[kube.ts] exited on ${signal}\n`);
        resolve(code ?? null);
      });
    }),
  };
  live.add(child);
  return proc;
}

export async function terminate(p: Proc | undefined, graceMs = 10_000): Promise<void> {
  if (!p || p.exitCode !== undefined) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  try {
    await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function httpGet(url: string, opts: https.RequestOptions = {}, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(u, { agent: false, timeout: 10_000, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${opts.method ?? 'GET'} ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `probe` until it returns true; fails early if the process exits. */
export async function waitReady(what: string, proc: Proc, logFile: string, timeoutMs: number,
  probe: () => Promise<{ ok: boolean; detail: string }>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  let delay = 100;
  while (Date.now() < deadline) {
    if (proc.exitCode !== undefined) {
      throw new Error(`${what} exited (code ${proc.exitCode}) before becoming ready; last lines of ${path.basename(logFile)}:\n${tailFile(logFile)}`);
    }
    try {
      const r = await probe();
      if (r.ok) return;
      last = r.detail;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(delay);
    delay = Math.min(delay * 1.5, 1000);
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms (last probe: ${last.slice(0, 2000)}); last lines of ${path.basename(logFile)}:\n${tailFile(logFile)}`);
}

export async function startKube(opts: StartKubeOptions): Promise<Kube> {
  for (const [flag, bin] of [['etcdBin', opts.etcdBin], ['apiserverBin', opts.apiserverBin]] as const) {
    try {
      fs.accessSync(bin, fs.constants.X_OK);
    } catch {
      throw new Error(`startKube: ${flag} ${bin} is not an executable file`);
    }
  }
  const ownDir = opts.dataDir === undefined;
  const dir = ownDir
    ? await fsp.mkdtemp(path.join(os.tmpdir(), 'knp-kube-'))
    : path.resolve(opts.dataDir!);
  await fsp.mkdir(dir, { recursive: true });
  const timeoutMs = opts.readyTimeoutMs ?? 120_000;
  const etcdLog = path.join(dir, 'etcd.log');
  const apiLog = path.join(dir, 'kube-apiserver.log');

  let etcd: Proc | undefined;
  let api: Proc | undefined;
  let stopped = false;

  const cleanup = async () => {
    await terminate(api);
    await terminate(etcd);
    if (ownDir) await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };

  const address = opts.address ?? '127.0.0.1';
  if (net.isIPv4(address) === false) throw new Error(`startKube: address ${JSON.stringify(address)} is not an IPv4 address`);
  const serviceRange = opts.serviceClusterIpRange ?? '10.96.0.0/16';
  const production = opts.production ?? false;
  try {
    // In a real cluster pods reach the API server through the first address of the service
    // range and the in-cluster names, and nodes through its own address.
    const sans = address === '127.0.0.1' ? [] : [`IP:${address}`, `IP:${firstServiceIp(serviceRange)}`, 'DNS:kubernetes.default.svc.cluster.local'];
    await makePki(dir, sans);
    if (production) await issueCert(dir, 'apiserver-kubelet-client', { cn: 'kube-apiserver-kubelet-client', orgs: ['system:masters'], usage: 'client' });
    const caFile = path.join(dir, 'ca.crt');
    const caPem = await fsp.readFile(caFile, 'utf8');
    const adminToken = randomBytes(24).toString('hex');
    // token,user,uid,"group1,group2"
    await fsp.writeFile(path.join(dir, 'tokens.csv'), `${adminToken},knp-admin,knp-admin-uid,"system:masters"\n`, { mode: 0o600 });

    // --- etcd ---------------------------------------------------------------
    // A port picked by freePorts() can be taken by someone else before etcd
    // binds it: retry with new ports when etcd dies at once.
    let etcdUrl = '';
    for (let attempt = 1; ; attempt++) {
      const [clientPort, peerPort] = (await freePorts(2)) as [number, number];
      etcdUrl = `http://127.0.0.1:${clientPort}`;
      const peerUrl = `http://127.0.0.1:${peerPort}`;
      const etcdData = path.join(dir, 'etcd-data');
      await fsp.rm(etcdData, { recursive: true, force: true });
      etcd = launch(opts.etcdBin, [
        '--name=knp-test',
        `--data-dir=${etcdData}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=knp-test=${peerUrl}`,
        '--initial-cluster-state=new',
        '--unsafe-no-fsync', // test data only: fsync is slow on a shared disk
        '--log-level=warn',
        '--log-outputs=stderr',
      ], etcdLog);
      const e = etcd;
      try {
        await waitReady('etcd', e, etcdLog, timeoutMs, async () => {
          const r = await httpGet(`${etcdUrl}/health`);
          return { ok: r.status === 200 && /"health":\s*"true"/.test(r.text), detail: `${r.status} ${r.text}` };
        });
        break;
      } catch (err) {
        await terminate(e);
        if (attempt < 3 && /address already in use/.test(tailFile(etcdLog, 20))) continue;
        throw err;
      }
    }

    // --- kube-apiserver -------------------------------------------------------
    const [apiPort] = (await freePorts(1)) as [number];
    const url = `https://${address}:${apiPort}`;
    const apiArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--etcd-compaction-interval=0', // only compactEtcd() compacts
      `--bind-address=${address}`,
      `--advertise-address=${address}`,
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${path.join(dir, 'serving.crt')}`,
      `--tls-private-key-file=${path.join(dir, 'serving.key')}`,
      `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
      '--anonymous-auth=false',
      `--service-account-issuer=${SA_ISSUER}`,
      `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
      `--service-cluster-ip-range=${serviceRange}`,
      // The "kubernetes" Service's endpoints would name 127.0.0.1, which
      // Endpoints validation rejects: keep the reconciler off there.
      ...(address === '127.0.0.1' ? ['--endpoint-reconciler-type=none'] : []),
      ...(production
        ? [
          '--authorization-mode=Node,RBAC',
          `--client-ca-file=${caFile}`,
          // Every default plugin (ServiceAccount, Priority, DefaultTolerationSeconds, ...) stays on.
          '--enable-admission-plugins=NodeRestriction',
          `--kubelet-client-certificate=${path.join(dir, 'apiserver-kubelet-client.crt')}`,
          `--kubelet-client-key=${path.join(dir, 'apiserver-kubelet-client.key')}`,
          '--kubelet-preferred-address-types=InternalIP',
        ]
        : [
          '--authorization-mode=RBAC',
          '--enable-admission-plugins=NamespaceLifecycle',
          `--disable-admission-plugins=${DISABLED_ADMISSION_PLUGINS.join(',')}`,
        ]),
      `--watch-cache=${opts.watchCache ?? true}`,
      '--profiling=false',
      '--v=1',
      ...(opts.extraApiserverArgs ?? []),
    ];
    const readyz = async (): Promise<{ ok: boolean; detail: string }> => {
      const r = await httpGet(`${url}/readyz?verbose`, { ca: caPem, headers: { Authorization: `Bearer ${adminToken}` } });
      return { ok: r.status === 200, detail: `${r.status} ${r.text.split('\n').filter((l) => !/ ok$/.test(l)).join('; ')}` };
    };
    const startApiserver = async () => {
      if (stopped) throw new Error('startApiserver: kube already stopped');
      if (api && api.exitCode === undefined) throw new Error('startApiserver: kube-apiserver is already running');
      fs.appendFileSync(apiLog, `\n[kube.ts] ---- starting kube-apiserver ${new Date().toISOString()} ----\n`);
      const p = launch(opts.apiserverBin, apiArgs, apiLog);
      api = p;
      try {
        await waitReady('kube-apiserver', p, apiLog, timeoutMs, readyz);
      } catch (err) {
        await terminate(p);
        throw err;
      }
    };
    await startApiserver();

    const request = async <T = any>(method: string, apiPath: string, body?: unknown, ro: RequestOptions = {}): Promise<KubeResponse<T>> => {
      const token = ro.token === undefined ? adminToken : ro.token;
      const headers: Record<string, string> = { Accept: 'application/json', ...ro.headers };
      if (token !== null) headers['Authorization'] = `Bearer ${token}`;
      let payload: string | undefined;
      if (body !== undefined) {
        payload = typeof body === 'string' ? body : JSON.stringify(body);
        headers['Content-Type'] = ro.contentType ?? 'application/json';
      }
      return new Promise((resolve, reject) => {
        const req = https.request(new URL(apiPath, url), { method, ca: caPem, headers, agent: false, timeout: 30_000 }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: any = text;
            if (/json/.test(String(res.headers['content-type'] ?? ''))) {
              try {
                parsed = JSON.parse(text);
              } catch {
                /* keep text */
              }
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed as T, text });
          });
        });
        req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${apiPath}`)));
        req.on('error', reject);
        req.end(payload);
      });
    };
    const requestOk = async <T = any>(method: string, apiPath: string, body?: unknown, ro?: RequestOptions): Promise<T> => {
      const r = await request<T>(method, apiPath, body, ro);
      if (r.status < 200 || r.status > 299) throw new Error(`${method} ${apiPath}: HTTP ${r.status}: ${r.text.slice(0, 2000)}`);
      return r.body;
    };

    const etcdCall = async (rpc: string, body: unknown): Promise<any> => {
      const r = await httpGet(`${etcdUrl}/v3/${rpc}`, { method: 'POST', headers: { 'Content-Type': 'application/json' } }, JSON.stringify(body));
      if (r.status !== 200) throw new Error(`etcd /v3/${rpc}: HTTP ${r.status}: ${r.text.slice(0, 1000)}`);
      return JSON.parse(r.text);
    };
    const etcdRevision = async (): Promise<number> => {
      const s = await etcdCall('maintenance/status', {});
      return Number(s.header.revision);
    };

    const kubeconfigPath = path.join(dir, 'admin.kubeconfig');
    await fsp.writeFile(kubeconfigPath, kubeconfigYaml(url, caPem, 'knp-admin', adminToken), { mode: 0o600 });
    let kubeconfigCount = 0;

    const kube: Kube = {
      url,
      adminToken,
      caFile,
      caPem,
      kubeconfigPath,
      etcdUrl,
      dir,
      caKeyFile: path.join(dir, 'ca.key'),
      saKeyFile: path.join(dir, 'sa.key'),
      request,
      requestOk,
      async tokenForServiceAccount(namespace, name, o = {}) {
        const tr = await requestOk(
          'POST',
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}/token`,
          {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: { audiences: o.audiences ?? [], expirationSeconds: o.expirationSeconds ?? 3600 },
          },
        );
        const token = tr?.status?.token;
        if (typeof token !== 'string' || token === '') throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
        return token;
      },
      async writeKubeconfig(token, file) {
        const f = file ?? path.join(dir, `token-${++kubeconfigCount}.kubeconfig`);
        await fsp.writeFile(f, kubeconfigYaml(url, caPem, 'knp-token-user', token), { mode: 0o600 });
        return f;
      },
      async stopApiserver() {
        await terminate(api);
      },
      startApiserver,
      async restartApiserver() {
        await terminate(api);
        await startApiserver();
      },
      etcdRevision,
      async compactEtcd(revision) {
        // Record the compaction where kube-apiserver's own compactor would
        // (compact_rev_key, outside /registry): the apiserver watches that key
        // to learn the compacted revision (its watch cache then drops list
        // snapshots below it). Its periodic compaction is off
        // (--etcd-compaction-interval=0), so nothing else writes the key.
        let rev = revision;
        if (rev === undefined) {
          // Two writes, then compact at the second: every revision that
          // existed before this call is then below the compacted one, so a
          // watch from the newest RV a client could have seen (which starts
          // at RV+1) fails too.
          const marker = await etcdCall('kv/put', { key: b64('knp-test/compaction-marker'), value: b64(String(Date.now())) });
          const next = Number(marker.header.revision) + 1;
          const put = await etcdCall('kv/put', { key: b64('compact_rev_key'), value: b64(String(next)) });
          rev = Number(put.header.revision);
        } else {
          await etcdCall('kv/put', { key: b64('compact_rev_key'), value: b64(String(rev)) });
        }
        try {
          await etcdCall('kv/compaction', { revision: String(rev), physical: true });
        } catch (err) {
          // Already compacted at (or past) rev: the caller's goal is met.
          if (!/required revision has been compacted/.test((err as Error).message)) throw err;
        }
        return rev;
      },
      logTail(which, lines = 40) {
        return tailFile(which === 'etcd' ? etcdLog : apiLog, lines);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await cleanup();
      },
    };
    return kube;
  } catch (err) {
    stopped = true;
    await cleanup().catch(() => {});
    throw err;
  }
}
