/** Where a session is: created, its room running, its room gone. */
export type SessionStatus = 'READY' | 'LIVE' | 'STOPPED';

/** One LiveKit room instance: rooms re-created under the same name get a new sid. */
export type RoomInstance = { sid: string; createdMs: number };

/** What the rule needs of a session row. */
export type SessionState = {
  status: SessionStatus;
  roomSid: string | null;
  roomCreatedMs: number | null;
};

/** An event that can change a status: a webhook, or a repair made by reconciliation. */
export type StatusEvent = { kind: 'room_started' | 'room_finished'; room: RoomInstance };

export type Decision =
  /** The status changes: version +1, subscribers are told. */
  | { action: 'status_updated'; status: SessionStatus; room: RoomInstance }
  /** The status stays; the current instance may still move to a newer one. */
  | { action: 'no_change'; status: SessionStatus; room: RoomInstance }
  /** Nothing this event says can change anything any more. */
  | { action: 'stale_event' };

export const STATUS_EVENTS = new Set(['room_started', 'room_finished']);

/** Orders room instances: creation time first, sid to break ties deterministically. */
export function compareInstances(a: RoomInstance, b: RoomInstance): number {
  if (a.createdMs !== b.createdMs) return a.createdMs < b.createdMs ? -1 : 1;
  return a.sid < b.sid ? -1 : a.sid > b.sid ? 1 : 0;
}

/**
 * What a status event does to a session. The session follows its newest room instance:
 * LIVE while that instance has started and not finished, STOPPED once it has finished.
 * Because it depends only on "newest instance" and "has it finished", the final state is
 * the same for every arrival order of the same set of events.
 */
export function decide(state: SessionState, event: StatusEvent): Decision {
  const target: SessionStatus = event.kind === 'room_started' ? 'LIVE' : 'STOPPED';
  const current: RoomInstance | null = state.roomSid === null ? null : { sid: state.roomSid, createdMs: state.roomCreatedMs ?? 0 };

  if (current !== null && current.sid === event.room.sid) {
    if (event.kind === 'room_started') {
      // LIVE: a repeat. STOPPED: this instance already finished and cannot come back.
      return state.status === 'LIVE' ? { action: 'no_change', status: 'LIVE', room: current } : { action: 'stale_event' };
    }
    return state.status === 'STOPPED'
      ? { action: 'no_change', status: 'STOPPED', room: current }
      : { action: 'status_updated', status: 'STOPPED', room: current };
  }
  if (current === null || compareInstances(event.room, current) > 0) {
    return state.status === target ? { action: 'no_change', status: target, room: event.room } : { action: 'status_updated', status: target, room: event.room };
  }
  return { action: 'stale_event' };
}
