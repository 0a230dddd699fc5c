import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.ts';
import { PROMETHEUS_CONTENT_TYPE, type Page } from '../export/prometheus.ts';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { once } from 'node:events';

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
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      // One chunk at a time, letting fping's output be drained in between.
      for (const chunk of chunks) {
        if (res.destroyed) return;
        if (!res.write(chunk)) await once(res, 'drain');
        await yieldToLoop();
      }
      res.end();
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
