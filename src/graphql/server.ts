import type { IncomingMessage } from 'node:http';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import type { LiveKitTokenVerifier } from '../livekit/jwt.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { ChangeBus } from '../realtime/bus.js';
import { EndAll } from '../realtime/end-all.js';
import { viewerFromAuthorization } from './auth.js';
import type { GraphQLContext, Viewer } from './context.js';
import { graphiqlOptions, withPageNote, type GraphiQLDevToken } from './graphiql.js';
import { countSubscriptions } from './plugins/count-subscriptions.js';
import { noIntrospection } from './plugins/no-introspection.js';
import { queryLimits } from './plugins/query-limits.js';
import { codeValidationErrors } from './plugins/validation-codes.js';
import { buildSchema } from './schema.js';
import { createSseSubscriptions, type SseSubscriptions } from './sse.js';
import { useGraphQLWs } from './ws.js';

export const GRAPHQL_PATH = '/graphql';

type ServerContext = { viewer?: Viewer; req?: IncomingMessage };

export type GraphQLServer = {
  yoga: YogaServerInstance<ServerContext, GraphQLContext>;
  wss: WebSocketServer;
  /** Subscriptions over SSE, served without yoga's per-request machinery (yoga answers what it leaves). */
  sse: SseSubscriptions;
  /** Ends every open subscription (SSE and WebSocket) and closes the sockets. */
  close(): Promise<void>;
};

/** Yoga (HTTP and SSE) and graphql-ws over one schema, one set of plugins, one context. */
export function createGraphQLServer(deps: {
  config: Config;
  db: Db;
  bus: ChangeBus;
  logger: Logger;
  metrics: Metrics;
  verifyToken: LiveKitTokenVerifier | null;
  /** The development admin token GraphiQL may pre-fill (development only). */
  devToken?: GraphiQLDevToken;
}): GraphQLServer {
  const { config, db, bus, logger, metrics, verifyToken, devToken } = deps;
  // Every open subscription registers with it (and lets go when it ends).
  const shutdown = new EndAll();
  const production = config.env === 'production';

  const plugins: Plugin[] = [...queryLimits({ ...config.graphql, production }), codeValidationErrors(), countSubscriptions(metrics)];
  if (!config.graphql.introspection) plugins.push(noIntrospection());

  const origins = config.graphql.corsOrigins;
  const yoga = createYoga<ServerContext, GraphQLContext>({
    schema: buildSchema(),
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    batching: false,
    maskedErrors: { isDev: !production },
    cors: origins.includes('*') ? { origin: '*' } : origins.length > 0 ? { origin: [...origins], credentials: true } : false,
    // Served from our own bundle, not a CDN, so it works offline; loaded on first use (it is 9 MB).
    renderGraphiQL: async (options) => withPageNote((await import('@graphql-yoga/render-graphiql')).renderGraphiQL(options), options, devToken),
    graphiql: config.graphql.graphiql ? (_request, serverContext) => graphiqlOptions(devToken, serverContext?.req) : false,
    logging: {
      debug: (...args) => logger.debug({ yoga: args }, 'graphql'),
      info: (...args) => logger.info({ yoga: args }, 'graphql'),
      warn: (...args) => logger.warn({ yoga: args }, 'graphql'),
      error: (...args) => logger.error({ yoga: args }, 'graphql error'),
    },
    plugins,
    context: async ({ request, viewer }) => ({
      viewer: viewer ?? (await viewerFromAuthorization(request.headers.get('authorization'), verifyToken)),
      db,
      bus,
      logger,
      shutdown,
      created: new Set<string>(),
    }),
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: config.graphql.maxBodyBytes });
  useGraphQLWs({
    wss,
    yoga: yoga as unknown as YogaServerInstance<Record<string, unknown>, GraphQLContext>,
    verifyToken,
    clockToleranceSeconds: config.livekit.clockToleranceSeconds,
    maxOperations: config.graphql.maxSubscriptionsPerConnection,
    logger,
  });

  const sse = createSseSubscriptions({
    yoga: yoga as unknown as YogaServerInstance<Record<string, unknown>, GraphQLContext>,
    verifyToken,
    db,
    bus,
    logger,
    metrics,
    shutdown,
    cors: origins.length > 0,
  });

  return {
    yoga,
    wss,
    sse,
    async close() {
      shutdown.end();
      for (const client of wss.clients) client.close(1001, 'Server shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
