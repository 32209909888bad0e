/** Applies pending migrations to the configured database and exits (`npm run migrate -- --help`). */
import { ConfigError, loadConfig } from '../src/config.js';
import { connectDatabase } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { createLogger } from '../src/logger.js';
import { fail, parseToolArgs } from './cli.js';

const cli = {
  name: 'migrate',
  usage: `usage: npm run migrate

Applies pending migrations (migrations/) to the configured database: DATABASE_URL and DATABASE_SCHEMA
from the environment or env.local, else the embedded database in PGLITE_DATA_DIR. The service also
migrates at start; this is for running them ahead of a deploy.

  -h, --help   this text`,
};

parseToolArgs(cli, {});

try {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const database = await connectDatabase(config.database, logger);
  try {
    const { results = [] } = await migrateToLatest(database.db, config.database.schema).catch((err: Error) => {
      throw new Error(`migrating ${database.description} failed: ${err.message || String(err)}`);
    });
    for (const r of results) process.stdout.write(`${r.status === 'Success' ? 'applied' : r.status}: ${r.migrationName}\n`);
    process.stdout.write(`${database.description}: ${results.length === 0 ? 'already up to date' : `${results.length} migration(s) applied`}\n`);
  } finally {
    await database.close();
  }
} catch (err) {
  fail(cli, err instanceof ConfigError ? err.message : (err as Error).message);
}
