/**
 * The agent's one typed configuration. Each setting has one entry in SCHEMA: its flag, the
 * environment variables it reads, its key in the optional config file, its parser and its
 * help text. Precedence: flag, then environment, then file, then default.
 *
 * This module is the only reader of `process.env` in the agent.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { LOG_LEVELS, type LogLevel } from '../log.ts';
import { parseDuration, formatDuration } from './duration.ts';

export type OtlpProtocol = 'grpc' | 'http/protobuf';

export interface Config {
  targetsFile: string;
  targetsReloadInterval: number;
  period: number;
  timeout: number;
  packetSize: number;
  outageThreshold: number;
  maxTargetsPerFping: number;
  fpingPath: string;
  rttBuckets: number[];
  prometheusPort: number;
  prometheusHost: string;
  otlpEndpoint: string;
  /**
   * Where otlpEndpoint came from, which decides its path (OTel spec): `metrics`
   * (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) is used as is; `base` (OTEL_EXPORTER_OTLP_ENDPOINT)
   * always gets /v1/metrics appended; `flag` (--otlp-endpoint, the config file) gets it only
   * when the path is empty.
   */
  otlpEndpointKind: 'flag' | 'metrics' | 'base';
  otlpProtocol: OtlpProtocol;
  otlpHeaders: Record<string, string>;
  /** The proxy grpc-js reads from the environment itself; set, the agent's own pre-export handshake check is skipped. */
  grpcProxy: string;
  exportInterval: number;
  exportTimeout: number;
  clusterName: string;
  nodeName: string;
  podName: string;
  podNamespace: string;
  resourceAttributes: Record<string, string>;
  logLevel: LogLevel;
  discovery: 'auto' | 'kubernetes' | 'off';
  kubeconfig: string;
  kubernetesServiceHost: string;
  nodeSelector: string;
  nodeAddressTypes: string[];
  ipFamilies: ('ipv4' | 'ipv6')[];
  skipNotReady: boolean;
  skipCordoned: boolean;
  meshMode: 'auto' | 'full' | 'sampled';
  meshFullBelow: number;
  meshZonePeers: number;
  meshCrossZonePeers: number;
  meshBudget: number;
  rttHistogram: 'per-destination' | 'per-zone';
  pairMetrics: 'full' | 'lean';
}

/** Thrown for a bad setting; its message is the one line the user sees. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Milliseconds. Default buckets: 1-1.5-2-3-5-7.5 per decade from 50 µs to 10 s. */
export const DEFAULT_RTT_BUCKETS_MS = [
  0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200,
  300, 500, 750, 1000, 2000, 5000, 10000,
];

type Parser<T> = (raw: string) => T;

interface Setting<K extends keyof Config> {
  key: K;
  flag?: string;
  env?: readonly string[];
  /** Placeholder for --help, e.g. `<duration>`. */
  arg: string;
  help: string;
  parse: Parser<Config[K]>;
  /** A value, or a function of the settings resolved before this one. */
  default: Config[K] | ((c: Partial<Config>) => Config[K]);
  /** Shown in --help instead of the default value. */
  defaultText?: string;
}

class Invalid extends Error {}

/**
 * What a config-file value may be, by parser: YAML gives numbers, booleans, lists and maps,
 * and a string setting given a number or a list is a mistake, not something to stringify.
 */
const FILE_TYPES = new WeakMap<Parser<unknown>, 'string' | 'list' | 'map'>();
function fileType<P extends Parser<unknown>>(p: P, t: 'string' | 'list' | 'map'): P {
  FILE_TYPES.set(p, t);
  return p;
}

const str: Parser<string> = fileType((raw) => raw, 'string');

function int(min: number, max: number): Parser<number> {
  return (raw) => {
    if (!/^-?\d+$/.test(raw.trim())) throw new Invalid(`is not an integer`);
    const n = Number(raw);
    if (n < min || n > max) throw new Invalid(`is out of range ${min}..${max}`);
    return n;
  };
}

function duration(minMs: number, maxMs: number): Parser<number> {
  return (raw) => {
    const ms = parseDuration(raw);
    if (ms === undefined) throw new Invalid('is not a duration such as 500ms, 1s or 2m');
    if (ms < minMs || ms > maxMs) {
      throw new Invalid(`is out of range ${formatDuration(minMs)}..${formatDuration(maxMs)}`);
    }
    return ms;
  };
}

/** OTEL_METRIC_EXPORT_* are integers of milliseconds by the spec; flags take units. */
function durationOrMs(minMs: number, maxMs: number): Parser<number> {
  const d = duration(minMs, maxMs);
  return (raw) => d(/^\d+$/.test(raw.trim()) ? `${raw.trim()}ms` : raw);
}

function oneOf<T extends string>(values: readonly T[]): Parser<T> {
  return fileType((raw) => {
    const v = raw.trim() as T;
    if (!values.includes(v)) throw new Invalid(`is not one of ${values.join(', ')}`);
    return v;
  }, 'string');
}

const bool: Parser<boolean> = (raw) => {
  const v = raw.trim().toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no') return false;
  throw new Invalid('is not true or false');
};

function listOf<T extends string>(values: readonly T[]): Parser<T[]> {
  return fileType((raw: string) => {
    const items = raw.split(',').map((x) => x.trim()).filter((x) => x !== '');
    if (items.length === 0) throw new Invalid('is an empty list');
    for (const i of items) if (!values.includes(i as T)) throw new Invalid(`has "${i}", not one of ${values.join(', ')}`);
    if (new Set(items).size !== items.length) throw new Invalid('lists an item twice');
    return items as T[];
  }, 'list');
}

const url: Parser<string> = fileType((raw) => {
  if (raw === '') return '';
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Invalid('is not a URL such as http://collector:4318');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Invalid('must start with http:// or https://');
  return raw;
}, 'string');

/**
 * The HTTP server's address: an IP literal or empty (all interfaces). A name would be looked up
 * in DNS at start, where a typo reads as `getaddrinfo ENOTFOUND`; a DaemonSet passes its pod's
 * IP from the downward API, which is a literal.
 */
const ipLiteral: Parser<string> = fileType((raw) => {
  const v = raw.trim();
  if (v === '') return '';
  if (isIP(v) === 0) throw new Invalid('is not an IP address such as 0.0.0.0, :: or 10.0.0.5 (names are not looked up)');
  return v;
}, 'string');

const bucketList: Parser<number[]> = fileType((raw: string) => {
  const parts = raw.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw new Invalid('is an empty list');
  const out: number[] = [];
  for (const p of parts) {
    const ms = parseDuration(p);
    if (ms === undefined || ms <= 0) throw new Invalid(`has "${p}", not a positive duration such as 0.5ms`);
    if (out.length > 0 && ms <= out[out.length - 1]!) throw new Invalid('is not strictly increasing');
    out.push(ms);
  }
  return out;
}, 'list');

/** `key=value,key2=value2` as in OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS (values percent-encoded). */
const keyValueList: Parser<Record<string, string>> = fileType((raw: string) => {
  const out: Record<string, string> = {};
  for (const item of raw.split(',')) {
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Invalid(`has "${item.trim()}", not key=value`);
    const k = item.slice(0, eq).trim();
    let v: string;
    try {
      v = decodeURIComponent(item.slice(eq + 1).trim());
    } catch {
      throw new Invalid(`has a badly percent-encoded value for "${k}"`);
    }
    out[k] = v;
  }
  return out;
}, 'map');

/** RFC 9110 field names; gRPC metadata keys are a subset of these. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** OTLP headers: as keyValueList, but a CR, LF or other control character (header injection, or a request that fails at every export) is refused. */
const headerList: Parser<Record<string, string>> = fileType((raw: string) => {
  const out = keyValueList(raw);
  for (const [k, v] of Object.entries(out)) {
    if (!HEADER_NAME.test(k)) throw new Invalid(`has header name ${JSON.stringify(k)}, not a valid HTTP header name`);
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(v)) throw new Invalid(`has a control character (CR, LF, ...) in the value of header "${k}"`);
  }
  return out;
}, 'map');

/** Ordered: a default may depend on settings listed above it. */
const SCHEMA: Setting<keyof Config>[] = [
  setting({ key: 'targetsFile', flag: '--targets-file', env: ['KNP_TARGETS_FILE'], arg: '<path>', parse: str, default: '',
    help: 'JSON or YAML list of {name, address} (or the seed recipe\'s {name, ipAddress}); re-read when it changes. Without it the agent probes loopback.',
    defaultText: 'loopback 127.0.0.1 and ::1' }),
  setting({ key: 'targetsReloadInterval', flag: '--targets-reload-interval', env: ['KNP_TARGETS_RELOAD_INTERVAL'], arg: '<duration>',
    parse: duration(100, 3_600_000), default: 5000, help: 'How often the targets file is checked for changes (file events also trigger a check).' }),
  setting({ key: 'period', flag: '--period', env: ['KNP_PERIOD'], arg: '<duration>', parse: duration(10, 3_600_000), default: 1000,
    help: 'Time between two probes of the same target.' }),
  setting({ key: 'timeout', flag: '--timeout', env: ['KNP_TIMEOUT'], arg: '<duration>', parse: duration(10, 60_000),
    default: (c) => Math.min(c.period ?? 1000, 2000), defaultText: 'the period, at most 2s',
    help: 'A reply later than this counts as lost.' }),
  setting({ key: 'packetSize', flag: '--packet-size', env: ['KNP_PACKET_SIZE'], arg: '<bytes>', parse: int(12, 65_000), default: 56,
    help: 'ICMP payload size in bytes (fping -b).' }),
  setting({ key: 'outageThreshold', flag: '--outage-threshold', env: ['KNP_OUTAGE_THRESHOLD'], arg: '<count>', parse: int(1, 1000), default: 3,
    help: 'Consecutive lost probes after which a destination counts as in outage; the outage is dated from the first of them.' }),
  setting({ key: 'maxTargetsPerFping', flag: '--max-targets-per-fping', env: ['KNP_MAX_TARGETS_PER_FPING'], arg: '<count>', parse: int(0, 10_000), default: 0,
    defaultText: '0: as many as one process keeps at the period (5000 at 1s)',
    help: 'A ceiling on targets per fping process. Fewer processes cost less: every raw ICMP socket receives every reply.' }),
  setting({ key: 'fpingPath', flag: '--fping-path', env: ['KNP_FPING_PATH'], arg: '<path>', parse: str, default: 'fping',
    help: 'The fping binary (5.x).' }),
  setting({ key: 'rttBuckets', flag: '--rtt-buckets', env: ['KNP_RTT_BUCKETS'], arg: '<durations>', parse: bucketList,
    default: DEFAULT_RTT_BUCKETS_MS, defaultText: '50us … 10s, 29 boundaries at 1-1.5-2-3-5-7.5 per decade',
    help: 'Comma-separated upper bounds of the RTT histogram buckets, e.g. 1ms,5ms,10ms.' }),
  setting({ key: 'prometheusPort', flag: '--prometheus-port', env: ['KNP_PROMETHEUS_PORT'], arg: '<port>', parse: int(0, 65_535), default: 9464,
    help: 'Port serving /metrics, /healthz and /readyz; 0 turns the HTTP server off.' }),
  setting({ key: 'prometheusHost', flag: '--prometheus-host', env: ['KNP_PROMETHEUS_HOST'], arg: '<address>', parse: ipLiteral, default: '',
    defaultText: 'all interfaces', help: 'IP address the HTTP server listens on (an IP literal; names are not looked up).' }),
  setting({ key: 'otlpEndpoint', flag: '--otlp-endpoint', env: ['OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT'], arg: '<url>',
    parse: url, default: '', defaultText: 'off',
    help: 'OTLP endpoint, e.g. http://collector:4317 (grpc) or http://collector:4318 (http/protobuf: the flag gets /v1/metrics when it has no path; OTEL_EXPORTER_OTLP_ENDPOINT always gets /v1/metrics appended; OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is used as is).' }),
  setting({ key: 'otlpProtocol', flag: '--otlp-protocol', env: ['OTEL_EXPORTER_OTLP_METRICS_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL'], arg: '<protocol>',
    parse: oneOf(['grpc', 'http/protobuf'] as const), default: 'http/protobuf', help: 'grpc or http/protobuf.' }),
  setting({ key: 'otlpHeaders', flag: '--otlp-headers', env: ['OTEL_EXPORTER_OTLP_METRICS_HEADERS', 'OTEL_EXPORTER_OTLP_HEADERS'], arg: '<k=v,...>',
    parse: headerList, default: {}, defaultText: 'none', help: 'Headers (gRPC metadata) sent with every export.' }),
  setting({ key: 'grpcProxy', env: ['grpc_proxy', 'https_proxy', 'http_proxy'], arg: '<url>', parse: str, default: '', defaultText: 'none',
    help: 'The proxy the gRPC exporter goes through (read by grpc-js itself, in this order); then the agent does not check the endpoint with a handshake of its own before exporting.' }),
  setting({ key: 'exportInterval', flag: '--export-interval', env: ['OTEL_METRIC_EXPORT_INTERVAL'], arg: '<duration>',
    parse: durationOrMs(100, 3_600_000), default: 60_000, help: 'OTLP export interval (the env variable is in milliseconds).' }),
  setting({ key: 'exportTimeout', flag: '--export-timeout', env: ['OTEL_METRIC_EXPORT_TIMEOUT'], arg: '<duration>',
    parse: durationOrMs(100, 600_000), default: (c) => Math.min(30_000, c.exportInterval ?? 60_000),
    defaultText: '30s, at most the interval', help: 'OTLP export timeout.' }),
  setting({ key: 'clusterName', flag: '--cluster-name', env: ['KNP_CLUSTER_NAME'], arg: '<name>', parse: str, default: '',
    help: 'Resource attribute k8s.cluster.name.' }),
  setting({ key: 'nodeName', flag: '--node-name', env: ['NODE_NAME'], arg: '<name>', parse: str, default: '',
    help: 'This node\'s name (the downward API\'s spec.nodeName): resource attribute k8s.node.name.' }),
  setting({ key: 'podName', env: ['POD_NAME'], arg: '<name>', parse: str, default: '', help: 'Resource attribute k8s.pod.name.' }),
  setting({ key: 'podNamespace', env: ['POD_NAMESPACE'], arg: '<name>', parse: str, default: '', help: 'Resource attribute k8s.namespace.name.' }),
  setting({ key: 'resourceAttributes', env: ['OTEL_RESOURCE_ATTRIBUTES'], arg: '<k=v,...>', parse: keyValueList, default: {},
    defaultText: 'none', help: 'Extra resource attributes; they override the detected ones.' }),
  setting({ key: 'discovery', flag: '--discovery', env: ['KNP_DISCOVERY'], arg: '<mode>', parse: oneOf(['auto', 'kubernetes', 'off'] as const), default: 'auto',
    help: 'Node discovery: kubernetes watches Node objects; auto does so in a cluster (KUBERNETES_SERVICE_HOST set) or with --kubeconfig; off probes only the targets file (or loopback).' }),
  setting({ key: 'kubeconfig', flag: '--kubeconfig', env: ['KUBECONFIG'], arg: '<path>', parse: str, default: '', defaultText: 'in-cluster service account',
    help: 'Kubeconfig file for discovery outside a cluster.' }),
  setting({ key: 'kubernetesServiceHost', env: ['KUBERNETES_SERVICE_HOST'], arg: '<host>', parse: str, default: '', help: 'Set by Kubernetes in every pod: discovery auto turns on.' }),
  setting({ key: 'nodeSelector', flag: '--node-selector', env: ['KNP_NODE_SELECTOR'], arg: '<selector>', parse: str, default: '', defaultText: 'all nodes',
    help: 'Label selector narrowing the nodes probed, e.g. node-role.kubernetes.io/worker.' }),
  setting({ key: 'nodeAddressTypes', flag: '--node-address-types', env: ['KNP_NODE_ADDRESS_TYPES'], arg: '<types>', parse: listOf(['InternalIP', 'ExternalIP'] as const),
    default: ['InternalIP'], defaultText: 'InternalIP', help: 'Node address types to probe, in order of preference, e.g. InternalIP,ExternalIP.' }),
  setting({ key: 'ipFamilies', flag: '--ip-families', env: ['KNP_IP_FAMILIES'], arg: '<families>', parse: listOf(['ipv4', 'ipv6'] as const),
    default: ['ipv4', 'ipv6'], defaultText: 'ipv4,ipv6', help: 'Address families to probe; a dual-stack node gives one target per family.' }),
  setting({ key: 'skipNotReady', flag: '--skip-not-ready', env: ['KNP_SKIP_NOT_READY'], arg: '<bool>', parse: bool, default: false,
    help: 'Do not probe NotReady nodes. By default they are probed: a flapping node is what you are hunting.' }),
  setting({ key: 'skipCordoned', flag: '--skip-cordoned', env: ['KNP_SKIP_CORDONED'], arg: '<bool>', parse: bool, default: false,
    help: 'Do not probe cordoned (unschedulable) nodes.' }),
  setting({ key: 'meshMode', flag: '--mesh-mode', env: ['KNP_MESH_MODE'], arg: '<mode>', parse: oneOf(['auto', 'full', 'sampled'] as const), default: 'auto',
    help: 'Which nodes each agent probes: full (all), sampled (zone rings, see docs/scale.md), or auto (full below --mesh-full-below nodes).' }),
  setting({ key: 'meshFullBelow', flag: '--mesh-full-below', env: ['KNP_MESH_FULL_BELOW'], arg: '<nodes>', parse: int(2, 1_000_000), default: 100,
    help: 'With --mesh-mode auto: full mesh below this many nodes, sampled from there.' }),
  setting({ key: 'meshZonePeers', flag: '--mesh-zone-peers', env: ['KNP_MESH_ZONE_PEERS'], arg: '<count>', parse: int(1, 10_000), default: 10,
    help: 'Sampled: peers in the own zone (all of them if the zone is smaller); also how many agents probe each node from its zone.' }),
  setting({ key: 'meshCrossZonePeers', flag: '--mesh-cross-zone-peers', env: ['KNP_MESH_CROSS_ZONE_PEERS'], arg: '<count>', parse: int(0, 10_000), default: 2,
    help: 'Sampled: peers in each other zone.' }),
  setting({ key: 'meshBudget', flag: '--mesh-budget', env: ['KNP_MESH_BUDGET'], arg: '<count>', parse: int(1, 100_000), default: 30,
    help: 'Sampled: most peers per agent; cross-zone peers are cut first.' }),
  setting({ key: 'rttHistogram', flag: '--rtt-histogram', env: ['KNP_RTT_HISTOGRAM'], arg: '<per>', parse: oneOf(['per-destination', 'per-zone'] as const), default: 'per-destination',
    help: 'per-zone: one RTT histogram per destination zone for node targets (loss counters stay per pair), to cut series in large clusters.' }),
  setting({ key: 'pairMetrics', flag: '--pair-metrics', env: ['KNP_PAIR_METRICS'], arg: '<set>', parse: oneOf(['full', 'lean'] as const), default: 'full',
    help: 'lean: per pair only packets sent/received and the ongoing outage (no duplicates, outage totals), to cut series.' }),
  setting({ key: 'logLevel', flag: '--log-level', env: ['KNP_LOG_LEVEL'], arg: '<level>', parse: oneOf(LOG_LEVELS), default: 'info',
    help: 'debug, info, warn or error.' }),
];

function setting<K extends keyof Config>(s: Setting<K>): Setting<keyof Config> {
  return s as unknown as Setting<keyof Config>;
}

export interface LoadOptions {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  readFile?: (path: string) => string;
}

export type LoadResult = { kind: 'config'; config: Config } | { kind: 'help'; text: string } | { kind: 'version' };

/** Parses flags, environment and the optional `--config` file. Throws ConfigError naming the key and the value. */
export function loadConfig(opts: LoadOptions): LoadResult {
  const readFile = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const flags = new Map<string, string>();
  let configFile = opts.env['KNP_CONFIG'] ?? '';
  const argv = opts.argv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') return { kind: 'help', text: helpText() };
    if (a === '--version') return { kind: 'version' };
    if (!a.startsWith('--')) throw new ConfigError(`config: unexpected argument "${a}" (see --help)`);
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    let value: string;
    if (eq > 0) value = a.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`config: ${name} needs a value (see --help)`);
      value = next;
      i++;
    }
    if (name === '--config') {
      configFile = value;
      continue;
    }
    if (!SCHEMA.some((s) => s.flag === name)) throw new ConfigError(`config: unknown flag ${name} (see --help)`);
    flags.set(name, value);
  }

  let fileValues: Record<string, unknown> = {};
  if (configFile !== '') fileValues = readConfigFile(configFile, readFile);

  const out: Partial<Config> = {};
  /** Where each setting came from, for messages about two settings together. */
  const sources = new Map<keyof Config, string>();
  for (const s of SCHEMA) {
    let raw: string | undefined;
    let source = '';
    if (s.flag && flags.has(s.flag)) {
      raw = flags.get(s.flag);
      source = s.flag;
    } else {
      const env = s.env?.find((e) => opts.env[e] !== undefined && opts.env[e] !== '');
      if (env) {
        raw = opts.env[env];
        source = env;
      } else if (Object.hasOwn(fileValues, s.key)) {
        const v = fileValues[s.key];
        source = `${configFile}: ${s.key}`;
        raw = fileValueToRaw(v, FILE_TYPES.get(s.parse as Parser<unknown>), source);
      }
    }
    if (raw === undefined) {
      (out as Record<string, unknown>)[s.key] = typeof s.default === 'function' ? s.default(out) : s.default;
      continue;
    }
    sources.set(s.key, source);
    try {
      (out as Record<string, unknown>)[s.key] = s.parse(raw);
    } catch (err) {
      if (err instanceof Invalid) throw new ConfigError(`config: ${source} ${JSON.stringify(raw)} ${err.message}`);
      throw err;
    }
  }
  const config = out as Config;
  const endpointSource = sources.get('otlpEndpoint');
  config.otlpEndpointKind = endpointSource === 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT' ? 'metrics' : endpointSource === 'OTEL_EXPORTER_OTLP_ENDPOINT' ? 'base' : 'flag';
  if (config.timeout > 60_000) throw new ConfigError(`config: --timeout ${config.timeout}ms is above 60s`);
  // The SDK refuses this itself, in its own words and with exit 1.
  if (config.exportTimeout > config.exportInterval) {
    const name = (k: keyof Config, flag: string) => sources.get(k) || `${flag} (default)`;
    throw new ConfigError(`config: ${name('exportTimeout', '--export-timeout')} ${formatDuration(config.exportTimeout)} is above ${name('exportInterval', '--export-interval')} ${formatDuration(config.exportInterval)}: an export must end before the next starts`);
  }
  return { kind: 'config', config };
}

/**
 * A config-file value as the text a flag would give. Strings pass; numbers and booleans only
 * where a string is not required; lists only for list settings, maps only for map settings.
 */
function fileValueToRaw(v: unknown, type: 'string' | 'list' | 'map' | undefined, source: string): string {
  const bad = (what: string) => new ConfigError(`config: ${source} ${JSON.stringify(v)} is ${what}`);
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) throw bad('empty; remove the key for the default');
  if (Array.isArray(v)) {
    if (type !== 'list') throw bad('a list, not a single value');
    if (v.some((x) => typeof x !== 'string' && typeof x !== 'number')) throw bad('a list with an item that is not a string or a number');
    return v.join(',');
  }
  if (typeof v === 'object') {
    if (type !== 'map') throw bad('a mapping, not a single value');
    if (Object.values(v).some((x) => typeof x === 'object' && x !== null)) throw bad('a mapping with a value that is not a string');
    return objectToList(v);
  }
  if (type === 'string' || type === 'map') throw bad(`a ${typeof v}, not a string (quote it)`);
  return String(v);
}

function objectToList(v: object): string {
  return Object.entries(v).map(([k, x]) => `${k}=${encodeURIComponent(String(x))}`).join(',');
}

function readConfigFile(path: string, readFile: (p: string) => string): Record<string, unknown> {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    throw new ConfigError(`config: --config ${JSON.stringify(path)} cannot be read: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config: --config ${JSON.stringify(path)} is not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config: --config ${JSON.stringify(path)} must hold a mapping of settings`);
  for (const k of Object.keys(doc)) {
    if (!SCHEMA.some((s) => s.key === k)) {
      throw new ConfigError(`config: ${path}: unknown key ${JSON.stringify(k)} (known: ${SCHEMA.map((s) => s.key).join(', ')})`);
    }
  }
  return doc as Record<string, unknown>;
}

/** The --help text, generated from SCHEMA so that it cannot drift from what is parsed. */
export function helpText(): string {
  const lines = [
    'Usage: kube-node-ping [flags]',
    '',
    'Probes targets with fping, per packet, and exports loss, RTT histograms and outages as',
    'OpenTelemetry metrics: Prometheus scrape on /metrics and/or OTLP push.',
    '',
    'Precedence: flag, environment variable, config file (--config or KNP_CONFIG: YAML/JSON',
    'with the keys below), default.',
    '',
    '  --config <path>  (KNP_CONFIG)',
    '      Config file of settings keyed as shown in [brackets].',
  ];
  for (const s of SCHEMA) {
    const def = s.defaultText ?? (typeof s.default === 'function' ? '' : describeDefault(s.key, s.default));
    const name = s.flag ? `${s.flag} ${s.arg}` : `(environment only) ${s.arg}`;
    lines.push(`  ${name}  [${s.key}]${s.env ? `  (${s.env.join(', ')})` : ''}`);
    lines.push(`      ${s.help}${def !== '' ? ` Default: ${def}.` : ''}`);
  }
  lines.push('  --help      This text.', '  --version   Print the version.', '');
  return lines.join('\n');
}

function describeDefault(key: keyof Config, v: unknown): string {
  if (key === 'period' || key === 'targetsReloadInterval' || key === 'exportInterval') return formatDuration(v as number);
  if (typeof v === 'boolean') return String(v);
  if (v === '') return 'empty';
  return String(v);
}

/** Discovery runs with --discovery kubernetes, or with auto in a pod or with a kubeconfig. */
export function discoveryEnabled(config: Config): boolean {
  if (config.discovery === 'off') return false;
  if (config.discovery === 'kubernetes') return true;
  return config.kubeconfig !== '' || config.kubernetesServiceHost !== '';
}
