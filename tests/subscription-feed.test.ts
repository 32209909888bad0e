/**
 * The shared per-session feed and the direct SSE route (src/realtime/session-feed.ts, src/graphql/sse.ts):
 * many subscribers of the same sessions join at once while those sessions change. Their snapshots are read
 * in batches and each event is encoded once per document and variables, yet every subscriber must get its
 * own session's snapshot first, then every later version exactly once, in order, in the fields it asked for.
 * Real HTTP, signed webhooks, real Postgres and Redis (or the embedded backends where those are missing).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRoomInstance, sendEvent, type RoomInstance } from '../tools/kit/livekit-emulator.js';
import { adminToken, createSession, mintToken } from '../tools/kit/graphql.js';
import { wsClient } from '../tools/kit/clients.js';
import { mapLimit, sleep } from '../tools/kit/async.js';
import { startTestApp, type TestApp } from './support/app.js';
import { startTcpProxy } from '../tools/kit/tcp-proxy.js';
import type { Database } from '../src/db/types.js';
import { Watch } from './support/watch.js';
import { createLocalBus, createRedisBus } from '../src/realtime/bus.js';
import { Redis } from 'ioredis';
import { availableBackends, TEST_DATABASE_URL, TEST_REDIS_URL, uniqueName } from '../tools/kit/backends.js';
import { joinSessionFeed } from '../src/realtime/session-feed.js';
import { snapshotOf, type SessionChange } from '../src/sessions/change.js';
import { createLogger } from '../src/logger.js';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';

const backends = await availableBackends();
let t: TestApp;
let admin: string;
beforeAll(async () => {
  t = await startTestApp();
  admin = await adminToken();
});
afterAll(() => t?.stop());

const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}`;
const UPDATED = 'subscription($r: String) { sessionUpdated(roomName: $r) { version eventType session { roomName } } }';

type Frame = Record<string, any>;

/** A subscription over a bare POST with `Accept: text/event-stream` (as a tab would open it), frames parsed as they come. */
function openStream(query: string, variables: Record<string, unknown>, token: string, opts: { url?: string; headers?: Record<string, string> } = {}) {
  const abort = new AbortController();
  const state = { results: [] as Frame[], errors: [] as string[], completed: false, pings: [] as number[] };
  void (async () => {
    const res = await fetch(`${opts.url ?? t.url}/graphql`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', Authorization: `Bearer ${token}`, ...opts.headers },
      body: JSON.stringify({ query, variables }),
      signal: abort.signal,
    });
    if (res.status !== 200 || !/^text\/event-stream/.test(res.headers.get('content-type') ?? '')) {
      state.errors.push(`HTTP ${res.status}: ${await res.text()}`);
      return;
    }
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(frame)?.[1];
        const data = [...frame.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join('\n');
        if (event === 'next') state.results.push(JSON.parse(data) as Frame);
        if (event === 'complete') state.completed = true;
        if (frame.startsWith(':')) state.pings.push(Date.now());
      }
    }
  })().catch((err: unknown) => {
    if (!abort.signal.aborted) state.errors.push(String(err));
  });
  return { state, close: () => abort.abort() };
}

/** What a subscriber saw must be: its session's snapshot, then each later version once, in order, up to `last`. */
function expectSnapshotThenEveryVersion(
  updates: Array<{ version: number; eventType: string; session?: { roomName: string } }>,
  roomName: string,
  last: number,
) {
  expect(updates.length).toBeGreaterThan(0);
  expect(updates[0]!.eventType).toBe('snapshot');
  for (const u of updates) if (u.session) expect(u.session.roomName).toBe(roomName);
  const versions = updates.map((u) => u.version);
  const first = versions[0]!;
  expect(versions).toEqual(Array.from({ length: last - first + 1 }, (_, i) => first + i));
  expect(updates.slice(1).every((u) => u.eventType !== 'snapshot')).toBe(true);
}

describe('many subscribers of the same sessions, joining while the sessions change', () => {
  it('each gets its own snapshot first, then every later version exactly once, in order (SSE and WebSocket)', async () => {
    const rooms: RoomInstance[] = [newRoomInstance(unique('feed-a')), newRoomInstance(unique('feed-b'))];
    for (const room of rooms) {
      await createSession(t.url, room.name, admin);
      expect((await sendEvent(t.url, 'room_started', room)).status).toBe(200);
    }
    const ws = wsClient(t.url, admin);
    const sse: Array<{ room: RoomInstance; stream: ReturnType<typeof openStream> }> = [];
    const viaWs: Array<{ room: RoomInstance; watch: Watch }> = [];
    try {
      // Changes keep coming (participants joining, each one version) while 60 SSE and 10 WebSocket subscribers join.
      const changes = (async () => {
        for (let i = 0; i < 12; i++) {
          await mapLimit(rooms, 2, async (room) => {
            const res = await sendEvent(t.url, 'participant_joined', room, { participant: { identity: `p${i}`, sid: `PA_${i}_${room.sid}` } });
            expect(res.status).toBe(200);
          });
          await sleep(20);
        }
      })();
      for (let i = 0; i < 70; i++) {
        const room = rooms[i % 2]!;
        if (i % 7 === 6) viaWs.push({ room, watch: new Watch(ws, UPDATED, { r: room.name }) });
        else sse.push({ room, stream: openStream(UPDATED, { r: room.name }, admin) });
        if (i % 10 === 9) await sleep(15);
      }
      await changes;

      const finalVersion = new Map<string, number>();
      for (const room of rooms) {
        const row = await t.app.database.db.selectFrom('sessions').select('version').where('room_name', '=', room.name).executeTakeFirstOrThrow();
        finalVersion.set(room.name, row.version);
      }
      const lastOf = (updates: Array<{ version: number }>) => updates.at(-1)?.version;
      const sseUpdates = (s: (typeof sse)[number]) => s.stream.state.results.map((r) => r.data?.sessionUpdated);
      const wsUpdates = (w: (typeof viaWs)[number]) => w.watch.values('sessionUpdated');
      const deadline = Date.now() + 20_000;
      while (
        !sse.every((s) => lastOf(sseUpdates(s)) === finalVersion.get(s.room.name)) ||
        !viaWs.every((w) => lastOf(wsUpdates(w)) === finalVersion.get(w.room.name))
      ) {
        if (Date.now() > deadline) break;
        await sleep(50);
      }
      await sleep(300); // late duplicates would show now
      for (const s of sse) {
        expect(s.stream.state.errors).toEqual([]);
        expectSnapshotThenEveryVersion(sseUpdates(s), s.room.name, finalVersion.get(s.room.name)!);
      }
      for (const w of viaWs) {
        expect(w.watch.errors).toEqual([]);
        expectSnapshotThenEveryVersion(wsUpdates(w), w.room.name, finalVersion.get(w.room.name)!);
      }
    } finally {
      for (const s of sse) s.stream.close();
      for (const w of viaWs) w.watch.dispose();
      await ws.dispose();
    }
  });

  it('subscribers of one session with different selections or filters each get exactly what they asked for', async () => {
    const room = newRoomInstance(unique('feed-sel'));
    await createSession(t.url, room.name, admin);
    const narrow = openStream('subscription($r: String) { sessionUpdated(roomName: $r) { version } }', { r: room.name }, admin);
    const wide = openStream(UPDATED, { r: room.name }, admin);
    const aliased = openStream(`subscription { u: sessionUpdated(roomName: ${JSON.stringify(room.name)}) { v: version } }`, {}, admin);
    const status = openStream('subscription($r: String) { sessionStatusChanged(roomName: $r) { version status } }', { r: room.name }, admin);
    try {
      await sleep(300);
      expect((await sendEvent(t.url, 'room_started', room)).status).toBe(200);
      expect((await sendEvent(t.url, 'participant_joined', room, { participant: { identity: 'x' } })).status).toBe(200);
      expect((await sendEvent(t.url, 'room_finished', room)).status).toBe(200);
      const deadline = Date.now() + 10_000;
      while ((wide.state.results.length < 4 || status.state.results.length < 3) && Date.now() < deadline) await sleep(25);
      await sleep(200);
      expect(narrow.state.results.map((r) => r.data)).toEqual([1, 2, 3, 4].map((version) => ({ sessionUpdated: { version } })));
      expect(aliased.state.results.map((r) => r.data)).toEqual([1, 2, 3, 4].map((v) => ({ u: { v } })));
      expect(wide.state.results.map((r) => r.data.sessionUpdated.eventType)).toEqual(['snapshot', 'room_started', 'participant_joined', 'room_finished']);
      // The status stream skips the participant's version but not its place in the order.
      expect(status.state.results.map((r) => r.data.sessionStatusChanged)).toEqual([
        { version: 1, status: 'READY' },
        { version: 2, status: 'LIVE' },
        { version: 4, status: 'STOPPED' },
      ]);
    } finally {
      for (const s of [narrow, wide, aliased, status]) s.close();
    }
  });

  it('when one subscriber of a session leaves, the others keep receiving; once all left, a new subscriber receives again', async () => {
    const room = newRoomInstance(unique('feed-leave'));
    await createSession(t.url, room.name, admin);
    const first = openStream(UPDATED, { r: room.name }, admin);
    const second = openStream(UPDATED, { r: room.name }, admin);
    let third: ReturnType<typeof openStream> | undefined;
    const versions = (s: ReturnType<typeof openStream>) => s.state.results.map((r) => r.data?.sessionUpdated?.version as number);
    const until = async (check: () => boolean, what: string) => {
      const deadline = Date.now() + 10_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(20);
      }
    };
    try {
      await until(() => first.state.results.length === 1 && second.state.results.length === 1, 'both snapshots');
      first.close();
      await sleep(300);
      expect((await sendEvent(t.url, 'room_started', room)).status).toBe(200);
      await until(() => second.state.results.length === 2, 'version 2 for the subscriber who stayed');
      expect(versions(second)).toEqual([1, 2]);

      // The last subscriber leaves (the session's feed closes); a new one joins later.
      second.close();
      await sleep(300);
      third = openStream(UPDATED, { r: room.name }, admin);
      await until(() => third!.state.results.length === 1, 'the new snapshot');
      expect((await sendEvent(t.url, 'participant_joined', room, { participant: { identity: 'late' } })).status).toBe(200);
      await until(() => third!.state.results.length === 2, 'version 3 for the new subscriber');
      expect(versions(third)).toEqual([2, 3]);
      expect([...first.state.errors, ...second.state.errors, ...third.state.errors]).toEqual([]);
    } finally {
      for (const s of [first, second, third]) s?.close();
    }
  });

  it('subscriptions yoga serves itself (cross-origin requests) end when the service stops: one session and all sessions', async () => {
    const own = await startTestApp({ SHUTDOWN_TIMEOUT_SECONDS: '3' });
    let stopped = false;
    try {
      const room = newRoomInstance(unique('feed-cors'));
      await createSession(own.url, room.name, admin);
      const opts = { url: own.url, headers: { Origin: 'http://elsewhere.example' } };
      const one = openStream(UPDATED, { r: room.name }, admin, opts);
      const all = openStream('subscription { sessionsUpdated { version session { roomName } } }', {}, admin, opts);
      const deadline = Date.now() + 10_000;
      while (one.state.results.length === 0 && Date.now() < deadline) await sleep(20);
      expect(one.state.results).toHaveLength(1);
      // The all-sessions stream has no snapshot: a change shows it is live.
      while (all.state.results.length === 0 && Date.now() < deadline) {
        await sendEvent(own.url, 'participant_joined', room, { participant: { identity: `w${Date.now()}` } });
        await sleep(100);
      }
      expect(all.state.results.length).toBeGreaterThan(0);
      await own.stop();
      stopped = true;
      while (!(one.state.completed && all.state.completed) && Date.now() < deadline + 10_000) await sleep(20);
      expect([one.state.completed, all.state.completed]).toEqual([true, true]);
      expect([...one.state.errors, ...all.state.errors]).toEqual([]);
    } finally {
      if (!stopped) await own.stop();
    }
  });

  it.skipIf(!backends.redis)('subscriptions yoga serves itself (cross-origin requests) release their Redis channels when the client leaves', async () => {
    const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    const channels = async () => (await redis.pubsub('CHANNELS', `${t.prefix}*`)) as string[];
    const room = newRoomInstance(unique('feed-cors-leave'));
    await createSession(t.url, room.name, admin);
    const one = openStream(UPDATED, { r: room.name }, admin, { headers: { Origin: 'http://elsewhere.example' } });
    try {
      const deadline = Date.now() + 10_000;
      while (one.state.results.length === 0 && Date.now() < deadline) await sleep(20);
      expect(one.state.results).toHaveLength(1);
      expect((await channels()).length).toBeGreaterThan(0);
      one.close();
      while ((await channels()).length > 0 && Date.now() < deadline + 10_000) await sleep(50);
      expect(await channels()).toEqual([]);
    } finally {
      one.close();
      await redis.quit();
    }
  });

  it('an idle stream is kept alive: a ping at once, then again after about 12-18 s of silence', async () => {
    const room = newRoomInstance(unique('feed-ping'));
    await createSession(t.url, room.name, admin);
    const stream = openStream(UPDATED, { r: room.name }, admin);
    try {
      // Due by 18 s; 10 s more for a busy machine.
      const deadline = Date.now() + 28_000;
      while (stream.state.pings.length < 2 && Date.now() < deadline) await sleep(100);
      expect(stream.state.errors).toEqual([]);
      expect(stream.state.results.length).toBe(1);
      expect(stream.state.pings.length).toBeGreaterThanOrEqual(2);
    } finally {
      stream.close();
    }
  }, 40_000);

  it('a refused grant and an unknown room still get the usual errors (yoga answers what the direct route leaves)', async () => {
    const room = newRoomInstance(unique('feed-err'));
    await createSession(t.url, room.name, admin);
    const elsewhere = await mintToken({ roomJoin: true, room: unique('elsewhere') });
    const refused = openStream(UPDATED, { r: room.name }, elsewhere);
    const unknown = openStream(UPDATED, { r: unique('nowhere') }, admin);
    try {
      const deadline = Date.now() + 10_000;
      while ((refused.state.results.length === 0 || unknown.state.results.length === 0) && Date.now() < deadline) await sleep(25);
      expect(refused.state.results[0]?.errors?.map((e: any) => e.extensions?.code)).toEqual(['FORBIDDEN']);
      expect(unknown.state.results[0]?.errors?.map((e: any) => e.extensions?.code)).toEqual(['NOT_FOUND']);
    } finally {
      refused.close();
      unknown.close();
    }
  });
});

describe("a session feed, at the moment between a joiner's live subscription and its snapshot", () => {
  it('hands over a change that arrived while the snapshot was being read, after the snapshot, once', async () => {
    const room = newRoomInstance(unique('feed-window'));
    await createSession(t.url, room.name, admin);
    const db = t.app.database.db;
    const row = await db.selectFrom('sessions').selectAll().where('room_name', '=', room.name).executeTakeFirstOrThrow();
    // An in-process bus: the change below is published the instant the subscription is live, before the read returns.
    const bus = createLocalBus(createLogger('silent'));
    const got: SessionChange[] = [];
    const failures: unknown[] = [];
    const next: SessionChange = {
      ...snapshotOf({ ...row, version: row.version + 1 }),
      eventType: 'participant_joined',
      previousStatus: row.status,
    };
    const leaveFirst = joinSessionFeed({ db, bus, logger: createLogger('silent') }, row, { deliver: (c) => got.push(c), fail: (e) => failures.push(e) });
    await Promise.resolve();
    await Promise.resolve();
    await bus.publish(next);
    // A second joiner on the same feed, meanwhile: also its snapshot first, then the change.
    const got2: SessionChange[] = [];
    const leaveSecond = joinSessionFeed({ db, bus, logger: createLogger('silent') }, row, { deliver: (c) => got2.push(c), fail: (e) => failures.push(e) });
    await bus.publish(next); // a repeat: dropped
    const deadline = Date.now() + 5_000;
    while ((got.length < 2 || got2.length < 1) && Date.now() < deadline) await sleep(10);
    await sleep(100);
    leaveFirst();
    leaveSecond();
    expect(failures).toEqual([]);
    expect(got.map((c) => [c.eventType, c.session.version])).toEqual([
      ['snapshot', row.version],
      ['participant_joined', row.version + 1],
    ]);
    // The second joiner's snapshot was read after the change was published (in memory only here): it gets the
    // stored version as its snapshot, then the change it had queued.
    expect(got2.map((c) => [c.eventType, c.session.version])).toEqual([
      ['snapshot', row.version],
      ['participant_joined', row.version + 1],
    ]);
  });
});

describe('a session feed, joined directly (real Postgres; an in-process or real Redis bus)', () => {
  const silent = createLogger('silent');

  it('hands the session as stored now as the snapshot, not the row the caller read earlier', async () => {
    const room = newRoomInstance(unique('feed-stale'));
    await createSession(t.url, room.name, admin);
    const db = t.app.database.db;
    const earlier = await db.selectFrom('sessions').selectAll().where('room_name', '=', room.name).executeTakeFirstOrThrow();
    expect((await sendEvent(t.url, 'room_started', room)).status).toBe(200);
    const got: Array<[string, number, string]> = [];
    const leave = joinSessionFeed({ db, bus: createLocalBus(silent), logger: silent }, earlier, {
      deliver: (c) => got.push([c.eventType, c.session.version, c.session.status]),
      fail: (e) => got.push(['failed', 0, String(e)]),
    });
    const deadline = Date.now() + 10_000;
    while (got.length === 0 && Date.now() < deadline) await sleep(10);
    leave();
    expect(got).toEqual([['snapshot', earlier.version + 1, 'LIVE']]);
  });

  it('subscribers behind by different amounts each get every missing version from one read, in order', async () => {
    const room = newRoomInstance(unique('feed-behind'));
    await createSession(t.url, room.name, admin);
    const db = t.app.database.db;
    const rowNow = () => db.selectFrom('sessions').selectAll().where('room_name', '=', room.name).executeTakeFirstOrThrow();
    // The feed hears only its own in-process bus: the app's webhooks below reach it through the change history alone.
    const deps = { db, bus: createLocalBus(silent), logger: silent };
    const seen: number[][] = [[], []];
    const join = async (i: number) => {
      const leave = joinSessionFeed(deps, await rowNow(), {
        deliver: (c) => seen[i]!.push(c.session.version),
        fail: (e) => seen[i]!.push(-1, String(e).length),
      });
      const deadline = Date.now() + 10_000;
      while (seen[i]!.length === 0 && Date.now() < deadline) await sleep(10);
      return leave;
    };
    const leaveFirst = await join(0); // at version 1
    expect((await sendEvent(t.url, 'room_started', room)).status).toBe(200);
    const leaveSecond = await join(1); // at version 2
    expect((await sendEvent(t.url, 'participant_joined', room, { participant: { identity: 'p' } })).status).toBe(200);
    const row = await rowNow();
    expect(row.version).toBe(3);
    await deps.bus.publish({ ...snapshotOf({ ...row, version: 4 }), eventType: 'room_finished', previousStatus: row.status });
    const deadline = Date.now() + 10_000;
    while (seen.some((v) => v.at(-1) !== 4) && Date.now() < deadline) await sleep(10);
    leaveFirst();
    leaveSecond();
    expect(seen).toEqual([
      [1, 2, 3, 4],
      [2, 3, 4],
    ]);
  });

  it.skipIf(!(backends.postgres && backends.redis))(
    'a broker reconnect while a joiner’s snapshot is on its way: what was committed after the snapshot was read, and published during the outage, still follows it',
    async () => {
      const own = await startTestApp();
      // The feed reads through a link whose answers arrive 4 s late (the reads themselves run on time), and hears
      // Redis through a proxy the test cuts.
      const pgUrl = new URL(TEST_DATABASE_URL);
      const pgProxy = await startTcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) }, { delayToClientMs: 4_000 });
      const redisUrl = new URL(TEST_REDIS_URL);
      const redisProxy = await startTcpProxy({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) });
      pgUrl.host = `127.0.0.1:${pgProxy.port}`;
      const slowDb = new Kysely<Database>({
        dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: pgUrl.toString(), max: 1, options: `-c search_path=${own.schema}` }) }),
      });
      const bus = createRedisBus({ kind: 'single', url: `redis://127.0.0.1:${redisProxy.port}` }, own.prefix, silent);
      let leave = () => {};
      try {
        const room = newRoomInstance(unique('feed-recheck'));
        await createSession(own.url, room.name, admin);
        const row = await own.app.database.db.selectFrom('sessions').selectAll().where('room_name', '=', room.name).executeTakeFirstOrThrow();
        await sql`select 1`.execute(slowDb); // the slow link's connection is open
        const got: Array<[string, number]> = [];
        leave = joinSessionFeed({ db: slowDb, bus, logger: silent }, row, {
          deliver: (c) => got.push([c.eventType, c.session.version]),
          fail: (e) => got.push(['failed', String(e).length]),
        });
        // The subscription is confirmed and the snapshot read (version 1) runs; its answer is on its way.
        await sleep(500);
        redisProxy.cut('reset');
        expect((await sendEvent(own.url, 'room_started', room)).status).toBe(200); // version 2, published while the feed is cut off
        redisProxy.restore();
        const deadline = Date.now() + 20_000;
        while (got.length < 2 && Date.now() < deadline) await sleep(20);
        expect(got).toEqual([
          ['snapshot', row.version],
          ['room_started', row.version + 1],
        ]);
      } finally {
        leave();
        await bus.close();
        await slowDb.destroy();
        await redisProxy.close();
        await pgProxy.close();
        await own.stop();
      }
    },
    40_000,
  );

  it('a subscriber who leaves while its gap is being read is handed nothing more', async () => {
    const room = newRoomInstance(unique('feed-gone'));
    await createSession(t.url, room.name, admin);
    const db = t.app.database.db;
    const row = await db.selectFrom('sessions').selectAll().where('room_name', '=', room.name).executeTakeFirstOrThrow();
    const deps = { db, bus: createLocalBus(silent), logger: silent };
    const got: number[] = [];
    const leave = joinSessionFeed(deps, row, { deliver: (c) => got.push(c.session.version), fail: () => got.push(-1) });
    let deadline = Date.now() + 10_000;
    while (got.length === 0 && Date.now() < deadline) await sleep(10);
    expect((await sendEvent(t.url, 'room_started', room)).status).toBe(200); // version 2: in the history, unheard here
    // Hold the change history so the gap read waits; the subscriber leaves meanwhile.
    const lock = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${t.schema}` });
    await lock.connect();
    try {
      await lock.query('begin');
      await lock.query('lock table session_changes in access exclusive mode');
      await deps.bus.publish({ ...snapshotOf({ ...row, version: row.version + 2 }), eventType: 'room_finished', previousStatus: 'LIVE' });
      await sleep(300);
      leave();
      await lock.query('rollback');
    } finally {
      await lock.end();
    }
    deadline = Date.now() + 500;
    while (Date.now() < deadline) await sleep(20);
    expect(got).toEqual([row.version]);
  });

  it.skipIf(!backends.redis)('a subscriber who leaves at once gets nothing and leaves no Redis channel behind', async () => {
    const room = newRoomInstance(unique('feed-quick'));
    await createSession(t.url, room.name, admin);
    const db = t.app.database.db;
    const row = await db.selectFrom('sessions').selectAll().where('room_name', '=', room.name).executeTakeFirstOrThrow();
    const prefix = `${uniqueName('quick')}:`;
    const bus = createRedisBus({ kind: 'single', url: TEST_REDIS_URL }, prefix, silent);
    const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const got: unknown[] = [];
      const leave = joinSessionFeed({ db, bus, logger: silent }, row, { deliver: (c) => got.push(c), fail: (e) => got.push(e) });
      leave();
      // Its subscription was still being confirmed when it left: released once confirmed.
      await sleep(500);
      expect(got).toEqual([]);
      expect(await redis.pubsub('CHANNELS', `${prefix}*`)).toEqual([]);
    } finally {
      await bus.close();
      await redis.quit();
    }
  });
});

describe('a session feed whose gap cannot be filled', () => {
  it('ends every subscriber with the error (they resubscribe) instead of handing them a later version over the gap', async () => {
    const own = await startTestApp();
    const db = own.app.database.db;
    const table = sql.table(`${own.schema}.session_changes`);
    let moved = false;
    try {
      const room = newRoomInstance(unique('feed-broken'));
      await createSession(own.url, room.name, admin);
      const row = await db.selectFrom('sessions').selectAll().where('room_name', '=', room.name).executeTakeFirstOrThrow();
      const bus = createLocalBus(createLogger('silent'));
      const deps = { db, bus, logger: createLogger('silent') };
      const seen: Array<Array<[string, number]>> = [[], []];
      const failures: unknown[][] = [[], []];
      const leave = seen.map((got, i) =>
        joinSessionFeed(deps, row, { deliver: (c) => got.push([c.eventType, c.session.version]), fail: (e) => failures[i]!.push(e) }),
      );
      const deadline = Date.now() + 10_000;
      while (seen.some((got) => got.length === 0) && Date.now() < deadline) await sleep(10);
      expect(seen).toEqual([[['snapshot', row.version]], [['snapshot', row.version]]]);

      // The change history becomes unreadable, then a version arrives with the one before it missing.
      await sql`alter table ${table} rename to session_changes_away`.execute(db);
      moved = true;
      await bus.publish({ ...snapshotOf({ ...row, version: row.version + 2 }), eventType: 'room_started', previousStatus: row.status });
      while (failures.some((f) => f.length === 0) && Date.now() < deadline) await sleep(10);
      expect(failures.map((f) => f.length)).toEqual([1, 1]);
      expect(seen).toEqual([[['snapshot', row.version]], [['snapshot', row.version]]]);
      for (const l of leave) l();
    } finally {
      if (moved) await sql`alter table ${sql.table(`${own.schema}.session_changes_away`)} rename to session_changes`.execute(db);
      await own.stop();
    }
  });

  it.skipIf(!backends.redis)('a WebSocket subscription ends with an error when its gap cannot be filled', async () => {
    const own = await startTestApp();
    const db = own.app.database.db;
    const publisher = createRedisBus({ kind: 'single', url: TEST_REDIS_URL }, own.prefix, createLogger('silent'));
    const ws = wsClient(own.url, admin);
    let moved = false;
    try {
      const room = newRoomInstance(unique('feed-ws-broken'));
      await createSession(own.url, room.name, admin);
      const row = await db.selectFrom('sessions').selectAll().where('room_name', '=', room.name).executeTakeFirstOrThrow();
      const watch = new Watch(ws, UPDATED, { r: room.name });
      await watch.until((w) => w.received.length === 1, 10_000, 'the snapshot');
      await sql`alter table ${sql.table(`${own.schema}.session_changes`)} rename to session_changes_away`.execute(db);
      moved = true;
      // A version arrives on the session's channel with the one before it missing; the history cannot be read.
      await publisher.publish({ ...snapshotOf({ ...row, version: row.version + 2 }), eventType: 'room_started', previousStatus: row.status });
      const deadline = Date.now() + 10_000;
      while (watch.errors.length === 0 && !watch.received.some((r) => r.result.errors) && Date.now() < deadline) await sleep(20);
      expect(watch.errors.length + watch.received.filter((r) => r.result.errors).length).toBeGreaterThan(0);
      expect(
        watch
          .values('sessionUpdated')
          .filter((v) => v?.version !== undefined)
          .map((v) => v.version),
      ).toEqual([row.version]);
      watch.dispose();
    } finally {
      if (moved) await sql`alter table ${sql.table(`${own.schema}.session_changes_away`)} rename to session_changes`.execute(db);
      await ws.dispose();
      await publisher.close();
      await own.stop();
    }
  });

  it('ends a subscriber whose snapshot cannot be read with the error', async () => {
    const own = await startTestApp();
    const db = own.app.database.db;
    let moved = false;
    try {
      const room = newRoomInstance(unique('feed-nosnap'));
      await createSession(own.url, room.name, admin);
      const row = await db.selectFrom('sessions').selectAll().where('room_name', '=', room.name).executeTakeFirstOrThrow();
      await sql`alter table ${sql.table(`${own.schema}.sessions`)} rename to sessions_away`.execute(db);
      moved = true;
      const got: unknown[] = [];
      const failures: unknown[] = [];
      const leave = joinSessionFeed({ db, bus: createLocalBus(createLogger('silent')), logger: createLogger('silent') }, row, {
        deliver: (c) => got.push(c),
        fail: (e) => failures.push(e),
      });
      const deadline = Date.now() + 10_000;
      while (failures.length === 0 && Date.now() < deadline) await sleep(10);
      leave();
      expect(failures).toHaveLength(1);
      expect(got).toEqual([]);
    } finally {
      if (moved) await sql`alter table ${sql.table(`${own.schema}.sessions_away`)} rename to sessions`.execute(db);
      await own.stop();
    }
  });
});
