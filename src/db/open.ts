import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { connectDatabase, isDatabaseUnavailable, type DatabaseHandle } from './connect.js';
import { migrateToLatest } from './migrate.js';

/**
 * The database as the service needs it at start: reachable (Postgres may come up after the service: it waits
 * DATABASE_CONNECT_TIMEOUT_SECONDS) and migrated. main.ts starts this before it loads the rest of the service,
 * so PGlite's start and the module loading overlap.
 */
export async function openDatabase(config: Config, logger: Logger): Promise<DatabaseHandle> {
  const database = await connectWithRetry(config, logger);
  try {
    await migrateToLatest(database.db, config.database.schema);
  } catch (err) {
    await database.close();
    throw err;
  }
  return database;
}

/** Start-up could not reach the database: one line says where (password masked) and what failed. */
export class DatabaseUnreachableError extends Error {
  constructor(
    readonly target: string,
    readonly reason: string,
  ) {
    super(`cannot connect to the database at ${target}: ${reason}`);
    this.name = 'DatabaseUnreachableError';
  }
}

async function connectWithRetry(config: Config, logger: Logger): Promise<DatabaseHandle> {
  const target = describeDatabase(config.database);
  if (config.database.kind === 'pglite' && config.database.dataDir !== 'memory://') {
    // The first start initialises a database cluster, which takes a while: say so rather than sit silent.
    const exists = existsSync(join(config.database.dataDir, 'PG_VERSION'));
    logger.info(`${exists ? 'opening' : 'creating'} embedded database in ${config.database.dataDir}${exists ? '' : ' (first start only)'}…`);
  }
  const database = await connectDatabase(config.database, logger);
  // Replicas may start before Postgres does: wait for it (DATABASE_CONNECT_TIMEOUT_SECONDS) rather than crash-loop.
  const deadline = Date.now() + (config.database.kind === 'postgres' ? config.database.connectTimeoutSeconds * 1000 : 0);
  for (let attempt = 1; ; attempt++) {
    try {
      await database.db.selectNoFrom((eb) => eb.lit(1).as('one')).execute();
      return database;
    } catch (err) {
      const reason = errorText(err);
      // Only "not reachable yet" is worth waiting for; a wrong password or database name will not fix itself.
      if (!isDatabaseUnavailable(err) || Date.now() + CONNECT_RETRY_MS > deadline) {
        await database.close();
        throw new DatabaseUnreachableError(target, attempt > 1 ? `${reason} (gave up after ${attempt} attempts)` : reason);
      }
      logger.warn({ database: target, err: reason, attempt }, 'database not reachable yet; retrying');
      await sleep(CONNECT_RETRY_MS);
    }
  }
}

const CONNECT_RETRY_MS = 2_000;

/** Where the database is, fit for a log line: the password of a connection URL is masked. */
function describeDatabase(database: Config['database']): string {
  if (database.kind === 'pglite') return `embedded ${database.dataDir}`;
  try {
    const url = new URL(database.url);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return 'DATABASE_URL (unparsable)';
  }
}

/** pg reports a refused connection as an AggregateError with an empty message: use what is inside. */
function errorText(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return errorText(err.errors[0]);
  const e = err as { message?: string; code?: string };
  return e.message || e.code || String(err);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
