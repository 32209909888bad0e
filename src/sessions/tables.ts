import type { ColumnType, Generated, Kysely, Selectable, Transaction } from 'kysely';
import type { SessionStatus } from './status.js';

/* The tables this feature owns and the database type made of them (the service's only feature). */

type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
type UpdatedAt = ColumnType<Date, Date | string | undefined, Date | string>;

export interface SessionsTable {
  id: Generated<string>;
  /** Insertion order; the stable key of "newest first" pagination. */
  seq: ColumnType<number, never, never>;
  room_name: string;
  title: string | null;
  status: SessionStatus;
  /** The room instance the status belongs to (LiveKit's room sid). */
  room_sid: string | null;
  /** Creation time (ms) of that room instance: orders instances of one room name. */
  room_created_ms: number | null;
  version: ColumnType<number, number | undefined, number>;
  started_at: Date | null;
  stopped_at: Date | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface WebhookEventsTable {
  /** LiveKit's event id: retries repeat it, so it is the duplicate check. */
  id: string;
  event_type: string;
  room_name: string | null;
  room_sid: string | null;
  /** LiveKit's own createdAt for the event. */
  created_at: Date | null;
  received_at: CreatedAt;
  outcome: string;
  session_id: string | null;
}

/** One row per status change: the history a subscriber catches up from, and the outbox for publishing. */
export interface SessionChangesTable {
  id: ColumnType<string, never, never>;
  session_id: string;
  version: number;
  status: SessionStatus;
  previous_status: SessionStatus | null;
  event_type: string;
  /** The session row as of this version (JSON). */
  session: ColumnType<SessionSnapshotJson, string, never>;
  changed_at: CreatedAt;
  published_at: Date | null;
}

/** A session row as stored in JSON: timestamps as ISO strings. */
export type SessionSnapshotJson = {
  [K in keyof SessionRow]: SessionRow[K] extends Date ? string : SessionRow[K] extends Date | null ? string | null : SessionRow[K];
};

export interface Database {
  sessions: SessionsTable;
  webhook_events: WebhookEventsTable;
  session_changes: SessionChangesTable;
}

export type SessionRow = Selectable<SessionsTable>;
export type SessionChangeRow = Selectable<SessionChangesTable>;

/** The one database parameter type: the database, or a transaction on it (a Transaction is a Kysely). */
export type Db = Kysely<Database>;
/** For the few steps that only make sense inside a transaction (row locks, a change and its record together). */
export type Tx = Transaction<Database>;
