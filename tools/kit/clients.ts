import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient, type ClientOptions } from 'graphql-ws';
import WebSocket from 'ws';
import { GRAPHQL_PATH } from '../../src/graphql/server.js';

/**
 * The official clients a frontend uses, pointed at a test server, with a LiveKit access token (null: none).
 * No retries: an abrupt end must show up as an error in the test.
 */
export const sseClient = (baseUrl: string, token: string | null) =>
  createSseClient({ url: `${baseUrl}${GRAPHQL_PATH}`, headers: token === null ? {} : { Authorization: `Bearer ${token}` }, retryAttempts: 0 });

export const wsClient = (baseUrl: string, token: string | null, options: Partial<ClientOptions> = {}) =>
  createWsClient({
    url: `${baseUrl.replace(/^http/, 'ws')}${GRAPHQL_PATH}`,
    webSocketImpl: WebSocket,
    connectionParams: token === null ? {} : { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    ...options,
  });
