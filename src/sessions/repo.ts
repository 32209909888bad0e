import { CompiledQuery, sql } from 'kysely';
import { prepared } from './prepared.js';
import { changeFromRow, snapshotFromJson, snapshotToJson, type SessionChange } from './change.js';
import type { SessionStatus } from './status.js';
import type { Db, SessionRow, SessionSnapshotJson, Tx } from './tables.js';

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

/** A session row and its row version (Postgres' `xmin`, new with every committed write): a write made against it applies only if nobody wrote the row since. */
export type SessionRead = { row: SessionRow; xmin: string };

/** Reads a session with its row version; `lock` row-locks it until the caller's transaction ends (only inside one). */
export async function readSession(db: Db, by: { id: string } | { roomName: string }, opts: { lock?: boolean } = {}): Promise<SessionRead | undefined> {
  let q = db
    .selectFrom('sessions')
    .selectAll()
    .select(sql<string>`xmin::text`.as('xmin'));
  q = 'id' in by ? q.where('id', '=', by.id) : q.where('room_name', '=', by.roomName);
  const found = await (opts.lock ? q.forUpdate() : q).executeTakeFirst();
  if (!found) return undefined;
  const { xmin, ...row } = found;
  return { row, xmin };
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

// ---- The webhook path's writes: one statement each, conditional on the row version read ------------------------
//
// No transaction is held while the rule runs in JavaScript: the row is read (or taken from a cache), the pure rule
// plans the write, and one statement applies it only if the row is still the version read (`xmin`) and the event is
// new (several webhooks' session writes may share that statement: group commit, write-batch.ts). Statements are SQL
// text (no query building per webhook); each is atomic on its own.

/** What a write against a row version did. `conflict`: the row changed since it was read; read it again and re-plan. */
export type ConditionalWrite =
  | { kind: 'applied'; xmin: string | null; changeId: string | null; /** The change record's session JSON (when visible). */ snapshotJson?: string }
  | { kind: 'duplicate' }
  /** `current`: the row as the statement saw it (a retry plans against it without reading again), when it was there. */
  | { kind: 'conflict'; current?: SessionRead };

/** A conflicting write brings back the row it found (session `id`, an SQL expression), so the retry needs no read of its own. */
const currentRow = (id: string) => `(select to_jsonb(s) || jsonb_build_object('xmin', s.xmin::text) from sessions s where s.id = ${id})`;
type CurrentRow = SessionSnapshotJson & { xmin: string };

function conflict(current: CurrentRow | null): ConditionalWrite {
  if (current === null) return { kind: 'conflict' };
  const { xmin, ...row } = current;
  return { kind: 'conflict', current: { row: snapshotFromJson(row), xmin } };
}

const EVENT_COLUMNS = 'id, event_type, room_name, room_sid, created_at, outcome, session_id, participant_identity, track_sid, egress_id';

const eventValues = (event: EventRecord, outcome: string) => [
  event.id,
  event.type,
  event.roomName,
  event.roomSid,
  event.createdAt,
  outcome,
  event.participantIdentity ?? null,
  event.trackSid ?? null,
  event.egressId ?? null,
];

/** One conditional session write: the row version it was planned on, the new row, its change record and its event. */
export type SessionWrite = {
  read: SessionRead;
  next: SessionRow;
  change: { visible: boolean; eventType: string };
  event: { record: EventRecord; outcome: string } | null;
};

type WriteRow = { xmin: string | null; change_id: string | null; applied: boolean; duplicate: boolean; current: CurrentRow | null };

function writeResult(row: WriteRow, snapshotJson: string | null): ConditionalWrite {
  if (row.applied) return { kind: 'applied', xmin: row.xmin, changeId: row.change_id, snapshotJson: snapshotJson ?? undefined };
  return row.duplicate ? { kind: 'duplicate' } : conflict(row.current);
}

/** One write alone (`writeSessions` with one write). */
export async function writeSession(db: Db, write: SessionWrite): Promise<ConditionalWrite> {
  try {
    return (await writeSessions(db, [write]))[0]!;
  } catch (err) {
    // A copy of the event recorded as changing nothing (`recordEventUnchanged` writes no row, so it does not move
    // `xmin`) committed after this statement's check: the statement failed whole, and the event is stored once.
    if (isEventIdTaken(err)) return { kind: 'duplicate' };
    throw err;
  }
}

/**
 * Writes sessions' new rows, their change records (when visible) and the webhook events that caused them (when
 * given), each all or nothing, each only if its row is still at the version read and its event is new. Versions,
 * change records and event records come from the callers' plans; the statement only checks and writes. Several
 * sessions go in one statement (group commit: one round trip, one commit), each write applying or not on its own
 * terms, as it would alone; the sessions must differ (a row is updated once per statement). One parameter, a JSON
 * array, so the statement is one prepared plan whatever the number of writes. (Exported for the benchmark: pgbench
 * runs this very text, tools/bench/sql/ours-status-webhooks.sql.)
 *
 * That one plan is generic: Postgres plans it for 100 input rows (jsonb_to_recordset's estimate) and the table sizes
 * of the moment. On tables that were small then (every fresh database), it hashed all of `sessions` and all of
 * `webhook_events` on every statement, a cost that grew with the table until the next ANALYZE (1.3 ms of Postgres
 * CPU per webhook instead of 0.28 in the benchmark). So every lookup is written to be an index probe whatever the
 * estimates: the rows to update by `id = any(array(...))`, the event checks as subqueries the planner cannot turn
 * into a join or a hash (`offset 0`).
 */
export const WRITE_SESSIONS = prepared(
  'lkss_write_sessions',
  `
with input as (
  select * from jsonb_to_recordset($1::jsonb) as x(i int, id uuid, read_xmin text, status text, room_sid text, room_created_ms double precision,
    version integer, started_at timestamptz, stopped_at timestamptz, updated_at timestamptz, live_state jsonb, previous_status text,
    change_event_type text, session jsonb, event_id text, event_type text, room_name text, event_room_sid text, created_at timestamptz,
    outcome text, participant_identity text, track_sid text, egress_id text)
), upd as (
  update sessions s set status = x.status, room_sid = x.room_sid, room_created_ms = x.room_created_ms, version = x.version,
    started_at = x.started_at, stopped_at = x.stopped_at, updated_at = x.updated_at, live_state = x.live_state
  from input x
  where s.id = any(array(select id from input)) and s.id = x.id and s.xmin = x.read_xmin::xid
    and not exists (select 1 from webhook_events e where e.id = x.event_id offset 0)
  returning x.i, s.xmin::text as xmin
), change as (
  insert into session_changes (session_id, version, status, previous_status, event_type, session, changed_at)
  select x.id, x.version, x.status, x.previous_status, x.change_event_type, x.session, x.updated_at
  from upd join input x on x.i = upd.i where x.session is not null
  returning id::text as id, session_id
), event as (
  insert into webhook_events (${EVENT_COLUMNS})
  select x.event_id, x.event_type, x.room_name, x.event_room_sid, x.created_at, x.outcome, x.id, x.participant_identity, x.track_sid, x.egress_id
  from upd join input x on x.i = upd.i where x.event_id is not null
)
select upd.xmin, change.id as change_id, upd.i is not null as applied,
  upd.i is null and exists (select 1 from webhook_events e where e.id = x.event_id offset 0) as duplicate,
  case when upd.i is null then ${currentRow('x.id')} end as current
from input x left join upd on upd.i = x.i left join change on change.session_id = x.id
order by x.i`,
);

/** Writes of distinct sessions in one statement; the answers in the writes' order. Throws if any write breaks a constraint. */
export async function writeSessions(db: Db, writes: readonly SessionWrite[]): Promise<ConditionalWrite[]> {
  const snapshots: (string | null)[] = [];
  const items = writes.map(({ read, next, change, event }, i) => {
    // The live state (the bulk of a busy room's row) is serialised once, for the row and for its change record.
    const liveState = JSON.stringify(next.live_state);
    const snapshot = change.visible ? `${JSON.stringify({ ...snapshotToJson(next), live_state: undefined }).slice(0, -1)},"live_state":${liveState}}` : null;
    snapshots.push(snapshot);
    const record = event?.record;
    const scalars = JSON.stringify({
      i,
      id: next.id,
      read_xmin: read.xmin,
      status: next.status,
      room_sid: next.room_sid,
      room_created_ms: next.room_created_ms,
      version: next.version,
      started_at: next.started_at,
      stopped_at: next.stopped_at,
      updated_at: next.updated_at,
      previous_status: read.row.status,
      change_event_type: change.eventType,
      event_id: record?.id ?? null,
      event_type: record?.type ?? null,
      room_name: record?.roomName ?? null,
      event_room_sid: record?.roomSid ?? null,
      created_at: record?.createdAt ?? null,
      outcome: event?.outcome ?? null,
      participant_identity: record?.participantIdentity ?? null,
      track_sid: record?.trackSid ?? null,
      egress_id: record?.egressId ?? null,
    });
    // The two JSON documents are spliced in as they are (the snapshot string is also what gets published).
    return `${scalars.slice(0, -1)},"live_state":${liveState},"session":${snapshot ?? 'null'}}`;
  });
  const { rows } = await db.executeQuery<WriteRow>(CompiledQuery.raw(WRITE_SESSIONS, [`[${items.join(',')}]`]));
  return rows.map((row, i) => writeResult(row, snapshots[i]!));
}

/** Records an event that changes nothing, if the session is still at `read.xmin` (what it changed nothing of). */
const RECORD_UNCHANGED = prepared(
  'lkss_record_unchanged',
  `
with event as (
  insert into webhook_events (${EVENT_COLUMNS})
  select $3, $4, $5, $6, $7::timestamptz, $8, $1, $9, $10, $11 where exists (select 1 from sessions where id = $1 and xmin = $2::xid)
  on conflict (id) do nothing
  returning 1
)
select exists (select 1 from event) as applied, exists (select 1 from sessions where id = $1 and xmin = $2::xid) as unchanged,
  case when not exists (select 1 from event) then ${currentRow('$1')} end as current`,
);

export async function recordEventUnchanged(db: Db, read: SessionRead, event: EventRecord, outcome: string): Promise<ConditionalWrite> {
  const row = await firstRow<{ applied: boolean; unchanged: boolean; current: CurrentRow | null }>(db, RECORD_UNCHANGED, [
    read.row.id,
    read.xmin,
    ...eventValues(event, outcome),
  ]);
  if (row.applied) return { kind: 'applied', xmin: read.xmin, changeId: null };
  return row.unchanged ? { kind: 'duplicate' } : conflict(row.current);
}

/** Records an event for a room without a session, if there still is none. */
const RECORD_NO_SESSION = prepared(
  'lkss_record_no_session',
  `
with event as (
  insert into webhook_events (${EVENT_COLUMNS})
  select $1, $2, $3, $4, $5::timestamptz, $6, null::uuid, $7, $8, $9 where not exists (select 1 from sessions where room_name = $3)
  on conflict (id) do nothing
  returning 1
)
select exists (select 1 from event) as applied, exists (select 1 from sessions where room_name = $3) as found`,
);

export async function recordEventWithoutSession(db: Db, event: EventRecord, outcome: string): Promise<ConditionalWrite> {
  const row = await firstRow<{ applied: boolean; found: boolean }>(db, RECORD_NO_SESSION, eventValues(event, outcome));
  if (row.applied) return { kind: 'applied', xmin: null, changeId: null };
  return row.found ? { kind: 'conflict' } : { kind: 'duplicate' };
}

function isEventIdTaken(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  return e?.code === '23505' && e.constraint === 'webhook_events_pkey';
}

async function firstRow<R>(db: Db, text: string, params: readonly unknown[]): Promise<R> {
  const { rows } = await db.executeQuery<R>(CompiledQuery.raw(text, [...params]));
  return rows[0]!;
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
