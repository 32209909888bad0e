-- pgbench script: the SQL our service runs for status webhooks under load (src/sessions/ingest.ts, write-batch.ts,
-- repo.ts). compare.ts puts repo.ts' own WRITE_SESSIONS text where the lines `-- WRITE_SESSIONS(:name)` stand, with
-- :name as its one parameter, so pgbench runs the very statement the service prepares.
-- Under 16 connections the service's group commit packs ~4 webhooks into a statement: one run of this script is two
-- such statements on four rooms, room_started for each, then room_finished for each (eight webhooks). Before each
-- statement the four rows are read (a cache miss every time: the worst case; the service reads only on a miss) and
-- the writes are planned in SQL as the service plans them in JavaScript. The outbox marks published changes in
-- batches (every 100 ms): modelled as one UPDATE per 25 runs. Run with -M prepared, -c 16 and -D rooms=N (N ≥ 64).
-- Values are built in SQL, never inside a quoted literal (pgbench substitutes :name inside literals too).
-- Each of the 16 clients writes its own groups of four rooms: the service never writes one room from two statements
-- at once (a room's webhooks take turns, and a statement holds distinct sessions), so neither does this script.
\set per :rooms / 64
\set r :client_id * :per + random(0, :per - 1)
\set e random(1, 1000000000000)
\set m random(1, 25)
SELECT jsonb_agg(jsonb_build_object('i', n, 'id', id, 'read_xmin', x, 'status', 'LIVE', 'room_sid', 'RM_' || :e::text || '_' || n,
    'room_created_ms', :e::bigint, 'version', version + 1, 'started_at', now(), 'stopped_at', NULL, 'updated_at', now(), 'live_state', live,
    'previous_status', status, 'change_event_type', 'room_started',
    'session', row || jsonb_build_object('status', 'LIVE', 'room_sid', 'RM_' || :e::text || '_' || n, 'room_created_ms', :e::bigint, 'version', version + 1,
      'started_at', now(), 'stopped_at', NULL, 'updated_at', now(), 'live_state', live),
    'event_id', 'EV_' || :client_id::text || '_' || :e::text || '_' || n || 's', 'event_type', 'room_started', 'room_name', room_name,
    'event_room_sid', 'RM_' || :e::text || '_' || n, 'created_at', now(), 'outcome', 'status_updated',
    'participant_identity', NULL, 'track_sid', NULL, 'egress_id', NULL)) AS started
FROM (SELECT s.id, s.xmin::text AS x, s.version, s.status, s.room_name, to_jsonb(s) AS row, row_number() OVER (ORDER BY s.room_name) - 1 AS n,
    jsonb_build_object('instances', jsonb_build_array(jsonb_build_object('sid', 'RM_' || :e::text, 'createdMs', :e::bigint, 'finished', false,
      'participants', jsonb_build_array(), 'leftParticipants', jsonb_build_array(), 'tracks', jsonb_build_array(), 'unpublishedTracks', jsonb_build_array(),
      'egresses', jsonb_build_array(), 'ingresses', jsonb_build_array())), 'staleSids', jsonb_build_array()) AS live
  FROM sessions s WHERE s.room_name IN ('bench-room-' || (:r::int * 4), 'bench-room-' || (:r::int * 4 + 1), 'bench-room-' || (:r::int * 4 + 2), 'bench-room-' || (:r::int * 4 + 3))) rooms \gset
-- WRITE_SESSIONS(:started)
SELECT jsonb_agg(jsonb_build_object('i', n, 'id', id, 'read_xmin', x, 'status', 'STOPPED', 'room_sid', room_sid,
    'room_created_ms', room_created_ms, 'version', version + 1, 'started_at', started_at, 'stopped_at', now(), 'updated_at', now(),
    'live_state', jsonb_set(live_state, '{instances,0,finished}', 'true'::jsonb),
    'previous_status', status, 'change_event_type', 'room_finished',
    'session', row || jsonb_build_object('status', 'STOPPED', 'version', version + 1, 'stopped_at', now(), 'updated_at', now(),
      'live_state', jsonb_set(live_state, '{instances,0,finished}', 'true'::jsonb)),
    'event_id', 'EV_' || :client_id::text || '_' || :e::text || '_' || n || 'f', 'event_type', 'room_finished', 'room_name', room_name,
    'event_room_sid', room_sid, 'created_at', now(), 'outcome', 'status_updated',
    'participant_identity', NULL, 'track_sid', NULL, 'egress_id', NULL)) AS finished
FROM (SELECT s.*, s.xmin::text AS x, to_jsonb(s) AS row, row_number() OVER (ORDER BY s.room_name) - 1 AS n
  FROM sessions s WHERE s.room_name IN ('bench-room-' || (:r::int * 4), 'bench-room-' || (:r::int * 4 + 1), 'bench-room-' || (:r::int * 4 + 2), 'bench-room-' || (:r::int * 4 + 3))) rooms \gset
-- WRITE_SESSIONS(:finished)
\if :m = 1
UPDATE session_changes SET published_at = now() WHERE published_at IS NULL AND session_id IN (SELECT id FROM sessions WHERE room_name LIKE 'bench-room-%' LIMIT 4);
\endif
