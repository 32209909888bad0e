-- pgbench script: the SQL our service runs for status webhooks (src/sessions/ingest.ts + repo.ts WRITE_SESSION; keep in
-- step with them). A webhook is one statement: the conditional write (session row, change record and event record
-- together, only if the row is still the version read). The row version comes from the process's cache; this script
-- reads the row before its first webhook anyway (a cache miss: the worst case, every other webhook), and the second
-- webhook uses the version the first one returned (a cache hit). The outbox marks published changes in batches
-- (every 100 ms): modelled as one UPDATE per 50 webhooks. One run of the script is two webhooks on one room
-- (room_started, then room_finished). Run with -M prepared (the service prepares these statements) and -D rooms=N.
-- Values are built in SQL, never inside a quoted literal (pgbench substitutes :name inside literals too).
\set r random(0, :rooms - 1)
\set e random(1, 1000000000000)
\set m random(1, 25)
SELECT id AS sid, xmin::text AS x, version AS v, status AS st, seq AS q FROM sessions WHERE room_name = 'bench-room-' || :r \gset
WITH upd AS (
  UPDATE sessions SET status = 'LIVE', room_sid = 'RM_' || :e, room_created_ms = :e, version = :v + 1, started_at = now(), stopped_at = NULL,
    updated_at = now(),
    live_state = jsonb_build_object('instances', jsonb_build_array(jsonb_build_object('sid', 'RM_' || :e, 'createdMs', :e::bigint, 'finished', false,
      'participants', jsonb_build_array(), 'leftParticipants', jsonb_build_array(), 'tracks', jsonb_build_array(), 'unpublishedTracks', jsonb_build_array(),
      'egresses', jsonb_build_array(), 'ingresses', jsonb_build_array())), 'staleSids', jsonb_build_array())
  WHERE id = :sid AND xmin = :x::xid AND NOT EXISTS (SELECT 1 FROM webhook_events WHERE id = 'EV_' || :client_id || '_' || :e || 's')
  RETURNING id, xmin::text AS xmin, live_state
), change AS (
  INSERT INTO session_changes (session_id, version, status, previous_status, event_type, session, changed_at)
  SELECT id, :v + 1, 'LIVE', :st, 'room_started',
    jsonb_build_object('id', id, 'seq', :q::int, 'room_name', 'bench-room-' || :r, 'title', NULL, 'status', 'LIVE', 'room_sid', 'RM_' || :e,
      'room_created_ms', :e::bigint, 'version', :v + 1, 'started_at', now(), 'stopped_at', NULL, 'created_at', now(), 'updated_at', now(), 'live_state', live_state),
    now() FROM upd
  RETURNING id::text AS id
), event AS (
  INSERT INTO webhook_events (id, event_type, room_name, room_sid, created_at, outcome, session_id, participant_identity, track_sid, egress_id)
  SELECT 'EV_' || :client_id || '_' || :e || 's', 'room_started', 'bench-room-' || :r, 'RM_' || :e, now(), 'status_updated', id, NULL, NULL, NULL FROM upd
)
SELECT (SELECT xmin FROM upd) AS x2, (SELECT id FROM change) AS cid, EXISTS (SELECT 1 FROM upd) AS applied,
  EXISTS (SELECT 1 FROM webhook_events WHERE id = 'EV_' || :client_id || '_' || :e || 's') AS duplicate \gset
WITH upd AS (
  UPDATE sessions SET status = 'STOPPED', version = :v + 2, stopped_at = now(), updated_at = now(),
    live_state = jsonb_set(live_state, '{instances,0,finished}', 'true'::jsonb)
  WHERE id = :sid AND xmin = nullif(:x2, '')::xid AND NOT EXISTS (SELECT 1 FROM webhook_events WHERE id = 'EV_' || :client_id || '_' || :e || 'f')
  RETURNING id, xmin::text AS xmin, live_state, started_at
), change AS (
  INSERT INTO session_changes (session_id, version, status, previous_status, event_type, session, changed_at)
  SELECT id, :v + 2, 'STOPPED', 'LIVE', 'room_finished',
    jsonb_build_object('id', id, 'seq', :q::int, 'room_name', 'bench-room-' || :r, 'title', NULL, 'status', 'STOPPED', 'room_sid', 'RM_' || :e,
      'room_created_ms', :e::bigint, 'version', :v + 2, 'started_at', started_at, 'stopped_at', now(), 'created_at', now(), 'updated_at', now(), 'live_state', live_state),
    now() FROM upd
  RETURNING id::text AS id
), event AS (
  INSERT INTO webhook_events (id, event_type, room_name, room_sid, created_at, outcome, session_id, participant_identity, track_sid, egress_id)
  SELECT 'EV_' || :client_id || '_' || :e || 'f', 'room_finished', 'bench-room-' || :r, 'RM_' || :e, now(), 'status_updated', id, NULL, NULL, NULL FROM upd
)
SELECT (SELECT xmin FROM upd) AS x3, (SELECT id FROM change) AS cid2, EXISTS (SELECT 1 FROM upd) AS applied,
  EXISTS (SELECT 1 FROM webhook_events WHERE id = 'EV_' || :client_id || '_' || :e || 'f') AS duplicate \gset
\if :m = 1
UPDATE session_changes SET published_at = now() WHERE published_at IS NULL AND id <= nullif(:cid2, '')::bigint;
\endif
