import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { availableBackends, TEST_DATABASE_URL, TEST_REDIS_URL } from './backends.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type ServiceProcess = {
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the process logged (JSON lines). */
  output(): string;
  /** SIGTERM, then waits for exit; resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
};

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * Starts the service as its own OS process (`node --import tsx src/main.ts`), the way it runs in production,
 * against the real Postgres (schema `schema`) and Redis (channel prefix `prefix`). Resolves once
 * /readyz answers 200.
 */
export async function startServiceProcess(opts: {
  schema: string;
  prefix: string;
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}): Promise<ServiceProcess> {
  const backends = await availableBackends();
  const port = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'info',
    DATABASE_SCHEMA: opts.schema,
    REDIS_PREFIX: opts.prefix,
    OUTBOX_INTERVAL_MS: '200',
    ...(backends.postgres ? { DATABASE_URL: TEST_DATABASE_URL } : {}),
    ...(backends.redis ? { REDIS_URL: TEST_REDIS_URL } : {}),
    ...opts.env,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;

  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode} before it was ready:\n${output}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`service not ready within ${readyTimeoutMs / 1000} s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    url,
    port,
    child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const [code] = (await exited) as [number | null];
      clearTimeout(timer);
      return code;
    },
  };
}
