import { Migrator, sql, type MigrationResultSet } from 'kysely';
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

/** Names of migrations that are known but not applied (empty when up to date). */
export async function pendingMigrations(db: Db, schema: string): Promise<string[]> {
  const all = await migratorFor(db, schema).getMigrations();
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
