import type { SessionChange } from './change.js';
import { createSession, lockSession, recordEvent } from './repo.js';
import { STATUS_EVENTS, type RoomInstance, type SessionStatus } from './status.js';
import type { Db, SessionRow, Tx } from './tables.js';
import { applyStatusEvent } from './transition.js';

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
export async function applyWebhookEvent(db: Db, event: IncomingEvent, opts: { autoCreate: boolean }): Promise<IngestResult> {
  const base = { eventType: event.type, roomName: event.roomName };
  const record = { id: event.id, type: event.type, roomName: event.roomName, roomSid: event.room?.sid ?? null, createdAt: event.createdAt };
  const nothing = { sessionId: null, oldStatus: null, newStatus: null };
  const isStatusEvent = STATUS_EVENTS.has(event.type) && event.roomName !== null && event.room !== null;

  if (!isStatusEvent) {
    const inserted = await recordEvent(db, record, 'event_logged', null);
    return { ...base, action: inserted ? 'event_logged' : 'duplicate', ...nothing };
  }

  try {
    return await db.transaction().execute(async (trx) => {
      const session = await lockOrCreate(trx, event.roomName!, opts.autoCreate);
      if (!session) {
        if (!(await recordEvent(trx, record, 'session_not_found', null))) throw new DuplicateEvent();
        return { ...base, action: 'session_not_found' as const, ...nothing };
      }
      const statusEvent = { kind: event.type as 'room_started' | 'room_finished', room: event.room! };
      const transition = await applyStatusEvent(trx, session, statusEvent, { eventType: event.type, at: event.createdAt ?? new Date() });
      // Recorded in the same transaction: a duplicate rolls the transition back with it.
      if (!(await recordEvent(trx, record, transition.action, session.id))) throw new DuplicateEvent();
      return {
        ...base,
        action: transition.action,
        sessionId: session.id,
        oldStatus: session.status,
        newStatus: transition.newStatus,
        committed: transition.committed,
      };
    });
  } catch (err) {
    if (err instanceof DuplicateEvent) return { ...base, action: 'duplicate', ...nothing };
    throw err;
  }
}

async function lockOrCreate(trx: Tx, roomName: string, autoCreate: boolean): Promise<SessionRow | undefined> {
  const found = await lockSession(trx, { roomName });
  // A room_finished that overtook its room_started creates the session too (it ends STOPPED on that
  // instance), so the late room_started is stale: the outcome must not depend on arrival order.
  if (found || !autoCreate) return found;
  await createSession(trx, { roomName, title: null });
  return lockSession(trx, { roomName });
}
