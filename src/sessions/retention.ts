import { deleteOldPublishedChanges, deleteOldWebhookEvents } from './repo.js';
import type { Db } from './tables.js';

const BATCH = 5_000;

/**
 * Deletes webhook records and published change history older than `days`, in small batches so no
 * statement holds locks for long. Sessions themselves are never deleted. Safe to run on every replica:
 * deleting the same old rows twice is harmless. LiveKit retries an event for ~15 s, so an event id
 * forgotten after days cannot come back as a duplicate.
 */
export async function pruneOldRecords(db: Db, days: number): Promise<{ events: number; changes: number }> {
  const drain = async (deleteBatch: () => Promise<number>) => {
    let total = 0;
    for (let n = BATCH; n === BATCH; total += n) n = await deleteBatch();
    return total;
  };
  const events = await drain(() => deleteOldWebhookEvents(db, days, BATCH));
  const changes = await drain(() => deleteOldPublishedChanges(db, days, BATCH));
  return { events, changes };
}
