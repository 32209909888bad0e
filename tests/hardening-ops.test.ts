/**
 * Issue 8, items 10 and 12 (the parts outside GraphQL): reconciliation never holds the database while it
 * waits on LiveKit; /readyz does not show raw database errors; retention runs soon after start; the
 * all-sessions stream remembers a bounded number of sessions.
 */
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { createLocalBus } from '../src/realtime/bus.js';
import { EndAll } from '../src/realtime/end-all.js';
import { watchAllSessions } from '../src/realtime/session-stream.js';
import type { SessionChange } from '../src/sessions/change.js';
import { newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';
import { availableBackends, dropSchema, TEST_DATABASE_URL, uniqueName } from '../tools/kit/backends.js';
import { startTcpProxy, type TcpProxy } from '../tools/kit/tcp-proxy.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => {});
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

describe('reconciliation against a LiveKit that does not answer (item 10)', () => {
  it('does not delay webhooks on the embedded database (one connection): all answered, in order, while it still waits', async () => {
    // A LiveKit stand-in that accepts connections and never answers.
    const silent: TcpProxy = await startTcpProxy({ host: '127.0.0.1', port: 9 });
    silent.cut('blackhole');
    cleanup.push(() => silent.close());
    const t = await startTestApp({
      DATABASE_URL: '',
      PGLITE_DATA_DIR: 'memory://',
      LIVEKIT_URL: `http://127.0.0.1:${silent.port}`,
      RECONCILE_INTERVAL_SECONDS: '0',
    });
    cleanup.push(() => t.stop());
    const db = t.app.database.db;
    const names = Array.from({ length: 5 }, (_, i) => `silent-lk-${i}-${Date.now()}`);
    await db
      .insertInto('sessions')
      .values(names.map((room_name) => ({ room_name, title: null, status: 'READY' as const })))
      .execute();

    let settled = false;
    const reconciling = t.app.reconcileNow().finally(() => (settled = true));
    expect(await until(() => silent.accepted() > 0, 20_000), 'reconciliation called LiveKit').toBe(true);

    const answers: string[] = [];
    for (const name of names) {
      const room = newRoomInstance(name);
      for (const type of ['room_started', 'room_finished'] as const) {
        const res = await sendEvent(t.url, type, room);
        expect(res.status).toBe(200);
        answers.push(`${name} ${type} ${res.json.results.action} ${res.json.results.new_status}`);
      }
    }
    // Every webhook was answered while the reconciliation was still waiting on LiveKit.
    expect(settled, 'reconciliation finished before the webhooks were answered: it held the database').toBe(false);
    expect(answers).toEqual(names.flatMap((n) => [`${n} room_started status_updated live`, `${n} room_finished status_updated stopped`]));

    // It gives up (the timeout) and repairs nothing.
    expect(await reconciling).toBeNull();
  }, 180_000);
});

describe('/readyz (item 12)', async () => {
  const { postgres } = await availableBackends();
  it.skipIf(!postgres)(
    'answers "database unavailable" without the database error text',
    async () => {
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(TEST_DATABASE_URL).port || 5432) });
      cleanup.push(() => proxy.close());
      const proxiedUrl = Object.assign(new URL(TEST_DATABASE_URL), { port: String(proxy.port) }).toString();
      const t = await startTestApp({ DATABASE_URL: proxiedUrl });
      cleanup.push(() => t.stop());
      expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
      for (const mode of ['reset', 'blackhole'] as const) {
        proxy.cut(mode);
        const res = await fetch(`${t.url}/readyz`);
        expect(res.status).toBe(503);
        expect(await res.json()).toEqual({ status: 'not ready', problems: ['database unavailable'] });
        proxy.restore();
      }
    },
    60_000,
  );
});

describe('retention (item 12)', () => {
  it('runs soon after start, not only an hour later', async () => {
    const shared = { schema: uniqueName('ret'), prefix: `${uniqueName('ret')}:` };
    const { postgres } = await availableBackends();
    // The embedded database is per process: there, one app plays both parts.
    const seed: TestApp = await startTestApp({ RETENTION_DAYS: '0' }, postgres ? shared : undefined);
    const aged = {
      id: `EV_aged_${Date.now()}`,
      event_type: 'room_started',
      room_name: 'aged',
      room_sid: null,
      created_at: null,
      outcome: 'event_logged',
      session_id: null,
    };
    await seed.app.database.db
      .insertInto('webhook_events')
      .values({ ...aged, received_at: sql<Date>`now() - interval '31 days'` })
      .execute();
    let t = seed;
    if (postgres) {
      await seed.stop();
      // A freshly (re)started replica: the old record must go without waiting an hour.
      t = await startTestApp({ RETENTION_DAYS: '30' }, shared);
      cleanup.push(() => dropSchema(shared.schema));
    }
    cleanup.push(() => t.stop());
    const gone = async () => (await t.app.database.db.selectFrom('webhook_events').select('id').where('id', '=', aged.id).execute()).length === 0;
    expect(await until(gone, 30_000)).toBe(true);
    // A fresh record stays.
    const fresh = await sendEvent(t.url, 'participant_joined', newRoomInstance(`ret-${Date.now()}`));
    expect(fresh.status).toBe(200);
  }, 180_000);
});

describe('the all-sessions stream (item 12)', () => {
  it('remembers at most `tracked` sessions: the oldest is forgotten, recent repeats are still dropped', async () => {
    const bus = createLocalBus(createLogger('silent'));
    const end = new EndAll();
    const stream = watchAllSessions({ db: undefined as never, bus, logger: createLogger('silent') }, [end], 3);
    const change = (id: string, version: number): SessionChange => {
      const at = new Date();
      return {
        session: {
          id,
          seq: 1,
          room_name: id,
          title: null,
          status: 'LIVE',
          room_sid: null,
          room_created_ms: null,
          version,
          started_at: at,
          stopped_at: null,
          live_state: { instances: [], staleSids: [] },
          created_at: at,
          updated_at: at,
        },
        previousStatus: 'READY',
        eventType: 'room_started',
        changedAt: at,
      };
    };
    const first = stream.next();
    // The stream subscribes when first read: publish s0 until it arrives.
    let arrived = false;
    void first.then(() => (arrived = true));
    while (!arrived) {
      await bus.publish(change('s0', 1));
      await sleep(10);
    }
    for (const c of [change('s1', 1), change('s2', 1), change('s3', 1), change('s3', 1), change('s0', 1), change('s3', 2)]) await bus.publish(c);
    await sleep(50);
    end.end();
    const seen = [`${(await first).value!.session.id}:1`];
    for await (const c of stream) seen.push(`${c.session.id}:${c.session.version}`);
    // s0 was pushed out by s1..s3 (3 remembered): its repeat passes once; s3's repeat does not.
    expect(seen).toEqual(['s0:1', 's1:1', 's2:1', 's3:1', 's0:1', 's3:2']);
    await bus.close();
  });
});
