import type { App } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { DatabaseUnreachableError, openDatabase } from './db/open.js';
import { chooseLogFormat, createLogger, type Logger } from './logger.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel, { format: chooseLogFormat(config.logFormat, config.env, process.stdout.isTTY === true) });
  let app: App;
  try {
    // The database first (PGlite's start is the longest step of an embedded start), the rest of the service
    // (GraphQL, HTTP, pub/sub: most of the modules) loads meanwhile.
    const database = openDatabase(config, logger);
    database.catch(() => {}); // handled where it is awaited, in createApp
    const { createApp } = await import('./app.js');
    app = await createApp(config, { logger, database });
    await app.start();
  } catch (err) {
    failedToStart(logger, err);
  }

  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    logger.info({ signal }, 'signal received');
    app.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/** Expected start-up failures get one line that says what to fix; anything else is a bug and keeps its stack. */
function failedToStart(logger: Logger, err: unknown): never {
  if (err instanceof DatabaseUnreachableError) {
    logger.fatal({ database: err.target }, `failed to start: ${err.message}`);
  } else if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    logger.fatal(`failed to start: ${(err as Error).message} (another process uses this port: set PORT, or stop it)`);
  } else {
    logger.fatal({ err }, 'failed to start');
  }
  process.exit(1);
}

main().catch((err: unknown) => {
  createLogger('error').fatal({ err }, 'failed to start');
  process.exit(1);
});
