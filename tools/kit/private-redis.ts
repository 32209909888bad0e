import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { sleep } from './async.js';
import { freePort } from './service-process.js';

export type PrivateRedis = {
  port: number;
  url: string;
  /** Kills the server abruptly (SIGKILL): clients see their connections drop. */
  kill(): Promise<void>;
  /** Starts a fresh server on the same port (no persistence: it comes back empty). */
  restart(): Promise<void>;
  /** Stops it for good. */
  close(): Promise<void>;
};

/** A redis-server of this test's own, on a free port, that the test can take down and bring back. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const launch = async () => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
      stdio: 'ignore',
    });
    child = proc;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server on port ${port} exited with ${proc.exitCode}`);
      if (await answersPing(url)) return;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} not answering within 10 s`);
      await sleep(50);
    }
  };

  const kill = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  };

  await launch();
  return { port, url, kill, restart: launch, close: kill };
}

async function answersPing(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}
