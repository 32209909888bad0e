import { sql, type Kysely } from 'kysely';
import type { Database, SessionRow } from '../db/types.js';
import type { SessionChange } from './change.js';
import { moveRoomInstance, recordStatusChange } from './repo.js';
import { decide, type RoomInstance, type StatusEvent } from './status.js';

/** A room as LiveKit's RoomService lists it. */
export type ListedRoom = { name: string; sid: string; createdMs: number };

export type Repair = { change: SessionChange; changeId: string };

/** Arbitrary, fixed: the advisory lock that lets one replica at a time reconcile. */
const RECONCILE_LOCK_KEY = 0x6c6b7373; // "lkss"

/**
 * Repairs drift between LiveKit's rooms and the sessions: a LIVE session whose room is gone is
 * stopped; a session whose room exists with a newer instance goes LIVE. Repairs go through the
 * same rule as webhooks, so a late webhook and a repair can never disagree. Returns null when
 * another replica holds the lock.
 */
export async function reconcileSessions(db: Kysely<Database>, listRooms: () => Promise<ListedRoom[]>): Promise<Repair[] | null> {
  // One pinned connection: the session-level advisory lock belongs to it, and PGlite has only one.
  return db.connection().execute(async (conn) => {
    // Keyed by schema too: deployments (or test suites) sharing one database must not block each other.
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${RECONCILE_LOCK_KEY}, hashtext(current_schema())) as locked`.execute(conn);
    if (!rows[0]?.locked) return null;
    try {
      // Read before asking LiveKit: only an instance we knew before the call can be "gone" from its answer.
      const liveBefore = await conn.selectFrom('sessions').selectAll().where('status', '=', 'LIVE').execute();
      const askedAt = Date.now();
      const rooms = await listRooms();
      const listed = new Map(rooms.map((r) => [r.name, r]));

      const repairs: Repair[] = [];
      for (const session of liveBefore) {
        if (listed.has(session.room_name) || session.room_sid === null || (session.room_created_ms ?? 0) >= askedAt) continue;
        const room = { sid: session.room_sid, createdMs: session.room_created_ms ?? 0 };
        const repair = await applyRepair(conn, session.id, { kind: 'room_finished', room });
        if (repair) repairs.push(repair);
      }
      if (rooms.length > 0) {
        const candidates = await conn
          .selectFrom('sessions')
          .select(['id', 'room_name'])
          .where('room_name', 'in', [...listed.keys()])
          .where('status', '!=', 'LIVE')
          .execute();
        for (const { id, room_name } of candidates) {
          const room = listed.get(room_name)!;
          const repair = await applyRepair(conn, id, { kind: 'room_started', room: { sid: room.sid, createdMs: room.createdMs } });
          if (repair) repairs.push(repair);
        }
      }
      return repairs;
    } finally {
      await sql`select pg_advisory_unlock(${RECONCILE_LOCK_KEY}, hashtext(current_schema()))`.execute(conn);
    }
  });
}

async function applyRepair(db: Kysely<Database>, sessionId: string, event: StatusEvent): Promise<Repair | undefined> {
  return db.transaction().execute(async (trx) => {
    const session: SessionRow | undefined = await trx.selectFrom('sessions').selectAll().where('id', '=', sessionId).forUpdate().executeTakeFirst();
    if (!session) return undefined;
    const decision = decide({ status: session.status, roomSid: session.room_sid, roomCreatedMs: session.room_created_ms }, event);
    if (decision.action === 'stale_event') return undefined;
    if (decision.action === 'no_change') {
      if (decision.room.sid !== session.room_sid) await moveRoomInstance(trx, session.id, decision.room);
      return undefined;
    }
    const { change, changeId } = await recordStatusChange(trx, session, {
      status: decision.status,
      room: decision.room as RoomInstance,
      eventType: 'reconcile',
      at: new Date(),
    });
    return { change, changeId };
  });
}
