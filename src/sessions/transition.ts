import type { SessionChange } from './change.js';
import { moveRoomInstance, recordStatusChange } from './repo.js';
import { decide, type Decision, type SessionStatus, type StatusEvent } from './status.js';
import type { SessionRow, Tx } from './tables.js';

/** A committed status change, to publish after the transaction commits. */
export type CommittedChange = { change: SessionChange; changeId: string };

export type Transition = {
  action: Decision['action'];
  /** The status after the event (unchanged unless `action` is status_updated). */
  newStatus: SessionStatus;
  committed?: CommittedChange;
};

/**
 * The one way a status event changes a session, for webhooks and reconciliation alike: the pure rule
 * decides, then the decision is applied to the row the caller locked, inside the caller's transaction.
 * `cause` is what subscribers see as the change's eventType.
 */
export async function applyStatusEvent(trx: Tx, session: SessionRow, event: StatusEvent, cause: { eventType: string; at: Date }): Promise<Transition> {
  const decision = decide({ status: session.status, roomSid: session.room_sid, roomCreatedMs: session.room_created_ms }, event);
  if (decision.action === 'stale_event') return { action: 'stale_event', newStatus: session.status };
  if (decision.action === 'no_change') {
    if (decision.room.sid !== session.room_sid) await moveRoomInstance(trx, session.id, decision.room);
    return { action: 'no_change', newStatus: session.status };
  }
  const { session: updated, change, changeId } = await recordStatusChange(trx, session, { status: decision.status, room: decision.room, ...cause });
  return { action: 'status_updated', newStatus: updated.status, committed: { change, changeId } };
}
