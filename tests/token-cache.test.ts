/**
 * The verified-token cache (src/livekit/jwt.ts): a browser's token is checked once while it lives, yet every
 * use still enforces expiry and the lifetime limit, a look-alike token with another signature is not taken for
 * it, and a cached token for room A still cannot read room B (over SSE, WebSocket and HTTP, on the real app).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLiveKitTokenVerifier, TokenRejected } from '../src/livekit/jwt.js';
import { adminToken, createSession, errorCodes, gql, mintToken } from '../tools/kit/graphql.js';
import { sseClient } from '../tools/kit/clients.js';
import { sleep } from '../tools/kit/async.js';
import { startTestApp, type TestApp } from './support/app.js';

const KEYS = new Map([['devkey', 'secret']]);
const reason = (p: Promise<unknown>) =>
  p.then(
    () => 'accepted',
    (err: unknown) => (err instanceof TokenRejected ? err.reason : String(err)),
  );

describe('verifier with a cache', () => {
  it('refuses a cached token once it expired (no tolerance)', async () => {
    const verify = createLiveKitTokenVerifier(KEYS, 0, { cacheSize: 10 });
    const token = await mintToken({ roomJoin: true, room: 'a' }, { ttl: 2 });
    expect((await verify(token)).video?.room).toBe('a');
    expect((await verify(token)).video?.room).toBe('a'); // from the cache
    await sleep(2_600);
    expect(await reason(verify(token))).toBe('token expired');
  });

  it('keeps refusing past the clock tolerance, and accepts within it', async () => {
    const verify = createLiveKitTokenVerifier(KEYS, 2, { cacheSize: 10 });
    const token = await mintToken({ roomJoin: true, room: 'a' }, { ttl: 1 });
    await verify(token);
    await sleep(1_500); // expired, but within the 2 s tolerance
    expect(await reason(verify(token))).toBe('accepted');
    await sleep(2_000);
    expect(await reason(verify(token))).toBe('token expired');
  });

  it('does not take a token with the same claims but another signature for a cached one', async () => {
    const verify = createLiveKitTokenVerifier(KEYS, 0, { cacheSize: 10 });
    const token = await mintToken({ roomJoin: true, room: 'a' }, { ttl: 60 });
    await verify(token);
    const [header, claims] = token.split('.');
    const forged = `${header}.${claims}.${Buffer.from('not the signature').toString('base64url')}`;
    expect(await reason(verify(forged))).toBe('bad signature');
    const otherSecret = await mintToken({ roomJoin: true, room: 'a' }, { ttl: 60, secret: 'another secret' });
    expect(await reason(verify(otherSecret))).toBe('bad signature');
  });

  it('applies the lifetime limit on every use, cached or not', async () => {
    const verify = createLiveKitTokenVerifier(KEYS, 0, { cacheSize: 10 });
    const token = await mintToken({ roomJoin: true, room: 'a' }, { ttl: 3600 });
    expect(await reason(verify(token))).toBe('accepted');
    expect(await reason(verify(token, { maxLifetimeSeconds: 600 }))).toBe('token lifetime exceeds 10 minutes');
  });

  it('forgets the least recently used token past its size (and still verifies it again)', async () => {
    const verify = createLiveKitTokenVerifier(KEYS, 0, { cacheSize: 2 });
    const tokens = await Promise.all(['a', 'b', 'c'].map((room) => mintToken({ roomJoin: true, room }, { ttl: 60 })));
    for (const token of [...tokens, ...tokens]) expect(await reason(verify(token))).toBe('accepted');
  });
});

describe('the app with the cache', () => {
  let t: TestApp;
  let roomA: string;
  let roomB: string;
  beforeAll(async () => {
    t = await startTestApp({ WEBHOOK_CLOCK_TOLERANCE_SECONDS: '1' });
    const admin = await adminToken();
    roomA = `cache-a-${Math.random().toString(36).slice(2, 8)}`;
    roomB = `cache-b-${Math.random().toString(36).slice(2, 8)}`;
    await createSession(t.url, roomA, admin);
    await createSession(t.url, roomB, admin);
  });
  afterAll(() => t?.stop());

  /** The first result (or error) of a subscription over SSE. */
  async function firstOverSse(token: string, roomName: string): Promise<{ data?: unknown; errors?: Array<{ extensions?: { code?: string } }> }> {
    const client = sseClient(t.url, token);
    try {
      return await new Promise((resolve, reject) => {
        const dispose = client.subscribe(
          { query: 'subscription($r: String) { sessionStatusChanged(roomName: $r) { version eventType } }', variables: { r: roomName } },
          {
            next: (result) => {
              dispose();
              resolve(result as never);
            },
            error: reject,
            complete: () => reject(new Error('completed without a result')),
          },
        );
      });
    } finally {
      client.dispose();
    }
  }

  it("a room-A token, used again and again, still cannot read room B's session", async () => {
    const token = await mintToken({ roomJoin: true, room: roomA }, { ttl: 600 });
    for (let i = 0; i < 3; i++) expect(((await firstOverSse(token, roomA)).data as any).sessionStatusChanged.eventType).toBe('snapshot');
    const refused = await firstOverSse(token, roomB);
    expect(refused.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
    const query = await gql(t.url, 'query($r: String!) { sessionByRoom(roomName: $r) { roomName } }', { r: roomB }, token);
    expect(errorCodes(query)).toEqual(['FORBIDDEN']);
  });

  it('an expired token is refused though it was accepted (and cached) before', async () => {
    const token = await mintToken({ roomJoin: true, room: roomA }, { ttl: 1 });
    expect(((await firstOverSse(token, roomA)).data as any).sessionStatusChanged.eventType).toBe('snapshot');
    // The app allows its clock tolerance (1 s here) on client tokens too: wait past it.
    await sleep(3_200);
    const res = await gql(t.url, 'query($r: String!) { sessionByRoom(roomName: $r) { roomName } }', { r: roomA }, token);
    expect(errorCodes(res)).toEqual(['UNAUTHENTICATED']);
    expect(res.body.errors?.[0]?.message).toMatch(/token expired/);
  });
});
