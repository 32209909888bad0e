/**
 * What the README promises about starting and about the jobs that run on their own, observed on the real app:
 * replicas starting at the same moment on one fresh schema both become ready and the migrations are applied
 * once; /readyz answers not-ready while a migration is pending; the reconcile timer fires on its own
 * (RECONCILE_INTERVAL_SECONDS); RETENTION_DAYS=0 deletes nothing, while a replica that keeps 30 days prunes.
 */
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { migrations } from '../migrations/index.js';
import { waitFor as until } from '../tools/kit/async.js';
import { availableBackends, dropSchema, uniqueName } from '../tools/kit/backends.js';
import { adminToken, createSession, gql } from '../tools/kit/graphql.js';
import { newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startRoomServiceStandIn } from '../tools/kit/livekit-room-service.js';
import { startTestApp, type TestApp } from './support/app.js';

const { postgres } = await availableBackends();
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => {});
});
const started = async (...args: Parameters<typeof startTestApp>) => {
  const t = await startTestApp(...args);
  cleanup.push(() => t.stop());
  return t;
};
const MIGRATIONS = Object.keys(migrations).sort();
const STATUS = 'query($r: String!) { sessionByRoom(roomName: $r) { status } }';

describe.skipIf(!postgres)('replicas starting at the same moment on one fresh schema', () => {
  it('both become ready, each migration is applied once, and they serve one database', async () => {
    // Three rounds: the moments at which two start-ups collide vary from run to run.
    for (let round = 0; round < 3; round++) {
      const shared = { schema: uniqueName('twin'), prefix: `${uniqueName('twin')}:` };
      cleanup.push(() => dropSchema(shared.schema));
      const [a, b] = await Promise.all([started({}, shared), started({}, shared)]);
      for (const t of [a, b]) expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
      const applied = await sql<{ name: string }>`select name from ${sql.table(`${shared.schema}.kysely_migration`)} order by name`.execute(a.app.database.db);
      expect(applied.rows.map((r) => r.name)).toEqual(MIGRATIONS);

      const room = newRoomInstance(`twin-${round}-${Date.now()}`);
      await createSession(a.url, room.name, await adminToken());
      expect((await sendEvent(b.url, 'room_started', room)).status).toBe(200);
      expect((await gql(a.url, STATUS, { r: room.name }, await adminToken())).body.data.sessionByRoom).toEqual({ status: 'LIVE' });
    }
  }, 180_000);
});

describe('/readyz while a migration is pending', () => {
  it('answers 503 naming the migration, and 200 again once it is applied', async () => {
    const t = await started();
    const db = t.app.database.db;
    const table = sql.table(`${t.schema}.kysely_migration`);
    expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
    // The code expects the newest migration; the database no longer records it as applied (as after a
    // rollout where the new build starts against a database nobody has migrated yet).
    const newest = MIGRATIONS.at(-1)!;
    const { rows } = await sql<{ name: string; timestamp: string }>`delete from ${table} where name = ${newest} returning name, timestamp`.execute(db);
    expect(rows).toHaveLength(1);

    const res = await fetch(`${t.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'not ready', problems: [`migrations not applied: ${newest}`] });

    await sql`insert into ${table} (name, timestamp) values (${rows[0]!.name}, ${rows[0]!.timestamp})`.execute(db);
    expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
  }, 120_000);
});

describe('the reconcile timer', () => {
  it('fires on its own every RECONCILE_INTERVAL_SECONDS: a LIVE session whose room LiveKit no longer lists becomes STOPPED without anyone asking', async () => {
    const lk = await startRoomServiceStandIn();
    cleanup.push(() => lk.close());
    const t = await started({ LIVEKIT_URL: lk.url, RECONCILE_INTERVAL_SECONDS: '1' });
    const admin = await adminToken();
    const room = newRoomInstance(`timer-${Date.now()}`, Date.now() - 60_000);
    await createSession(t.url, room.name, admin);
    lk.rooms.push(room);
    expect((await sendEvent(t.url, 'room_started', room)).status).toBe(200);
    // It keeps asking (an interval, not a single run) and, while LiveKit lists the room, leaves it LIVE.
    const calls = lk.calls();
    expect(await until(() => lk.calls() >= calls + 2, 30_000)).toBe(true);
    expect((await gql(t.url, STATUS, { r: room.name }, admin)).body.data.sessionByRoom).toEqual({ status: 'LIVE' });

    lk.rooms.length = 0; // The room_finished webhook is lost.
    const status = async () => (await gql(t.url, STATUS, { r: room.name }, admin)).body.data.sessionByRoom.status as string;
    expect(await until(async () => (await status()) === 'STOPPED', 30_000)).toBe(true);
  }, 120_000);
});

describe('RETENTION_DAYS', () => {
  it('0 deletes nothing, however old: a replica keeping 30 days, started after it, has pruned its own old records by then', async () => {
    const aged = (label: string) => ({
      id: `EV_${label}_${Date.now()}`,
      event_type: 'room_started',
      room_name: label,
      room_sid: null,
      created_at: null,
      outcome: 'event_logged',
      session_id: null,
      received_at: sql<Date>`now() - interval '400 days'`,
    });
    const exists = async (t: TestApp, id: string) =>
      (await t.app.database.db.selectFrom('webhook_events').select('id').where('id', '=', id).execute()).length === 1;

    const keepAll = await started({ RETENTION_DAYS: '0' });
    const kept = aged('kept');
    await keepAll.app.database.db.insertInto('webhook_events').values(kept).execute();

    const control = await started({ RETENTION_DAYS: '30' });
    const pruned = aged('pruned');
    await control.app.database.db.insertInto('webhook_events').values(pruned).execute();
    // Retention runs the same time after start on both; the control started later.
    expect(await until(async () => !(await exists(control, pruned.id)), 60_000)).toBe(true);
    expect(await exists(keepAll, kept.id)).toBe(true);
  }, 120_000);
});
