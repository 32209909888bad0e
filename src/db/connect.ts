import { mkdirSync } from 'node:fs';
import { Kysely, PostgresDialect, sql, type PostgresPool, type PostgresPoolClient } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { lockDataDir } from './pglite-lock.js';
import { preparedName } from '../sessions/prepared.js';
import { seedDataDir, templateTar } from './pglite-template.js';
import type { Database, Db } from './types.js';

export type { Db };

export type DatabaseHandle = {
  db: Db;
  /** What the start-up log and /readyz report. */
  description: string;
  close(): Promise<void>;
};

export async function connectDatabase(config: Config['database'], logger: Logger): Promise<DatabaseHandle> {
  if (config.kind === 'postgres') {
    const pool = new pg.Pool({
      connectionString: config.url,
      max: config.poolMax,
      // Fail fast when Postgres is gone, so the webhook can answer 503 and LiveKit retries.
      connectionTimeoutMillis: 2_000,
      query_timeout: 15_000,
      idleTimeoutMillis: 30_000,
      options: `-c search_path=${config.schema}`,
    });
    // An idle client losing its connection must not crash the process.
    pool.on('error', (err) => logger.warn({ err: err.message }, 'postgres idle client error'));
    // A checked-out client (mid-query or mid-transaction) that loses its connection emits 'error' with no
    // listener of pg-pool's attached: unhandled, that crashes the process. Its query fails and the caller answers.
    pool.on('connect', (client) => client.on('error', (err) => logger.debug({ err: err.message }, 'postgres connection lost')));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }) });
    const url = new URL(config.url);
    return {
      db,
      description: `postgres ${url.hostname}:${url.port || 5432}${url.pathname} (schema ${config.schema})`,
      close: () => db.destroy(),
    };
  }

  const { PGlite } = await import('@electric-sql/pglite');
  const inMemory = config.dataDir === 'memory://';
  if (inMemory) {
    const template = templateTar();
    if ('missing' in template) logger.info(`embedded database: ${template.missing}; running initdb`);
    const pglite = new PGlite({
      ...PGLITE_OPTIONS(PGlite),
      ...('tar' in template ? { loadDataDir: new Blob([template.tar as Uint8Array<ArrayBuffer>]) } : {}),
    });
    return wrapPglite(await ready(pglite), config.schema, 'pglite (in memory)', () => {});
  }
  mkdirSync(config.dataDir, { recursive: true });
  // Before opening: a second process on the folder must be refused, not diverge silently.
  const unlock = lockDataDir(config.dataDir);
  try {
    const { missing } = seedDataDir(config.dataDir);
    if (missing) logger.info(`embedded database: ${missing}; running initdb`);
    return await wrapPglite(await ready(new PGlite(config.dataDir, PGLITE_OPTIONS(PGlite))), config.schema, `pglite ${config.dataDir}`, unlock);
  } catch (err) {
    unlock();
    throw err;
  }
}

/** The pool Kysely uses, sending the registered statements (`prepared.ts`) as named prepared statements. */
function preparingPool(pool: pg.Pool): PostgresPool {
  return {
    async connect() {
      const client = await pool.connect();
      const query = (sqlOrCursor: unknown, values?: readonly unknown[]) => {
        const name = typeof sqlOrCursor === 'string' ? preparedName(sqlOrCursor) : undefined;
        if (name === undefined) return client.query(sqlOrCursor as string, values as unknown[]);
        return client.query({ name, text: sqlOrCursor as string, values: values as unknown[] });
      };
      return { query, release: (destroy?: boolean) => client.release(destroy) } as unknown as PostgresPoolClient;
    },
    end: () => pool.end(),
  };
}

/**
 * Postgres' default 128 MB of shared buffers become resident as PGlite reads pages (its files are the folder's,
 * through Node's fs, so the OS caches them as well): 32 MB keeps an embedded start at about 230 MB RSS instead of 350.
 */
const PGLITE_OPTIONS = (PGlite: typeof import('@electric-sql/pglite').PGlite) => ({
  startParams: [...PGlite.defaultStartParams, '-c', 'shared_buffers=32MB'],
});

async function ready(pglite: import('@electric-sql/pglite').PGlite) {
  await pglite.waitReady;
  return pglite;
}

/** PGlite is a single connection: the dialect serialises queries and transactions on it. */
async function wrapPglite(pglite: import('@electric-sql/pglite').PGlite, schema: string, description: string, unlock: () => void): Promise<DatabaseHandle> {
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  try {
    await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
    await sql`set search_path to ${sql.id(schema)}`.execute(db);
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return { db, description: `${description} (schema ${schema})`, close: () => db.destroy().finally(unlock) };
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', '57P01', '57P02', '57P03', '53300']);

/** True when an error means "the database cannot be reached now" (a retry may help), not a bug. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
    const message = e instanceof Error ? e.message : '';
    if (
      /timeout exceeded when trying to connect|Connection terminated|connection timeout|Client has encountered a connection error|Query read timeout/i.test(
        message,
      )
    ) {
      return true;
    }
  }
  return false;
}
