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
  const result = await migratorFor(db, schema).migrateToLatest();
  if (result.error) throw result.error instanceof Error ? result.error : new Error(`migration failed: ${JSON.stringify(result.error)}`);
  return result;
}

/** Names of migrations that are known but not applied (empty when up to date). */
export async function pendingMigrations(db: Db, schema: string): Promise<string[]> {
  const all = await migratorFor(db, schema).getMigrations();
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
