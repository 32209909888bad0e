/**
 * The grant table (issue 5) over HTTP, SSE (graphql-sse) and WebSocket (graphql-ws): what each LiveKit
 * access-token grant may read, list, watch and create; how missing, malformed, expired and foreign tokens
 * are refused; and that aliases and fragments cannot reach a session the token may not read.
 */
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_CREDENTIALS, newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';
import { availableBackends, TEST_REDIS_URL } from '../tools/kit/backends.js';
import { adminToken, createSession, gql, mintToken } from '../tools/kit/graphql.js';
import { sseClient, wsClient } from '../tools/kit/clients.js';

type Result = { data?: any; errors?: Array<{ message: string; path?: Array<string | number>; extensions?: { code?: string } }> };
/** What one operation produced: the first result, or (WebSocket) the close code that ended the connection. */
type Outcome = { result?: Result; closeCode?: number };
type Transport = 'HTTP' | 'SSE' | 'WS';
const TRANSPORTS: Transport[] = ['HTTP', 'SSE', 'WS'];

let t: TestApp;
let admin: string;
let own: { id: string; roomName: string };
let other: { id: string; roomName: string };
let redis: Redis;
const backends = await availableBackends();

const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 10)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  t = await startTestApp();
  admin = await adminToken();
  own = await createSession(t.url, unique('own'), admin);
  other = await createSession(t.url, unique('other'), admin);
  if (backends.redis) redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await redis?.quit();
  await t?.stop();
});

/**
 * Runs one operation over a transport and returns its first result (a subscription is then ended).
 * `token` null sends no credentials at all.
 */
async function run(transport: Transport, query: string, variables: Record<string, unknown>, token: string | null): Promise<Outcome> {
  if (transport === 'HTTP') {
    // Plain HTTP answers a subscription with 406 unless the client accepts an event stream.
    if (/^\s*subscription\b/.test(query)) return { result: await firstEventOverPlainHttp(query, variables, token) };
    const res = await gql(t.url, query, variables, token);
    expect(res.status).toBe(200);
    return { result: res.body };
  }
  const client = transport === 'SSE' ? sseClient(t.url, token) : wsClient(t.url, token);
  try {
    return await new Promise<Outcome>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${transport}: no result within 10 s`)), 10_000);
      const done = (outcome: Outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      const dispose = client.subscribe(
        { query, variables },
        {
          next: (result) => {
            done({ result: result as Result });
            dispose();
          },
          error: (err: unknown) => {
            const code = (err as { code?: unknown } | null)?.code;
            if (transport === 'WS' && typeof code === 'number') done({ closeCode: code });
            else {
              clearTimeout(timer);
              reject(err instanceof Error ? err : new Error(`${transport} error: ${JSON.stringify(err)}`));
            }
          },
          complete: () => done({}),
        },
      );
    });
  } finally {
    await client.dispose();
  }
}

/** A subscription over a bare fetch (no client library): the first `next` frame of the event stream. */
async function firstEventOverPlainHttp(query: string, variables: Record<string, unknown>, token: string | null): Promise<Result> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 10_000);
  try {
    const headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'text/event-stream' };
    if (token !== null) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(`${t.url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }), signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      // Frames end with a blank line; yoga also sends keep-alive comment frames (":").
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(frame)?.[1];
        const data = [...frame.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join('\n');
        if (event === 'next') return JSON.parse(data) as Result;
        if (event === 'complete') throw new Error('stream completed without a result');
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended without a result: ${JSON.stringify(buffer)}`);
      buffer += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

const codesOf = (o: Outcome) => (o.result?.errors ?? []).map((e) => e.extensions?.code);

function expectForbidden(o: Outcome, field: string) {
  expect(o.closeCode, 'connection closed instead of a FORBIDDEN result').toBeUndefined();
  expect(codesOf(o)).toEqual(['FORBIDDEN']);
  expect(o.result?.data?.[field] ?? null).toBeNull();
}

function expectUnauthenticated(transport: Transport, o: Outcome) {
  if (transport === 'WS') {
    expect(o).toEqual({ closeCode: 4401 });
  } else {
    expect(codesOf(o)).toEqual(['UNAUTHENTICATED']);
    expect(Object.values(o.result?.data ?? {}).every((v) => v === null)).toBe(true);
  }
}

const Q = {
  session: 'query($id: ID!) { session(id: $id) { id roomName status } }',
  sessionByRoom: 'query($r: String!) { sessionByRoom(roomName: $r) { id roomName status } }',
  node: 'query($id: ID!) { node(id: $id) { id ... on Session { roomName status } } }',
  sessions: 'query { sessions(first: 50) { edges { node { id roomName } } } }',
  create: 'mutation($r: String!) { createSession(input: { roomName: $r }) { session { id roomName status } } }',
  subRoom: 'subscription($r: String!) { sessionStatusChanged(roomName: $r) { session { roomName } status version eventType } }',
  subId: 'subscription($id: ID!) { sessionStatusChanged(id: $id) { session { roomName } status version eventType } }',
  subAll: 'subscription { sessionStatusChanged { session { roomName } status version eventType } }',
};

const snapshotOf = (roomName: string) => ({ data: { sessionStatusChanged: { session: { roomName }, status: 'READY', version: 1, eventType: 'snapshot' } } });

describe.each(TRANSPORTS)('over %s', (transport) => {
  describe('{roomJoin, room: R}: R only', () => {
    let join: string;
    beforeAll(async () => {
      join = await mintToken({ roomJoin: true, room: own.roomName }, { identity: 'joiner' });
    });

    it("reads R's session by id, by room and as a node", async () => {
      expect((await run(transport, Q.session, { id: own.id }, join)).result).toEqual({
        data: { session: { id: own.id, roomName: own.roomName, status: 'READY' } },
      });
      expect((await run(transport, Q.sessionByRoom, { r: own.roomName }, join)).result?.data.sessionByRoom).toMatchObject({ id: own.id });
      expect((await run(transport, Q.node, { id: own.id }, join)).result).toEqual({ data: { node: { id: own.id, roomName: own.roomName, status: 'READY' } } });
    });

    it('subscribes to R by room name and by id', async () => {
      expect((await run(transport, Q.subRoom, { r: own.roomName }, join)).result).toEqual(snapshotOf(own.roomName));
      expect((await run(transport, Q.subId, { id: own.id }, join)).result).toEqual(snapshotOf(own.roomName));
    });

    it("another room's session, sessionByRoom and node(id) → FORBIDDEN", async () => {
      expectForbidden(await run(transport, Q.session, { id: other.id }, join), 'session');
      expectForbidden(await run(transport, Q.sessionByRoom, { r: other.roomName }, join), 'sessionByRoom');
      // Even for a room with no session: the answer must not reveal whether it exists.
      expectForbidden(await run(transport, Q.sessionByRoom, { r: unique('nobody') }, join), 'sessionByRoom');
      expectForbidden(await run(transport, Q.node, { id: other.id }, join), 'node');
    });

    it('sessions → FORBIDDEN', async () => {
      expectForbidden(await run(transport, Q.sessions, {}, join), 'sessions');
    });

    it('subscription without arguments, or to another room (by name or id) → FORBIDDEN', async () => {
      expectForbidden(await run(transport, Q.subAll, {}, join), 'sessionStatusChanged');
      expectForbidden(await run(transport, Q.subRoom, { r: other.roomName }, join), 'sessionStatusChanged');
      expectForbidden(await run(transport, Q.subId, { id: other.id }, join), 'sessionStatusChanged');
    });

    it('createSession → FORBIDDEN (for its own room too) and writes nothing', async () => {
      const fresh = unique('join-create');
      expectForbidden(await run(transport, Q.create, { r: fresh }, join), 'createSession');
      const joinFresh = await mintToken({ roomJoin: true, room: fresh });
      expectForbidden(await run(transport, Q.create, { r: fresh }, joinFresh), 'createSession');
      expect(await t.app.database.db.selectFrom('sessions').select('id').where('room_name', '=', fresh).executeTakeFirst()).toBeUndefined();
    });
  });

  describe('{roomList}: read, list and watch everything; create nothing', () => {
    let list: string;
    beforeAll(async () => {
      list = await mintToken({ roomList: true }, { identity: 'lister' });
    });

    it('reads every session and lists them', async () => {
      for (const s of [own, other]) {
        expect((await run(transport, Q.session, { id: s.id }, list)).result?.data.session).toMatchObject({ id: s.id });
        expect((await run(transport, Q.sessionByRoom, { r: s.roomName }, list)).result?.data.sessionByRoom).toMatchObject({ id: s.id });
        expect((await run(transport, Q.node, { id: s.id }, list)).result?.data.node).toMatchObject({ id: s.id });
      }
      const listed = (await run(transport, Q.sessions, {}, list)).result;
      expect(listed?.errors).toBeUndefined();
      expect(listed?.data.sessions.edges.map((e: any) => e.node.id)).toEqual(expect.arrayContaining([own.id, other.id]));
    });

    it('subscribes to any one session', async () => {
      expect((await run(transport, Q.subRoom, { r: other.roomName }, list)).result).toEqual(snapshotOf(other.roomName));
      expect((await run(transport, Q.subId, { id: own.id }, list)).result).toEqual(snapshotOf(own.roomName));
    });

    // Waits for the stream through Redis's own subscriber count: needs the real Redis.
    it.skipIf(!backends.redis)('subscribes to every session (no arguments) and receives a change', async () => {
      const roomName = unique(`all-${transport}`);
      await createSession(t.url, roomName, admin);
      const channel = `${t.prefix}sessions`;
      const holders = async () => Number(((await redis.pubsub('NUMSUB', channel)) as [string, number])[1]);
      const waitUntil = async (ok: (n: number) => boolean, what: string) => {
        const deadline = Date.now() + 10_000;
        while (!ok(await holders())) {
          if (Date.now() > deadline) throw new Error(`${channel}: ${what} not reached within 10 s`);
          await sleep(20);
        }
      };
      // An earlier all-sessions stream (another transport) may still be letting go of the channel.
      await waitUntil((n) => n === 0, 'released');
      const outcome = run(transport, Q.subAll, {}, list);
      outcome.catch(() => {}); // awaited below; no unhandled rejection while polling
      // No snapshot for the all-sessions stream: send the change once the stream is listening.
      await waitUntil((n) => n === 1, 'subscribed');
      expect((await sendEvent(t.url, 'room_started', newRoomInstance(roomName))).status).toBe(200);
      expect((await outcome).result).toEqual({
        data: { sessionStatusChanged: { session: { roomName }, status: 'LIVE', version: 2, eventType: 'room_started' } },
      });
    });

    it('createSession → FORBIDDEN', async () => {
      expectForbidden(await run(transport, Q.create, { r: unique('list-create') }, list), 'createSession');
    });
  });

  describe('creating', () => {
    it('{roomCreate} creates any room', async () => {
      const create = await mintToken({ roomCreate: true }, { identity: 'creator' });
      const roomName = unique(`create-${transport}`);
      const o = await run(transport, Q.create, { r: roomName }, create);
      expect(o.result?.errors).toBeUndefined();
      expect(o.result?.data.createSession.session).toMatchObject({ roomName, status: 'READY' });
      // And cannot list (roomList is needed).
      expectForbidden(await run(transport, Q.sessions, {}, create), 'sessions');
    });

    it('{roomAdmin, room: R} creates R, and only R', async () => {
      const roomName = unique(`admin-${transport}`);
      const roomAdmin = await mintToken({ roomAdmin: true, room: roomName }, { identity: 'room-admin' });
      const o = await run(transport, Q.create, { r: roomName }, roomAdmin);
      expect(o.result?.errors).toBeUndefined();
      expect(o.result?.data.createSession.session).toMatchObject({ roomName, status: 'READY' });
      expectForbidden(await run(transport, Q.create, { r: unique('admin-elsewhere') }, roomAdmin), 'createSession');
    });
  });

  describe('refused tokens', () => {
    const badTokens: Array<[string, () => Promise<string | null>]> = [
      ['no token', async () => null],
      ['a garbage token', async () => 'garbage'],
      ['a token-shaped garbage string', async () => 'eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.c2lnbmF0dXJl'],
      ['an expired token', () => mintToken({ roomList: true, roomJoin: true, room: own.roomName }, { ttl: -3600 })],
      ['a token signed with another secret', () => mintToken({ roomList: true, roomJoin: true, room: own.roomName }, { secret: 'not-the-secret-at-all' })],
      ['a token from an unknown API key', () => mintToken({ roomList: true }, { apiKey: 'stranger', secret: 'stranger-secret' })],
      [
        'an HS512 token (LiveKit signs HS256 only)',
        () =>
          new SignJWT({ video: { roomList: true }, sub: 'x' })
            .setProtectedHeader({ alg: 'HS512' })
            .setIssuer(DEV_CREDENTIALS.apiKey)
            .setNotBefore(new Date())
            .setExpirationTime('10m')
            .sign(new TextEncoder().encode(DEV_CREDENTIALS.apiSecret)),
      ],
    ];
    for (const [label, make] of badTokens) {
      it(`${label} → ${transport === 'WS' ? 'socket closed with 4401' : 'UNAUTHENTICATED'} for reads, lists, creates and subscriptions`, async () => {
        const token = await make();
        expectUnauthenticated(transport, await run(transport, Q.session, { id: own.id }, token));
        expectUnauthenticated(transport, await run(transport, Q.sessionByRoom, { r: own.roomName }, token));
        expectUnauthenticated(transport, await run(transport, Q.node, { id: own.id }, token));
        expectUnauthenticated(transport, await run(transport, Q.sessions, {}, token));
        expectUnauthenticated(transport, await run(transport, Q.create, { r: unique('unauth') }, token));
        expectUnauthenticated(transport, await run(transport, Q.subRoom, { r: own.roomName }, token));
        expectUnauthenticated(transport, await run(transport, Q.subAll, {}, token));
      });
    }

    it(`a valid token with no grant we use → ${transport === 'WS' ? 'socket closed with 4403' : 'FORBIDDEN'}`, async () => {
      const token = await mintToken({ canPublish: true, canSubscribe: true });
      if (transport === 'WS') {
        expect(await run(transport, Q.session, { id: own.id }, token)).toEqual({ closeCode: 4403 });
        expect(await run(transport, Q.subRoom, { r: own.roomName }, token)).toEqual({ closeCode: 4403 });
      } else {
        expectForbidden(await run(transport, Q.session, { id: own.id }, token), 'session');
        expectForbidden(await run(transport, Q.sessions, {}, token), 'sessions');
        expectForbidden(await run(transport, Q.subRoom, { r: own.roomName }, token), 'sessionStatusChanged');
      }
    });
  });

  describe('aliases and fragments cannot bypass', () => {
    let join: string;
    beforeAll(async () => {
      join = await mintToken({ roomJoin: true, room: own.roomName }, { identity: 'joiner' });
    });

    it('a: session(own) b: session(other) → data for a, FORBIDDEN for b', async () => {
      const o = await run(
        transport,
        'query($own: ID!, $other: ID!) { a: session(id: $own) { id roomName } b: session(id: $other) { id roomName } }',
        { own: own.id, other: other.id },
        join,
      );
      expect(o.result?.data).toEqual({ a: { id: own.id, roomName: own.roomName }, b: null });
      expect(o.result?.errors?.map((e) => [e.extensions?.code, e.path])).toEqual([['FORBIDDEN', ['b']]]);
    });

    it('aliased sessionByRoom and node, with fragments: only the own room comes back', async () => {
      const o = await run(
        transport,
        `query($own: ID!, $other: ID!, $ownRoom: String!, $otherRoom: String!) {
          mine: node(id: $own) { ...S }
          theirs: node(id: $other) { ...S }
          mineByRoom: sessionByRoom(roomName: $ownRoom) { ... on Session { roomName } }
          theirsByRoom: sessionByRoom(roomName: $otherRoom) { ... on Session { roomName } }
          x: session(id: $other) { __typename }
        }
        fragment S on Session { id roomName status }`,
        { own: own.id, other: other.id, ownRoom: own.roomName, otherRoom: other.roomName },
        join,
      );
      expect(o.result?.data).toEqual({
        mine: { id: own.id, roomName: own.roomName, status: 'READY' },
        theirs: null,
        mineByRoom: { roomName: own.roomName },
        theirsByRoom: null,
        x: null,
      });
      const errors = (o.result?.errors ?? []).map((e) => `${e.extensions?.code}@${e.path?.join('.')}`).sort();
      expect(errors).toEqual(['FORBIDDEN@theirs', 'FORBIDDEN@theirsByRoom', 'FORBIDDEN@x']);
    });

    it('node(id: other) with an inline fragment or only __typename → FORBIDDEN, nothing leaked', async () => {
      for (const selection of ['... on Session { roomName title status }', '__typename', 'id']) {
        const o = await run(transport, `query($id: ID!) { node(id: $id) { ${selection} } }`, { id: other.id }, join);
        expectForbidden(o, 'node');
        expect(JSON.stringify(o.result)).not.toContain(other.roomName);
      }
    });

    it('a list behind an alias is still FORBIDDEN', async () => {
      const o = await run(
        transport,
        'query { mine: sessionByRoom(roomName: "' + own.roomName + '") { id } all: sessions(first: 5) { edges { node { roomName } } } }',
        {},
        join,
      );
      // `sessions` is non-null (SessionConnection!), so its error nulls the whole data.
      expect(o.result?.data ?? null).toBeNull();
      expect(o.result?.errors?.map((e) => [e.extensions?.code, e.path])).toEqual([['FORBIDDEN', ['all']]]);
      expect(JSON.stringify(o.result)).not.toContain(other.roomName);
    });
  });
});

describe('every refusal says what is missing', () => {
  const messageOf = (o: Outcome) => (o.result?.errors ?? []).map((e) => `${e.extensions?.code}: ${e.message}`);
  it('no token, a bad token, and each grant the operation needs are named (HTTP and SSE alike)', async () => {
    const join = await mintToken({ roomJoin: true, room: own.roomName }, { identity: 'joiner' });
    const forbidden = (what: string) => [`FORBIDDEN: This token's grant does not allow ${what}`];
    for (const transport of ['HTTP', 'SSE'] as const) {
      expect(messageOf(await run(transport, Q.session, { id: other.id }, join))).toEqual(forbidden('reading this session'));
      expect(messageOf(await run(transport, Q.sessionByRoom, { r: other.roomName }, join))).toEqual(forbidden('reading this session'));
      expect(messageOf(await run(transport, Q.subId, { id: other.id }, join))).toEqual(forbidden('reading this session'));
      expect(messageOf(await run(transport, Q.sessions, {}, join))).toEqual(forbidden('listing or watching every session (roomList is needed)'));
      expect(messageOf(await run(transport, Q.subAll, {}, join))).toEqual(forbidden('listing or watching every session (roomList is needed)'));
      expect(messageOf(await run(transport, Q.create, { r: unique('nope') }, join))).toEqual(
        forbidden('creating sessions (roomCreate or roomAdmin is needed)'),
      );
      expect(messageOf(await run(transport, Q.sessions, {}, null))).toEqual([
        'UNAUTHENTICATED: Authentication required: send a LiveKit access token as "Authorization: Bearer <token>"',
      ]);
      expect(messageOf(await run(transport, Q.sessions, {}, 'garbage'))).toEqual(['UNAUTHENTICATED: Invalid access token: malformed token']);
    }
  });
});

describe('a room in the token is not a grant by itself', () => {
  it('a token naming room R with neither roomJoin nor roomAdmin (publish/subscribe only, or roomCreate) cannot read or watch R', async () => {
    for (const grant of [
      { room: own.roomName, canPublish: true, canSubscribe: true },
      { room: own.roomName, roomCreate: true },
    ]) {
      const token = await mintToken(grant, { identity: 'room-only' });
      for (const transport of ['HTTP', 'SSE'] as const) {
        expectForbidden(await run(transport, Q.session, { id: own.id }, token), 'session');
        expectForbidden(await run(transport, Q.sessionByRoom, { r: own.roomName }, token), 'sessionByRoom');
        expectForbidden(await run(transport, Q.subRoom, { r: own.roomName }, token), 'sessionStatusChanged');
      }
    }
  });
});
