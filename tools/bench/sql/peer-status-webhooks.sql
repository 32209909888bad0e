-- pgbench script: the SQL the peer (../shared/peers/yoga-recipe/src/webhook.ts) runs for status webhooks:
-- BEGIN; INSERT event ON CONFLICT DO NOTHING; conditional upsert of the session; COMMIT. One run of the script is
-- two webhooks (room_started creates the session keyed by a new room sid, room_finished ends it), as in real
-- traffic. Run with -M extended (pg's protocol). Values are built in SQL, never inside a quoted literal.
\set e random(1, 1000000000000)
BEGIN;
INSERT INTO webhook_event (id) VALUES ('EV_' || :client_id || '_' || :e || 's') ON CONFLICT (id) DO NOTHING RETURNING id;
INSERT INTO session (id, room_name, status, version) VALUES ('RM_' || :client_id || '_' || :e, 'bench-room-' || :e, 'ACTIVE', 1)
  ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = session.version + 1, updated_at = now() WHERE session.status <> excluded.status
  RETURNING id, status, version, updated_at;
COMMIT;
BEGIN;
INSERT INTO webhook_event (id) VALUES ('EV_' || :client_id || '_' || :e || 'f') ON CONFLICT (id) DO NOTHING RETURNING id;
INSERT INTO session (id, room_name, status, version) VALUES ('RM_' || :client_id || '_' || :e, 'bench-room-' || :e, 'ENDED', 1)
  ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = session.version + 1, updated_at = now() WHERE session.status <> excluded.status
  RETURNING id, status, version, updated_at;
COMMIT;
