import { sql } from 'kysely';
import type { SessionRow } from '../db/types.js';
import { snapshotToJson, type SessionChange } from './change.js';
import type { LiveState } from './live-state.js';
import type { Queryable } from './repo.js';

/** Writes the live state inside the caller's transaction without a version bump (a change clients cannot see). */
export async function saveLiveState(trx: Queryable, id: string, state: LiveState): Promise<SessionRow> {
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
  trx: Queryable,
  current: SessionRow,
  next: { liveState: LiveState; eventType: string },
): Promise<{ session: SessionRow; change: SessionChange; changeId: string }> {
  const session = await trx
    .updateTable('sessions')
    .set({ live_state: JSON.stringify(next.liveState), version: current.version + 1, updated_at: sql<Date>`now()` })
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
export function listSessionEvents(db: Queryable, sessionId: string, args: ListEventsArgs): Promise<SessionEventRow[]> {
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
