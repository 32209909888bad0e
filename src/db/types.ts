/** The database's table types live with the feature that owns them; this is where db/ takes them from. */
export type { Database, Db, SessionChangeRow, SessionRow, SessionSnapshotJson, Tx } from '../sessions/tables.js';
export type { SessionStatus } from '../sessions/status.js';
