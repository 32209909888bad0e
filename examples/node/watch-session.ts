/**
 * Watches one session's status from Node with both official GraphQL subscription clients, graphql-sse
 * (Server-Sent Events) and graphql-ws (WebSocket), until the session stops:
 *
 *   SERVICE_URL=http://127.0.0.1:3000 ROOM=demo TOKEN=$(npm run -s token -- --room demo) npx tsx examples/node/watch-session.ts
 *
 * A real backend uses one of the two; both are here to show each one's way of sending the token.
 */
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
// Node 20 has no global WebSocket (Node 22 does): hand graphql-ws the `ws` package's.
import WebSocket from 'ws';

const service = process.env.SERVICE_URL ?? 'http://127.0.0.1:3000';
const room = process.env.ROOM ?? 'demo';
const token = process.env.TOKEN;
if (!token) {
  process.stderr.write('TOKEN is not set: mint one with `npm run -s token -- --room ROOM` (a LiveKit access token for that room).\n');
  process.exit(2);
}

// Absolute URLs: outside a browser there is no page origin to resolve '/graphql' against.
const httpUrl = new URL('/graphql', service).href; // http://127.0.0.1:3000/graphql
const wsUrl = httpUrl.replace(/^http/, 'ws'); //       ws://127.0.0.1:3000/graphql (wss:// behind https)

const SUBSCRIPTION = `subscription ($room: String!) {
  sessionStatusChanged(roomName: $room) { status previousStatus version eventType changedAt }
}`;

type Change = { status: string; previousStatus: string | null; version: number; eventType: string; changedAt: string };
type Result = { data?: { sessionStatusChanged: Change } | null; errors?: readonly { message: string; extensions?: { code?: string } }[] };

// SSE: the token goes in a header, like any HTTP request.
const sse = createSseClient({ url: httpUrl, headers: { Authorization: `Bearer ${token}` } });
// WebSocket: the token goes in connectionParams, checked once when the socket opens.
const ws = createWsClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` } });

/** Prints each change; resolves once the session is STOPPED. */
async function watch(transport: string, client: SseClient | WsClient): Promise<void> {
  const results = client.iterate({ query: SUBSCRIPTION, variables: { room } }) as AsyncIterableIterator<Result>;
  for await (const result of results) {
    if (result.errors) throw new Error(`${transport}: ${result.errors.map((e) => `${e.extensions?.code ?? 'ERROR'}: ${e.message}`).join('; ')}`);
    const change = result.data!.sessionStatusChanged;
    process.stdout.write(`[${transport}] ${change.status} v${change.version} ${change.eventType} ${change.changedAt}\n`);
    if (change.status === 'STOPPED') return; // leaving the loop ends the subscription
  }
}

try {
  await Promise.all([watch('sse', sse), watch('ws', ws)]);
} catch (err) {
  // graphql-ws rejects with the socket's close event (4401: bad token, 4403: no grant), not an Error.
  const close = err as { code?: number; reason?: string };
  process.stderr.write(`${err instanceof Error ? err.message : `ws: connection closed ${close.code} ${close.reason}`}\n`);
  process.exitCode = 1;
} finally {
  sse.dispose();
  await ws.dispose();
}
