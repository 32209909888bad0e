import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { availableBackends, dropSchema, TEST_DATABASE_URL, TEST_REDIS_URL, uniqueName } from '../../tools/kit/backends.js';

export type TestApp = { app: App; url: string; schema: string; prefix: string; stop(): Promise<void> };

/**
 * Starts the real app on a free port against the real Postgres (its own schema) and Redis (its own
 * channel prefix), or on the embedded backends when those are not running here. Apps given the same
 * `shared` names share a database schema and channels, like replicas.
 */
export async function startTestApp(
  env: Record<string, string> = {},
  shared?: { schema: string; prefix: string },
  opts: { logger?: Logger } = {},
): Promise<TestApp> {
  const backends = await availableBackends();
  const schema = shared?.schema ?? uniqueName('s');
  const prefix = shared?.prefix ?? `${schema}:`;
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    DATABASE_SCHEMA: schema,
    REDIS_PREFIX: prefix,
    OUTBOX_INTERVAL_MS: '200',
    ...(backends.postgres ? { DATABASE_URL: TEST_DATABASE_URL } : { PGLITE_DATA_DIR: 'memory://' }),
    ...(backends.redis ? { REDIS_URL: TEST_REDIS_URL } : {}),
    ...env,
  });
  const app = await createApp(config, { logger: opts.logger ?? createLogger(config.logLevel) });
  const url = await app.start();
  return {
    app,
    url,
    schema,
    prefix,
    async stop() {
      await app.stop();
      if (!shared && config.database.kind === 'postgres') await dropSchema(schema).catch(() => {});
    },
  };
}
