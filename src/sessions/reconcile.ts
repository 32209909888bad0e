import { liveView, type LiveEvent, type LiveParticipant } from './live-state.js';
import { findNotLiveByRoomNames, listLiveSessions, readSession, withReconcileLock, writeSession } from './repo.js';
import type { Db, SessionRow } from './tables.js';
import { changeOf, planChange, type CommittedChange, type SessionEvent } from './transition.js';

/** A room as LiveKit's RoomService lists it (`numParticipants`: LiveKit's own count, when it gave one). */
export type ListedRoom = { name: string; sid: string; createdMs: number; numParticipants?: number };

/** LiveKit's RoomService ListParticipants for one room. */
export type ListParticipants = (roomName: string) => Promise<LiveParticipant[]>;

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
export async function reconcileSessions(
  db: Db,
  listRooms: () => Promise<ListedRoom[]>,
  timeoutMs = LIST_ROOMS_TIMEOUT_MS,
  listParticipants?: ListParticipants,
): Promise<Repair[] | null> {
  // Read before asking LiveKit: only an instance we knew before the call can be "gone" from its answer.
  const liveBefore = await listLiveSessions(db);
  const askedAt = Date.now();
  const rooms = await withTimeout(listRooms(), timeoutMs);
  const listed = new Map(rooms.map((r) => [r.name, r]));
  // Participant drift: where LiveKit's count differs from our set (or its instance from ours), ask it who is there,
  // still holding nothing. Our count is never taken from a webhook's numParticipants; LiveKit's own list repairs it.
  const participantLists: Array<{ session: SessionRow; event: LiveEvent }> = [];
  if (listParticipants) {
    for (const session of liveBefore) {
      const room = listed.get(session.room_name);
      if (!room || room.numParticipants === undefined) continue;
      const view = liveView(session.live_state);
      if (view.participants.length === room.numParticipants) continue;
      const askedAtMs = Date.now();
      const participants = await withTimeout(listParticipants(room.name), timeoutMs);
      participantLists.push({ session, event: { kind: 'participants_listed', room: { sid: room.sid, createdMs: room.createdMs }, participants, askedAtMs } });
    }
  }

  return withReconcileLock(db, async (conn) => {
    const repairs: Repair[] = [];
    for (const session of liveBefore) {
      if (listed.has(session.room_name) || session.room_sid === null || (session.room_created_ms ?? 0) >= askedAt) continue;
      const finished = { kind: 'room_finished' as const, room: { sid: session.room_sid, createdMs: session.room_created_ms ?? 0 } };
      const repair = await applyRepair(conn, session.id, { status: finished, live: finished });
      if (repair) repairs.push(repair);
    }
    for (const { id, room_name } of await findNotLiveByRoomNames(conn, [...listed.keys()])) {
      const room = listed.get(room_name)!;
      const started = { kind: 'room_started' as const, room: { sid: room.sid, createdMs: room.createdMs } };
      const repair = await applyRepair(conn, id, { status: started, live: started });
      if (repair) repairs.push(repair);
    }
    for (const { session, event } of participantLists) {
      const repair = await applyRepair(conn, session.id, { status: null, live: event });
      if (repair) repairs.push(repair);
    }
    return repairs;
  });
}

/** Applies a repair under the row lock, through the same plan and write as a webhook (a status repair also ends its participants and egresses). */
function applyRepair(db: Db, sessionId: string, event: SessionEvent): Promise<Repair | undefined> {
  return db.transaction().execute(async (trx) => {
    const read = await readSession(trx, { id: sessionId }, { lock: true });
    if (!read) return undefined;
    const now = new Date();
    const plan = planChange(read.row, event, { eventType: 'reconcile', at: now, now });
    if (!plan.next) return undefined;
    const write = await writeSession(trx, { read, next: plan.next, change: { visible: plan.visible, eventType: 'reconcile' }, event: null });
    if (write.kind !== 'applied') throw new Error(`reconcile: session ${sessionId} changed under its row lock`);
    return plan.visible ? { change: changeOf(read.row, plan.next, 'reconcile'), changeId: write.changeId! } : undefined;
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`LiveKit did not list its rooms within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
