import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';

/** The real Postgres and Redis the tests use; CI sets REQUIRE_SERVICES=1 so a missing one fails loudly. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const required = process.env.REQUIRE_SERVICES === '1';

async function reachable(check: () => Promise<unknown>, name: string): Promise<boolean> {
  try {
    await check();
    return true;
  } catch (err) {
    if (required) throw new Error(`${name} is required (REQUIRE_SERVICES=1) but unreachable: ${(err as Error).message}`);
    return false;
  }
}

let cached: Promise<{ postgres: boolean; redis: boolean }> | undefined;

/** Which real backends are up; without them the suite runs on the embedded ones (PGlite, in-process pub/sub). */
export function availableBackends() {
  cached ??= (async () => {
    const postgres = await reachable(async () => {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 2000 });
      await client.connect();
      await client.end();
    }, 'Postgres');
    const redis = await reachable(async () => {
      const r = new Redis(TEST_REDIS_URL, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on('error', () => {});
      try {
        await r.connect();
        await r.ping();
      } finally {
        r.disconnect();
      }
    }, 'Redis');
    return { postgres, redis };
  })();
  return cached;
}

/** A name unique to this run: one Postgres schema and one Redis prefix per test app family. */
export const uniqueName = (label: string) => `t_${label}_${randomBytes(4).toString('hex')}`;

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await client.end();
  }
}
