import { withSnapshotJson, type SessionChange } from './change.js';
import type { LiveEvent } from './live-state.js';
import {
  createSession,
  readSession,
  recordEvent,
  recordEventUnchanged,
  recordEventWithoutSession,
  writeSession,
  type EventRecord,
  type SessionRead,
} from './repo.js';
import { STATUS_EVENTS, type RoomInstance, type SessionStatus } from './status.js';
import type { Db } from './tables.js';
import { changeOf, planChange, type SessionEvent } from './transition.js';
import { plainPath, type FastPath } from './fast-path.js';
import type { SessionWriter } from './write-batch.js';

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

/** Optimistic tries (the cached or a fresh read, then the rows conflicting writes found) before the row lock is taken. */
const OPTIMISTIC_ATTEMPTS = 3;

/**
 * Applies one verified webhook event: the event is recorded exactly once (its id is the primary key), and a
 * status or live-state change, its version bump and its change record commit together with it, or nothing does.
 *
 * The fast path holds no transaction: the session row is taken from `cache` or read, the pure rule plans the
 * write, and one statement applies it only if the row is still the version read and the event is new
 * (`writeSession`, `recordEventUnchanged` in repo.ts). When the row changed in between, the statement brings back
 * the row it found and the event is planned again on it; after `OPTIMISTIC_ATTEMPTS` the row lock is taken, under
 * which the write cannot conflict.
 */
export async function applyWebhookEvent(
  db: Db,
  event: IncomingEvent,
  opts: { autoCreate: boolean; /** The process's cache, group commit and room turns (default: none of them). */ fastPath?: FastPath },
): Promise<IngestResult> {
  const { cache, write: writer, inTurn } = opts.fastPath ?? plainPath(db);
  const record: EventRecord = {
    id: event.id,
    type: event.type,
    roomName: event.roomName,
    roomSid: event.room?.sid ?? null,
    createdAt: event.createdAt,
    ...event.detail,
  };
  const isStatusEvent = STATUS_EVENTS.has(event.type) && event.roomName !== null && event.room !== null;
  const isLiveEvent = !isStatusEvent && event.live != null && event.roomName !== null;

  if (!isStatusEvent && !isLiveEvent) {
    const inserted = await recordEvent(db, record, 'event_logged', null);
    return { ...baseOf(event), action: inserted ? 'event_logged' : 'duplicate', ...NOTHING };
  }

  const roomName = event.roomName!;
  const sessionEvent: SessionEvent = {
    status: isStatusEvent ? { kind: event.type as 'room_started' | 'room_finished', room: event.room! } : null,
    live: event.live ?? null,
  };
  const attempt = async (conn: Db, write: SessionWriter, read: SessionRead | undefined) => {
    const outcome = await applyToRead(conn, write, read, event, sessionEvent, record);
    if ('result' in outcome && outcome.written) cache.set(roomName, outcome.written);
    return outcome;
  };

  // One room's webhooks in turn (the previous one's row is the cached row), rooms at once.
  return inTurn(roomName, async () => {
    // The cached row first; after a conflict, the row the conflicting statement found (or a fresh read).
    let read: SessionRead | undefined = cache.get(roomName);
    for (let i = 0; i < OPTIMISTIC_ATTEMPTS; i++) {
      read ??= await readOrCreate(db, roomName, opts.autoCreate, false);
      const outcome = await attempt(db, writer, read);
      if ('result' in outcome) return outcome.result;
      cache.delete(roomName);
      // The statement's snapshot may predate the write that moved the row: the same version again means read anew.
      read = outcome.current?.xmin !== read?.xmin ? outcome.current : undefined;
    }
    // Still contended (other replicas writing the room too): under the row lock the same write cannot conflict.
    return db.transaction().execute(async (trx) => {
      const outcome = await attempt(trx, (write) => writeSession(trx, write), await readOrCreate(trx, roomName, opts.autoCreate, true));
      if (!('result' in outcome)) throw new Error(`webhook ${event.id}: write conflict on room ${roomName} under its row lock`);
      return outcome.result;
    });
  });
}

const NOTHING = { sessionId: null, oldStatus: null, newStatus: null };
const baseOf = (event: IncomingEvent) => ({ eventType: event.type, roomName: event.roomName });

/** One try: plan against `read` and write if it is still current; if it was not, the row found instead (when there was one). */
async function applyToRead(
  db: Db,
  writer: SessionWriter,
  read: SessionRead | undefined,
  event: IncomingEvent,
  sessionEvent: SessionEvent,
  record: EventRecord,
): Promise<{ result: IngestResult; written?: SessionRead } | { current: SessionRead | undefined }> {
  const base = baseOf(event);
  if (!read) {
    const write = await recordEventWithoutSession(db, record, 'session_not_found');
    if (write.kind === 'conflict') return { current: undefined };
    return { result: { ...base, action: write.kind === 'duplicate' ? 'duplicate' : 'session_not_found', ...NOTHING } };
  }
  const session = read.row;
  const now = new Date();
  const plan = planChange(session, sessionEvent, { eventType: event.type, at: event.createdAt ?? now, now });
  const write = plan.next
    ? await writer({ read, next: plan.next, change: { visible: plan.visible, eventType: event.type }, event: { record, outcome: plan.action } })
    : await recordEventUnchanged(db, read, record, plan.action);
  if (write.kind === 'conflict') return { current: write.current };
  if (write.kind === 'duplicate') return { result: { ...base, action: 'duplicate', ...NOTHING } };
  const result: IngestResult = { ...base, action: plan.action, sessionId: session.id, oldStatus: session.status, newStatus: plan.newStatus };
  if (!plan.next) return { result };
  if (plan.visible) {
    const change = { ...changeOf(session, plan.next, event.type), rowVersion: write.xmin ?? undefined };
    result.committed = { change: withSnapshotJson(change, write.snapshotJson!), changeId: write.changeId! };
  }
  return { result, written: { row: plan.next, xmin: write.xmin! } };
}

async function readOrCreate(db: Db, roomName: string, autoCreate: boolean, lock: boolean): Promise<SessionRead | undefined> {
  const found = await readSession(db, { roomName }, { lock });
  // An event that overtook its room_started creates the session too (with auto-create on),
  // so the outcome does not depend on arrival order.
  if (found || !autoCreate) return found;
  await createSession(db, { roomName, title: null });
  return readSession(db, { roomName }, { lock });
}
