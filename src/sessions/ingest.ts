import type { SessionChange } from './change.js';
import { applyLiveEvent, sameView, type LiveEvent } from './live-state.js';
import { createSession, lockSession, recordEvent, recordLiveChange, saveLiveState, type EventRecord } from './repo.js';
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
  /** What the event says about participants, tracks, egresses or ingresses (null: nothing). */
  live?: LiveEvent | null;
  /** Kept in the event log. */
  detail?: { participantIdentity: string | null; trackSid: string | null; egressId: string | null };
};

export type IngestAction = 'status_updated' | 'live_updated' | 'event_logged' | 'no_change' | 'session_not_found' | 'duplicate' | 'stale_event';

export type IngestResult = {
  action: IngestAction;
  eventType: string;
  roomName: string | null;
  sessionId: string | null;
  oldStatus: SessionStatus | null;
  newStatus: SessionStatus | null;
  /** Set when a change was committed (status or live state): publish it (after commit). */
  committed?: { change: SessionChange; changeId: string };
};

class DuplicateEvent extends Error {}

/**
 * Applies one verified webhook event in one transaction: the event is recorded exactly once
 * (its id is the primary key), and a status or live-state change, its version bump and its change
 * record commit together with it, or nothing does.
 */
export async function applyWebhookEvent(db: Db, event: IncomingEvent, opts: { autoCreate: boolean }): Promise<IngestResult> {
  const base = { eventType: event.type, roomName: event.roomName };
  const record: EventRecord = {
    id: event.id,
    type: event.type,
    roomName: event.roomName,
    roomSid: event.room?.sid ?? null,
    createdAt: event.createdAt,
    ...event.detail,
  };
  const nothing = { sessionId: null, oldStatus: null, newStatus: null };
  const isStatusEvent = STATUS_EVENTS.has(event.type) && event.roomName !== null && event.room !== null;
  const isLiveEvent = !isStatusEvent && event.live != null && event.roomName !== null;

  if (!isStatusEvent && !isLiveEvent) {
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
      // The live state changes under the same row lock (a finished instance also ends its participants and egresses).
      const liveNext = event.live ? applyLiveEvent(session.live_state, event.live) : session.live_state;
      const liveSeen = liveNext !== session.live_state && !sameView(session.live_state, liveNext);
      const withLive = liveNext !== session.live_state ? await saveLiveState(trx, session.id, liveNext) : session;
      const result = { ...base, sessionId: session.id, oldStatus: session.status };

      if (!isStatusEvent) {
        const action: IngestAction = liveSeen ? 'live_updated' : 'no_change';
        if (!(await recordEvent(trx, record, action, session.id))) throw new DuplicateEvent();
        if (!liveSeen) return { ...result, action, newStatus: session.status };
        const { change, changeId } = await recordLiveChange(trx, withLive, { liveState: liveNext, eventType: event.type });
        return { ...result, action, newStatus: session.status, committed: { change, changeId } };
      }

      const statusEvent = { kind: event.type as 'room_started' | 'room_finished', room: event.room! };
      const transition = await applyStatusEvent(trx, withLive, statusEvent, { eventType: event.type, at: event.createdAt ?? new Date() });
      // A status event answers with what it did to the status (issue 4's contract), whatever it did to the live state.
      if (!(await recordEvent(trx, record, transition.action, session.id))) throw new DuplicateEvent();
      if (transition.committed || !liveSeen) return { ...result, action: transition.action, newStatus: transition.newStatus, committed: transition.committed };
      const { change, changeId } = await recordLiveChange(trx, withLive, { liveState: liveNext, eventType: event.type });
      return { ...result, action: transition.action, newStatus: transition.newStatus, committed: { change, changeId } };
    });
  } catch (err) {
    if (err instanceof DuplicateEvent) return { ...base, action: 'duplicate', ...nothing };
    throw err;
  }
}

async function lockOrCreate(trx: Tx, roomName: string, autoCreate: boolean): Promise<SessionRow | undefined> {
  const found = await lockSession(trx, { roomName });
  // An event that overtook its room_started creates the session too (with auto-create on),
  // so the outcome does not depend on arrival order.
  if (found || !autoCreate) return found;
  await createSession(trx, { roomName, title: null });
  return lockSession(trx, { roomName });
}
