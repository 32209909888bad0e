/**
 * Issue 8 (GraphQL half) and issue 9 (GraphQL points): cursors and page sizes, room names the webhook path
 * stores, which keys sign client tokens, query limits and the subscription cap over graphql-ws, token expiry
 * on an open socket, the development admin token (bind address, logs, GraphiQL), flags, and a schema where
 * every field says what it is and which grant it needs.
 */
import { networkInterfaces } from 'node:os';
import { runInNewContext } from 'node:vm';
import { isInputObjectType, isInterfaceType, isObjectType, type GraphQLFieldMap } from 'graphql';
import type { Client } from 'graphql-ws';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { FORGET_OLD_TOKENS } from '../src/graphql/graphiql.js';
import { buildSchema } from '../src/graphql/schema.js';
import { MAX_ROOM_NAME_LENGTH } from '../src/sessions/limits.js';
import { newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';
import { availableBackends, dropSchema, TEST_DATABASE_URL, TEST_REDIS_URL, uniqueName } from '../tools/kit/backends.js';
import { wsClient } from '../tools/kit/clients.js';
import { adminToken, createSession, errorCodes, gql, mintToken } from '../tools/kit/graphql.js';

type Result = { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> };

const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 10)}`;
const cursor = (text: string) => Buffer.from(text).toString('base64url');
const LIST =
  'query($first: Int, $after: String, $last: Int, $before: String) { sessions(first: $first, after: $after, last: $last, before: $before) { edges { node { id } } } }';

/** The first result of one operation over an existing graphql-ws client, or what ended it. */
function firstResult(client: Client, query: string, variables: Record<string, unknown> = {}): Promise<{ result?: Result; errors?: Result['errors'] }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no result within 10 s')), 10_000);
    const dispose = client.subscribe(
      { query, variables },
      {
        next: (result) => {
          clearTimeout(timer);
          resolve({ result: result as Result });
          dispose();
        },
        error: (err) => {
          clearTimeout(timer);
          if (Array.isArray(err)) resolve({ errors: err as Result['errors'] });
          else reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
        },
        complete: () => {},
      },
    );
  });
}

/** A live subscription: its results so far, and a way to wait for the n-th. */
function watch(client: Client, query: string, variables: Record<string, unknown>) {
  const results: Result[] = [];
  let error: unknown;
  let waiters: Array<() => void> = [];
  const wake = () => {
    for (const w of waiters) w();
    waiters = [];
  };
  const dispose = client.subscribe(
    { query, variables },
    {
      next: (r) => {
        results.push(r as Result);
        wake();
      },
      error: (err) => {
        error = err;
        wake();
      },
      complete: () => {},
    },
  );
  return {
    results,
    dispose,
    async waitFor(n: number): Promise<Result[]> {
      const deadline = Date.now() + 10_000;
      while (results.length < n) {
        if (error) throw new Error(`subscription ended: ${JSON.stringify(error)}`);
        if (Date.now() > deadline) throw new Error(`only ${results.length} of ${n} results within 10 s`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 200);
        });
      }
      return results;
    },
  };
}

const WATCH = 'subscription($r: String!) { sessionStatusChanged(roomName: $r) { status version eventType } }';

describe('cursors and page sizes (issue 8 item 7)', () => {
  let t: TestApp;
  let admin: string;
  beforeAll(async () => {
    // Development: the masked 500 used to carry the SQL and a stack there.
    t = await startTestApp({ NODE_ENV: 'development' });
    admin = await adminToken();
    await createSession(t.url, unique('page'), admin);
  });
  afterAll(() => t?.stop());

  for (const [label, vars] of [
    ['after: seq:9999999999 (past int4)', { first: 5, after: cursor('seq:9999999999') }],
    ['before: seq:2147483648 (int4 max + 1)', { last: 5, before: cursor('seq:2147483648') }],
    ['after: seq:-1', { first: 5, after: cursor('seq:-1') }],
    ['after: seq:007 (not a cursor we issue)', { first: 5, after: cursor('seq:007') }],
    ['after: seq:1 with base64 padding', { first: 5, after: `${cursor('seq:1')}==` }],
  ] as const) {
    it(`${label} → BAD_USER_INPUT "Malformed cursor", no SQL in the answer`, async () => {
      const res = await gql(t.url, LIST, vars, admin);
      expect(res.status).toBe(200);
      expect(errorCodes(res)).toEqual(['BAD_USER_INPUT']);
      expect(res.body.errors![0]!.message).toBe('Malformed cursor');
      expect(JSON.stringify(res.body)).not.toMatch(/select|22003|stack/i);
    });
  }

  it('seq:2147483647 (int4 max) is a valid cursor: the page after it holds the newest sessions', async () => {
    const res = await gql(t.url, LIST, { first: 5, after: cursor('seq:2147483647') }, admin);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.sessions.edges.length).toBeGreaterThan(0);
  });

  it('sessions(first: 1000) written in the query → "first must be between 1 and 100", BAD_USER_INPUT, not the cost limit', async () => {
    const res = await gql(t.url, '{ sessions(first: 1000) { edges { node { id } } } }', {}, admin);
    expect(res.body.errors?.map((e) => [e.message, e.extensions?.code])).toEqual([['first must be between 1 and 100', 'BAD_USER_INPUT']]);
    const last = await gql(t.url, '{ sessions(last: 0) { edges { node { id } } } }', {}, admin);
    expect(last.body.errors?.map((e) => [e.message, e.extensions?.code])).toEqual([['last must be between 1 and 100', 'BAD_USER_INPUT']]);
  });

  it('the same through a variable gets the same answer', async () => {
    const res = await gql(t.url, LIST, { first: 1000 }, admin);
    expect(res.body.errors?.map((e) => [e.message, e.extensions?.code])).toEqual([['first must be between 1 and 100', 'BAD_USER_INPUT']]);
  });

  it('every query-limit error carries GRAPHQL_VALIDATION_FAILED (no "Syntax Error" for what is not one)', async () => {
    const aliases = Array.from({ length: 21 }, (_, i) => `a${i}: node(id: "x") { id }`).join(' ');
    for (const query of [
      `{ ${aliases} }`,
      `{ ${'__typename '.repeat(2100)}}`,
      `{ __typename ${'@include(if: true) '.repeat(25)}}`,
      `{ sessionByRoom(roomName: "x") { ${'... on Session { '.repeat(12)}id${' }'.repeat(12)} } }`,
      '{ a: sessions(first: 100) { edges { node { id roomName title status version roomSid startedAt stoppedAt createdAt updatedAt } } } b: sessions(first: 100) { edges { node { id roomName title status } } } }',
    ]) {
      const res = await gql(t.url, query, {}, admin);
      expect(res.body.errors, `${query.slice(0, 60)}: ${JSON.stringify(res.body).slice(0, 300)}`).toBeDefined();
      for (const e of res.body.errors!) {
        expect(e.extensions?.code, e.message).toBe('GRAPHQL_VALIDATION_FAILED');
        expect(e.message).not.toMatch(/^Syntax Error/);
      }
    }
  });
});

describe('room names the webhook path stores are usable through GraphQL (issue 8 item 6)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ SESSION_AUTO_CREATE: 'true' });
  });
  afterAll(() => t?.stop());

  it(`an auto-created ${MAX_ROOM_NAME_LENGTH}-character room is found and watched with that room's join token`, async () => {
    const roomName = unique('long').padEnd(MAX_ROOM_NAME_LENGTH, 'x');
    expect((await sendEvent(t.url, 'room_started', newRoomInstance(roomName))).status).toBe(200);
    const join = await mintToken({ roomJoin: true, room: roomName });
    const found = await gql(t.url, 'query($r: String!) { sessionByRoom(roomName: $r) { roomName status } }', { r: roomName }, join);
    expect(found.body).toEqual({ data: { sessionByRoom: { roomName, status: 'LIVE' } } });

    const client = wsClient(t.url, join);
    try {
      const first = await firstResult(client, WATCH, { r: roomName });
      expect(first.result?.data.sessionStatusChanged).toMatchObject({ status: 'LIVE', eventType: 'snapshot' });
    } finally {
      await client.dispose();
    }
  });

  it(`${MAX_ROOM_NAME_LENGTH + 1} characters or a NUL are BAD_USER_INPUT with the shared rule's words`, async () => {
    const admin = await adminToken();
    const long = await gql(t.url, 'query($r: String!) { sessionByRoom(roomName: $r) { id } }', { r: 'x'.repeat(MAX_ROOM_NAME_LENGTH + 1) }, admin);
    expect(long.body.errors?.map((e) => [e.message, e.extensions?.code])).toEqual([['roomName must be at most 256 characters', 'BAD_USER_INPUT']]);
    const nul = await gql(t.url, 'query($r: String!) { sessionByRoom(roomName: $r) { id } }', { r: 'a\u0000b' }, admin);
    expect(nul.body.errors?.map((e) => [e.message, e.extensions?.code])).toEqual([['roomName must not contain NUL', 'BAD_USER_INPUT']]);
  });
});

describe('which keys sign GraphQL tokens (issue 8 item 8)', () => {
  const WEBHOOK_ONLY = { apiKey: 'hookkey', apiSecret: 'hook-secret-0123456789abcdef' };
  const ROTATED = { apiKey: 'clientkey2', apiSecret: 'client-secret-0123456789abcdef' };
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      LIVEKIT_WEBHOOK_KEYS: `${WEBHOOK_ONLY.apiKey}:${WEBHOOK_ONLY.apiSecret}`,
      GRAPHQL_TOKEN_KEYS: `${ROTATED.apiKey}:${ROTATED.apiSecret}`,
    });
  });
  afterAll(() => t?.stop());

  const list = (creds: { apiKey: string; apiSecret: string }) => mintToken({ roomList: true }, { apiKey: creds.apiKey, secret: creds.apiSecret });
  const ask = async (token: string) => gql(t.url, '{ sessions(first: 1) { edges { node { id } } } }', {}, token);

  it('a token signed with a LIVEKIT_WEBHOOK_KEYS key → UNAUTHENTICATED (HTTP) and 4401 (WebSocket)', async () => {
    const token = await list(WEBHOOK_ONLY);
    const res = await ask(token);
    expect(errorCodes(res)).toEqual(['UNAUTHENTICATED']);
    expect(res.body.errors![0]!.message).toBe('Invalid access token: unknown API key');
    const client = wsClient(t.url, token);
    const closed = new Promise<number>((resolve) => client.on('closed', (e) => resolve((e as { code: number }).code)));
    await firstResult(client, '{ __typename }').catch(() => undefined);
    expect(await closed).toBe(4401);
    await client.dispose();
  });

  it('the webhook key still signs webhooks', async () => {
    expect((await sendEvent(t.url, 'room_started', newRoomInstance(unique('hook')), { creds: WEBHOOK_ONLY })).status).toBe(200);
  });

  it('LIVEKIT_API_KEY and GRAPHQL_TOKEN_KEYS sign GraphQL tokens', async () => {
    expect((await ask(await adminToken())).body.errors).toBeUndefined();
    expect((await ask(await list(ROTATED))).body.errors).toBeUndefined();
  });
});

describe('graphql-ws: limits and caps are per operation, the socket stays (issue 8 items 3 and 5)', () => {
  let t: TestApp;
  let admin: string;
  beforeAll(async () => {
    t = await startTestApp({ GRAPHQL_MAX_SUBSCRIPTIONS_PER_CONNECTION: '3' });
    admin = await adminToken();
  });
  afterAll(() => t?.stop());

  it('a query over each limit is an error for that operation; the open subscription on the socket keeps receiving', async () => {
    // graphql-ws prints a thrown error's stack with console.error (not a JSON line) before closing with 4500.
    const stderr = vi.spyOn(console, 'error');
    const roomName = unique('limits');
    await createSession(t.url, roomName, admin);
    const join = await mintToken({ roomJoin: true, room: roomName });
    const client = wsClient(t.url, join);
    let closedWith: number | undefined;
    client.on('closed', (e) => (closedWith = (e as { code: number }).code));
    try {
      const live = watch(client, WATCH, { r: roomName });
      await live.waitFor(1);
      const aliases = Array.from({ length: 21 }, (_, i) => `a${i}: node(id: "x") { id }`).join(' ');
      for (const [limit, query] of [
        ['aliases', `{ ${aliases} }`],
        ['depth', `{ sessionByRoom(roomName: "${roomName}") { ${'... on Session { '.repeat(12)}id${' }'.repeat(12)} } }`],
        ['cost', `{ ${'... on Query { '.repeat(50)}__typename${' }'.repeat(50)} }`],
        ['directives', `{ __typename ${'@include(if: true) '.repeat(25)}}`],
        ['tokens', `{ ${'__typename '.repeat(2100)}}`],
      ] as const) {
        const outcome = await firstResult(client, query);
        expect(outcome.errors, `${limit}: ${JSON.stringify(outcome).slice(0, 300)}`).toBeDefined();
        expect(
          outcome.errors!.map((e) => e.extensions?.code),
          limit,
        ).toEqual(outcome.errors!.map(() => 'GRAPHQL_VALIDATION_FAILED'));
      }
      expect(closedWith).toBeUndefined();
      expect((await sendEvent(t.url, 'room_started', newRoomInstance(roomName))).status).toBe(200);
      const results = await live.waitFor(2);
      expect(results[1]).toEqual({ data: { sessionStatusChanged: { status: 'LIVE', version: 2, eventType: 'room_started' } } });
      // And the socket still takes new operations.
      expect((await firstResult(client, '{ __typename }')).result).toEqual({ data: { __typename: 'Query' } });
      expect(stderr).not.toHaveBeenCalled();
      live.dispose();
    } finally {
      stderr.mockRestore();
      await client.dispose();
    }
  });

  it('past GRAPHQL_MAX_SUBSCRIPTIONS_PER_CONNECTION (3) the next one gets TOO_MANY_SUBSCRIPTIONS; the others live on', async () => {
    const roomName = unique('cap');
    await createSession(t.url, roomName, admin);
    const join = await mintToken({ roomJoin: true, room: roomName });
    const client = wsClient(t.url, join);
    let closedWith: number | undefined;
    client.on('closed', (e) => (closedWith = (e as { code: number }).code));
    try {
      const open = [watch(client, WATCH, { r: roomName }), watch(client, WATCH, { r: roomName }), watch(client, WATCH, { r: roomName })];
      for (const w of open) await w.waitFor(1);
      const refused = await firstResult(client, WATCH, { r: roomName });
      expect(refused.errors?.map((e) => e.extensions?.code)).toEqual(['TOO_MANY_SUBSCRIPTIONS']);
      expect(closedWith).toBeUndefined();

      expect((await sendEvent(t.url, 'room_started', newRoomInstance(roomName))).status).toBe(200);
      for (const w of open) expect((await w.waitFor(2))[1]?.data.sessionStatusChanged.status).toBe('LIVE');
      // Completing one makes room for another.
      open[0]!.dispose();
      const again = watch(client, WATCH, { r: roomName });
      expect((await again.waitFor(1))[0]?.data.sessionStatusChanged).toMatchObject({ status: 'LIVE', eventType: 'snapshot' });
      again.dispose();
      for (const w of open.slice(1)) w.dispose();
    } finally {
      await client.dispose();
    }
  });
});

describe('a WebSocket ends when its token expires (issue 8 item 9)', () => {
  let t: TestApp;
  beforeAll(async () => {
    // No clock tolerance so the test waits seconds, not a minute.
    t = await startTestApp({ WEBHOOK_CLOCK_TOLERANCE_SECONDS: '0' });
  });
  afterAll(() => t?.stop());

  it('closes with 4401 at expiry, ending the live subscription', async () => {
    const admin = await adminToken();
    const roomName = unique('expiry');
    await createSession(t.url, roomName, admin);
    const short = await mintToken({ roomJoin: true, room: roomName }, { ttl: 3 });
    const client = wsClient(t.url, short);
    const closed = new Promise<number>((resolve) => client.on('closed', (e) => resolve((e as { code: number }).code)));
    try {
      const live = watch(client, WATCH, { r: roomName });
      await live.waitFor(1);
      const code = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('still open after 10 s'), 10_000))]);
      expect(code).toBe(4401);
    } finally {
      await client.dispose();
    }
  });
});

const backends = await availableBackends();

describe('development admin token (issue 8 item 1, issue 9 point 11)', { timeout: 90_000 }, () => {
  /** A development app with its log lines and what it shows the person at the terminal. */
  async function devApp(env: Record<string, string> = {}) {
    const schema = uniqueName('dev');
    const lines: string[] = [];
    const announced: string[] = [];
    const config = loadConfig({
      NODE_ENV: 'development',
      PORT: '0',
      LOG_LEVEL: 'info',
      DATABASE_SCHEMA: schema,
      REDIS_PREFIX: `${schema}:`,
      ...(backends.postgres ? { DATABASE_URL: TEST_DATABASE_URL } : { PGLITE_DATA_DIR: 'memory://' }),
      ...(backends.redis ? { REDIS_URL: TEST_REDIS_URL } : {}),
      ...env,
    });
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const app = await createApp(config, { logger, announce: (text) => announced.push(text) });
    const url = await app.start();
    return {
      app,
      url,
      lines,
      announced,
      token: () => /\n(ey[\w-]+\.[\w-]+\.[\w-]+)\n/.exec(announced.join('\n'))?.[1],
      async stop() {
        await app.stop();
        if (config.database.kind === 'postgres') await dropSchema(schema).catch(() => {});
      },
    };
  }
  /** What the GraphiQL page (9 MB: never compared whole) is rendered with, and its note. */
  async function graphiql(url: string): Promise<{ options: Record<string, any>; note: string; token?: string }> {
    const page = await (await fetch(`${url}/graphql`, { headers: { Accept: 'text/html' } })).text();
    const options = JSON.parse(/renderYogaGraphiQL\(\s*window\.document\.querySelector\('#root'\),\s*(\{.*\}),\s*\);/.exec(page)![1]!) as Record<string, any>;
    const note = /<div id="lkss-note"[^>]*>(.*?)<\/div>/.exec(page)?.[1] ?? '';
    const bearer = /^Bearer (.+)$/.exec(options.additionalHeaders?.Authorization ?? '')?.[1];
    // The token appears nowhere else on the page (not in a saved-tab header that would outlive a restart).
    if (bearer) expect(page.split(bearer).length - 1).toBe(1);
    return { options, note, token: bearer };
  }

  it('HOST defaults to 127.0.0.1 in development and 0.0.0.0 in production', () => {
    expect(loadConfig({ NODE_ENV: 'development' }).host).toBe('127.0.0.1');
    expect(loadConfig({}).host).toBe('127.0.0.1');
    const production = loadConfig({
      NODE_ENV: 'production',
      LIVEKIT_API_KEY: 'prodkey',
      LIVEKIT_API_SECRET: 'prod-secret-0123456789abcdef',
      DATABASE_URL: 'postgres://x@127.0.0.1/db',
    });
    expect(production.host).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '::1' }).host).toBe('::1');
  });

  it('logs the address it bound, shows the token only outside the logs, and GraphiQL on loopback sends it', async () => {
    const dev = await devApp();
    try {
      const token = dev.token();
      expect(token).toBeDefined();
      expect(dev.lines.join('\n')).not.toContain(token!);
      expect(dev.lines.join('\n')).not.toMatch(/ey[\w-]+\.[\w-]+\.[\w-]+/);
      const listening = dev.lines.map((l) => JSON.parse(l) as { msg: string; bound?: string }).find((l) => l.msg.startsWith('listening on'));
      const port = new URL(dev.url).port;
      expect(listening?.bound).toBe(`127.0.0.1:${port}`);
      expect(listening?.msg).toContain(`listening on 127.0.0.1:${port}`);

      const page = await graphiql(dev.url);
      expect(page.token).toBe(token);
      expect(page.note).toMatch(/development admin token<\/b> \(roomList \+ roomCreate \+ roomAdmin, valid 12 h, minted when the server started at/);
      // Kept out of saved tabs: no `headers` option that GraphiQL would store with each tab.
      expect(page.options.headers).toBeUndefined();
      expect(page.options.defaultHeaders).toBeUndefined();
      // The token GraphiQL sends works.
      expect((await gql(dev.url, '{ sessions(first: 1) { edges { node { id } } } }', {}, token)).body.errors).toBeUndefined();
    } finally {
      await dev.stop();
    }
  });

  it('a restart mints a new token and the page serves the new one', async () => {
    const first = await devApp();
    const firstToken = first.token();
    await first.stop();
    await new Promise((r) => setTimeout(r, 1100)); // a JWT's iat has one-second resolution
    const second = await devApp();
    try {
      expect(second.token()).not.toBe(firstToken);
      expect((await graphiql(second.url)).token).toBe(second.token());
    } finally {
      await second.stop();
    }
  });

  it('not the dev key: GraphiQL sends no token, unless GRAPHIQL_DEV_TOKEN=on', async () => {
    const keys = { LIVEKIT_API_KEY: 'realkey', LIVEKIT_API_SECRET: 'real-secret-0123456789abcdef' };
    const real = await devApp(keys);
    try {
      const page = await graphiql(real.url);
      expect(page.options.additionalHeaders).toBeUndefined();
      expect(page.note).toContain('Send a LiveKit access token in the Headers tab');
    } finally {
      await real.stop();
    }
    const forced = await devApp({ ...keys, GRAPHIQL_DEV_TOKEN: 'on' });
    try {
      expect((await graphiql(forced.url)).token).toBe(forced.token());
    } finally {
      await forced.stop();
    }
  });

  it("the page's first script drops a dev-admin token earlier versions saved in tabs and reopens the saved tab (no duplicate)", async () => {
    const oldAdmin = await mintToken({ roomList: true }, { identity: 'dev-admin' });
    const mine = await mintToken({ roomJoin: true, room: 'r' }, { identity: 'someone' });
    const tab = (id: string, query: string, headers: Record<string, string> | null) => ({
      id,
      title: id,
      query,
      variables: null,
      headers: headers && JSON.stringify(headers),
      operationName: null,
      response: null,
    });
    const store = new Map([
      [
        'graphiql:tabState',
        JSON.stringify({
          activeTabIndex: 1,
          tabs: [tab('a', '{ a }', { Authorization: `Bearer ${oldAdmin}` }), tab('b', '{ b }', { Authorization: `Bearer ${mine}`, 'X-Other': '1' })],
        }),
      ],
    ]);
    let replaced: string | undefined;
    runInNewContext(FORGET_OLD_TOKENS, {
      localStorage: { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) },
      location: { href: 'http://127.0.0.1:3000/graphql' },
      history: { replaceState: (_s: unknown, _t: string, url: URL) => void (replaced = String(url)) },
      URL,
      atob,
    });
    const state = JSON.parse(store.get('graphiql:tabState')!) as { tabs: Array<{ headers: string | null }> };
    expect(state.tabs.map((t) => t.headers && JSON.parse(t.headers))).toEqual([null, { Authorization: `Bearer ${mine}`, 'X-Other': '1' }]);
    expect(new URL(replaced!).searchParams.get('query')).toBe('{ b }');
  });

  const external = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  it.skipIf(!external)('a browser on another address (HOST=0.0.0.0) gets no token; GRAPHIQL_DEV_TOKEN=on overrides', async () => {
    const everywhere = await devApp({ HOST: '0.0.0.0' });
    try {
      const port = new URL(everywhere.url).port;
      const listening = everywhere.lines.map((l) => JSON.parse(l) as { msg: string; bound?: string }).find((l) => l.msg.startsWith('listening on'));
      expect(listening?.bound).toBe(`0.0.0.0:${port} (every interface)`);
      const remote = await graphiql(`http://${external}:${port}`);
      expect(remote.options.title).toBe('livekit-session-state');
      expect(remote.token).toBeUndefined();
      expect((await graphiql(everywhere.url)).token).toBe(everywhere.token());
    } finally {
      await everywhere.stop();
    }
    const forced = await devApp({ HOST: '0.0.0.0', GRAPHIQL_DEV_TOKEN: 'on' });
    try {
      expect((await graphiql(`http://${external}:${new URL(forced.url).port}`)).token).toBe(forced.token());
    } finally {
      await forced.stop();
    }
  });
});

describe('configuration words and the schema (issue 9 points 4, 7, 11)', () => {
  it('GRAPHIQL and INTROSPECTION take yes/no/on/off like every other flag', () => {
    const config = loadConfig({ GRAPHIQL: 'off', INTROSPECTION: 'no' });
    expect([config.graphql.graphiql, config.graphql.introspection]).toEqual([false, false]);
    const on = loadConfig({ NODE_ENV: 'production', GRAPHIQL: 'yes', INTROSPECTION: 'on', ...PRODUCTION });
    expect([on.graphql.graphiql, on.graphql.introspection]).toEqual([true, true]);
  });

  it('GRAPHQL_MAX_SUBSCRIPTIONS_PER_CONNECTION defaults to 100', () => {
    expect(loadConfig({}).graphql.maxSubscriptionsPerConnection).toBe(100);
  });

  it('every type, field and argument has a description', () => {
    const missing: string[] = [];
    for (const type of Object.values(buildSchema().getTypeMap())) {
      if (type.name.startsWith('__') || ['String', 'Boolean', 'Int', 'ID', 'Float'].includes(type.name)) continue;
      if (!type.description) missing.push(type.name);
      if (!isObjectType(type) && !isInterfaceType(type) && !isInputObjectType(type)) continue;
      for (const field of Object.values(type.getFields() as GraphQLFieldMap<unknown, unknown>)) {
        if (!field.description) missing.push(`${type.name}.${field.name}`);
        for (const arg of field.args ?? []) if (!arg.description) missing.push(`${type.name}.${field.name}(${arg.name})`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every root field declares its grant (authScopes) and names it in its description', () => {
    const schema = buildSchema();
    for (const root of [schema.getQueryType()!, schema.getMutationType()!, schema.getSubscriptionType()!]) {
      for (const field of Object.values(root.getFields())) {
        const options = (field.extensions as { pothosOptions?: { authScopes?: unknown } }).pothosOptions;
        expect(options?.authScopes, `${root.name}.${field.name}`).toBeDefined();
        expect(field.description, `${root.name}.${field.name}`).toMatch(/roomList|roomCreate|valid token/);
      }
    }
  });
});

const PRODUCTION = { LIVEKIT_API_KEY: 'prodkey', LIVEKIT_API_SECRET: 'prod-secret-0123456789abcdef', DATABASE_URL: 'postgres://x@127.0.0.1/db' };
