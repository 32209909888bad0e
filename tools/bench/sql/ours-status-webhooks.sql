-- pgbench script: the SQL our service runs for status webhooks (src/sessions/ingest.ts + repo.ts; keep in step
-- with them): BEGIN; SELECT ... FOR UPDATE; INSERT event; UPDATE session; INSERT change; COMMIT; then the outbox's
-- UPDATE marking the change published. One run of the script is two webhooks on one room (room_started, then
-- room_finished), so statuses alternate as in real traffic. Run with -M extended (pg's protocol) and -D rooms=N.
-- Values are built in SQL, never inside a quoted literal (pgbench substitutes :name inside literals too).
\set r random(0, :rooms - 1)
\set e random(1, 1000000000000)
BEGIN;
SELECT id AS sid, version AS v, status AS st FROM sessions WHERE room_name = 'bench-room-' || :r FOR UPDATE \gset
INSERT INTO webhook_events (id, event_type, room_name, room_sid, created_at, outcome, session_id)
  VALUES ('EV_' || :client_id || '_' || :e || 's', 'room_started', 'bench-room-' || :r, 'RM_' || :e, now(), 'status_updated', :sid)
  ON CONFLICT (id) DO NOTHING RETURNING id;
UPDATE sessions SET status = 'LIVE', room_sid = 'RM_' || :e, room_created_ms = :e, version = :v + 1, started_at = now(), stopped_at = NULL, updated_at = now()
  WHERE id = :sid RETURNING *;
INSERT INTO session_changes (session_id, version, status, previous_status, event_type, session, changed_at)
  VALUES (:sid, :v + 1, 'LIVE', :st, 'room_started',
    jsonb_build_object('id', :sid::text, 'roomName', 'bench-room-' || :r, 'title', NULL, 'status', 'LIVE', 'version', :v + 1, 'roomSid', 'RM_' || :e,
      'startedAt', now(), 'stoppedAt', NULL, 'createdAt', now(), 'updatedAt', now()), now())
  RETURNING id::text AS cid \gset
COMMIT;
UPDATE session_changes SET published_at = now() WHERE id = ANY(ARRAY[:cid::bigint]) AND published_at IS NULL;
BEGIN;
SELECT id AS sid, version AS v, status AS st FROM sessions WHERE room_name = 'bench-room-' || :r FOR UPDATE \gset
INSERT INTO webhook_events (id, event_type, room_name, room_sid, created_at, outcome, session_id)
  VALUES ('EV_' || :client_id || '_' || :e || 'f', 'room_finished', 'bench-room-' || :r, 'RM_' || :e, now(), 'status_updated', :sid)
  ON CONFLICT (id) DO NOTHING RETURNING id;
UPDATE sessions SET status = 'STOPPED', room_sid = 'RM_' || :e, room_created_ms = :e, version = :v + 1, stopped_at = now(), updated_at = now()
  WHERE id = :sid RETURNING *;
INSERT INTO session_changes (session_id, version, status, previous_status, event_type, session, changed_at)
  VALUES (:sid, :v + 1, 'STOPPED', :st, 'room_finished',
    jsonb_build_object('id', :sid::text, 'roomName', 'bench-room-' || :r, 'title', NULL, 'status', 'STOPPED', 'version', :v + 1, 'roomSid', 'RM_' || :e,
      'startedAt', now(), 'stoppedAt', now(), 'createdAt', now(), 'updatedAt', now()), now())
  RETURNING id::text AS cid \gset
COMMIT;
UPDATE session_changes SET published_at = now() WHERE id = ANY(ARRAY[:cid::bigint]) AND published_at IS NULL;
