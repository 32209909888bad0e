import type { Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
// webhook_events_room_idx (room_name, received_at) serves no query: a session's timeline reads by session
// (webhook_events_session_seq_idx), duplicates are found by id, retention goes by age. Every webhook paid an
// index entry for it.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('webhook_events_room_idx').ifExists().execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('webhook_events_room_idx').on('webhook_events').columns(['room_name', 'received_at']).execute();
}
