import { sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
export async function up(db: Kysely<any>): Promise<void> {
  // The live state (participants, tracks, egresses, ingresses per room instance) as one JSON document on the row:
  // it is read, changed by a pure rule and written back under the row lock the status already takes.
  await db.schema
    .alterTable('sessions')
    .addColumn('live_state', 'jsonb', (c) => c.notNull().defaultTo(sql`'{"instances":[],"staleSids":[]}'::jsonb`))
    .execute();
  await db.schema.alterTable('webhook_events').addColumn('participant_identity', 'text').execute();
  await db.schema.alterTable('webhook_events').addColumn('track_sid', 'text').execute();
  await db.schema.alterTable('webhook_events').addColumn('egress_id', 'text').execute();
  // Arrival order: the stable key of a session's event timeline (newest first).
  await sql`alter table webhook_events add column seq bigint generated always as identity`.execute(db);
  await db.schema.createIndex('webhook_events_session_seq_idx').on('webhook_events').columns(['session_id', 'seq']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('webhook_events_session_seq_idx').execute();
  for (const column of ['seq', 'egress_id', 'track_sid', 'participant_identity']) await db.schema.alterTable('webhook_events').dropColumn(column).execute();
  await db.schema.alterTable('sessions').dropColumn('live_state').execute();
}
