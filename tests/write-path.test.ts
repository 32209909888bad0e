/**
 * Issue 11 (the webhook fast path): a webhook is one statement, applied only if the session row is still the version
 * the process read or cached (src/sessions/ingest.ts). These tests make those versions stale on purpose: two service
 * processes write the same rooms, every event of a room is sent at once, retries go to the other process. Whatever
 * the interleaving, what must hold is checked on the database itself:
 * - every event is stored exactly once, with the outcome its answer announced, and of the copies of one event
 *   exactly one answer is not `duplicate`;
 * - each session's change history is whole: a session at version v has exactly the changes 2..v, each the row as
 *   of its version;
 * - the final live state is the one LiveKit's order gives (the pure rule folded in order), the final status that of
 *   the newest room instance, and the last change carries the final state.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLiveEvent, EMPTY_LIVE_STATE, liveView, type LiveState } from '../src/sessions/live-state.js';
import { WRITE_SESSIONS } from '../src/sessions/repo.js';
import { mapLimit } from '../tools/kit/async.js';
import { availableBackends, dropSchema, TEST_DATABASE_URL, uniqueName } from '../tools/kit/backends.js';
import { buildEvent, encodeEvent, newRoomInstance, postWebhook, signBody, type RoomInstance } from '../tools/kit/livekit-emulator.js';
import { sseClient } from '../tools/kit/clients.js';
import { adminToken } from '../tools/kit/graphql.js';
import { startServiceProcess, type ServiceProcess } from '../tools/kit/service-process.js';
import { modelEvents, roomArb, toLiveEvent, type ModelEvent } from './support/live-model.js';
import { Watch } from './support/watch.js';

const backends = await availableBackends();

type Sent = { id: string; type: string; room: string; action: string };

describe.skipIf(!(backends.postgres && backends.redis))('webhook fast path under stale row versions (two processes)', () => {
  const schema = uniqueName('wpath');
  let a: ServiceProcess | undefined;
  let b: ServiceProcess | undefined;
  let client: pg.Client;

  beforeAll(async () => {
    const env = { SESSION_AUTO_CREATE: 'true' };
    a = await startServiceProcess({ schema, prefix: `${schema}:`, env });
    b = await startServiceProcess({ schema, prefix: `${schema}:`, env });
    client = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
    await client.connect();
  }, 90_000);
  afterAll(async () => {
    await client?.end();
    const codes = await Promise.all([a?.stop(), b?.stop()]);
    await dropSchema(schema).catch(() => {});
    expect(codes).toEqual([0, 0]);
  }, 60_000);

  /** Posts one signed body to A or B; the answer's action is kept. */
  async function post(to: ServiceProcess, s: { id: string; type: string; room: string; body: string; token: string }): Promise<Sent> {
    const res = await postWebhook(to.url, s.body, s.token);
    expect(res.status, res.text).toBe(200);
    return { id: s.id, type: s.type, room: s.room, action: res.json.results.action as string };
  }

  /** The database's own account of the rooms: what must hold whatever the interleaving. */
  async function checkStored(sent: Sent[], rooms: string[]) {
    const { rows: events } = await client.query<{ id: string; outcome: string }>('select id, outcome from webhook_events where room_name = any($1)', [rooms]);
    const stored = new Map(events.map((e) => [e.id, e.outcome]));
    const ids = new Set(sent.map((s) => s.id));
    expect(events.length, 'each event stored once, nothing else').toBe(ids.size);
    for (const id of ids) {
      const answers = sent.filter((s) => s.id === id).map((s) => s.action);
      const storing = answers.filter((a) => a !== 'duplicate');
      expect(storing, `event ${id}: exactly one copy stored it (answers ${answers.join(', ')})`).toHaveLength(1);
      expect(stored.get(id), `event ${id}: stored with the outcome its answer announced`).toBe(storing[0]);
    }
    const { rows: sessions } = await client.query<{ id: string; room_name: string; version: number; status: string; live_state: LiveState }>(
      'select id, room_name, version, status, live_state from sessions where room_name = any($1)',
      [rooms],
    );
    for (const s of sessions) {
      const { rows: changes } = await client.query<{ version: number; snapshot_version: number; live_state: LiveState }>(
        `select version, (session->>'version')::int as snapshot_version, session->'live_state' as live_state from session_changes where session_id = $1 order by version`,
        [s.id],
      );
      expect(
        changes.map((c) => c.version),
        `${s.room_name}: changes 2..${s.version}`,
      ).toEqual(Array.from({ length: s.version - 1 }, (_, i) => i + 2));
      for (const c of changes) expect(c.snapshot_version).toBe(c.version);
      if (changes.length > 0)
        expect(liveView(changes.at(-1)!.live_state), `${s.room_name}: the last change carries the final state`).toEqual(liveView(s.live_state));
    }
    return new Map(sessions.map((s) => [s.room_name, s]));
  }

  it('random lifecycles, every event of a room at once over both processes, retries to the other one', { timeout: 240_000 }, async () => {
    const models = fc.sample(roomArb, { numRuns: 12, seed: 11 });
    const tag = Math.random().toString(36).slice(2, 8);
    const baseMs = Date.now() - 60_000;
    const rooms = models.map((model, r) => ({ name: `wpath-${tag}-${r}`, ...modelEvents(model, `wpath-${tag}-${r}`, `W${tag}r${r}`, baseMs) }));
    const signed = await Promise.all(
      rooms.flatMap((room, r) =>
        room.events.map(async (e: ModelEvent, i) => {
          const id = `EV_W${tag}r${r}n${i}`;
          const body = encodeEvent(buildEvent(e.type, room.instances[e.instance]!, { ...e.opts, id }));
          return { id, type: e.type, room: room.name, body, token: await signBody(body) };
        }),
      ),
    );
    // Each event to A or B; every fourth again to the other one (a retry LiveKit sent elsewhere), all in flight together.
    const sends = signed.flatMap((s, i) => {
      const first = Math.random() < 0.5 ? a! : b!;
      const other = first === a ? b! : a!;
      return i % 4 === 0
        ? [
            { to: first, s },
            { to: other, s },
          ]
        : [{ to: first, s }];
    });
    for (let i = sends.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [sends[i], sends[j]] = [sends[j]!, sends[i]!];
    }
    const sent = await mapLimit(sends, 24, ({ to, s }) => post(to, s));

    const sessions = await checkStored(
      sent,
      rooms.map((r) => r.name),
    );
    for (const room of rooms) {
      const session = sessions.get(room.name)!;
      const expected = liveView(room.events.map((e) => toLiveEvent(e, room.instances)).reduce(applyLiveEvent, EMPTY_LIVE_STATE));
      expect(liveView(session.live_state), `${room.name}: the live state of LiveKit's order`).toEqual(expected);
      const newest = room.instances.reduce((x: RoomInstance, y) => (y.createdMs > x.createdMs || (y.createdMs === x.createdMs && y.sid > x.sid) ? y : x));
      const finished = room.events.some((e) => e.type === 'room_finished' && room.instances[e.instance] === newest);
      expect(session.status, `${room.name}: the status of its newest instance`).toBe(finished ? 'STOPPED' : 'LIVE');
    }
    console.info(`write path: ${sent.length} requests, ${sent.filter((s) => s.action === 'duplicate').length} duplicates over ${rooms.length} rooms`);
  });

  it('forty joins of one room at once, half through each process: every one counted, one version each', { timeout: 120_000 }, async () => {
    const room = newRoomInstance(`wpath-hot-${Math.random().toString(36).slice(2, 8)}`);
    const sign = async (type: string, opts: Parameters<typeof buildEvent>[2] = {}) => {
      const body = encodeEvent(buildEvent(type, room, opts));
      return { id: JSON.parse(body).id as string, type, room: room.name, body, token: await signBody(body) };
    };
    const started = await post(a!, await sign('room_started'));
    expect(started.action).toBe('status_updated');
    const joins = await Promise.all(
      Array.from({ length: 40 }, (_, i) => sign('participant_joined', { participant: { sid: `PA_hot${i}`, identity: `p${i}` } })),
    );
    const sent = await Promise.all(joins.map((s, i) => post(i % 2 === 0 ? a! : b!, s)));
    expect(sent.map((s) => s.action)).toEqual(joins.map(() => 'live_updated'));

    const session = (await checkStored([started, ...sent], [room.name])).get(room.name)!;
    expect(session.version).toBe(2 + 40);
    expect(liveView(session.live_state).participantCount).toBe(40);
  });

  /** The process's group-commit counters: session writes and the statements that carried them. */
  async function statementCounts(to: ServiceProcess): Promise<{ writes: number; statements: number; conflicts: number }> {
    const text = await (await fetch(`${to.url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    return {
      writes: value('lkss_webhook_write_batch_size_sum'),
      statements: value('lkss_webhook_write_batch_size_count'),
      conflicts: value('lkss_webhook_write_conflicts_total'),
    };
  }

  it(
    'group commit: many rooms at once through one process share statements, each webhook still applied once on its own terms, and the webhooks of a room take turns (no conflicts)',
    { timeout: 120_000 },
    async () => {
      const tag = Math.random().toString(36).slice(2, 8);
      const instances = Array.from({ length: 60 }, (_, r) => newRoomInstance(`wpath-group-${tag}-${r}`));
      const sign = async (room: RoomInstance, type: string, opts: Parameters<typeof buildEvent>[2] = {}) => {
        const body = encodeEvent(buildEvent(type, room, opts));
        return { id: JSON.parse(body).id as string, type, room: room.name, body, token: await signBody(body) };
      };
      const before = await statementCounts(a!);
      const starts = await Promise.all(instances.map((room) => sign(room, 'room_started')));
      const started = await mapLimit(starts, 60, (s) => post(a!, s));
      expect(started.map((s) => s.action)).toEqual(starts.map(() => 'status_updated'));
      // Three joins per room, every room's joins in flight together, and a copy of every fifth (LiveKit's retry).
      const joins = await Promise.all(
        instances.flatMap((room) => [0, 1, 2].map((p) => sign(room, 'participant_joined', { participant: { sid: `PA_${room.sid}_${p}`, identity: `p${p}` } }))),
      );
      const sent = await mapLimit([...joins, ...joins.filter((_, i) => i % 5 === 0)], 60, (s) => post(a!, s));
      const after = await statementCounts(a!);

      const writes = after.writes - before.writes;
      const statements = after.statements - before.statements;
      const conflicts = after.conflicts - before.conflicts;
      expect(writes, 'every status change and join applied once, besides the writes that conflicted').toBeGreaterThanOrEqual(60 + 180 + conflicts);
      // Only this process writes these rooms, and it writes each room's webhooks in turn (sessions/fast-path.ts).
      expect(conflicts, 'no write found its row changed by a sibling webhook').toBe(0);
      expect(statements, `${writes} writes in ${statements} statements: some carried several`).toBeLessThan(writes);
      const sessions = await checkStored(
        [...started, ...sent],
        instances.map((r) => r.name),
      );
      for (const room of instances) {
        const session = sessions.get(room.name)!;
        expect(session.status).toBe('LIVE');
        expect(session.version, `${room.name}: created, started, three joins`).toBe(5);
        expect(liveView(session.live_state).participantCount).toBe(3);
      }
      console.info(`group commit: ${writes} session writes in ${statements} statements, ${conflicts} conflicts`);
    },
  );
  it(
    'replicas learn each other’s writes from the change stream: a room’s webhooks alternating between the two conflict at most once per process',
    { timeout: 120_000 },
    async () => {
      const token = await adminToken();
      const clients = [sseClient(a!.url, token), sseClient(b!.url, token)];
      try {
        // Each process's every-session stream: seeing a version there means that process has dispatched it.
        const [onA, onB] = clients.map((c) => new Watch(c, `subscription { sessionsUpdated { version session { roomName } } }`)) as [Watch, Watch];
        const room = newRoomInstance(`wpath-alt-${Math.random().toString(36).slice(2, 8)}`);
        const sign = async (type: string, opts: Parameters<typeof buildEvent>[2] = {}) => {
          const body = encodeEvent(buildEvent(type, room, opts));
          return { id: JSON.parse(body).id as string, type, room: room.name, body, token: await signBody(body) };
        };
        const seen = (w: Watch, version: number) =>
          (w.values('sessionsUpdated') as Array<{ version: number; session: { roomName: string } }>).some(
            (v) => v.session.roomName === room.name && v.version >= version,
          );
        // Every-session streams send no snapshot: joins until both have seen one (the first may come too early).
        expect((await post(a!, await sign('room_started'))).action).toBe('status_updated');
        let version = 2; // created at 1, started at 2
        for (let i = 0; !(seen(onA, version) && seen(onB, version)); i++) {
          expect(i, 'both every-session streams live').toBeLessThan(40);
          await post(a!, await sign('participant_joined', { participant: { sid: `PA_warm${i}`, identity: `warm${i}` } }));
          version++;
          await Promise.all([onA, onB].map((w) => w.until(() => seen(w, version), 500).catch(() => undefined)));
        }

        const counts = async () => (await Promise.all([statementCounts(a!), statementCounts(b!)])).reduce((n, c) => n + c.conflicts, 0);
        const before = await counts();
        for (let i = 0; i < 20; i++) {
          const [to, other] = i % 2 === 0 ? [b!, onA] : [a!, onB];
          const sent = await post(to, await sign('participant_joined', { participant: { sid: `PA_alt${i}`, identity: `alt${i}` } }));
          expect(sent.action).toBe('live_updated');
          version++;
          // The next webhook goes to the other process: once it has dispatched this version, it knows the row.
          await other.until(() => seen(other, version), 10_000, `version ${version} on the other process`);
        }
        const conflicts = (await counts()) - before;
        expect(conflicts, `${conflicts} of 20 alternating webhooks found their row changed by the other process`).toBeLessThanOrEqual(2);
      } finally {
        for (const c of clients) c.dispose();
      }
    },
  );

  it('the write statement’s cached (generic) plan looks events up by index, never hashing the table, however small it was when planned', async () => {
    // A prepared statement's generic plan assumes 100 input rows; planned on small tables, the write hashed whole
    // tables on every statement (a cost growing with them until the next ANALYZE). Checked on the statement itself.
    const conn = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema} -c plan_cache_mode=force_generic_plan` });
    await conn.connect();
    try {
      await conn.query('begin');
      await conn.query(`insert into sessions (room_name) select 'wpath-plan-' || g from generate_series(1, 200) g`);
      await conn.query(
        `insert into webhook_events (id, event_type, outcome) select 'EV_wpath_plan_' || g, 'room_started', 'ignored' from generate_series(1, 500) g`,
      );
      await conn.query('analyze sessions');
      await conn.query('analyze webhook_events');
      const { rows } = await conn.query<{ id: string; xmin: string }>(
        `select id, xmin::text as xmin from sessions where room_name like 'wpath-plan-%' limit 4`,
      );
      const now = new Date().toISOString();
      const writes = rows.map((r, i) => ({
        i,
        id: r.id,
        read_xmin: r.xmin,
        status: 'LIVE',
        version: 2,
        updated_at: now,
        live_state: EMPTY_LIVE_STATE,
        event_id: `EV_wpath_plan_new_${i}`,
        event_type: 'room_started',
        outcome: 'status_updated',
      }));
      await conn.query(`prepare write_sessions(jsonb) as ${WRITE_SESSIONS}`);
      const explained = await conn.query<{ 'QUERY PLAN': string }>(
        `explain (costs off) execute write_sessions('${JSON.stringify(writes).replaceAll("'", "''")}')`,
      );
      const text = explained.rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(text, text).toMatch(/webhook_events_pkey/);
      expect(text, text).not.toMatch(/Seq Scan on webhook_events/);
      expect(text, text).not.toMatch(/Hash Anti Join/);
    } finally {
      await conn.query('rollback').catch(() => {});
      await conn.end();
    }
  });
});
