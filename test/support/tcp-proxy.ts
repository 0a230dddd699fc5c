/**
 * A TCP proxy on 127.0.0.1 that a test can cut and restore, to give one client an outage of
 * the server behind it while the test itself still talks to the server directly.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Closes the listener and every open connection: the client sees an outage. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server;
  let port = 0;
  const listen = async () => {
    server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  };
  const cut = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  await listen();
  return { get port() { return port; }, cut, restore: listen, close: cut };
}
