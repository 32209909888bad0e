import { setMaxListeners } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { EnvelopArmor } from '@escape.tech/graphql-armor';
import { GraphQLError, NoSchemaIntrospectionCustomRule, type ExecutionArgs } from 'graphql';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { Config } from '../config.js';
import type { Db } from '../db/connect.js';
import type { LiveKitTokenVerifier } from '../livekit/jwt.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { ChangeBus } from '../realtime/bus.js';
import { viewerFromAuthorization, type Viewer } from './auth.js';
import type { GraphQLContext } from './builder.js';
import { buildSchema } from './schema.js';

export const GRAPHQL_PATH = '/graphql';

type ServerContext = { viewer?: Viewer; signal?: AbortSignal };

export type GraphQLServer = {
  yoga: YogaServerInstance<ServerContext, GraphQLContext>;
  wss: WebSocketServer;
  /** Ends every open subscription (SSE and WebSocket) and closes the sockets. */
  close(): Promise<void>;
};

export function createGraphQLServer(deps: {
  config: Config;
  db: Db;
  bus: ChangeBus;
  logger: Logger;
  metrics: Metrics;
  verifyToken: LiveKitTokenVerifier | null;
  /** Shown in GraphiQL's headers in development only. */
  devToken?: string;
}): GraphQLServer {
  const { config, db, bus, logger, metrics, verifyToken } = deps;
  const shutdown = new AbortController();
  // Every open subscription listens to it (and lets go when it ends): not the leak Node's warning assumes.
  setMaxListeners(0, shutdown.signal);
  const production = config.env === 'production';

  const armor = new EnvelopArmor({
    maxDepth: { n: config.graphql.maxDepth },
    maxAliases: { n: config.graphql.maxAliases },
    maxTokens: { n: config.graphql.maxTokens },
    costLimit: { maxCost: config.graphql.maxCost },
    maxDirectives: { n: 20 },
    blockFieldSuggestion: { enabled: production },
  });
  const plugins: Plugin[] = [...(armor.protect().plugins as Plugin[]), codeValidationErrors(), countSubscriptions(metrics)];
  if (!config.graphql.introspection) {
    plugins.push({ onValidate: ({ addValidationRule }) => addValidationRule(NoSchemaIntrospectionCustomRule) });
  }

  const origins = config.graphql.corsOrigins;
  const yoga = createYoga<ServerContext, GraphQLContext>({
    schema: buildSchema(),
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    batching: false,
    maskedErrors: { isDev: !production },
    cors: origins.includes('*') ? { origin: '*' } : origins.length > 0 ? { origin: [...origins], credentials: true } : false,
    // Served from our own bundle, not a CDN, so it works offline; loaded on first use (it is 9 MB).
    renderGraphiQL: async (options) => (await import('@graphql-yoga/render-graphiql')).renderGraphiQL(options),
    graphiql: config.graphql.graphiql
      ? {
          title: 'livekit-session-state',
          headers: deps.devToken ? JSON.stringify({ Authorization: `Bearer ${deps.devToken}` }) : undefined,
          defaultQuery: DEFAULT_QUERY,
        }
      : false,
    logging: {
      debug: (...args) => logger.debug({ yoga: args }, 'graphql'),
      info: (...args) => logger.info({ yoga: args }, 'graphql'),
      warn: (...args) => logger.warn({ yoga: args }, 'graphql'),
      error: (...args) => logger.error({ yoga: args }, 'graphql error'),
    },
    plugins,
    context: async ({ request, viewer, signal }) => ({
      viewer: viewer ?? (await viewerFromAuthorization(request.headers.get('authorization'), verifyToken)),
      db,
      bus,
      logger,
      // Two signals rather than AbortSignal.any: on Node 20 that leaks a reference per request (nodejs/node#54614).
      signal: signal ?? request.signal,
      shutdown: shutdown.signal,
    }),
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: config.graphql.maxBodyBytes });
  useServer<Record<string, unknown>, { viewer?: Viewer; request: IncomingMessage; socket: import('ws').WebSocket }>(
    {
      // A bad or missing token ends the connection: 4401 (unauthenticated) / 4403 (no grant we use).
      onConnect: async (ctx) => {
        const viewer = await viewerFromAuthorization(ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization, verifyToken);
        if (viewer.kind === 'anonymous' || viewer.kind === 'rejected') {
          ctx.extra.socket.close(4401, 'Unauthorized');
          return false;
        }
        if (viewer.kind === 'token' && !viewer.join && !viewer.list && !viewer.create && !viewer.admin) {
          ctx.extra.socket.close(4403, 'Forbidden');
          return false;
        }
        ctx.extra.viewer = viewer;
        return true;
      },
      execute: (args: ExecutionArgs) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args: ExecutionArgs) => (args.rootValue as Enveloped).subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        const enveloped = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          viewer: ctx.extra.viewer,
          // POST: yoga refuses a mutation on a GET request, and mutations over the socket are legitimate.
          request: new Request('http://localhost/graphql', { method: 'POST', headers: {} }),
        });
        const document = (() => {
          try {
            return enveloped.parse(payload.query);
          } catch (err) {
            return err as import('graphql').GraphQLError;
          }
        })();
        if (!('kind' in document)) return [document];
        const errors = enveloped.validate(enveloped.schema, document);
        if (errors.length > 0) return errors;
        return {
          schema: enveloped.schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await enveloped.contextFactory(),
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
        };
      },
    },
    wss,
  );

  return {
    yoga,
    wss,
    async close() {
      shutdown.abort();
      for (const client of wss.clients) client.close(1001, 'Server shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- envelop returns its own result types
type Enveloped = { execute: (args: ExecutionArgs) => any; subscribe: (args: ExecutionArgs) => any };

/** Validation errors (the query limits included) get a machine-readable code like every other error. */
function codeValidationErrors(): Plugin {
  const withCode = (e: GraphQLError) =>
    e.extensions?.code
      ? e
      : new GraphQLError(e.message, {
          nodes: e.nodes,
          source: e.source,
          positions: e.positions,
          path: e.path,
          originalError: e.originalError,
          extensions: { ...e.extensions, code: 'GRAPHQL_VALIDATION_FAILED' },
        });
  return {
    onValidate:
      () =>
      ({ result, setResult }) => {
        if (result.some((e) => !(e instanceof GraphQLError) || !e.extensions?.code)) {
          setResult(result.map((e) => (e instanceof GraphQLError ? withCode(e) : e)));
        }
      },
  };
}

function countSubscriptions(metrics: Metrics): Plugin {
  return {
    onSubscribe: () => ({
      onSubscribeResult: ({ result }) => {
        if (!(Symbol.asyncIterator in result)) return;
        metrics.subscriptions.inc();
        return { onEnd: () => metrics.subscriptions.dec() };
      },
    }),
  };
}

const DEFAULT_QUERY = `# Sessions follow their LiveKit rooms. Try:
query Sessions {
  sessions(first: 10) {
    edges { node { id roomName title status version startedAt stoppedAt } }
    pageInfo { hasNextPage endCursor }
  }
}

# mutation Create { createSession(input: { roomName: "demo", title: "Demo" }) { session { id status } } }
# subscription Watch { sessionStatusChanged(roomName: "demo") { status previousStatus version eventType changedAt } }
`;
