import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { sleep } from './async.js';
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
 * Spawns a Node HTTP server as its own OS process and resolves once `GET <url><readyPath>` answers 200
 * (or the process prints a line matching `readyLine`). Output is kept for error messages.
 */
export async function spawnServer(opts: {
  args: string[];
  cwd: string;
  env: Record<string, string>;
  port: number;
  readyPath?: string;
  readyLine?: RegExp;
  readyTimeoutMs?: number;
}): Promise<ServiceProcess> {
  const child = spawn(process.execPath, opts.args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${opts.port}`;
  const timeoutMs = opts.readyTimeoutMs ?? 30_000;

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${opts.args.join(' ')} exited with ${child.exitCode} before it was ready:\n${output}`);
    if (opts.readyLine ? opts.readyLine.test(output) : await answers200(`${url}${opts.readyPath ?? '/'}`)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${opts.args.join(' ')} not ready within ${timeoutMs / 1000} s:\n${output}`);
    }
    await sleep(opts.readyLine ? 20 : 100);
  }

  return {
    url,
    port: opts.port,
    child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const [code] = (await exited) as [number | null];
      clearTimeout(timer);
      return code;
    },
  };
}

async function answers200(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).status === 200;
  } catch {
    return false; // not listening yet
  }
}

/**
 * Starts the service as its own OS process (`node --import tsx src/main.ts`), against the real Postgres (schema
 * `schema`) and Redis (channel prefix `prefix`). Resolves once /readyz answers 200. `embedded: true` gives it
 * neither (PGlite and in-process pub/sub, as a first `npm start`). `compiled: true` runs the production bundle
 * instead (`npm run serve`'s dist/src/main.js: build it first), as production does.
 */
export async function startServiceProcess(
  opts: { schema?: string; prefix?: string; env?: Record<string, string>; embedded?: boolean; compiled?: boolean; readyTimeoutMs?: number } = {},
): Promise<ServiceProcess> {
  const backends = opts.embedded ? { postgres: false, redis: false } : await availableBackends();
  const port = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'info',
    OUTBOX_INTERVAL_MS: '200',
    ...(opts.schema ? { DATABASE_SCHEMA: opts.schema } : {}),
    ...(opts.prefix ? { REDIS_PREFIX: opts.prefix } : {}),
    ...(backends.postgres ? { DATABASE_URL: TEST_DATABASE_URL } : {}),
    ...(backends.redis ? { REDIS_URL: TEST_REDIS_URL } : {}),
    ...opts.env,
  };
  const args = opts.compiled ? ['--enable-source-maps', 'dist/src/main.js'] : ['--import', 'tsx', 'src/main.ts'];
  return spawnServer({ args, cwd: ROOT, env, port, readyPath: '/readyz', readyTimeoutMs: opts.readyTimeoutMs });
}
