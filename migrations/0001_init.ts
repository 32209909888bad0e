import { sql, type Kysely } from 'kysely';

// Frozen in time: never edit a migration that has shipped; add a new one.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sessions')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('seq', 'integer', (c) => c.notNull().unique().generatedAlwaysAsIdentity())
    .addColumn('room_name', 'text', (c) => c.notNull().unique())
    .addColumn('title', 'text')
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .defaultTo('READY')
        .check(sql`status in ('READY', 'LIVE', 'STOPPED')`),
    )
    .addColumn('room_sid', 'text')
    .addColumn('room_created_ms', 'double precision')
    .addColumn('version', 'integer', (c) =>
      c
        .notNull()
        .defaultTo(1)
        .check(sql`version >= 1`),
    )
    .addColumn('started_at', 'timestamptz')
    .addColumn('stopped_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('sessions_status_seq_idx').on('sessions').columns(['status', 'seq']).execute();

  await db.schema
    .createTable('webhook_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('room_name', 'text')
    .addColumn('room_sid', 'text')
    .addColumn('created_at', 'timestamptz')
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('session_id', 'uuid', (c) => c.references('sessions.id').onDelete('set null'))
    .execute();
  await db.schema.createIndex('webhook_events_room_idx').on('webhook_events').columns(['room_name', 'received_at']).execute();

  await db.schema
    .createTable('session_changes')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('session_id', 'uuid', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('previous_status', 'text')
    .addColumn('event_type', 'text', (c) => c.notNull())
    // The session row as of this version: what subscribers receive, replayable exactly.
    .addColumn('session', 'jsonb', (c) => c.notNull())
    .addColumn('changed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('published_at', 'timestamptz')
    .addUniqueConstraint('session_changes_session_version_key', ['session_id', 'version'])
    .execute();
  await sql`create index session_changes_unpublished_idx on session_changes (id) where published_at is null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('session_changes').execute();
  await db.schema.dropTable('webhook_events').execute();
  await db.schema.dropTable('sessions').execute();
}
