import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pruneOldRecords } from '../src/sessions/retention.js';
import { newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';
import { adminToken, createSession } from '../tools/kit/graphql.js';

let t: TestApp;
beforeAll(async () => {
  // Automatic pruning off: this test prunes by hand and counts what it deleted.
  t = await startTestApp({ RETENTION_DAYS: '0' });
});
afterAll(() => t?.stop());

it('deletes webhook records and published history past the retention, never sessions or unpublished changes', async () => {
  const db = t.app.database.db;
  const room = newRoomInstance(`retention-${Date.now()}`);
  const session = await createSession(t.url, room.name, await adminToken());
  const oldEvent = await sendEvent(t.url, 'room_started', room);
  const freshEvent = await sendEvent(t.url, 'participant_joined', room);
  await sendEvent(t.url, 'room_finished', room);
  const sessionId = (await db.selectFrom('sessions').select('id').where('room_name', '=', room.name).executeTakeFirstOrThrow()).id;
  // Wait until both changes were published (the fast path marks them within ~100 ms).
  for (let i = 0; i < 100; i++) {
    const unpublished = await db.selectFrom('session_changes').select('id').where('session_id', '=', sessionId).where('published_at', 'is', null).execute();
    if (unpublished.length === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // Age the first event and both changes past 30 days; keep version 3's change unpublished.
  await db
    .updateTable('webhook_events')
    .set({ received_at: sql`now() - interval '31 days'` })
    .where('id', '=', oldEvent.eventId)
    .execute();
  await db
    .updateTable('session_changes')
    .set({ changed_at: sql`now() - interval '31 days'` })
    .where('session_id', '=', sessionId)
    .execute();
  await db.updateTable('session_changes').set({ published_at: null }).where('session_id', '=', sessionId).where('version', '=', 3).execute();

  const deleted = await pruneOldRecords(db, 30);
  expect(deleted.events).toBeGreaterThanOrEqual(1);
  expect(deleted.changes).toBeGreaterThanOrEqual(1);

  const events = await db.selectFrom('webhook_events').select('id').where('room_name', '=', room.name).execute();
  expect(events.map((e) => e.id)).not.toContain(oldEvent.eventId);
  expect(events.map((e) => e.id)).toContain(freshEvent.eventId);
  const changes = await db.selectFrom('session_changes').select('version').where('session_id', '=', sessionId).execute();
  expect(changes.map((c) => c.version)).toEqual([3]);
  const row = await db.selectFrom('sessions').selectAll().where('id', '=', sessionId).executeTakeFirstOrThrow();
  expect(row).toMatchObject({ status: 'STOPPED', version: 3, room_name: session.roomName });
});
