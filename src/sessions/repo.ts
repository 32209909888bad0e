import { sql } from 'kysely';
import { changeFromRow, snapshotToJson, type SessionChange } from './change.js';
import type { LiveState } from './live-state.js';
import type { RoomInstance, SessionStatus } from './status.js';
import type { Db, SessionRow, Tx } from './tables.js';

/*
 * All of the service's SQL. Every function takes the database or a transaction (`Db`): the caller
 * decides the unit of work; `Tx` marks the steps that only make sense inside one.
 */

export function findById(db: Db, id: string): Promise<SessionRow | undefined> {
  return db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
}

export function findByRoomName(db: Db, roomName: string): Promise<SessionRow | undefined> {
  return db.selectFrom('sessions').selectAll().where('room_name', '=', roomName).executeTakeFirst();
}

/** Reads and row-locks a session until the transaction ends: every status change starts here. */
export function lockSession(trx: Tx, by: { id: string } | { roomName: string }): Promise<SessionRow | undefined> {
  const q = trx.selectFrom('sessions').selectAll();
  return ('id' in by ? q.where('id', '=', by.id) : q.where('room_name', '=', by.roomName)).forUpdate().executeTakeFirst();
}

export function listLiveSessions(db: Db): Promise<SessionRow[]> {
  return db.selectFrom('sessions').selectAll().where('status', '=', 'LIVE').execute();
}

/** Sessions of these rooms that are not LIVE (the ones a running room may repair). */
export async function findNotLiveByRoomNames(db: Db, roomNames: readonly string[]): Promise<{ id: string; room_name: string }[]> {
  if (roomNames.length === 0) return [];
  return db
    .selectFrom('sessions')
    .select(['id', 'room_name'])
    .where('room_name', 'in', [...roomNames])
    .where('status', '!=', 'LIVE')
    .execute();
}

/** What a webhook event record holds. */
export type EventRecord = {
  id: string;
  type: string;
  roomName: string | null;
  roomSid: string | null;
  createdAt: Date | null;
  /** Who or what it was about (participant and track events, egress events). */
  participantIdentity?: string | null;
  trackSid?: string | null;
  egressId?: string | null;
};

/** Inserts the event record; false when its id was seen before (a retry or a concurrent copy). */
export async function recordEvent(db: Db, event: EventRecord, outcome: string, sessionId: string | null): Promise<boolean> {
  const row = await db
    .insertInto('webhook_events')
    .values({
      id: event.id,
      event_type: event.type,
      room_name: event.roomName,
      room_sid: event.roomSid,
      created_at: event.createdAt,
      outcome,
      session_id: sessionId,
      participant_identity: event.participantIdentity ?? null,
      track_sid: event.trackSid ?? null,
      egress_id: event.egressId ?? null,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/** Arbitrary, fixed: the advisory lock that lets one replica at a time apply reconciliation repairs. */
const RECONCILE_LOCK_KEY = 0x6c6b7373; // "lkss"

/**
 * Runs `fn` holding the reconcile lock on one pinned connection (the session-level lock belongs to it,
 * and PGlite has only one: `fn` must use the connection it is given). Null when another replica holds it.
 */
export async function withReconcileLock<T>(db: Db, fn: (conn: Db) => Promise<T>): Promise<T | null> {
  return db.connection().execute(async (conn) => {
    // Keyed by schema too: deployments (or test suites) sharing one database must not block each other.
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${RECONCILE_LOCK_KEY}, hashtext(current_schema())) as locked`.execute(conn);
    if (!rows[0]?.locked) return null;
    try {
      return await fn(conn);
    } finally {
      await sql`select pg_advisory_unlock(${RECONCILE_LOCK_KEY}, hashtext(current_schema()))`.execute(conn);
    }
  });
}

/** Deletes up to `limit` webhook records received before `days` ago; returns how many. */
export async function deleteOldWebhookEvents(db: Db, days: number, limit: number): Promise<number> {
  const cutoff = sql<Date>`now() - make_interval(days => ${days})`;
  const { numDeletedRows } = await db
    .deleteFrom('webhook_events')
    .where('id', 'in', (eb) => eb.selectFrom('webhook_events').select('id').where('received_at', '<', cutoff).limit(limit))
    .executeTakeFirst();
  return Number(numDeletedRows);
}

/** Deletes up to `limit` published changes older than `days` (unpublished ones are still the outbox); returns how many. */
export async function deleteOldPublishedChanges(db: Db, days: number, limit: number): Promise<number> {
  const cutoff = sql<Date>`now() - make_interval(days => ${days})`;
  const { numDeletedRows } = await db
    .deleteFrom('session_changes')
    .where('id', 'in', (eb) =>
      eb.selectFrom('session_changes').select('id').where('changed_at', '<', cutoff).where('published_at', 'is not', null).limit(limit),
    )
    .executeTakeFirst();
  return Number(numDeletedRows);
}

export async function createSession(db: Db, input: { roomName: string; title: string | null }): Promise<SessionRow | undefined> {
  return db
    .insertInto('sessions')
    .values({ room_name: input.roomName, title: input.title, status: 'READY' })
    .onConflict((oc) => oc.column('room_name').doNothing())
    .returningAll()
    .executeTakeFirst();
}

export type ListSessionsArgs = {
  status?: SessionStatus | null;
  /** Keyset bounds on `seq` (exclusive). */
  olderThan?: number | null;
  newerThan?: number | null;
  limit: number;
  /** Newest first unless inverted (used for `last`/`before`). */
  oldestFirst?: boolean;
};

export function listSessions(db: Db, args: ListSessionsArgs): Promise<SessionRow[]> {
  let q = db.selectFrom('sessions').selectAll();
  if (args.status) q = q.where('status', '=', args.status);
  if (args.olderThan != null) q = q.where('seq', '<', args.olderThan);
  if (args.newerThan != null) q = q.where('seq', '>', args.newerThan);
  return q
    .orderBy('seq', args.oldestFirst ? 'asc' : 'desc')
    .limit(args.limit)
    .execute();
}

/**
 * Moves a session to a status (and room instance) inside the caller's transaction, bumping the
 * version and writing the change record that is both history and outbox.
 */
export async function recordStatusChange(
  trx: Tx,
  current: SessionRow,
  next: { status: SessionStatus; room: RoomInstance; eventType: string; at: Date },
): Promise<{ session: SessionRow; change: SessionChange; changeId: string }> {
  const session = await trx
    .updateTable('sessions')
    .set({
      status: next.status,
      room_sid: next.room.sid,
      room_created_ms: next.room.createdMs,
      version: current.version + 1,
      started_at: next.status === 'LIVE' ? next.at : current.started_at,
      stopped_at: next.status === 'STOPPED' ? next.at : null,
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', current.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  return insertChange(trx, session, current.status, next.eventType);
}

/** Moves the current room instance without a status change (no version bump). */
export async function moveRoomInstance(trx: Tx, id: string, room: RoomInstance): Promise<void> {
  await trx
    .updateTable('sessions')
    .set({ room_sid: room.sid, room_created_ms: room.createdMs, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .execute();
}

/** Changes of one session with afterVersion < version <= uptoVersion, oldest first. */
export async function changesBetween(db: Db, sessionId: string, afterVersion: number, uptoVersion?: number): Promise<SessionChange[]> {
  let q = db.selectFrom('session_changes').selectAll().where('session_id', '=', sessionId).where('version', '>', afterVersion);
  if (uptoVersion !== undefined) q = q.where('version', '<=', uptoVersion);
  const rows = await q.orderBy('version', 'asc').execute();
  return rows.map(changeFromRow);
}

export async function markChangesPublished(db: Db, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable('session_changes')
    .set({ published_at: sql<Date>`now()` })
    .where(sql<boolean>`id = any(${sql.val([...ids])}::bigint[])`)
    .where('published_at', 'is', null)
    .execute();
}

/** Claims unpublished changes older than `minAgeMs`, skipping rows another replica is draining. */
export async function claimUnpublishedChanges(trx: Tx, minAgeMs: number, limit: number) {
  const rows = await trx
    .selectFrom('session_changes')
    .selectAll()
    .select(sql<string>`id::text`.as('id_text'))
    .where('published_at', 'is', null)
    .where('changed_at', '<', sql<Date>`now() - make_interval(secs => ${minAgeMs / 1000})`)
    .orderBy('id', 'asc')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
  return rows.map((r) => ({ id: r.id_text, change: changeFromRow(r) }));
}

// ---- Live state (participants, tracks, egresses, ingresses) and the event timeline -------------------------------

/** Writes the live state inside the caller's transaction without a version bump (a change clients cannot see). */
export async function saveLiveState(trx: Db, id: string, state: LiveState): Promise<SessionRow> {
  return trx
    .updateTable('sessions')
    .set({ live_state: JSON.stringify(state) })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * A change of the live state clients can see: version +1 and a change record (history and outbox), like a status
 * change, in the caller's transaction. The status stays, so `previous_status` equals `status`: that is how the
 * status-only stream tells the two apart.
 */
export async function recordLiveChange(
  trx: Db,
  current: SessionRow,
  next: { liveState: LiveState; eventType: string },
): Promise<{ session: SessionRow; change: SessionChange; changeId: string }> {
  const session = await trx
    .updateTable('sessions')
    .set({ live_state: JSON.stringify(next.liveState), version: current.version + 1, updated_at: sql<Date>`now()` })
    .where('id', '=', current.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  return insertChange(trx, session, current.status, next.eventType);
}

export type SessionEventRow = {
  id: string;
  seq: string;
  event_type: string;
  created_at: Date | null;
  received_at: Date;
  outcome: string;
  participant_identity: string | null;
  track_sid: string | null;
  egress_id: string | null;
};

export type ListEventsArgs = {
  /** Keyset bounds on `seq` (exclusive, as text: it is a bigint). */
  olderThan: string | null;
  newerThan: string | null;
  limit: number;
  /** Newest first unless inverted (used for `last`/`before`). */
  oldestFirst: boolean;
};

/** A session's recorded webhook events, newest first, keyset-paginated on arrival order. */
export function listSessionEvents(db: Db, sessionId: string, args: ListEventsArgs): Promise<SessionEventRow[]> {
  let q = db
    .selectFrom('webhook_events')
    .select(['id', sql<string>`seq::text`.as('seq'), 'event_type', 'created_at', 'received_at', 'outcome', 'participant_identity', 'track_sid', 'egress_id'])
    .where('session_id', '=', sessionId);
  if (args.olderThan !== null) q = q.where(sql<boolean>`seq < ${args.olderThan}::bigint`);
  if (args.newerThan !== null) q = q.where(sql<boolean>`seq > ${args.newerThan}::bigint`);
  return q
    .orderBy('seq', args.oldestFirst ? 'asc' : 'desc')
    .limit(args.limit)
    .execute();
}

/** The change record of a new version: history, outbox and the message subscribers get, in one row. */
async function insertChange(
  trx: Db,
  session: SessionRow,
  previousStatus: SessionRow['status'],
  eventType: string,
): Promise<{ session: SessionRow; change: SessionChange; changeId: string }> {
  const inserted = await trx
    .insertInto('session_changes')
    .values({
      session_id: session.id,
      version: session.version,
      status: session.status,
      previous_status: previousStatus,
      event_type: eventType,
      session: JSON.stringify(snapshotToJson(session)),
      changed_at: session.updated_at,
    })
    .returning(sql<string>`id::text`.as('id'))
    .executeTakeFirstOrThrow();
  return { session, changeId: inserted.id, change: { session, previousStatus, eventType, changedAt: session.updated_at } };
}

/** Sessions with these ids (any order; missing ones left out): many subscribers' snapshots in one read. */
export function findByIds(db: Db, ids: readonly string[]): Promise<SessionRow[]> {
  if (ids.length === 0) return Promise.resolve([]);
  return db.selectFrom('sessions').selectAll().where('id', 'in', ids).execute();
}

/** Sessions of these rooms (any order; missing ones left out): many subscribers' lookups in one read. */
export function findByRoomNames(db: Db, roomNames: readonly string[]): Promise<SessionRow[]> {
  if (roomNames.length === 0) return Promise.resolve([]);
  return db.selectFrom('sessions').selectAll().where('room_name', 'in', roomNames).execute();
}
