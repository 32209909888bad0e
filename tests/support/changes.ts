import type { Db } from '../../src/sessions/tables.js';

/** The session's row id inside its GraphQL id (base64 of "Session:<uuid>"). */
export const sessionRowId = (globalId: string) =>
  Buffer.from(globalId, 'base64')
    .toString('utf8')
    .replace(/^Session:/, '');

/**
 * When version `version` of a session (its GraphQL id) was recorded and when it was marked published (null: not
 * yet), as the database has them. Throws if that version was never recorded.
 */
export function changeTimes(db: Db, sessionId: string, version: number) {
  return db
    .selectFrom('session_changes')
    .select(['changed_at', 'published_at'])
    .where('session_id', '=', sessionRowId(sessionId))
    .where('version', '=', version)
    .executeTakeFirstOrThrow();
}
