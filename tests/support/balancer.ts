import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';

export type Balancer = { port: number; url: string; close(): Promise<void> };

/**
 * A TCP load balancer in front of service replicas, as in production: each new connection goes to the next
 * replica (round robin); a replica that refuses the connection is skipped. Established connections to a
 * replica that dies are reset, and clients reconnect through the balancer to a live one.
 */
export async function startBalancer(backends: () => number[]): Promise<Balancer> {
  const live = new Set<Socket>();
  let next = 0;

  const server = createServer((client) => {
    live.add(client);
    client.on('close', () => live.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const ports = backends();
    const tryBackend = (tries: number) => {
      if (tries >= ports.length || client.destroyed) return void client.destroy();
      const port = ports[next++ % ports.length]!;
      const upstream = createConnection({ host: '127.0.0.1', port });
      live.add(upstream);
      upstream.on('close', () => live.delete(upstream));
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.on('error', () => {
        // Refused before anything was forwarded: the next replica can take it. Afterwards: reset the client.
        if (!connected) tryBackend(tries + 1);
        else client.destroy();
      });
      upstream.on('close', () => {
        if (connected) client.destroy();
      });
      client.on('close', () => upstream.destroy());
    };
    tryBackend(0);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      for (const s of live) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
