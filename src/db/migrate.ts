import { DEFAULT_MIGRATION_TABLE, Migrator, sql, type MigrationResultSet } from 'kysely';
import { migrations } from '../../migrations/index.js';
import type { Db } from './connect.js';

function migratorFor(db: Db, schema: string): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: () => Promise.resolve(migrations) },
    migrationTableSchema: schema,
  });
}

/**
 * Applies every pending migration. Safe when several replicas start together:
 * Kysely's migrator holds a row lock on its lock table while it migrates.
 */
export async function migrateToLatest(db: Db, schema: string): Promise<MigrationResultSet> {
  // The usual start (nothing to apply) costs one query; Kysely's migrator introspects every table of every
  // schema, several times, before it finds that out.
  const applied = await appliedMigrations(db, schema).catch(() => null);
  if (applied && applied.size === Object.keys(migrations).length && Object.keys(migrations).every((name) => applied.has(name))) return { results: [] };
  try {
    await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
  } catch (err) {
    // Two replicas creating the schema at once: one wins, the other sees a unique violation.
    if ((err as { code?: string }).code !== '23505') throw err;
  }
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await migratorFor(db, schema).migrateToLatest();
      if (result.error) throw result.error instanceof Error ? result.error : new Error(`migration failed: ${JSON.stringify(result.error)}`);
      return result;
    } catch (err) {
      if (attempt >= 5 || !isOtherSchemaDropped(err, schema)) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

/**
 * Kysely's migrator looks up its table by introspecting the tables of every schema; a schema that someone else
 * drops at that moment (another tenant of the database, a test run) fails that catalog query with 3F000
 * (invalid_schema_name). Nothing of ours was touched: the lookup can simply run again.
 */
function isOtherSchemaDropped(err: unknown, schema: string): boolean {
  const e = err as { code?: string; message?: string };
  return e.code === '3F000' && typeof e.message === 'string' && !e.message.includes(`"${schema}"`);
}

/** Names of migrations that are known but not applied (empty when up to date); readiness asks on every /readyz. */
export async function pendingMigrations(db: Db, schema: string): Promise<string[]> {
  const applied = await appliedMigrations(db, schema);
  return Object.keys(migrations).filter((name) => !applied.has(name));
}

/** One query on Kysely's migration table; none applied when there is no such table (or schema) yet. */
async function appliedMigrations(db: Db, schema: string): Promise<Set<string>> {
  try {
    const { rows } = await sql<{ name: string }>`select name from ${sql.id(schema, DEFAULT_MIGRATION_TABLE)}`.execute(db);
    return new Set(rows.map((r) => r.name));
  } catch (err) {
    // undefined_table (42P01) or invalid_schema_name (3F000): nothing was ever migrated here.
    const code = (err as { code?: string }).code;
    if (code === '42P01' || code === '3F000') return new Set();
    throw err;
  }
}
