/**
 * The GraphQL API (issue 3): queries, the createSession mutation, input errors with their codes,
 * NOT_FOUND subscriptions through the official SSE and WebSocket clients, and the contract names
 * in the printed schema. Real app, real Postgres and Redis, real HTTP.
 */
import { parse, print, visit } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printedSchema } from '../src/graphql/schema.js';
import { newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';
import { adminToken, createSession, errorCodes, gql } from '../tools/kit/graphql.js';
import { sseClient, wsClient } from '../tools/kit/clients.js';

let t: TestApp;
let token: string;

beforeAll(async () => {
  t = await startTestApp();
  token = await adminToken();
});
afterAll(() => t?.stop());

const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 10)}`;
const sessionCount = async () =>
  Number(
    (
      await t.app.database.db
        .selectFrom('sessions')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

const SESSION_FIELDS = 'id roomName title status version roomSid startedAt stoppedAt createdAt updatedAt';
const CREATE = `mutation($input: CreateSessionInput!) { createSession(input: $input) { session { ${SESSION_FIELDS} } } }`;
const LIST = `query($first: Int, $after: String, $last: Int, $before: String, $status: SessionStatus) {
  sessions(first: $first, after: $after, last: $last, before: $before, status: $status) {
    edges { cursor node { id roomName status } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

type Page = {
  edges: Array<{ cursor: string; node: { id: string; roomName: string; status: string } }>;
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
};

async function listPage(vars: Record<string, unknown>): Promise<Page> {
  const res = await gql(t.url, LIST, vars, token);
  expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
  return res.body.data.sessions as Page;
}

describe('createSession and reads', () => {
  it('creates a READY session that session(id), sessionByRoom and node(id) all return', async () => {
    const roomName = unique('read');
    const before = Date.now();
    const res = await gql(t.url, CREATE, { input: { roomName, title: 'Reading group' } }, token);
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    const session = res.body.data.createSession.session;
    expect(session).toMatchObject({ roomName, title: 'Reading group', status: 'READY', version: 1, roomSid: null, startedAt: null, stoppedAt: null });
    expect(typeof session.id).toBe('string');
    expect(Date.parse(session.createdAt)).toBeGreaterThanOrEqual(before - 5_000);
    expect(session.updatedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const byId = await gql(t.url, `query($id: ID!) { session(id: $id) { ${SESSION_FIELDS} } }`, { id: session.id }, token);
    expect(byId.body.errors).toBeUndefined();
    expect(byId.body.data.session).toEqual(session);

    const byRoom = await gql(t.url, `query($r: String!) { sessionByRoom(roomName: $r) { ${SESSION_FIELDS} } }`, { r: roomName }, token);
    expect(byRoom.body.data.sessionByRoom).toEqual(session);

    const node = await gql(t.url, `query($id: ID!) { node(id: $id) { __typename id ... on Session { roomName status version } } }`, { id: session.id }, token);
    expect(node.body.errors).toBeUndefined();
    expect(node.body.data.node).toEqual({ __typename: 'Session', id: session.id, roomName, status: 'READY', version: 1 });

    // The row really is in Postgres.
    const row = await t.app.database.db.selectFrom('sessions').selectAll().where('room_name', '=', roomName).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'READY', version: 1, title: 'Reading group' });
  });

  it('answers null for a well-formed id or room name that has no session', async () => {
    const missingUuid = '00000000-0000-4000-8000-000000000000';
    const res = await gql(
      t.url,
      'query($id: ID!, $r: String!) { session(id: $id) { id } sessionByRoom(roomName: $r) { id } }',
      { id: missingUuid, r: unique('none') },
      token,
    );
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data).toEqual({ session: null, sessionByRoom: null });
  });

  it('reflects webhook changes in the read fields (status, version, roomSid, startedAt)', async () => {
    const roomName = unique('changes');
    const created = await createSession(t.url, roomName, token);
    const room = newRoomInstance(roomName);
    expect((await sendEvent(t.url, 'room_started', room)).status).toBe(200);
    const res = await gql(t.url, `query($id: ID!) { session(id: $id) { ${SESSION_FIELDS} } }`, { id: created.id }, token);
    expect(res.body.data.session).toMatchObject({ status: 'LIVE', version: 2, roomSid: room.sid, stoppedAt: null });
    expect(res.body.data.session.startedAt).not.toBeNull();
  });
});

describe('sessions connection', () => {
  // Its own schema would already hold sessions from the tests above; this suite creates its own set and
  // checks the connection's order against the database's view of all rows.
  const created: Array<{ id: string; roomName: string }> = [];
  let all: Page['edges'];

  beforeAll(async () => {
    for (let i = 0; i < 8; i++) created.push(await createSession(t.url, unique(`page${i}`), token));
    // Two LIVE, one of them then STOPPED.
    for (const i of [2, 5]) expect((await sendEvent(t.url, 'room_started', newRoomInstance(created[i]!.roomName))).status).toBe(200);
    const stopRoom = newRoomInstance(created[5]!.roomName);
    expect((await sendEvent(t.url, 'room_started', stopRoom)).status).toBe(200);
    expect((await sendEvent(t.url, 'room_finished', stopRoom)).status).toBe(200);
    all = (await listPage({ first: 100 })).edges;
  });

  it('lists newest first, matching the database', async () => {
    const rows = await t.app.database.db.selectFrom('sessions').select(['id', 'room_name']).orderBy('seq', 'desc').execute();
    expect(all.map((e) => e.node.roomName)).toEqual(rows.map((r) => r.room_name));
    // The ones this suite created, in reverse creation order, at the head of the list.
    expect(all.slice(0, created.length).map((e) => e.node.id)).toEqual([...created].reverse().map((c) => c.id));
    expect(new Set(all.map((e) => e.cursor)).size).toBe(all.length);
  });

  it('pages forward with first/after across at least three pages', async () => {
    expect(all.length).toBeGreaterThanOrEqual(7);
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const page: Page = await listPage({ first: 3, after });
      pages++;
      expect(page.edges.length).toBeLessThanOrEqual(3);
      expect(page.pageInfo.startCursor).toBe(page.edges[0]?.cursor ?? null);
      expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)?.cursor ?? null);
      if (after === null) expect(page.pageInfo.hasPreviousPage).toBe(false);
      seen.push(...page.edges.map((e) => e.node.id));
      if (!page.pageInfo.hasNextPage) {
        expect(seen.length).toBe(all.length);
        break;
      }
      expect(page.edges.length).toBe(3);
      after = page.pageInfo.endCursor;
      expect(pages).toBeLessThan(50);
    }
    expect(pages).toBe(Math.ceil(all.length / 3));
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(seen).toEqual(all.map((e) => e.node.id));
  });

  it('pages backward with last/before across at least three pages, keeping newest-first order within each page', async () => {
    const seen: string[][] = [];
    let before: string | null = null;
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(50);
      const page: Page = await listPage({ last: 3, before });
      expect(page.edges.length).toBeLessThanOrEqual(3);
      seen.unshift(page.edges.map((e) => e.node.id));
      if (before === null) expect(page.pageInfo.hasNextPage).toBe(false);
      if (!page.pageInfo.hasPreviousPage) break;
      expect(page.edges.length).toBe(3);
      before = page.pageInfo.startCursor;
    }
    expect(seen.length).toBeGreaterThanOrEqual(3);
    // The last page (oldest sessions) is three long, the first one holds the remainder.
    expect(seen.at(-1)!.length).toBe(3);
    expect(seen.flat()).toEqual(all.map((e) => e.node.id));
  });

  it('combines a cursor from the forward walk with last/before', async () => {
    const mid = all[5]!.cursor;
    const page = await listPage({ last: 2, before: mid });
    expect(page.edges.map((e) => e.node.id)).toEqual([all[3]!.node.id, all[4]!.node.id]);
    expect(page.pageInfo.hasPreviousPage).toBe(true);
  });

  it('filters by status', async () => {
    const byStatus = async (status: string) => (await listPage({ first: 100, status })).edges.map((e) => e.node);
    const live = await byStatus('LIVE');
    const stopped = await byStatus('STOPPED');
    const ready = await byStatus('READY');
    expect(live.map((n) => n.id)).toContain(created[2]!.id);
    expect(live.map((n) => n.id)).not.toContain(created[5]!.id);
    expect(stopped.map((n) => n.id)).toContain(created[5]!.id);
    expect(ready.map((n) => n.id)).toEqual(expect.arrayContaining([0, 1, 3, 4, 6, 7].map((i) => created[i]!.id)));
    for (const [list, status] of [
      [live, 'LIVE'],
      [stopped, 'STOPPED'],
      [ready, 'READY'],
    ] as const) {
      expect(list.every((n) => n.status === status)).toBe(true);
    }
    expect(live.length + stopped.length + ready.length).toBe(all.length);
    // Keeps newest-first order and pages within the filter.
    const first = await listPage({ first: 2, status: 'READY' });
    expect(first.edges.map((e) => e.node.id)).toEqual(ready.slice(0, 2).map((n) => n.id));
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = await listPage({ first: 2, status: 'READY', after: first.pageInfo.endCursor });
    expect(second.edges.map((e) => e.node.id)).toEqual(ready.slice(2, 4).map((n) => n.id));
  });
});

describe('input errors write nothing and carry codes', () => {
  const cases: Array<[string, unknown]> = [
    ['empty', ''],
    ['whitespace', '   \t '],
    ['too long (257 chars)', 'r'.repeat(257)],
    ['control character (NUL)', 'room\u0000x'],
    ['control character (newline)', 'room\nx'],
    ['control character (DEL)', 'room\u007fx'],
    ['line separator', 'room\u2028x'],
  ];
  for (const [label, roomName] of cases) {
    it(`createSession with a ${label} roomName → BAD_USER_INPUT`, async () => {
      const countBefore = await sessionCount();
      const res = await gql(t.url, CREATE, { input: { roomName } }, token);
      expect(errorCodes(res)).toEqual(['BAD_USER_INPUT']);
      expect(res.body.data?.createSession ?? null).toBeNull();
      expect(await sessionCount()).toBe(countBefore);
    });
  }

  it('accepts a roomName of exactly 128 characters', async () => {
    const roomName = unique('max').padEnd(128, 'x');
    const s = await createSession(t.url, roomName, token);
    expect(s.roomName).toBe(roomName);
  });

  it('a duplicate roomName → ALREADY_EXISTS, and the original is untouched', async () => {
    const roomName = unique('dup');
    const original = await createSession(t.url, roomName, token, 'first');
    const countBefore = await sessionCount();
    const res = await gql(t.url, CREATE, { input: { roomName, title: 'second' } }, token);
    expect(errorCodes(res)).toEqual(['ALREADY_EXISTS']);
    expect(await sessionCount()).toBe(countBefore);
    const again = await gql(t.url, 'query($r: String!) { sessionByRoom(roomName: $r) { id title } }', { r: roomName }, token);
    expect(again.body.data.sessionByRoom).toEqual({ id: original.id, title: 'first' });
  });

  it('sessionByRoom validates the room name too', async () => {
    const res = await gql(t.url, 'query($r: String!) { sessionByRoom(roomName: $r) { id } }', { r: ' ' }, token);
    expect(errorCodes(res)).toEqual(['BAD_USER_INPUT']);
  });

  for (const id of [
    'not-an-id',
    '',
    '12345',
    Buffer.from('Other:00000000-0000-4000-8000-000000000000').toString('base64'),
    Buffer.from('Session:nope').toString('base64'),
  ]) {
    it(`session(id: ${JSON.stringify(id)}) → BAD_USER_INPUT`, async () => {
      const res = await gql(t.url, 'query($id: ID!) { session(id: $id) { id } }', { id }, token);
      expect(errorCodes(res)).toEqual(['BAD_USER_INPUT']);
      expect(res.body.data?.session ?? null).toBeNull();
    });
  }

  for (const [label, vars] of [
    ['first: 0', { first: 0 }],
    ['first: 101', { first: 101 }],
    ['first: -1', { first: -1 }],
    ['last: 0', { last: 0 }],
    ['last: 101', { last: 101 }],
    ['a malformed after cursor', { first: 5, after: 'not a cursor' }],
    ['a malformed before cursor', { last: 5, before: Buffer.from('seq:abc').toString('base64url') }],
  ] as const) {
    it(`sessions(${label}) → BAD_USER_INPUT`, async () => {
      const res = await gql(t.url, LIST, vars, token);
      expect(errorCodes(res)).toEqual(['BAD_USER_INPUT']);
      expect(res.body.data?.sessions ?? null).toBeNull();
    });
  }

  it('sessions(first: 100) is allowed', async () => {
    const page = await listPage({ first: 100 });
    expect(page.edges.length).toBeGreaterThan(0);
  });
});

type Result = { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> };

/** Runs an operation through the official graphql-sse client and collects every result until complete. */
function viaSse(url: string, query: string, variables: Record<string, unknown>, bearer: string): Promise<Result[]> {
  const client = sseClient(url, bearer);
  const results: Result[] = [];
  return new Promise<Result[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`SSE: no completion within 10 s; got ${JSON.stringify(results)}`)), 10_000);
    client.subscribe(
      { query, variables },
      {
        next: (r) => void results.push(r as Result),
        error: (err) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
        },
        complete: () => {
          clearTimeout(timer);
          resolve(results);
        },
      },
    );
  }).finally(() => client.dispose());
}

/** The same through the official graphql-ws client. */
function viaWs(url: string, query: string, variables: Record<string, unknown>, bearer: string): Promise<Result[]> {
  const client = wsClient(url, bearer);
  const results: Result[] = [];
  return new Promise<Result[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`WS: no completion within 10 s; got ${JSON.stringify(results)}`)), 10_000);
    client.subscribe(
      { query, variables },
      {
        next: (r) => void results.push(r as Result),
        error: (err) => {
          clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(`closed: ${JSON.stringify(err)} ${(err as { code?: number }).code ?? ''}`));
        },
        complete: () => {
          clearTimeout(timer);
          resolve(results);
        },
      },
    );
  }).finally(() => client.dispose());
}

describe('subscriptions to something that does not exist', () => {
  const SUB = 'subscription($id: ID, $roomName: String) { sessionStatusChanged(id: $id, roomName: $roomName) { status version eventType } }';
  const variants: Array<[string, () => Record<string, unknown>]> = [
    ['a room with no session', () => ({ roomName: unique('ghost') })],
    ['an id with no session', () => ({ id: '00000000-0000-4000-8000-000000000000' })],
  ];
  for (const [transport, run] of [
    ['SSE (graphql-sse)', viaSse],
    ['WebSocket (graphql-ws)', viaWs],
  ] as const) {
    for (const [label, vars] of variants) {
      it(`${transport}: ${label} → one NOT_FOUND result, then complete`, async () => {
        const results = await run(t.url, SUB, vars(), token);
        expect(results).toHaveLength(1);
        expect(results[0]!.errors?.map((e) => e.extensions?.code)).toEqual(['NOT_FOUND']);
        expect(results[0]!.data ?? null).toBeNull();
      });
    }
    it(`${transport}: a malformed id → BAD_USER_INPUT`, async () => {
      const results = await run(t.url, SUB, { id: 'garbage' }, token);
      expect(results.map((r) => r.errors?.map((e) => e.extensions?.code))).toEqual([['BAD_USER_INPUT']]);
    });
    it(`${transport}: an existing room → the snapshot first (control for the cases above)`, async () => {
      const roomName = unique('exists');
      await createSession(t.url, roomName, token);
      const first = await new Promise<Result>((resolve, reject) => {
        const sse = transport.startsWith('SSE');
        const client = sse ? sseClient(t.url, token) : wsClient(t.url, token);
        const timer = setTimeout(() => reject(new Error('no snapshot within 10 s')), 10_000);
        const dispose = client.subscribe(
          { query: SUB, variables: { roomName } },
          {
            next: (r) => {
              clearTimeout(timer);
              resolve(r as Result);
              dispose();
              void client.dispose();
            },
            error: reject,
            complete: () => {},
          },
        );
      });
      expect(first).toEqual({ data: { sessionStatusChanged: { status: 'READY', version: 1, eventType: 'snapshot' } } });
    });
  }
});

describe('printed schema (schema:check)', () => {
  // The contract is the shape; the descriptions every field carries are checked in hardening-graphql.test.ts.
  const sdl =
    print(visit(parse(printedSchema()), { enter: (node) => ('description' in node && node.description ? { ...node, description: undefined } : undefined) })) +
    '\n';
  const typeBlock = (head: string) => {
    const start = sdl.indexOf(head);
    expect(start, `missing "${head}"`).toBeGreaterThanOrEqual(0);
    return sdl.slice(start, sdl.indexOf('\n}', start));
  };
  const fieldNames = (block: string) => [...block.matchAll(/^ {2}(\w+)/gm)].map((m) => m[1]);

  it('has Session implementing Node with the contract fields', () => {
    const block = typeBlock('type Session implements Node {');
    expect(fieldNames(block)).toEqual(
      expect.arrayContaining(['id', 'roomName', 'title', 'status', 'version', 'roomSid', 'startedAt', 'stoppedAt', 'createdAt', 'updatedAt']),
    );
    expect(block).toMatch(/^ {2}id: ID!$/m);
    expect(block).toMatch(/^ {2}status: SessionStatus!$/m);
    expect(block).toMatch(/^ {2}version: Int!$/m);
    expect(sdl).toMatch(/enum SessionStatus \{\s+LIVE\s+READY\s+STOPPED\s+\}/);
  });

  it('has SessionStatusChange, Query, Mutation and Subscription as the contract says', () => {
    expect(fieldNames(typeBlock('type SessionStatusChange {'))).toEqual(
      expect.arrayContaining(['session', 'status', 'previousStatus', 'version', 'eventType', 'changedAt']),
    );
    const query = typeBlock('type Query {');
    expect(fieldNames(query)).toEqual(expect.arrayContaining(['node', 'session', 'sessionByRoom', 'sessions']));
    expect(query).toMatch(/node\(id: ID!\): Node/);
    expect(query).toMatch(/session\(id: ID!\): Session\n/);
    expect(query).toMatch(/sessionByRoom\(roomName: String!\): Session\n/);
    expect(query).toMatch(/sessions\(after: String, before: String, first: Int, last: Int, status: SessionStatus\): SessionConnection!/);
    expect(typeBlock('type Mutation {')).toMatch(/createSession\(input: CreateSessionInput!\): CreateSessionPayload!/);
    expect(fieldNames(typeBlock('input CreateSessionInput {'))).toEqual(expect.arrayContaining(['roomName', 'title']));
    expect(typeBlock('input CreateSessionInput {')).toMatch(/roomName: String!/);
    expect(fieldNames(typeBlock('type CreateSessionPayload {'))).toContain('session');
    expect(typeBlock('type Subscription {')).toMatch(/sessionStatusChanged\(id: ID, roomName: String\): SessionStatusChange!/);
    expect(fieldNames(typeBlock('type SessionConnection {'))).toEqual(expect.arrayContaining(['edges', 'pageInfo']));
  });

  it('is sorted and ends with one newline (what the committed file holds)', () => {
    expect(sdl.endsWith('}\n')).toBe(true);
    const typeNames = [...sdl.matchAll(/^(?:type|input|enum|interface|scalar|union) (\w+)/gm)].map((m) => m[1]!);
    expect(typeNames).toEqual([...typeNames].sort((a, b) => a.localeCompare(b, 'en')));
  });
});
