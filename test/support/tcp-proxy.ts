/**
 * A TCP proxy to a server on 127.0.0.1 that a test can cut and restore, to give one client an
 * outage of the server behind it while the test itself still talks to the server directly.
 * It listens on 127.0.0.1 unless told another local address (a lab's root address, so that
 * agents in the lab's namespaces reach a server that listens on loopback only).
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

export async function startTcpProxy(targetPort: number, listenHost = '127.0.0.1'): Promise<TcpProxy> {
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
    await new Promise<void>((r) => server.listen(port, listenHost, r));
    port = (server.address() as { port: number }).port;
  };
  const cut = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  await listen();
  return { get port() { return port; }, cut, restore: listen, close: cut };
}
