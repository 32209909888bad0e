/**
 * The promises between a committed change and a subscriber, each tested by making the failure it guards
 * against actually happen: concurrent status events for one room, a version a replica never heard of,
 * a Redis link cut while changes commit, a Redis link so slow that a subscription is not live yet when
 * the snapshot could be read. Real HTTP, signed webhooks, real Postgres and Redis (TCP proxies in
 * front of Redis where a link must be cut or slowed).
 */
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../src/db/types.js';
import { buildEvent, encodeEvent, newRoomInstance, postWebhook, sendEvent, signBody, type RoomInstance } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';
import { availableBackends, dropSchema, TEST_DATABASE_URL, TEST_REDIS_URL, uniqueName } from '../tools/kit/backends.js';
import { sseClient } from '../tools/kit/clients.js';
import { adminToken, createSession } from '../tools/kit/graphql.js';
import { startTcpProxy, type TcpProxy } from '../tools/kit/tcp-proxy.js';
import { changeTimes, sessionRowId } from './support/changes.js';

const backends = await availableBackends();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const roomName = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}`;

type Seen = { status: string; version: number; eventType: string; session: { roomName: string } };
const FIELDS = 'status version eventType session { roomName }';

/** One SSE subscription through the official client; collects what arrives. */
function watch(url: string, token: string, variables: { id?: string } = {}) {
  const client = sseClient(url, token);
  const query = variables.id ? `subscription($id: ID!) { sessionStatusChanged(id: $id) { ${FIELDS} } }` : `subscription { sessionStatusChanged { ${FIELDS} } }`;
  const state = { events: [] as Seen[], errors: [] as unknown[] };
  const dispose = client.subscribe<{ sessionStatusChanged: Seen }>(
    { query, variables },
    {
      next: (r) => (r.errors ? state.errors.push(r.errors) : state.events.push(r.data!.sessionStatusChanged)),
      complete: () => {},
      error: (err) => state.errors.push(err),
    },
  );
  return {
    state,
    versions: () => state.events.map((e) => e.version),
    close() {
      dispose();
      client.dispose();
    },
  };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

let token: string;
beforeAll(async () => {
  token = await adminToken();
});

describe('status events for one room at the same moment', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.stop());

  it('room_started and room_finished together, for 30 rooms: every answer 200, versions contiguous, each session STOPPED', async () => {
    const rooms = Array.from({ length: 30 }, () => newRoomInstance(roomName('race')));
    const sessions = await Promise.all(rooms.map((room) => createSession(t.url, room.name, token)));
    // As LiveKit sends them: a 503 (a pooled connection not free in time, under load) is retried with the same body.
    const send = async (type: string, room: RoomInstance) => {
      const body = encodeEvent(buildEvent(type, room));
      const auth = await signBody(body);
      for (let attempt = 1; ; attempt++) {
        const res = await postWebhook(t.url, body, auth);
        if (res.status !== 503 || attempt === 10) return res;
        await sleep(100 * attempt);
      }
    };
    const answers = await Promise.all(rooms.flatMap((room) => [send('room_started', room), send('room_finished', room)]));
    expect(answers.filter((a) => a.status !== 200).map((a) => `${a.status} ${a.text}`)).toEqual([]);

    const db = t.app.database.db;
    for (const [i, s] of sessions.entries()) {
      const mine = answers.slice(2 * i, 2 * i + 2).map((a) => a.json.results.action as string);
      const updates = mine.filter((a) => a === 'status_updated').length;
      // Either order is fine: started first (LIVE then STOPPED), or finished first (STOPPED, the late start is stale).
      expect([
        ['status_updated', 'status_updated'],
        ['stale_event', 'status_updated'],
      ]).toContainEqual([...mine].sort());
      const row = await db.selectFrom('sessions').select(['status', 'version']).where('id', '=', sessionRowId(s.id)).executeTakeFirstOrThrow();
      expect(row).toEqual({ status: 'STOPPED', version: 1 + updates });
      const versions = await db.selectFrom('session_changes').select('version').where('session_id', '=', sessionRowId(s.id)).orderBy('version').execute();
      expect(versions.map((v) => v.version)).toEqual(Array.from({ length: updates }, (_, k) => k + 2));
    }
  });
});

describe.skipIf(!backends.postgres)('a version this replica never heard of (two replicas, separate pub/sub)', () => {
  it('is filled from the change history: the subscriber sees 1, 2, 3 in order, each once', async () => {
    const schema = uniqueName('gap');
    // Two replicas of one database whose pub/sub do not reach each other: A never hears B's publish.
    // A's outbox drain is slowed so that only the gap filling can deliver version 2.
    const a = await startTestApp({ OUTBOX_INTERVAL_MS: '60000' }, { schema, prefix: `${schema}:a:` });
    const b = await startTestApp({}, { schema, prefix: `${schema}:b:` });
    const watcher = { current: undefined as ReturnType<typeof watch> | undefined };
    try {
      const room = newRoomInstance(roomName('gap'));
      const session = await createSession(a.url, room.name, token);
      const w = (watcher.current = watch(a.url, token, { id: session.id }));
      await until(() => w.state.events.length === 1, 10_000, 'the snapshot');

      expect((await sendEvent(b.url, 'room_started', room)).json.results.action).toBe('status_updated');
      const db = a.app.database.db;
      await until(async () => (await changeTimes(db, session.id, 2)).published_at !== null, 10_000, 'B to publish version 2 on its own channel');
      await sleep(300);
      expect(w.versions()).toEqual([1]);

      expect((await sendEvent(a.url, 'room_finished', room)).json.results.action).toBe('status_updated');
      await until(() => w.state.events.length >= 3, 10_000, 'versions 2 and 3');
      await sleep(300);
      expect(w.state.errors).toEqual([]);
      expect(w.state.events.map((e) => [e.version, e.status, e.eventType])).toEqual([
        [1, 'READY', 'snapshot'],
        [2, 'LIVE', 'room_started'],
        [3, 'STOPPED', 'room_finished'],
      ]);
    } finally {
      watcher.current?.close();
      await a.stop();
      await b.stop();
      await dropSchema(schema).catch(() => {});
    }
  });
});

const redisTarget = () => {
  const u = new URL(TEST_REDIS_URL);
  return { host: u.hostname, port: Number(u.port || 6379) };
};

/** Our own connection to the shared schema, to see what was committed and marked published. */
function openSchema(schema: string): Kysely<Database> {
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 2, options: `-c search_path=${schema}` }) }),
  });
}

describe.skipIf(!(backends.postgres && backends.redis))('replica A with its Redis link cut, replica B untouched', () => {
  const schema = uniqueName('cut');
  const prefix = `${schema}:`;
  let proxy: TcpProxy;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    proxy = await startTcpProxy(redisTarget());
    a = await startTestApp({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, { schema, prefix });
    b = await startTestApp({}, { schema, prefix });
  });
  afterAll(async () => {
    proxy?.restore();
    await a?.stop();
    await b?.stop();
    await proxy?.close();
    await dropSchema(schema).catch(() => {});
  });

  it('a change A commits while cut off reaches A’s own subscriber at once and B’s all-sessions subscriber through the outbox; a change B publishes meanwhile reaches A’s session subscriber after the link returns (catch-up)', async () => {
    const mine = newRoomInstance(roomName('mine'));
    const theirs = newRoomInstance(roomName('theirs'));
    const sMine = await createSession(a.url, mine.name, token);
    const sTheirs = await createSession(a.url, theirs.name, token);
    // The all-sessions subscription has no snapshot and no catch-up: only a publish can reach it.
    const all = watch(b.url, token);
    const watchMine = watch(a.url, token, { id: sMine.id });
    const watchTheirs = watch(a.url, token, { id: sTheirs.id });
    const db = openSchema(schema);
    try {
      await until(() => watchMine.state.events.length === 1 && watchTheirs.state.events.length === 1, 10_000, 'both snapshots');
      // Prove the all-sessions subscription is live before the cut.
      const warm = newRoomInstance(roomName('warm'));
      await createSession(a.url, warm.name, token);
      await sendEvent(b.url, 'room_started', warm);
      await until(() => all.state.events.some((e) => e.session.roomName === warm.name), 10_000, 'the all-sessions subscription to be live');

      proxy.cut('reset');
      const committed = await sendEvent(a.url, 'room_started', mine);
      expect(committed.status).toBe(200);
      expect(committed.json.results.action).toBe('status_updated');
      expect((await sendEvent(b.url, 'room_started', theirs)).json.results.action).toBe('status_updated');
      await sleep(1_000);
      // A's own change reached A's own subscriber at once, link or not; B's change could not reach A.
      expect(watchMine.versions()).toEqual([1, 2]);
      expect(watchTheirs.versions()).toEqual([1]);

      proxy.restore();
      await until(
        () => all.state.events.some((e) => e.session.roomName === mine.name) && watchMine.versions().length === 2 && watchTheirs.versions().length === 2,
        20_000,
        'every subscriber to hear of the changes made during the cut',
      );
      await sleep(500);
      expect(all.state.events.filter((e) => e.session.roomName === mine.name).map((e) => [e.version, e.status])).toEqual([[2, 'LIVE']]);
      expect(watchMine.state.events.map((e) => [e.version, e.status])).toEqual([
        [1, 'READY'],
        [2, 'LIVE'],
      ]);
      expect(watchTheirs.state.events.map((e) => [e.version, e.status])).toEqual([
        [1, 'READY'],
        [2, 'LIVE'],
      ]);
      await until(async () => (await changeTimes(db, sMine.id, 2)).published_at !== null, 10_000, 'the drained change to be marked published');
      for (const w of [all, watchMine, watchTheirs]) expect(w.state.errors).toEqual([]);
    } finally {
      all.close();
      watchMine.close();
      watchTheirs.close();
      await db.destroy();
    }
  }, 60_000);
});

describe.skipIf(!(backends.postgres && backends.redis))('a slow Redis link (every command reaches Redis 400 ms late)', () => {
  it('a change published right after the snapshot arrived still reaches the subscriber: the snapshot is read only once Redis confirmed the subscription', async () => {
    const schema = uniqueName('slow');
    const prefix = `${schema}:`;
    const proxy = await startTcpProxy(redisTarget(), { delayToTargetMs: Number(process.env.SLOW_MS ?? 400) });
    // A subscribes over the slow link; B (direct link) receives the webhooks and publishes at once.
    const a = await startTestApp({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, { schema, prefix });
    const b = await startTestApp({}, { schema, prefix });
    const watchers: Array<ReturnType<typeof watch>> = [];
    try {
      await sleep(2_000);
      // First let A's connections to Redis come up (each round trip takes 400 ms more): one change end to end.
      const warm = newRoomInstance(roomName('warm'));
      const sWarm = await createSession(b.url, warm.name, token);
      const warmWatch = watch(a.url, token, { id: sWarm.id });
      watchers.push(warmWatch);
      await until(() => warmWatch.state.events.length === 1, 15_000, 'the first snapshot');
      await sendEvent(b.url, 'room_started', warm);
      await until(() => warmWatch.state.events.length === 2, 15_000, 'the first change over the slow link');

      const rooms = Array.from({ length: 4 }, () => newRoomInstance(roomName('slow')));
      const sessions = await Promise.all(rooms.map((r) => createSession(b.url, r.name, token)));
      await Promise.all(
        sessions.map(async (s, i) => {
          const w = watch(a.url, token, { id: s.id });
          watchers.push(w);
          await until(() => w.state.events.length === 1, 15_000, 'the snapshot');
          expect((await sendEvent(b.url, 'room_started', rooms[i]!)).json.results.action).toBe('status_updated');
        }),
      );
      await until(() => watchers.every((w) => w.state.events.length >= 2), 15_000, 'every subscriber to receive version 2').catch((err: Error) => {
        throw new Error(`${err.message}; got ${JSON.stringify(watchers.map((w) => w.versions()))}`);
      });
      for (const w of watchers) expect(w.versions()).toEqual([1, 2]);
      expect(watchers).toHaveLength(5);
    } finally {
      for (const w of watchers) w.close();
      await a.stop();
      await b.stop();
      await proxy.close();
      await dropSchema(schema).catch(() => {});
    }
  }, 60_000);
});
