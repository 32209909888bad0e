import type { Kysely, Transaction } from 'kysely';
import type { Database, SessionRow, SessionStatus } from '../db/types.js';
import type { SessionChange } from './change.js';
import { createSession, findByRoomName, moveRoomInstance, recordStatusChange } from './repo.js';
import { decide, STATUS_EVENTS, type RoomInstance } from './status.js';

/** A verified LiveKit webhook event, reduced to what the service uses. */
export type IncomingEvent = {
  id: string;
  type: string;
  roomName: string | null;
  room: RoomInstance | null;
  createdAt: Date | null;
};

export type IngestAction = 'status_updated' | 'event_logged' | 'no_change' | 'session_not_found' | 'duplicate' | 'stale_event';

export type IngestResult = {
  action: IngestAction;
  eventType: string;
  roomName: string | null;
  sessionId: string | null;
  oldStatus: SessionStatus | null;
  newStatus: SessionStatus | null;
  /** Set when a status change was committed: publish it (after commit). */
  committed?: { change: SessionChange; changeId: string };
};

class DuplicateEvent extends Error {}

/**
 * Applies one verified webhook event in one transaction: the event is recorded exactly once
 * (its id is the primary key), and a status change, its version bump and its change record
 * commit together with it, or nothing does.
 */
export async function applyWebhookEvent(db: Kysely<Database>, event: IncomingEvent, opts: { autoCreate: boolean }): Promise<IngestResult> {
  const base = { eventType: event.type, roomName: event.roomName };
  const isStatusEvent = STATUS_EVENTS.has(event.type) && event.roomName !== null && event.room !== null;

  if (!isStatusEvent) {
    const inserted = await recordEvent(db, event, 'event_logged', null);
    const action: IngestAction = inserted ? 'event_logged' : 'duplicate';
    return { ...base, action, sessionId: null, oldStatus: null, newStatus: null };
  }

  try {
    return await db.transaction().execute(async (trx) => {
      const session = await lockSession(trx, event, opts.autoCreate);
      if (!session) {
        if (!(await recordEvent(trx, event, 'session_not_found', null))) throw new DuplicateEvent();
        return { ...base, action: 'session_not_found' as const, sessionId: null, oldStatus: null, newStatus: null };
      }
      const decision = decide(
        { status: session.status, roomSid: session.room_sid, roomCreatedMs: session.room_created_ms },
        { kind: event.type as 'room_started' | 'room_finished', room: event.room! },
      );
      if (!(await recordEvent(trx, event, decision.action, session.id))) throw new DuplicateEvent();

      const result = { ...base, action: decision.action, sessionId: session.id, oldStatus: session.status };
      if (decision.action === 'stale_event') return { ...result, newStatus: session.status };
      if (decision.action === 'no_change') {
        if (decision.room.sid !== session.room_sid) await moveRoomInstance(trx, session.id, decision.room);
        return { ...result, newStatus: session.status };
      }
      const committed = await recordStatusChange(trx, session, {
        status: decision.status,
        room: decision.room,
        eventType: event.type,
        at: event.createdAt ?? new Date(),
      });
      return { ...result, newStatus: committed.session.status, committed: { change: committed.change, changeId: committed.changeId } };
    });
  } catch (err) {
    if (err instanceof DuplicateEvent) {
      return { ...base, action: 'duplicate', sessionId: null, oldStatus: null, newStatus: null };
    }
    throw err;
  }
}

async function lockSession(trx: Transaction<Database>, event: IncomingEvent, autoCreate: boolean): Promise<SessionRow | undefined> {
  const roomName = event.roomName!;
  const found = await findByRoomName(trx, roomName, { forUpdate: true });
  // A room_finished that overtook its room_started creates the session too (it ends STOPPED on that
  // instance), so the late room_started is stale: the outcome must not depend on arrival order.
  if (found || !autoCreate) return found;
  await createSession(trx, { roomName, title: null });
  return findByRoomName(trx, roomName, { forUpdate: true });
}

/** Inserts the event record; false when its id was seen before (a retry or a concurrent copy). */
async function recordEvent(db: Kysely<Database> | Transaction<Database>, event: IncomingEvent, outcome: string, sessionId: string | null) {
  const row = await db
    .insertInto('webhook_events')
    .values({
      id: event.id,
      event_type: event.type,
      room_name: event.roomName,
      room_sid: event.room?.sid ?? null,
      created_at: event.createdAt,
      outcome,
      session_id: sessionId,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}
