/**
 * What subscribers of the session streams see, on one app (real Postgres and Redis, SSE through the
 * official client): a status subscription passes status changes only (participant changes skip their
 * versions) while sessionUpdated passes every change; a change published a second time (its "published"
 * mark lost, so the outbox publishes it again) reaches each subscriber once; subscribers who leave leave
 * no Redis channel behind; stopping the service ends every open stream. Written against what a client observes, so it holds through refactors of the
 * stream and the outbox.
 */
import { Redis } from 'ioredis';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../tools/kit/async.js';
import { availableBackends, dropSchema, TEST_DATABASE_URL, TEST_REDIS_URL, uniqueName } from '../tools/kit/backends.js';
import type { Database } from '../src/db/types.js';
import { sseClient, wsClient } from '../tools/kit/clients.js';
import { adminToken, createSession } from '../tools/kit/graphql.js';
import { newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startTcpProxy, type TcpProxy } from '../tools/kit/tcp-proxy.js';
import { startTestApp, type TestApp } from './support/app.js';
import { changeTimes, sessionRowId } from './support/changes.js';
import { Watch } from './support/watch.js';
import { createLocalBus } from '../src/realtime/bus.js';
import { EndAll } from '../src/realtime/end-all.js';
import { BUFFER_SIZE, watchAllSessions } from '../src/realtime/session-stream.js';
import { snapshotOf } from '../src/sessions/change.js';
import { createLogger } from '../src/logger.js';

const backends = await availableBackends();
let t: TestApp;
let token: string;
const clients: Array<ReturnType<typeof sseClient>> = [];
beforeAll(async () => {
  t = await startTestApp();
  token = await adminToken();
});
afterAll(async () => {
  for (const c of clients) c.dispose();
  await t?.stop();
});

const roomName = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}`;
const FIELDS = 'status version eventType session { roomName }';
const UPDATE_FIELDS = 'version eventType session { roomName status }';
const subscribe = (query: string, variables: Record<string, unknown> = {}) => {
  const client = sseClient(t.url, token);
  clients.push(client);
  return new Watch(client, query, variables);
};
const statusOf = (id: string) => subscribe(`subscription($id: ID!) { sessionStatusChanged(id: $id) { ${FIELDS} } }`, { id });
const updatesOf = (id: string) => subscribe(`subscription($id: ID!) { sessionUpdated(id: $id) { ${UPDATE_FIELDS} } }`, { id });
const allStatus = () => subscribe(`subscription { sessionStatusChanged { ${FIELDS} } }`);
const allUpdates = () => subscribe(`subscription { sessionsUpdated { ${UPDATE_FIELDS} } }`);
type Seen = { status?: string; version: number; eventType: string; session: { roomName: string; status?: string } };
/** What arrived on `field` (of `room` only, if given), the status wherever the type carries it. */
const of = (w: Watch, field: string, room?: string) =>
  (w.values(field) as Seen[]).filter((v) => room === undefined || v.session.roomName === room).map((v) => ({ ...v, status: v.status ?? v.session.status }));
const versions = (w: Watch, field: string, room?: string) => of(w, field, room).map((v) => v.version);
const settle = () => new Promise((r) => setTimeout(r, 500));

/** All-sessions streams have no snapshot: a change of a warm-up room proves each is live. */
async function whenLive(...watches: Array<[Watch, string]>) {
  const warm = newRoomInstance(roomName('warm'));
  await createSession(t.url, warm.name, token);
  expect((await sendEvent(t.url, 'room_started', warm)).status).toBe(200);
  for (const [w, field] of watches) await w.until(() => of(w, field, warm.name).length > 0, 10_000, `${field} to be live`);
}

describe('what each subscription passes on', () => {
  it('status subscriptions skip participant changes (their versions too); sessionUpdated and sessionsUpdated pass every change; each in order, once', async () => {
    const room = newRoomInstance(roomName('filter'));
    const session = await createSession(t.url, room.name, token);
    const status = statusOf(session.id);
    const updates = updatesOf(session.id);
    const everyStatus = allStatus();
    const everyUpdate = allUpdates();
    await status.until((w) => w.received.length === 1, 10_000, 'the status snapshot');
    await updates.until((w) => w.received.length === 1, 10_000, 'the update snapshot');
    await whenLive([everyStatus, 'sessionStatusChanged'], [everyUpdate, 'sessionsUpdated']);

    for (const [type, opts] of [
      ['room_started', {}],
      ['participant_joined', { identity: 'alice' }],
      ['room_finished', {}],
    ] as const) {
      expect((await sendEvent(t.url, type, room, opts)).status).toBe(200);
    }
    await updates.until((w) => w.received.length === 4, 10_000, 'every update');
    await everyUpdate.until(() => versions(everyUpdate, 'sessionsUpdated', room.name).length === 3, 10_000, 'every update of the room');
    await status.until((w) => w.received.length === 3, 10_000, 'the status changes');
    await everyStatus.until(() => versions(everyStatus, 'sessionStatusChanged', room.name).length === 2, 10_000, 'the room’s status changes');
    await settle();

    const rows = (w: Watch, field: string) => of(w, field, room.name).map((v) => [v.version, v.status, v.eventType]);
    expect(rows(status, 'sessionStatusChanged')).toEqual([
      [1, 'READY', 'snapshot'],
      [2, 'LIVE', 'room_started'],
      [4, 'STOPPED', 'room_finished'],
    ]);
    expect(rows(everyStatus, 'sessionStatusChanged')).toEqual([
      [2, 'LIVE', 'room_started'],
      [4, 'STOPPED', 'room_finished'],
    ]);
    expect(rows(updates, 'sessionUpdated')).toEqual([
      [1, 'READY', 'snapshot'],
      [2, 'LIVE', 'room_started'],
      [3, 'LIVE', 'participant_joined'],
      [4, 'STOPPED', 'room_finished'],
    ]);
    expect(rows(everyUpdate, 'sessionsUpdated')).toEqual([
      [2, 'LIVE', 'room_started'],
      [3, 'LIVE', 'participant_joined'],
      [4, 'STOPPED', 'room_finished'],
    ]);
    for (const w of [status, updates, everyStatus, everyUpdate]) {
      expect(w.errors).toEqual([]);
      w.dispose();
    }
  });

  it('a change published twice (its "published" mark lost, the outbox publishes it again) reaches each subscriber once', async () => {
    const room = newRoomInstance(roomName('twice'));
    const session = await createSession(t.url, room.name, token);
    const status = statusOf(session.id);
    const updates = updatesOf(session.id);
    const everyUpdate = allUpdates();
    await status.until((w) => w.received.length === 1, 10_000, 'the status snapshot');
    await updates.until((w) => w.received.length === 1, 10_000, 'the update snapshot');
    await whenLive([everyUpdate, 'sessionsUpdated']);

    expect((await sendEvent(t.url, 'room_started', room)).status).toBe(200);
    await updates.until((w) => w.received.length === 2, 10_000, 'version 2');
    await everyUpdate.until(() => versions(everyUpdate, 'sessionsUpdated', room.name).length === 1, 10_000, 'version 2 on the all-sessions stream');

    const db = t.app.database.db;
    const change = () => changeTimes(db, session.id, 2);
    expect(await waitFor(async () => (await change()).published_at !== null, 10_000), 'version 2 marked published').toBe(true);
    // As if the process had died between the publish and the mark: the outbox publishes it again.
    await db.updateTable('session_changes').set({ published_at: null }).where('session_id', '=', sessionRowId(session.id)).where('version', '=', 2).execute();
    expect(await waitFor(async () => (await change()).published_at !== null, 20_000), 'the outbox to publish version 2 again').toBe(true);

    expect((await sendEvent(t.url, 'room_finished', room)).status).toBe(200);
    await status.until((w) => w.received.length >= 3, 10_000, 'version 3');
    await updates.until((w) => w.received.length >= 3, 10_000, 'version 3');
    await everyUpdate.until(() => versions(everyUpdate, 'sessionsUpdated', room.name).length >= 2, 10_000, 'version 3 on the all-sessions stream');
    await settle();
    expect(versions(status, 'sessionStatusChanged')).toEqual([1, 2, 3]);
    expect(versions(updates, 'sessionUpdated')).toEqual([1, 2, 3]);
    expect(versions(everyUpdate, 'sessionsUpdated', room.name)).toEqual([2, 3]);
    for (const w of [status, updates, everyUpdate]) w.dispose();
  });
});

describe.skipIf(!backends.redis)('subscribers who leave', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  });
  afterAll(() => redis?.quit());

  it('leave no Redis channel behind (one-session and all-sessions streams alike)', async () => {
    const channels = async () => (await redis.pubsub('CHANNELS', `${t.prefix}*`)) as string[];
    const room = newRoomInstance(roomName('leave'));
    const session = await createSession(t.url, room.name, token);
    const watches = [statusOf(session.id), updatesOf(session.id), allStatus(), allUpdates()];
    await watches[0]!.until((w) => w.received.length === 1, 10_000, 'the status snapshot');
    await watches[1]!.until((w) => w.received.length === 1, 10_000, 'the update snapshot');
    await whenLive([watches[2]!, 'sessionStatusChanged'], [watches[3]!, 'sessionsUpdated']);
    expect((await channels()).length).toBeGreaterThanOrEqual(2);

    for (const w of watches) w.dispose();
    expect(await waitFor(async () => (await channels()).length === 0, 10_000), `channels left: ${JSON.stringify(await channels())}`).toBe(true);
  });

  it('leave no Redis channel behind over WebSocket either (one-session and all-sessions streams)', async () => {
    const channels = async () => (await redis.pubsub('CHANNELS', `${t.prefix}*`)) as string[];
    const room = newRoomInstance(roomName('leave-ws'));
    const session = await createSession(t.url, room.name, token);
    const ws = wsClient(t.url, token);
    try {
      const one = new Watch(ws, `subscription($id: ID!) { sessionUpdated(id: $id) { ${UPDATE_FIELDS} } }`, { id: session.id });
      const all = new Watch(ws, `subscription { sessionsUpdated { ${UPDATE_FIELDS} } }`);
      await one.until((w) => w.received.length === 1, 10_000, 'the snapshot');
      await whenLive([all, 'sessionsUpdated']);
      expect((await channels()).length).toBeGreaterThanOrEqual(2);
      one.dispose();
      all.dispose();
      expect(await waitFor(async () => (await channels()).length === 0, 10_000), `channels left: ${JSON.stringify(await channels())}`).toBe(true);
    } finally {
      await ws.dispose();
    }
  });
});

describe('stopping the service', () => {
  it('ends every open stream (one session, all sessions; status and updates): each client sees its stream complete, and the stop finishes', async () => {
    const own = await startTestApp();
    let stopped = false;
    try {
      const room = newRoomInstance(roomName('stop'));
      const session = await createSession(own.url, room.name, token);
      const client = sseClient(own.url, token);
      clients.push(client);
      const watches = [
        new Watch(client, `subscription($id: ID!) { sessionStatusChanged(id: $id) { ${FIELDS} } }`, { id: session.id }),
        new Watch(client, `subscription($id: ID!) { sessionUpdated(id: $id) { ${UPDATE_FIELDS} } }`, { id: session.id }),
        new Watch(client, `subscription { sessionStatusChanged { ${FIELDS} } }`),
        new Watch(client, `subscription { sessionsUpdated { ${UPDATE_FIELDS} } }`),
      ];
      await watches[0]!.until((w) => w.received.length === 1, 10_000, 'the status snapshot');
      await watches[1]!.until((w) => w.received.length === 1, 10_000, 'the update snapshot');
      const warm = newRoomInstance(roomName('warm'));
      await createSession(own.url, warm.name, token);
      expect((await sendEvent(own.url, 'room_started', warm)).status).toBe(200);
      for (const [w, field] of [
        [watches[2]!, 'sessionStatusChanged'],
        [watches[3]!, 'sessionsUpdated'],
      ] as const)
        await w.until(() => of(w, field, warm.name).length > 0, 10_000, `${field} to be live`);

      await own.stop();
      stopped = true;
      expect(await waitFor(() => watches.every((w) => w.completed || w.errors.length > 0), 10_000)).toBe(true);
      expect(watches.map((w) => w.completed)).toEqual([true, true, true, true]);
    } finally {
      if (!stopped) await own.stop();
    }
  }, 60_000);
});

/** Our own connection to a schema, to see what was committed and marked published after the app stopped. */
function openSchema(schema: string): Kysely<Database> {
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1, options: `-c search_path=${schema}` }) }),
  });
}

describe.skipIf(!(backends.postgres && backends.redis))('publishing after commit', () => {
  const redisTarget = () => {
    const u = new URL(TEST_REDIS_URL);
    return { host: u.hostname, port: Number(u.port || 6379) };
  };

  type Replica = TestApp & { link: TcpProxy | null };
  /**
   * Replicas on one fresh schema and Redis prefix, started inside the test (Stryker's per-test coverage then sees
   * their drains start), each draining on its timer every `outboxMs`. A `proxied` replica reaches Redis through a
   * TCP proxy the test can cut (`link`), cut before it starts with `cutAtStart`. `close()` restores the links,
   * stops the replicas and drops the schema.
   */
  type ReplicaSpec = { outboxMs: number; proxied?: boolean; cutAtStart?: boolean };
  async function replicas<const S extends readonly ReplicaSpec[]>(label: string, specs: S) {
    const schema = uniqueName(label);
    const shared = { schema, prefix: `${schema}:` };
    const started: Replica[] = [];
    for (const spec of specs) {
      const link = spec.proxied ? await startTcpProxy(redisTarget()) : null;
      if (spec.cutAtStart) link?.cut('reset');
      const env: Record<string, string> = { OUTBOX_INTERVAL_MS: String(spec.outboxMs) };
      if (link) env.REDIS_URL = `redis://127.0.0.1:${link.port}`;
      started.push({ ...(await startTestApp(env, shared)), link });
    }
    const close = async () => {
      for (const r of started) r.link?.restore();
      for (const r of started) await r.stop();
      for (const r of started) await r.link?.close();
      await dropSchema(schema).catch(() => {});
    };
    return { replicas: started as { [K in keyof S]: Replica }, close };
  }

  it('each change is recorded as published by the replica that published it, without waiting for the drain (every 60 s here)', async () => {
    const own = await startTestApp({ OUTBOX_INTERVAL_MS: '60000' });
    try {
      const room = newRoomInstance(roomName('mark'));
      const session = await createSession(own.url, room.name, token);
      const published = async (version: number) => (await changeTimes(own.app.database.db, session.id, version)).published_at !== null;
      expect((await sendEvent(own.url, 'room_started', room)).status).toBe(200);
      expect(await waitFor(() => published(2), 10_000), 'version 2 marked').toBe(true);
      // A later change too (its mark goes out in a later batch than the first).
      expect((await sendEvent(own.url, 'room_finished', room)).status).toBe(200);
      expect(await waitFor(() => published(3), 10_000), 'version 3 marked').toBe(true);
    } finally {
      await own.stop();
    }
  });

  it('a change whose publish Redis refuses reaches this process’s own subscribers at once, is not marked published (the refusal is logged), and the outbox publishes it once Redis accepts again', async () => {
    // A Redis user whose PUBLISH is refused (NOPERM) while the connection stays up: every publish fails, the fast
    // path's and each drain's, with the link "connected" all along.
    const user = `lkss-nopub-${Math.random().toString(36).slice(2, 8)}`;
    const admin = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    await admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all');
    const url = new URL(TEST_REDIS_URL);
    url.username = user;
    url.password = 'pw';
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const own = await startTestApp({ REDIS_URL: url.toString() }, undefined, { logger });
    const client = sseClient(own.url, token);
    // What reaches Redis (and so the other replicas): this session's channel, read raw.
    const raw = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    const onRedis: string[] = [];
    try {
      const room = newRoomInstance(roomName('refused'));
      const session = await createSession(own.url, room.name, token);
      raw.on('pmessage', (_pattern: string, _channel: string, message: string) => void onRedis.push(message));
      await raw.psubscribe(`*session:${sessionRowId(session.id)}`);
      const status = new Watch(client, `subscription($id: ID!) { sessionStatusChanged(id: $id) { ${FIELDS} } }`, { id: session.id });
      await status.until((w) => w.received.length === 1, 10_000, 'the snapshot');
      await admin.call('ACL', 'SETUSER', user, '-publish');

      expect((await sendEvent(own.url, 'room_started', room)).json.results.action).toBe('status_updated');
      const publishedAt = async () => (await changeTimes(own.app.database.db, session.id, 2)).published_at;
      // This process's own subscriber does not wait for Redis.
      await status.until((w) => w.received.length >= 2, 5_000, 'version 2 on this process, Redis refusing');
      // The drain (every 200 ms here) tries it several times meanwhile, and fails each time.
      await new Promise((r) => setTimeout(r, 2_000));
      expect(await publishedAt()).toBeNull();
      expect(onRedis).toEqual([]);
      expect(lines.filter((l) => l.msg === 'publish failed; the outbox will retry').map((l) => [l.sessionId, l.version])).toEqual([
        [sessionRowId(session.id), 2],
      ]);

      await admin.call('ACL', 'SETUSER', user, '+publish');
      expect(await waitFor(() => onRedis.length > 0, 20_000), 'version 2 on Redis, published by the outbox').toBe(true);
      expect(await waitFor(async () => (await publishedAt()) !== null, 10_000), 'version 2 marked published').toBe(true);
      await settle();
      expect(onRedis.map((m) => (JSON.parse(m) as { session: { version: number } }).session.version)).toEqual([2]);
      // The outbox's publish reached this process's subscriber too: a version it had, dropped.
      expect(versions(status, 'sessionStatusChanged')).toEqual([1, 2]);
      expect(status.errors).toEqual([]);
      status.dispose();
    } finally {
      raw.disconnect();
      client.dispose();
      await own.stop();
      await admin.call('ACL', 'DELUSER', user).catch(() => {});
      await admin.quit();
    }
  }, 60_000);

  it('a change whose "published" mark the database refuses is logged, still reaches each subscriber once, and is marked once the database accepts', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const own = await startTestApp({}, undefined, { logger });
    const client = sseClient(own.url, token);
    const db = own.app.database.db;
    try {
      const room = newRoomInstance(roomName('nomark'));
      const session = await createSession(own.url, room.name, token);
      const status = new Watch(client, `subscription($id: ID!) { sessionStatusChanged(id: $id) { ${FIELDS} } }`, { id: session.id });
      await status.until((w) => w.received.length === 1, 10_000, 'the snapshot');
      // The database refuses every mark (a trigger in this app's own schema): the publish works, the mark does not.
      const schema = sql.id(own.schema);
      await sql`create function ${schema}.refuse_marks() returns trigger language plpgsql as $$ begin raise exception 'marks refused'; end $$`.execute(db);
      await sql`create trigger refuse_marks before update on ${schema}.session_changes for each row execute function ${schema}.refuse_marks()`.execute(db);

      expect((await sendEvent(own.url, 'room_started', room)).json.results.action).toBe('status_updated');
      await status.until((w) => w.received.length >= 2, 10_000, 'version 2');
      expect(await waitFor(() => lines.some((l) => l.msg === 'could not mark changes published'), 10_000), 'the refused mark to be logged').toBe(true);
      const publishedAt = async () => (await changeTimes(db, session.id, 2)).published_at;
      expect(await publishedAt()).toBeNull();

      await sql`drop trigger refuse_marks on ${schema}.session_changes`.execute(db);
      expect(await waitFor(async () => (await publishedAt()) !== null, 10_000), 'version 2 marked by the drain').toBe(true);
      await settle();
      // The drain published it again meanwhile: the subscriber dropped the repeats.
      expect(versions(status, 'sessionStatusChanged')).toEqual([1, 2]);
      expect(status.errors).toEqual([]);
      status.dispose();
    } finally {
      client.dispose();
      await own.stop();
    }
  });

  it('a change published just before the service stops is recorded as published by the stop (the marks are not left to a timer that no longer runs)', async () => {
    const schema = uniqueName('stopmark');
    const own = await startTestApp({ OUTBOX_INTERVAL_MS: '60000' }, { schema, prefix: `${schema}:` });
    let stopped = false;
    const db = openSchema(schema);
    try {
      const room = newRoomInstance(roomName('stopmark'));
      const session = await createSession(own.url, room.name, token);
      const publishedCount = async () => Number(/^lkss_changes_published_total (\d+)/m.exec(await (await fetch(`${own.url}/metrics`)).text())?.[1] ?? 0);
      const before = await publishedCount();
      expect((await sendEvent(own.url, 'room_started', room)).status).toBe(200);
      // The publish went through (Redis took it): stop at once, before the marks' short flush delay is likely over.
      expect(await waitFor(async () => (await publishedCount()) > before, 10_000, 1)).toBe(true);
      await own.stop();
      stopped = true;
      expect((await changeTimes(db, session.id, 2)).published_at).not.toBeNull();
    } finally {
      if (!stopped) await own.stop();
      await db.destroy();
      await dropSchema(schema).catch(() => {});
    }
  });

  it('the timer’s drain leaves a change alone until it is two intervals old (its fast-path publish may still be under way), then publishes it', async () => {
    // A commits with its Redis link cut (its publish fails; its own drain waits a minute); B, on the same database,
    // drains every second: what B's drain may take is decided by the age of the change alone. B's own link drops
    // and returns right after A's commit: B lost no publish of its own, so its reconnect takes nothing young either.
    const {
      replicas: [a, b],
      close,
    } = await replicas('minage', [
      { outboxMs: 60_000, proxied: true },
      { outboxMs: 1_000, proxied: true },
    ]);
    try {
      const room = newRoomInstance(roomName('minage'));
      const session = await createSession(a.url, room.name, token);
      a.link!.cut('reset');
      expect((await sendEvent(a.url, 'room_started', room)).json.results.action).toBe('status_updated');
      b.link!.cut('reset');
      await new Promise((r) => setTimeout(r, 200));
      b.link!.restore();
      const change = () => changeTimes(b.app.database.db, session.id, 2);
      expect(await waitFor(async () => (await change()).published_at !== null, 20_000), 'B’s drain to publish version 2').toBe(true);
      // Both times are the database's own view: when the change was made, and when the drain that took it began.
      const { changed_at, published_at } = await change();
      expect(published_at!.getTime() - changed_at.getTime()).toBeGreaterThanOrEqual(2_000);
    } finally {
      await close();
    }
  }, 60_000);

  it('a replica whose lost publishes went out when its link returned takes nothing young on its next reconnect: the immediate drain is for its own losses only', async () => {
    // Both drain on a timer only once a minute: any publish below is a fast-path publish or a reconnect drain.
    const {
      replicas: [a, b],
      close,
    } = await replicas('ownloss', [
      { outboxMs: 60_000, proxied: true },
      { outboxMs: 60_000, proxied: true },
    ]);
    const [proxyA, proxyB] = [a.link!, b.link!];
    const publishedAt = (sessionId: string) => async () => (await changeTimes(b.app.database.db, sessionId, 2)).published_at;
    try {
      // B loses a publish of its own; when its link returns, its reconnect drain publishes it.
      const own = newRoomInstance(roomName('ownloss'));
      const ownSession = await createSession(b.url, own.name, token);
      proxyB.cut('reset');
      expect((await sendEvent(b.url, 'room_started', own)).json.results.action).toBe('status_updated');
      expect(await publishedAt(ownSession.id)()).toBeNull();
      proxyB.restore();
      expect(await waitFor(async () => (await publishedAt(ownSession.id)()) !== null, 20_000), 'B’s own lost change, by its reconnect drain').toBe(true);

      // A commits with its link cut: a young change of A's, unpublished. B's link drops and returns again: B lost
      // nothing this time, so it leaves A's change to A (or to a timer once it is old).
      const theirs = newRoomInstance(roomName('ownloss-a'));
      const theirSession = await createSession(a.url, theirs.name, token);
      proxyA.cut('reset');
      expect((await sendEvent(a.url, 'room_started', theirs)).json.results.action).toBe('status_updated');
      proxyB.cut('reset');
      await new Promise((r) => setTimeout(r, 200));
      proxyB.restore();
      await waitFor(() => b.app.bus.isConnected(), 10_000);
      await new Promise((r) => setTimeout(r, 1_500));
      expect(await publishedAt(theirSession.id)(), 'A’s young change, left alone by B’s reconnect').toBeNull();
    } finally {
      await close();
    }
  }, 60_000);

  it('a replica whose Redis is down from its start catches up when Redis first answers: its subscriber gets the change another replica published meanwhile', async () => {
    // A's link is cut before A starts: A's subscriber connection is never ready until the restore.
    const {
      replicas: [a, b],
      close,
    } = await replicas('firstready', [{ outboxMs: 60_000, proxied: true, cutAtStart: true }, { outboxMs: 60_000 }]);
    const client = sseClient(a.url, token);
    try {
      const room = newRoomInstance(roomName('firstready'));
      const session = await createSession(b.url, room.name, token);
      const status = new Watch(client, `subscription($id: ID!) { sessionStatusChanged(id: $id) { ${FIELDS} } }`, { id: session.id });
      await status.until((w) => w.received.length === 1, 10_000, 'the snapshot (after the bounded wait for Redis)');
      // B publishes version 2 while A cannot have subscribed.
      expect((await sendEvent(b.url, 'room_started', room)).json.results.action).toBe('status_updated');
      await settle();
      expect(versions(status, 'sessionStatusChanged')).toEqual([1]);

      a.link!.restore();
      await status.until((w) => w.received.length === 2, 20_000, 'version 2 once Redis first answered');
      expect(of(status, 'sessionStatusChanged').map((v) => [v.version, v.status])).toEqual([
        [1, 'READY'],
        [2, 'LIVE'],
      ]);
      status.dispose();
    } finally {
      client.dispose();
      await close();
    }
  }, 60_000);

  it('a change committed while the publisher’s link is down is published as soon as that link is back, even when it returns after the subscriber’s (the reconnect drain waits for it)', async () => {
    const proxy = await startTcpProxy(redisTarget());
    const schema = uniqueName('publate');
    // The drain timer runs once a minute: only the drain on reconnect can publish the change in time.
    const own = await startTestApp({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, OUTBOX_INTERVAL_MS: '60000' }, { schema, prefix: `${schema}:` });
    const client = sseClient(own.url, token);
    try {
      const room = newRoomInstance(roomName('publate'));
      const session = await createSession(own.url, room.name, token);
      const publishedAt = async (version: number) => (await changeTimes(own.app.database.db, session.id, version)).published_at;
      // Both links up first: a subscription is live (its snapshot came) and a change went out on the fast path.
      const status = new Watch(client, `subscription($id: ID!) { sessionStatusChanged(id: $id) { ${FIELDS} } }`, { id: session.id });
      await status.until((w) => w.received.length === 1, 10_000, 'the snapshot');
      expect((await sendEvent(own.url, 'room_started', room)).json.results.action).toBe('status_updated');
      expect(await waitFor(async () => (await publishedAt(2)) !== null, 10_000), 'version 2 published on the fast path').toBe(true);

      // Both links drop; the subscriber's comes back at once (announcing the reconnect), the publisher's is refused.
      proxy.refuseOpening('lkss-pub');
      proxy.cut('reset');
      proxy.restore();
      await new Promise((r) => setTimeout(r, 100));
      expect((await sendEvent(own.url, 'room_finished', room)).json.results.action).toBe('status_updated');
      await new Promise((r) => setTimeout(r, 500));
      expect(await publishedAt(3)).toBeNull();

      proxy.refuseOpening(null);
      expect(await waitFor(async () => (await publishedAt(3)) !== null, 20_000), 'version 3 published once the publisher is back').toBe(true);
      await status.until((w) => w.received.length === 3, 10_000, 'version 3');
      status.dispose();
    } finally {
      client.dispose();
      proxy.refuseOpening(null);
      await own.stop();
      await proxy.close();
      await dropSchema(schema).catch(() => {});
    }
  }, 60_000);

  it('a change committed while its replica’s Redis link is down reaches an all-sessions subscriber on another replica once the link returns (the drain on reconnect, not the minute timer)', async () => {
    // Both drain on a timer only once a minute: what delivers is A's drain when its link comes back.
    const {
      replicas: [a, b],
      close,
    } = await replicas('outage', [{ outboxMs: 60_000, proxied: true }, { outboxMs: 60_000 }]);
    const proxy = a.link!;
    const client = sseClient(b.url, token);
    try {
      const all = new Watch(client, `subscription { sessionsUpdated { ${UPDATE_FIELDS} } }`);
      // sessionsUpdated sends no snapshot: a change that reaches it is the sign it is live (the first may come too early).
      let live = false;
      for (let i = 0; i < 40 && !live; i++) {
        const warm = newRoomInstance(roomName('warm'));
        await createSession(b.url, warm.name, token);
        expect((await sendEvent(b.url, 'room_started', warm)).status).toBe(200);
        live = await all
          .until((w) => w.received.length > 0, 500, 'warm')
          .then(
            () => true,
            () => false,
          );
      }
      expect(live, 'the all-sessions stream to be live').toBe(true);

      const room = newRoomInstance(roomName('outage'));
      await createSession(a.url, room.name, token);
      proxy.cut('reset');
      const res = await sendEvent(a.url, 'room_started', room);
      expect(res.status).toBe(200);
      expect(res.json.results.action).toBe('status_updated');
      await settle();
      expect(of(all, 'sessionsUpdated', room.name)).toEqual([]);

      proxy.restore();
      await all.until(() => of(all, 'sessionsUpdated', room.name).length > 0, 20_000, 'the change made during the outage');
      expect(of(all, 'sessionsUpdated', room.name).map((v) => [v.version, v.status])).toEqual([[2, 'LIVE']]);
      all.dispose();
    } finally {
      client.dispose();
      await close();
    }
  }, 60_000);
});

describe('a consumer of the all-sessions stream that falls behind', () => {
  it('gets up to 4 × 64 changes that arrived meanwhile (then the newest ones only)', async () => {
    const bus = createLocalBus(createLogger('silent'));
    const end = new EndAll();
    const stream = watchAllSessions({ db: undefined as never, bus, logger: createLogger('silent') }, [end]);
    const row =
      (await createSession(t.url, roomName('behind'), token)) &&
      (await t.app.database.db.selectFrom('sessions').selectAll().limit(1).executeTakeFirstOrThrow());
    const change = (i: number, version: number) => ({
      ...snapshotOf({ ...row, id: `behind-${i}`, version }),
      eventType: 'room_started',
      previousStatus: 'READY' as const,
    });
    // The stream subscribes when first read: publish until the first change arrives.
    const first = stream.next();
    let arrived = false;
    void first.then(() => (arrived = true));
    for (let v = 1; !arrived; v++) {
      await bus.publish(change(0, v));
      await new Promise((r) => setTimeout(r, 10));
    }
    // Nobody reads while 300 sessions change once each.
    for (let i = 1; i <= 300; i++) await bus.publish(change(i, 1));
    end.end();
    const ids: string[] = [];
    for await (const c of stream) ids.push(c.session.id);
    const held = ids.filter((id) => id !== 'behind-0');
    expect(held).toHaveLength(BUFFER_SIZE * 4);
    expect(held.at(-1)).toBe('behind-300');
    await bus.close();
  });
});
