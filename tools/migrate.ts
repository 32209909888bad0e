/** Applies pending migrations to the configured database (`npm run migrate`) and exits. */
import { ConfigError, loadConfig } from '../src/config.js';
import { connectDatabase } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { createLogger } from '../src/logger.js';

try {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const database = await connectDatabase(config.database, logger);
  try {
    const { results = [] } = await migrateToLatest(database.db, config.database.schema);
    for (const r of results) process.stdout.write(`${r.status === 'Success' ? 'applied' : r.status}: ${r.migrationName}\n`);
    process.stdout.write(`${database.description}: ${results.length === 0 ? 'already up to date' : `${results.length} migration(s) applied`}\n`);
  } finally {
    await database.close();
  }
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : (err as Error).stack}\n`);
  process.exit(1);
}
