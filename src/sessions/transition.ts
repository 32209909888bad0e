import type { SessionChange } from './change.js';
import { applyLiveEvent, sameView, type LiveEvent } from './live-state.js';
import { decide, type Decision, type RoomInstance, type SessionStatus, type StatusEvent } from './status.js';
import type { SessionRow } from './tables.js';

/** A committed change, to publish after the transaction commits. */
export type CommittedChange = { change: SessionChange; changeId: string };

/** What an event says: a status event (room started or finished), a live-state event, or both (room_finished ends its participants too). */
export type SessionEvent = { status: StatusEvent | null; live: LiveEvent | null };

/** What caused a change (subscribers see it as the change's eventType), when the event happened, and the time of the write. */
export type Cause = { eventType: string; at: Date; now: Date };

export type Plan = {
  /** What the event did: to the status for a status event (the webhook's contract), to the live state otherwise. */
  action: Decision['action'] | 'live_updated';
  /** The status after the event. */
  newStatus: SessionStatus;
  /** The row to write (null: nothing to write). */
  next: SessionRow | null;
  /** Clients see the change: `next.version` is one more and a change record goes with it. */
  visible: boolean;
};

/**
 * The one way an event changes a session, for webhooks and reconciliation alike: pure, over the row as read.
 * The status rule (`decide`) and the live-state rule (`applyLiveEvent`) decide; this combines their answers into
 * the row to write. A change clients can see bumps the version; a change of hidden facts only (a tombstone, a
 * newer room instance with the same status) is written without one.
 */
export function planChange(session: SessionRow, event: SessionEvent, cause: Cause): Plan {
  const live = event.live ? applyLiveEvent(session.live_state, event.live) : session.live_state;
  // Whether clients see the live change (two views serialised): asked only where it decides something.
  const liveSeen = () => live !== session.live_state && !sameView(session.live_state, live);

  if (event.status) {
    const decision = decide({ status: session.status, roomSid: session.room_sid, roomCreatedMs: session.room_created_ms }, event.status);
    if (decision.action === 'status_updated') {
      const next: SessionRow = {
        ...session,
        status: decision.status,
        room_sid: decision.room.sid,
        room_created_ms: decision.room.createdMs,
        version: session.version + 1,
        started_at: decision.status === 'LIVE' ? cause.at : session.started_at,
        stopped_at: decision.status === 'STOPPED' ? cause.at : null,
        live_state: live,
        updated_at: cause.now,
      };
      return { action: 'status_updated', newStatus: decision.status, next, visible: true };
    }
    const movedTo = decision.action === 'no_change' && decision.room.sid !== session.room_sid ? decision.room : null;
    const seen = liveSeen();
    return { action: decision.action, newStatus: session.status, next: withLive(session, live, seen, movedTo, cause), visible: seen };
  }

  const seen = liveSeen();
  return { action: seen ? 'live_updated' : 'no_change', newStatus: session.status, next: withLive(session, live, seen, null, cause), visible: seen };
}

/** The row with the new live state (and current instance), or null when neither changed. */
function withLive(session: SessionRow, live: SessionRow['live_state'], seen: boolean, movedTo: RoomInstance | null, cause: Cause): SessionRow | null {
  if (live === session.live_state && movedTo === null) return null;
  return {
    ...session,
    ...(movedTo ? { room_sid: movedTo.sid, room_created_ms: movedTo.createdMs } : {}),
    live_state: live,
    version: seen ? session.version + 1 : session.version,
    // A hidden fact alone does not change what clients see, updated_at included.
    updated_at: seen || movedTo ? cause.now : session.updated_at,
  };
}

/** The change record and message of a visible change. */
export function changeOf(previous: SessionRow, next: SessionRow, eventType: string): SessionChange {
  return { session: next, previousStatus: previous.status, eventType, changedAt: next.updated_at };
}
