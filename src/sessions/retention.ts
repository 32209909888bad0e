import { sql } from 'kysely';
import type { Db } from '../db/connect.js';

const BATCH = 5_000;

/**
 * Deletes webhook records and published change history older than `days`, in small batches so no
 * statement holds locks for long. Sessions themselves are never deleted. Safe to run on every replica:
 * deleting the same old rows twice is harmless. LiveKit retries an event for ~15 s, so an event id
 * forgotten after days cannot come back as a duplicate.
 */
export async function pruneOldRecords(db: Db, days: number): Promise<{ events: number; changes: number }> {
  const cutoff = sql<Date>`now() - make_interval(days => ${days})`;
  let events = 0;
  let changes = 0;
  for (;;) {
    const { numDeletedRows } = await db
      .deleteFrom('webhook_events')
      .where('id', 'in', (eb) => eb.selectFrom('webhook_events').select('id').where('received_at', '<', cutoff).limit(BATCH))
      .executeTakeFirst();
    events += Number(numDeletedRows);
    if (Number(numDeletedRows) < BATCH) break;
  }
  for (;;) {
    const { numDeletedRows } = await db
      .deleteFrom('session_changes')
      .where('id', 'in', (eb) =>
        eb.selectFrom('session_changes').select('id').where('changed_at', '<', cutoff).where('published_at', 'is not', null).limit(BATCH),
      )
      .executeTakeFirst();
    changes += Number(numDeletedRows);
    if (Number(numDeletedRows) < BATCH) break;
  }
  return { events, changes };
}
