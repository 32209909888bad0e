import { createFastPath } from './sessions/fast-path.js';
import type { AddressInfo } from 'node:net';
import { AccessToken } from 'livekit-server-sdk';
import { DEV_API_KEY, type Config } from './config.js';
import type { DatabaseHandle } from './db/connect.js';
import { pendingMigrations } from './db/migrate.js';
import { openDatabase } from './db/open.js';
import { createGraphQLServer } from './graphql/server.js';
import { createLiveKitTokenVerifier } from './livekit/jwt.js';
import { createParticipantLister, createRoomLister } from './livekit/rooms.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import { createLocalBus, createRedisBus, type ChangeBus } from './realtime/bus.js';
import { createChangePublisher } from './realtime/outbox.js';
import { createHttpServer } from './router.js';
import { serveLivePage } from './dashboard/page.js';
import { reconcileSessions } from './sessions/reconcile.js';
import { pruneOldRecords } from './sessions/retention.js';
import { WEBHOOK_PATH } from './webhooks/route.js';
import { createWebhookVerifier } from './webhooks/verify.js';
import { ADMIN_GRANT } from './livekit/grants.js';

export { DatabaseUnreachableError } from './db/open.js';

export type App = {
  config: Config;
  logger: Logger;
  database: DatabaseHandle;
  bus: ChangeBus;
  /** Listens on the configured host and port (0 picks a free port); resolves to the base URL. */
  start(): Promise<string>;
  /** Graceful: stop accepting, finish in-flight webhooks, end subscriptions, close pools. */
  stop(): Promise<void>;
  /** Runs one reconciliation now (null when another replica holds the lock or no LIVEKIT_URL). */
  reconcileNow(): Promise<number | null>;
};

/** Verified client tokens remembered (claims only, until each expires). */
const CLIENT_TOKEN_CACHE_SIZE = 10_000;

/** The one composition root: the only place that knows which backends are in use. */
export async function createApp(
  config: Config,
  opts: {
    logger?: Logger;
    /** Where the development admin token is shown to the person who started the server (never a log line). */
    announce?: (text: string) => void;
    /** The database, reachable and migrated (`openDatabase`), when the caller started opening it already. */
    database?: Promise<DatabaseHandle>;
  } = {},
): Promise<App> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  // A terminal only: a token in a file or log collector would outlive the session (and the README promises none in logs).
  const announce = opts.announce ?? ((text: string) => void (process.stderr.isTTY && process.stderr.write(`${text}\n`)));
  const metrics = createMetrics();

  const database = await (opts.database ?? openDatabase(config, logger));
  const { db } = database;

  const bus = config.redis.target ? createRedisBus(config.redis.target, config.redis.prefix, logger) : createLocalBus(logger);
  const publisher = createChangePublisher({ db, bus, logger, intervalMs: config.outboxIntervalMs, onPublished: (n) => metrics.published.inc(n) });

  // Client tokens: the service's own key (and GRAPHQL_TOKEN_KEYS), never the webhook-only rotation keys. Browser tabs
  // reuse their token for every subscription: each token's signature is checked once while it lives (bounded cache).
  const verifyToken =
    config.graphql.authMode === 'off'
      ? null
      : createLiveKitTokenVerifier(config.graphql.tokenKeys, config.livekit.clockToleranceSeconds, { cacheSize: CLIENT_TOKEN_CACHE_SIZE });
  const devToken =
    config.env === 'development' && verifyToken
      ? {
          token: await mintAdminToken(config, `${DEV_TOKEN_HOURS}h`),
          ttlHours: DEV_TOKEN_HOURS,
          mintedAt: new Date(),
          forEveryone: config.graphql.graphiqlDevTokenForAll,
          devKey: config.livekit.apiKey === DEV_API_KEY,
        }
      : undefined;
  const graphql = createGraphQLServer({ config, db, bus, logger, metrics, verifyToken, devToken });

  const { server, inFlightWebhooks } = createHttpServer({
    livePage: config.dashboard ? (req, res) => serveLivePage(req, res, { devToken, authOff: verifyToken === null }) : undefined,
    logger,
    metrics,
    graphql,
    graphqlMaxBodyBytes: config.graphql.maxBodyBytes,
    webhook: {
      db,
      verify: createWebhookVerifier(config.livekit.webhookKeys, config.livekit.clockToleranceSeconds),
      publisher,
      logger,
      metrics,
      maxBodyBytes: config.livekit.maxBodyBytes,
      bodyTimeoutMs: config.livekit.bodyTimeoutSeconds * 1000,
      autoCreate: config.sessionAutoCreate,
      fastPath: createFastPath(db, {
        watchChanges: (listener) => bus.subscribe('all', listener),
        onStatement: (writes) => metrics.webhookWriteBatch.observe(writes),
        onConflict: () => metrics.webhookWriteConflicts.inc(),
      }),
    },
    readiness: async () => {
      try {
        const pending = await withTimeout(pendingMigrations(db, config.database.schema), 2_000);
        return pending.length > 0 ? [`migrations not applied: ${pending.join(', ')}`] : [];
      } catch (err) {
        // The detail is for operators (the log), not for whoever asks /readyz.
        logger.warn({ err: (err as Error).message }, 'readiness: database check failed');
        return ['database unavailable'];
      }
    },
  });

  const listRooms = config.livekit.url ? createRoomLister(config.livekit.url, config.livekit.apiKey, config.livekit.apiSecret) : null;
  const listParticipants = config.livekit.url ? createParticipantLister(config.livekit.url, config.livekit.apiKey, config.livekit.apiSecret) : null;
  let reconciling: Promise<number | null> | undefined;
  const reconcileNow = () => {
    if (!listRooms) return Promise.resolve(null);
    reconciling ??= reconcileSessions(db, listRooms, undefined, listParticipants ?? undefined)
      .then((repairs) => {
        if (repairs === null) return null;
        for (const r of repairs) publisher.publishCommitted(r.change, r.changeId);
        metrics.reconcileRepairs.inc(repairs.length);
        if (repairs.length > 0) logger.info({ repairs: repairs.length }, 'reconciliation repaired sessions');
        return repairs.length;
      })
      .catch((err: Error) => {
        logger.warn({ err: err.message }, 'reconciliation failed');
        return null;
      })
      .finally(() => {
        reconciling = undefined;
      });
    return reconciling;
  };
  let reconcileTimer: NodeJS.Timeout | undefined;
  let pruneTimer: NodeJS.Timeout | undefined;
  let stopping: Promise<void> | undefined;
  let pruning: Promise<void> | undefined;
  const prune = () =>
    pruneOldRecords(db, config.retentionDays).then(
      ({ events, changes }) => {
        if (events + changes > 0) logger.info({ events, changes, days: config.retentionDays }, 'retention: deleted old records');
      },
      (err: Error) => logger.warn({ err: err.message }, 'retention failed'),
    );

  return {
    config,
    logger,
    database,
    bus,
    reconcileNow,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => resolve());
      });
      publisher.start();
      if (config.retentionDays > 0) {
        // Soon after start, then hourly: a replica restarted more often than hourly still prunes.
        pruneTimer = setTimeout(function pruneAndRepeat() {
          pruning = prune().finally(() => {
            if (!stopping) (pruneTimer = setTimeout(pruneAndRepeat, PRUNE_INTERVAL_MS)).unref();
          });
        }, PRUNE_FIRST_DELAY_MS);
        pruneTimer.unref();
      }
      if (listRooms && config.reconcileIntervalSeconds > 0) {
        reconcileTimer = setInterval(() => void reconcileNow(), config.reconcileIntervalSeconds * 1000);
        reconcileTimer.unref();
      }
      const { address, port } = server.address() as AddressInfo;
      const everywhere = address === '0.0.0.0' || address === '::';
      const host = everywhere ? '127.0.0.1' : address.includes(':') ? `[${address}]` : address;
      const url = `http://${host}:${port}`;
      const bound = `${address.includes(':') ? `[${address}]` : address}:${port}${everywhere ? ' (every interface)' : ''}`;
      logger.info(
        {
          bound,
          url,
          env: config.env,
          database: database.description,
          pubsub: bus.description,
          auth: config.graphql.authMode,
          reconcile: listRooms && config.reconcileIntervalSeconds > 0 ? `every ${config.reconcileIntervalSeconds}s` : 'off',
        },
        `listening on ${bound} (webhook ${url}${WEBHOOK_PATH}, GraphQL ${url}/graphql)`,
      );
      if (config.graphql.authMode === 'off')
        logger.warn('AUTH_MODE=off: every GraphQL client can read, watch and create every session. Local experiments only.');
      if (devToken) {
        const graphiql = devToken.forEveryone
          ? 'GraphiQL sends it for every client (GRAPHIQL_DEV_TOKEN=on)'
          : devToken.devKey
            ? 'GraphiQL sends it for browsers on this machine'
            : 'GraphiQL does not send it: not the dev key';
        logger.info(`development admin token minted (${DEV_TOKEN_HOURS}h; ${graphiql}); shown on a terminal, never logged`);
        announce(`\nDevelopment admin token (roomList, roomCreate, roomAdmin; ${DEV_TOKEN_HOURS}h):\n${devToken.token}\n`);
      }
      return url;
    },
    stop() {
      stopping ??= (async () => {
        logger.info('shutting down');
        clearInterval(reconcileTimer);
        clearTimeout(pruneTimer);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // End subscriptions so their long-lived responses and sockets let the server close.
        await graphql.close();
        const deadline = Date.now() + config.shutdownTimeoutSeconds * 1000;
        while (inFlightWebhooks() > 0 && Date.now() < deadline) await sleep(20);
        // Connections that went idle since (ended subscriptions, answered requests) would otherwise wait out keep-alive (5 s).
        const idleSweep = setInterval(() => server.closeIdleConnections(), 50);
        await Promise.race([closed, sleep(Math.max(0, deadline - Date.now()))]);
        clearInterval(idleSweep);
        server.closeAllConnections();
        await reconciling;
        await pruning;
        await publisher.stop();
        await bus.close();
        await database.close();
        logger.info('stopped');
      })();
      return stopping;
    },
  };
}

/** An admin token for local use: list, create and join any room. */
export async function mintAdminToken(config: Config, ttl: string): Promise<string> {
  const token = new AccessToken(config.livekit.apiKey, config.livekit.apiSecret, { identity: 'dev-admin', ttl });
  token.addGrant(ADMIN_GRANT);
  return token.toJwt();
}

const PRUNE_INTERVAL_MS = 60 * 60 * 1000;
const DEV_TOKEN_HOURS = 12;
/** Not at the very start: let the service settle (migrations, first webhooks) first. */
const PRUNE_FIRST_DELAY_MS = 5_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref())]);
}
