import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { isLivePagePath } from './dashboard/page.js';
import { GRAPHQL_PATH, type GraphQLServer } from './graphql/server.js';
import { BodyTooLargeError, readBody, RequestAbortedError } from './http/body.js';
import { errorEnvelope, newErrorId } from './http/envelope.js';
import { sendJson } from './http/respond.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { handleWebhook, WEBHOOK_PATH, type WebhookDeps } from './webhooks/route.js';

export type HttpDeps = {
  logger: Logger;
  metrics: Metrics;
  webhook: WebhookDeps;
  graphql: GraphQLServer;
  graphqlMaxBodyBytes: number;
  /** Resolves to a list of problems; empty means ready. */
  readiness: () => Promise<string[]>;
  /** The live sessions page (GET / and /sessions); absent when DASHBOARD=off. */
  livePage?: (req: IncomingMessage, res: ServerResponse) => void;
};

/** The router above every route, on one plain HTTP server: the webhook route, GraphQL (HTTP, SSE, WebSocket), health, readiness and metrics on one port. */
export function createHttpServer(deps: HttpDeps): { server: Server; inFlightWebhooks: () => number } {
  let inFlight = 0;
  const server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000 }, (req, res) => {
    const requestId = headerValue(req.headers['x-request-id']) ?? randomUUID();
    res.setHeader('X-Request-Id', requestId);
    const log = deps.logger.child({ reqId: requestId });
    void route(req, res, log).catch((err: unknown) => {
      if (err instanceof RequestAbortedError) return void log.info(`request not read: ${err.message}`);
      log.error({ err }, 'unhandled request error');
      if (!res.headersSent) sendJson(res, 500, errorEnvelope('E_INTERNAL', 'Internal error', newErrorId()));
      else res.destroy();
    });
  });

  async function route(req: IncomingMessage, res: ServerResponse, log: Logger): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (deps.livePage && isLivePagePath(path)) return deps.livePage(req, res);
    switch (path) {
      case WEBHOOK_PATH:
        inFlight++;
        try {
          return await handleWebhook(req, res, deps.webhook, log);
        } finally {
          inFlight--;
        }
      case GRAPHQL_PATH:
        return handleGraphQL(req, res);
      case '/healthz':
        return sendJson(res, 200, { status: 'ok' });
      case '/readyz': {
        const problems = await deps.readiness();
        return sendJson(res, problems.length === 0 ? 200 : 503, { status: problems.length === 0 ? 'ready' : 'not ready', problems });
      }
      case '/metrics': {
        const text = await deps.metrics.registry.metrics();
        res.writeHead(200, { 'Content-Type': deps.metrics.registry.contentType });
        return void res.end(text);
      }
      default:
        // The one envelope (with its erresid), like every other error of this service.
        return sendJson(res, 404, errorEnvelope('E_NOT_FOUND', `No route for ${path}`, newErrorId()));
    }
  }

  async function handleGraphQL(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'POST') {
      // Bounded body: yoga would otherwise read any size.
      try {
        const body = await readBody(req, deps.graphqlMaxBodyBytes);
        (req as IncomingMessage & { body?: unknown }).body = body.length > 0 ? body : ' ';
        // A subscription over SSE is served directly; everything else (and every error) by yoga.
        if (await deps.graphql.sse.handle(req, res, body)) return;
      } catch (err) {
        if (err instanceof BodyTooLargeError) {
          // No "Connection: close": readBody drops the rest of the body for a moment first (see discardRest).
          return sendJson(res, 413, { errors: [{ message: err.message, extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
        }
        throw err;
      }
    }
    return deps.graphql.yoga.requestListener(req, res);
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((req.url ?? '').split('?')[0] !== GRAPHQL_PATH) return void socket.destroy();
    deps.graphql.wss.handleUpgrade(req, socket, head, (ws) => deps.graphql.wss.emit('connection', ws, req));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });

  return { server, inFlightWebhooks: () => inFlight };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v && /^[\w.:-]{1,128}$/.test(v) ? v : undefined;
}
