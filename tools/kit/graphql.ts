import { AccessToken, type VideoGrant } from 'livekit-server-sdk';
import { GRAPHQL_PATH } from '../../src/graphql/server.js';
import { DEV_CREDENTIALS } from './livekit-emulator.js';
import { ADMIN_GRANT } from '../../src/livekit/grants.js';

/** A LiveKit access token as a LiveKit app would mint it for its frontend. */
export async function mintToken(grant: VideoGrant, opts: { identity?: string; ttl?: string | number; secret?: string; apiKey?: string } = {}): Promise<string> {
  const token = new AccessToken(opts.apiKey ?? DEV_CREDENTIALS.apiKey, opts.secret ?? DEV_CREDENTIALS.apiSecret, {
    identity: opts.identity ?? 'tester',
    ttl: opts.ttl ?? '10m',
  });
  token.addGrant(grant);
  return token.toJwt();
}

export const adminToken = () => mintToken({ ...ADMIN_GRANT }, { identity: 'admin' });

export type GqlResponse = { status: number; body: { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> } };

/** One GraphQL request over real HTTP. */
export async function gql(url: string, query: string, variables: Record<string, unknown> = {}, token?: string | null): Promise<GqlResponse> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'application/graphql-response+json, application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${url}${GRAPHQL_PATH}`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  return { status: res.status, body: (await res.json()) as GqlResponse['body'] };
}

export async function createSession(url: string, roomName: string, token: string, title: string | null = null) {
  const res = await gql(
    url,
    'mutation($input: CreateSessionInput!) { createSession(input: $input) { session { id roomName title status version } } }',
    { input: { roomName, title } },
    token,
  );
  if (res.body.errors) throw new Error(`createSession failed: ${JSON.stringify(res.body.errors)}`);
  return res.body.data.createSession.session as { id: string; roomName: string; title: string | null; status: string; version: number };
}

export const errorCodes = (res: GqlResponse) => (res.body.errors ?? []).map((e) => e.extensions?.code);
