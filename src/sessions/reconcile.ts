import { findNotLiveByRoomNames, listLiveSessions, lockSession, withReconcileLock } from './repo.js';
import type { StatusEvent } from './status.js';
import type { Db } from './tables.js';
import { applyStatusEvent, type CommittedChange } from './transition.js';

/** A room as LiveKit's RoomService lists it. */
export type ListedRoom = { name: string; sid: string; createdMs: number };

export type Repair = CommittedChange;

/** How long LiveKit may take to list its rooms before this round is given up. */
export const LIST_ROOMS_TIMEOUT_MS = 10_000;

/**
 * Repairs drift between LiveKit's rooms and the sessions: a LIVE session whose room is gone is
 * stopped; a session whose room exists with a newer instance goes LIVE. Repairs go through the
 * same transition as webhooks, so a late webhook and a repair can never disagree.
 * LiveKit is asked first, holding nothing; only then is the lock taken and the repairs applied, so
 * a slow LiveKit never holds a database connection (PGlite has one) or a lock. Returns null when
 * another replica holds the lock.
 */
export async function reconcileSessions(db: Db, listRooms: () => Promise<ListedRoom[]>, timeoutMs = LIST_ROOMS_TIMEOUT_MS): Promise<Repair[] | null> {
  // Read before asking LiveKit: only an instance we knew before the call can be "gone" from its answer.
  const liveBefore = await listLiveSessions(db);
  const askedAt = Date.now();
  const rooms = await withTimeout(listRooms(), timeoutMs);
  const listed = new Map(rooms.map((r) => [r.name, r]));

  return withReconcileLock(db, async (conn) => {
    const repairs: Repair[] = [];
    for (const session of liveBefore) {
      if (listed.has(session.room_name) || session.room_sid === null || (session.room_created_ms ?? 0) >= askedAt) continue;
      const repair = await applyRepair(conn, session.id, { kind: 'room_finished', room: { sid: session.room_sid, createdMs: session.room_created_ms ?? 0 } });
      if (repair) repairs.push(repair);
    }
    for (const { id, room_name } of await findNotLiveByRoomNames(conn, [...listed.keys()])) {
      const room = listed.get(room_name)!;
      const repair = await applyRepair(conn, id, { kind: 'room_started', room: { sid: room.sid, createdMs: room.createdMs } });
      if (repair) repairs.push(repair);
    }
    return repairs;
  });
}

function applyRepair(db: Db, sessionId: string, event: StatusEvent): Promise<Repair | undefined> {
  return db.transaction().execute(async (trx) => {
    const session = await lockSession(trx, { id: sessionId });
    if (!session) return undefined;
    return (await applyStatusEvent(trx, session, event, { eventType: 'reconcile', at: new Date() })).committed;
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`LiveKit did not list its rooms within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
