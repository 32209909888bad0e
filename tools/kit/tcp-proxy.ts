import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';

/**
 * How a cut looks to the client:
 * - "reset": existing connections are destroyed and new ones are closed as soon as they are accepted;
 * - "blackhole": existing connections are destroyed and new ones are accepted but never answered
 *   (a partition: only the client's own timeouts end them).
 */
export type CutMode = 'reset' | 'blackhole';

export type TcpProxy = {
  port: number;
  /** Connections accepted since the proxy started (including refused ones). */
  accepted(): number;
  cut(mode?: CutMode): void;
  restore(): void;
  /**
   * While set, a new connection whose first chunk of data contains `text` is closed when it arrives (others
   * pass): one client's link stays down while another's is back (e.g. a Redis connection by its CLIENT SETNAME).
   * null: every connection passes again.
   */
  refuseOpening(text: string | null): void;
  close(): Promise<void>;
};

/**
 * A TCP proxy in front of one target (e.g. Postgres) that a test can cut and restore at will.
 * `delayToTargetMs` holds every client→target chunk that long (in order): a slow link to the target;
 * `delayToClientMs` the same for target→client chunks (an answer arrives late, the work was done on time).
 */
export async function startTcpProxy(
  target: { host: string; port: number },
  opts: { delayToTargetMs?: number; delayToClientMs?: number } = {},
): Promise<TcpProxy> {
  const live = new Set<Socket>();
  const held = new Set<Socket>();
  let mode: CutMode | null = null;
  let refused: string | null = null;
  let accepted = 0;

  const server = createServer((client) => {
    accepted++;
    if (mode === 'reset') return void client.destroy();
    if (mode === 'blackhole') {
      held.add(client);
      client.on('error', () => {});
      client.on('close', () => held.delete(client));
      return;
    }
    const upstream = createConnection(target);
    live.add(client);
    live.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    const delay = opts.delayToTargetMs ?? 0;
    const send = (chunk: Buffer) => (delay > 0 ? setTimeout(() => upstream.destroyed || upstream.write(chunk), delay) : upstream.write(chunk));
    const forward = () => (delay > 0 ? client.on('data', send) : client.pipe(upstream));
    const back = opts.delayToClientMs ?? 0;
    if (back > 0) upstream.on('data', (chunk: Buffer) => setTimeout(() => client.destroyed || client.write(chunk), back));
    else upstream.pipe(client);
    if (refused === null) return void forward();
    // The first chunk the client sends (a Redis client's opening command, e.g. CLIENT SETNAME) decides.
    const refuse = refused;
    client.once('data', (first: Buffer) => {
      if (first.includes(refuse)) return drop();
      send(first);
      forward();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };

  const destroyAll = (sockets: Set<Socket>) => {
    for (const s of sockets) s.destroy();
    sockets.clear();
  };

  return {
    port,
    accepted: () => accepted,
    cut(next = 'reset') {
      mode = next;
      destroyAll(live);
    },
    restore() {
      mode = null;
      destroyAll(held);
    },
    refuseOpening(text) {
      refused = text;
    },
    async close() {
      destroyAll(live);
      destroyAll(held);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
