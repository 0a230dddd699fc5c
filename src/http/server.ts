import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.ts';
import { PROMETHEUS_CONTENT_TYPE, type Page } from '../export/prometheus.ts';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { createGzip, constants as zlib } from 'node:zlib';

/**
 * True when the client takes gzip (RFC 9110 Accept-Encoding: `gzip`, or `*`, with q > 0), as
 * Prometheus asks for every scrape: the page is about 5.5 MB at 1,000 destinations and
 * 150 KB compressed.
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let star = false;
  for (const part of header.split(',')) {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    if (coding === 'gzip') return weight > 0;
    if (coding === '*') star = weight > 0;
  }
  return star;
}

export interface HttpHandlers {
  /** Renders /metrics, or undefined when the Prometheus endpoint is off. */
  metrics?: () => Promise<Page>;
  /** Readiness: undefined when ready, else the reason. */
  notReady: () => string | undefined;
}

/**
 * /metrics, /healthz, /readyz. Timeouts are explicit so that a stuck client cannot hold a
 * socket for ever.
 */
export async function startHttpServer(port: number, host: string, handlers: HttpHandlers, log: Logger): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    handle(req, res, handlers, log).catch((err: Error) => {
      log.error('HTTP handler failed', { path: req.url, error: err.message });
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: host === '' ? undefined : host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  log.info('HTTP server listening', { port: bound, host: host || '*', metrics: handlers.metrics !== undefined });
  return { server, port: bound };
}

async function handle(req: IncomingMessage, res: ServerResponse, h: HttpHandlers, log: Logger): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  switch (path) {
    case '/metrics': {
      if (!h.metrics) break;
      const { chunks, errors } = await h.metrics();
      if (errors.length > 0) log.warn('metric collection reported errors', { errors: errors.map(String).slice(0, 3) });
      const gzip = acceptsGzip(req.headers['accept-encoding']);
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, vary: 'accept-encoding', ...(gzip ? { 'content-encoding': 'gzip' } : {}) });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      // Compression runs on libuv's thread pool, not on the event loop; level 1 because the
      // page is repetitive text (5.5 MB to 150 KB at 1,000 destinations) and the cores are
      // the probes'.
      const gz = gzip ? createGzip({ level: 1, strategy: zlib.Z_DEFAULT_STRATEGY }) : undefined;
      const out: NodeJS.WritableStream & { destroy(): void } = gz ?? res;
      const sent = gz ? pipeline(gz, res) : Promise.resolve();
      // One chunk at a time, letting fping's output be drained in between.
      for (const chunk of chunks) {
        if (res.destroyed) {
          if (out !== res) out.destroy();
          await sent.catch(() => undefined);
          return;
        }
        if (!out.write(chunk)) await Promise.race([once(out, 'drain'), once(res, 'close')]);
        await yieldToLoop();
      }
      out.end();
      await sent.catch(() => undefined); // a scraper that hung up mid-page
      return;
    }
    case '/healthz':
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    case '/readyz': {
      const reason = h.notReady();
      res.writeHead(reason === undefined ? 200 : 503, { 'content-type': 'text/plain' }).end(reason === undefined ? 'ready\n' : `not ready: ${reason}\n`);
      return;
    }
    case '/':
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`kube-node-ping\n${h.metrics ? '/metrics\n' : ''}/healthz\n/readyz\n`);
      return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
}
