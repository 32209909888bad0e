import type { IncomingMessage } from 'node:http';
import { GraphQLError, type DocumentNode, type GraphQLSchema, type ExecutionArgs, type execute, type subscribe } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import type { WebSocket, WebSocketServer } from 'ws';
import type { LiveKitTokenVerifier } from '../livekit/jwt.js';
import type { Logger } from '../logger.js';
import { viewerFromAuthorization } from './auth.js';
import type { GraphQLContext, Viewer } from './context.js';

type Extra = { viewer?: Viewer; request: IncomingMessage; socket: WebSocket };
/** The enveloped execute/subscribe of one operation, passed to graphql-ws through `rootValue`. */
type Enveloped = { execute: typeof execute; subscribe: typeof subscribe };

/** setTimeout's largest delay; a longer-lived token is re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The graphql-ws protocol on `wss`, through yoga's envelop (same schema, plugins, limits and context as HTTP).
 * - A bad or missing token ends the connection: 4401 (unauthenticated) / 4403 (no grant we use).
 * - When the token expires (plus the clock tolerance) the socket is closed with 4401, ending its subscriptions;
 *   graphql-ws clients reconnect with fresh `connectionParams`.
 * - Past `maxOperations` operations at once, a new one gets an error result TOO_MANY_SUBSCRIPTIONS; the socket stays.
 * - Whatever fails while preparing one operation (limits included) is an error result for that operation: an
 *   uncaught throw here would close the socket (4500) with every subscription on it and print a stack to stderr.
 */
export function useGraphQLWs(deps: {
  wss: WebSocketServer;
  yoga: YogaServerInstance<Record<string, unknown>, GraphQLContext>;
  verifyToken: LiveKitTokenVerifier | null;
  clockToleranceSeconds: number;
  maxOperations: number;
  logger: Logger;
}): void {
  const { yoga, verifyToken, logger } = deps;
  useServer<Record<string, unknown>, Extra>(
    {
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
        if (viewer.kind === 'token' && viewer.expiresAt !== null) closeAtExpiry(ctx.extra.socket, viewer.expiresAt + deps.clockToleranceSeconds * 1000);
        ctx.extra.viewer = viewer;
        return true;
      },
      execute: (args: ExecutionArgs) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args: ExecutionArgs) => (args.rootValue as Enveloped).subscribe(args),
      onSubscribe: async (ctx, id, payload) => {
        // graphql-ws registered this operation before calling us, so the count includes it.
        if (Object.keys(ctx.subscriptions).length > deps.maxOperations) {
          return [
            new GraphQLError(`At most ${deps.maxOperations} subscriptions per connection: complete one first, or open another connection`, {
              extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' },
            }),
          ];
        }
        try {
          const enveloped = yoga.getEnveloped({
            ...ctx,
            req: ctx.extra.request,
            socket: ctx.extra.socket,
            params: payload,
            viewer: ctx.extra.viewer,
            // POST: yoga refuses a mutation on a GET request, and mutations over the socket are legitimate.
            request: new Request('http://localhost/graphql', { method: 'POST', headers: {} }),
          });
          let document: DocumentNode;
          try {
            document = enveloped.parse(payload.query) as DocumentNode;
          } catch (err) {
            if (err instanceof GraphQLError) return [err];
            throw err;
          }
          const errors = enveloped.validate(enveloped.schema, document) as readonly GraphQLError[];
          if (errors.length > 0) return errors;
          return {
            schema: enveloped.schema as GraphQLSchema,
            operationName: payload.operationName,
            document,
            variableValues: payload.variables,
            contextValue: await enveloped.contextFactory(),
            rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
          };
        } catch (err) {
          logger.error({ err, operationId: id }, 'graphql-ws: could not prepare an operation');
          return [new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })];
        }
      },
    },
    deps.wss,
  );
}

function closeAtExpiry(socket: WebSocket, deadline: number): void {
  let timer: NodeJS.Timeout;
  const arm = () => {
    const left = deadline - Date.now();
    timer = left > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(() => socket.close(4401, 'Token expired'), Math.max(0, left));
    timer.unref();
  };
  arm();
  socket.once('close', () => clearTimeout(timer));
}
