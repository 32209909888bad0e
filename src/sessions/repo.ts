import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database, SessionRow, SessionStatus } from '../db/types.js';
import { changeFromRow, snapshotToJson, type SessionChange } from './change.js';
import type { RoomInstance } from './status.js';

/** Every function takes the database or a transaction: the caller decides the unit of work. */
export type Queryable = Kysely<Database> | Transaction<Database>;

export function findById(db: Queryable, id: string): Promise<SessionRow | undefined> {
  return db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
}

export function findByRoomName(db: Queryable, roomName: string, opts: { forUpdate?: boolean } = {}): Promise<SessionRow | undefined> {
  let q = db.selectFrom('sessions').selectAll().where('room_name', '=', roomName);
  if (opts.forUpdate) q = q.forUpdate();
  return q.executeTakeFirst();
}

export async function createSession(db: Queryable, input: { roomName: string; title: string | null }): Promise<SessionRow | undefined> {
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

export function listSessions(db: Queryable, args: ListSessionsArgs): Promise<SessionRow[]> {
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
  trx: Transaction<Database>,
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
  const inserted = await trx
    .insertInto('session_changes')
    .values({
      session_id: session.id,
      version: session.version,
      status: session.status,
      previous_status: current.status,
      event_type: next.eventType,
      session: JSON.stringify(snapshotToJson(session)),
      changed_at: session.updated_at,
    })
    .returning(sql<string>`id::text`.as('id'))
    .executeTakeFirstOrThrow();
  return {
    session,
    changeId: inserted.id,
    change: { session, previousStatus: current.status, eventType: next.eventType, changedAt: session.updated_at },
  };
}

/** Moves the current room instance without a status change (no version bump). */
export async function moveRoomInstance(trx: Transaction<Database>, id: string, room: RoomInstance): Promise<void> {
  await trx
    .updateTable('sessions')
    .set({ room_sid: room.sid, room_created_ms: room.createdMs, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .execute();
}

/** Changes of one session with afterVersion < version <= uptoVersion, oldest first. */
export async function changesBetween(db: Queryable, sessionId: string, afterVersion: number, uptoVersion?: number): Promise<SessionChange[]> {
  let q = db.selectFrom('session_changes').selectAll().where('session_id', '=', sessionId).where('version', '>', afterVersion);
  if (uptoVersion !== undefined) q = q.where('version', '<=', uptoVersion);
  const rows = await q.orderBy('version', 'asc').execute();
  return rows.map(changeFromRow);
}

export async function markChangesPublished(db: Queryable, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable('session_changes')
    .set({ published_at: sql<Date>`now()` })
    .where(sql<boolean>`id = any(${sql.val([...ids])}::bigint[])`)
    .where('published_at', 'is', null)
    .execute();
}

/** Claims unpublished changes older than `minAgeMs`, skipping rows another replica is draining. */
export async function claimUnpublishedChanges(trx: Transaction<Database>, minAgeMs: number, limit: number) {
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
