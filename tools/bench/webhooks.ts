/**
 * Webhook throughput and latency: the service as its own process on Postgres + Redis, N sessions,
 * a pre-built and pre-signed pool of LiveKit-like webhook requests (room lifecycles: mostly
 * participant/track noise, ~1 in 8 a status event, ~1 % retries of an earlier delivery), driven by
 * autocannon. Afterwards the database must hold every request answered 200 exactly once, with the
 * outcome the response announced.
 */
import autocannon from 'autocannon';
import type pg from 'pg';
import { buildEvent, encodeEvent, newRoomInstance, signBody, type RoomInstance } from '../kit/livekit-emulator.js';
import { createSession } from '../kit/graphql.js';
import { mapLimit, sleep } from '../kit/async.js';
import {
  adminBenchToken,
  BENCH_CREDENTIALS,
  cpuBetween,
  cpuSnapshot,
  kb,
  mb,
  memoryOf,
  ms,
  newNamespace,
  pgRoundTripMs,
  readMetrics,
  round,
  startService,
  WEBHOOK_PATH,
  withDatabase,
  withServiceLogs,
  type BenchResult,
  type ServiceOptions,
} from './common.js';

export type WebhookBenchOptions = {
  durationS: number;
  warmupS: number;
  connections: number;
  sessions: number;
  /** Pre-signed requests; when the run outlasts them it replays from the start (answered as duplicates). */
  poolSize: number;
  service: ServiceOptions;
};

export const WEBHOOK_DEFAULTS: Omit<WebhookBenchOptions, 'service'> = { durationS: 15, warmupS: 2, connections: 32, sessions: 200, poolSize: 0 };

export type PoolItem = {
  id: string;
  type: string;
  roomName: string;
  tracked: boolean;
  body: Buffer;
  auth: string;
  /** A LiveKit retry of an earlier delivery (same id, body and token). */
  retry: boolean;
  sends: number;
  status?: number;
  action?: string;
};

export type Planned = { type: string; identity?: string };

/** One room instance as LiveKit reports it: start, people join and publish, leave, finish. */
export function lifecycle(): Planned[] {
  const people = Array.from({ length: 1 + Math.floor(Math.random() * 4) }, (_, i) => `user-${i}`);
  const out: Planned[] = [{ type: 'room_started' }];
  for (const identity of people)
    out.push({ type: 'participant_joined', identity }, { type: 'track_published', identity }, { type: 'track_published', identity });
  if (Math.random() < 0.15) out.push({ type: 'egress_started' }, { type: 'egress_updated' });
  for (const identity of people)
    out.push({ type: 'track_unpublished', identity }, { type: 'track_unpublished', identity }, { type: 'participant_left', identity });
  if (out.some((e) => e.type === 'egress_started')) out.push({ type: 'egress_ended' });
  out.push({ type: 'room_finished' });
  return out;
}

type RoomState = { name: string; tracked: boolean; instances: number; current?: RoomInstance; queue: Planned[] };

/**
 * Interleaves room lifecycles round-robin so consecutive events of one room sit far apart in the pool
 * (they arrive in order even with many connections), then signs every body.
 */
export async function buildPool(
  roomNames: string[],
  untracked: string[],
  size: number,
  plan: () => Planned[] = lifecycle,
  retryShare = 0.01,
  sign = true,
): Promise<PoolItem[]> {
  const baseMs = Date.now() - 3_600_000;
  const rooms: RoomState[] = [
    ...roomNames.map((name) => ({ name, tracked: true, instances: 0, queue: [] })),
    ...untracked.map((name) => ({ name, tracked: false, instances: 0, queue: [] })),
  ];
  const pool: PoolItem[] = [];
  const retries: Array<{ at: number; of: PoolItem }> = [];
  const unsigned: Array<{ item: PoolItem; body: string }> = [];
  for (let i = 0; pool.length < size; i = (i + 1) % rooms.length) {
    while (retries.length > 0 && retries[0]!.at <= pool.length && pool.length < size) {
      const { of } = retries.shift()!;
      pool.push({ ...of, retry: true, sends: 0 });
    }
    if (pool.length >= size) break;
    const room = rooms[i]!;
    if (room.queue.length === 0) {
      room.current = newRoomInstance(room.name, baseMs + ++room.instances * 1000);
      room.queue = plan();
    }
    const planned = room.queue.shift()!;
    const event = buildEvent(planned.type, room.current!, { identity: planned.identity });
    const body = encodeEvent(event, Math.random() < 0.05 ? 'spaced' : 'compact');
    const item: PoolItem = {
      id: event.id,
      type: planned.type,
      roomName: room.name,
      tracked: room.tracked,
      body: Buffer.from(body),
      auth: '',
      retry: false,
      sends: 0,
    };
    pool.push(item);
    unsigned.push({ item, body });
    if (Math.random() < retryShare) retries.push({ at: pool.length + 500 + Math.floor(Math.random() * 500), of: item });
  }
  if (sign) await signPool(pool);
  return pool;
}

export /**
 * Signs every request of the pool as LiveKit would (a fresh token per delivery, 5 minutes by default); a
 * retry carries its original's token. Sign shortly before sending: our route refuses expired tokens.
 */
async function signPool(pool: PoolItem[], ttl: string | number = '5m'): Promise<void> {
  const originals = pool.filter((p) => !p.retry);
  for (let i = 0; i < originals.length; i += 2000) {
    await Promise.all(originals.slice(i, i + 2000).map(async (p) => (p.auth = await signBody(p.body, BENCH_CREDENTIALS, ttl))));
  }
  const byId = new Map(originals.map((p) => [p.id, p]));
  for (const p of pool) if (p.retry) p.auth = byId.get(p.id)!.auth;
}

export type Driver = { next: number; replays: number; replayAnswers: Map<string, number>; bodies: number };

/** Sends the pool (in order, shared across calls through `driver`) with autocannon; each answer is noted on its item. */
export async function drive(
  url: string,
  pool: PoolItem[],
  driver: Driver,
  durationS: number,
  connections: number,
  path = WEBHOOK_PATH,
): Promise<autocannon.Result> {
  return autocannon({
    url,
    connections,
    duration: durationS,
    pipelining: 1,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path,
        setupRequest: (req, context) => {
          const item = pool[driver.next++ % pool.length]!;
          const ctx = context as { item?: PoolItem; replay?: boolean };
          ctx.item = item;
          ctx.replay = item.sends > 0;
          if (ctx.replay) driver.replays++;
          item.sends++;
          return {
            ...req,
            method: 'POST',
            path,
            headers: { 'Content-Type': 'application/webhook+json', Authorization: item.auth },
            body: item.body,
          };
        },
        onResponse: (status, body, context) => {
          const { item, replay } = context as { item?: PoolItem; replay?: boolean };
          if (!item) return;
          driver.bodies++;
          let action: string;
          try {
            const json = JSON.parse(body) as { results?: { action?: string }; errcode?: string };
            action = json.results?.action ?? json.errcode ?? 'unparsed';
          } catch {
            action = 'unparsed';
          }
          if (replay) {
            driver.replayAnswers.set(action, (driver.replayAnswers.get(action) ?? 0) + 1);
            return;
          }
          item.status = status;
          item.action = action;
        },
      },
    ],
  });
}

export async function runWebhookBench(opts: WebhookBenchOptions): Promise<BenchResult> {
  const problems: string[] = [];
  const ns = newNamespace('wh');
  const service = await startService(ns, opts.service);
  try {
    const token = await adminBenchToken();
    const roomNames = Array.from({ length: opts.sessions }, (_, i) => `bench-room-${i}`);
    await mapLimit(roomNames, 8, (name) => createSession(service.url, name, token, `Bench ${name}`));
    const untracked = Array.from({ length: Math.max(1, Math.round(opts.sessions / 10)) }, (_, i) => `untracked-room-${i}`);

    const poolSize = opts.poolSize > 0 ? opts.poolSize : Math.round((opts.durationS + opts.warmupS) * 1500);
    const prepStarted = performance.now();
    const pool = await buildPool(roomNames, untracked, poolSize);
    const prepS = (performance.now() - prepStarted) / 1000;
    const mix = countBy(pool, (p) => (p.retry ? 'retry' : p.type));

    const roundTripMs = await pgRoundTripMs();
    const before = memoryOf(await readMetrics(service.url));
    const driver: Driver = { next: 0, replays: 0, replayAnswers: new Map(), bodies: 0 };
    if (opts.warmupS > 0) await drive(service.url, pool, driver, opts.warmupS, opts.connections);
    const warmupSent = driver.next;

    service.startProfile();
    const metricsStart = await readMetrics(service.url);
    const cpuStart = cpuSnapshot([service.pid, process.pid]);
    const result = await drive(service.url, pool, driver, opts.durationS, opts.connections);
    const cpuEnd = cpuSnapshot([service.pid, process.pid]);
    const metricsEnd = await readMetrics(service.url);
    const cpu = cpuBetween(cpuStart, cpuEnd, { service: service.pid, generator: process.pid, postgres: 'postgres', redis: 'redis-server' });
    const serverCount = (metricsEnd.get('lkss_webhook_duration_seconds_count') ?? 0) - (metricsStart.get('lkss_webhook_duration_seconds_count') ?? 0);
    const serverSum = (metricsEnd.get('lkss_webhook_duration_seconds_sum') ?? 0) - (metricsStart.get('lkss_webhook_duration_seconds_sum') ?? 0);

    // Let in-flight requests finish, the publisher mark its changes, and the process settle.
    await sleep(1500);
    const after = memoryOf(await readMetrics(service.url));
    const publishedTotal = (await readMetrics(service.url)).get('lkss_changes_published_total') ?? 0;

    if (driver.next > pool.length) problems.push(`pool of ${pool.length} exhausted: ${driver.replays} requests were replays (raise --pool)`);

    const {
      verify,
      ok200,
      unanswered,
      actions,
      retryActions,
      problems: stored,
    } = await withDatabase(ns.schema, (db) => checkExactlyOnce(db, pool, publishedTotal));
    problems.push(...stored);
    if (result.errors > 0 || result.timeouts > 0) problems.push(`${result.errors} connection errors, ${result.timeouts} timeouts`);

    const runRequests = result.requests.total;
    const reqPerS = runRequests / (result.duration || opts.durationS);
    const rows: Array<[string, string | number]> = [
      ['run', `${opts.durationS} s after ${opts.warmupS} s warm-up, ${opts.connections} connections, ${opts.sessions} sessions`],
      [
        'pool',
        `${pool.length} pre-signed requests built in ${round(prepS, 1)} s (${round((100 * ((mix.room_started ?? 0) + (mix.room_finished ?? 0))) / pool.length, 1)} % status events, ${mix.retry ?? 0} retries)`,
      ],
      ['requests/s', `${round(reqPerS, 0)} (${runRequests} in the run; ${warmupSent} in the warm-up)`],
      ['latency p50/p90/p99/max', `${ms(result.latency.p50)} / ${ms(result.latency.p90)} / ${ms(result.latency.p99)} / ${ms(result.latency.max)}`],
      ['server time per webhook', `${ms((serverSum / Math.max(1, serverCount)) * 1000)} mean (lkss_webhook_duration_seconds)`],
      ['CPU per webhook', `service ${ms((cpu.service! * 1000) / Math.max(1, reqPerS))}, postgres ${ms((cpu.postgres! * 1000) / Math.max(1, reqPerS))}`],
      ['non-2xx / errors / timeouts', `${result.non2xx} / ${result.errors} / ${result.timeouts}`],
      [
        'answers',
        Object.entries(actions)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      ],
      [
        'retries answered',
        Object.entries(retryActions)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') || 'none',
      ],
      [
        'stored exactly once',
        `${ok200.length - verify.missing}/${ok200.length} answered 200 (${verify.rows} rows; ${unanswered.length} cut off at the end, ${verify.extraUnanswered} of them stored)`,
      ],
      ['status changes', `${verify.totalChanges} stored, ${publishedTotal} published, ${verify.unpublished} unpublished`],
      [
        'CPU (cores)',
        `service ${cpu.service}, generator ${cpu.generator}, postgres ${cpu.postgres}, redis ${cpu.redis}, other ${cpu.other}; machine ${cpu.machineBusyPct} % busy`,
      ],
      ['RSS before/after', `${mb(before.rss)} / ${mb(after.rss)}`],
      ['heap used before/after', `${mb(before.heapUsed)} / ${mb(after.heapUsed)}`],
      ['body size', `${kb(pool.reduce((a, p) => a + p.body.length, 0) / pool.length)} mean`],
      ['machine: one Postgres round trip', `${ms(roundTripMs)} (sequential select $1 from Node, before the run)`],
    ];
    return {
      name: 'webhooks',
      ok: problems.length === 0,
      problems,
      rows,
      data: {
        options: { durationS: opts.durationS, warmupS: opts.warmupS, connections: opts.connections, sessions: opts.sessions, poolSize: pool.length },
        requestsPerSecond: round(reqPerS, 1),
        requests: runRequests,
        latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max, mean: result.latency.average },
        serverMeanMs: round((serverSum / Math.max(1, serverCount)) * 1000, 3),
        non2xx: result.non2xx,
        errors: result.errors,
        timeouts: result.timeouts,
        actions,
        retryActions,
        mix,
        verify: { answered200: ok200.length, ...verify, unanswered: unanswered.length },
        published: publishedTotal,
        cpuCores: cpu,
        cpuMsPerWebhook: { service: round((cpu.service! * 1000) / Math.max(1, reqPerS), 3), postgres: round((cpu.postgres! * 1000) / Math.max(1, reqPerS), 3) },
        memory: { before, after },
        prepSeconds: round(prepS, 2),
        pgRoundTripMs: round(roundTripMs, 3),
      },
    };
  } catch (err) {
    throw withServiceLogs(err, service);
  } finally {
    await service.stop();
    await ns.drop();
  }
}

/**
 * Our exactly-once checks against the database after a run: every request answered 200 is stored once
 * with the outcome the response announced, nothing stored was never sent, each session's version
 * matches its change history, every change was published and marked so, every retry was a duplicate.
 */
export async function checkExactlyOnce(db: pg.Client, pool: PoolItem[], publishedTotal: number) {
  const problems: string[] = [];
  const sent = pool.filter((p) => p.sends > 0);
  const fresh = sent.filter((p) => !p.retry);
  const answered = fresh.filter((p) => p.status !== undefined);
  const ok200 = answered.filter((p) => p.status === 200);
  const unanswered = fresh.filter((p) => p.status === undefined);
  const retriesAnswered = sent.filter((p) => p.retry && p.status !== undefined);
  const verify = await (async () => {
    const events = await db.query<{ id: string; outcome: string }>('select id, outcome from webhook_events');
    const stored = new Map(events.rows.map((r) => [r.id, r.outcome]));
    const sentIds = new Set(sent.map((p) => p.id));
    const missing = ok200.filter((p) => !stored.has(p.id));
    const outcomeMismatch = ok200.filter((p) => stored.has(p.id) && !p.retry && stored.get(p.id) !== p.action);
    const phantom = [...stored.keys()].filter((id) => !sentIds.has(id));
    const extraUnanswered = unanswered.filter((p) => stored.has(p.id)).length;
    const sessions = await db.query<{ id: string; version: number; changes: string; updated: string; status_kept: string; unpublished: string }>(
      `select s.id, s.version,
         (select count(*) from session_changes c where c.session_id = s.id) as changes,
         (select count(*) from webhook_events e where e.session_id = s.id and e.outcome in ('status_updated', 'live_updated')) as updated,
         (select count(*) from webhook_events e where e.session_id = s.id and e.event_type in ('room_started', 'room_finished')
            and e.outcome in ('no_change', 'stale_event')) as status_kept,
         (select count(*) from session_changes c where c.session_id = s.id and c.published_at is null) as unpublished
       from sessions s`,
    );
    // Every change is one version. Every event answered status_updated or live_updated made one; a status event that
    // kept the status (no_change, stale_event: what its answer reports) may still have changed the live state visibly
    // (a newer instance started while LIVE shows an empty room), so those may add one each.
    const badVersions = sessions.rows.filter(
      (r) => r.version - 1 !== Number(r.changes) || Number(r.changes) < Number(r.updated) || Number(r.changes) > Number(r.updated) + Number(r.status_kept),
    );
    if (badVersions.length > 0) console.error(`sessions whose version does not match their history: ${JSON.stringify(badVersions.slice(0, 5))}`);
    const totalChanges = sessions.rows.reduce((a, r) => a + Number(r.changes), 0);
    const unpublished = sessions.rows.reduce((a, r) => a + Number(r.unpublished), 0);
    return {
      rows: stored.size,
      missing: missing.length,
      outcomeMismatch: outcomeMismatch.length,
      phantom: phantom.length,
      extraUnanswered,
      badVersions: badVersions.length,
      totalChanges,
      unpublished,
    };
  })();

  const non200 = answered.filter((p) => p.status !== 200);
  const actions = countBy(answered, (p) => p.action ?? '?');
  const retryActions = countBy(retriesAnswered, (p) => p.action ?? '?');
  // Every visible change (status or live state: participants, tracks, egress) is one version and one change record.
  const statusUpdated = (actions.status_updated ?? 0) + (actions.live_updated ?? 0);
  if (verify.missing > 0) problems.push(`${verify.missing} requests answered 200 are not stored`);
  if (verify.outcomeMismatch > 0) problems.push(`${verify.outcomeMismatch} stored outcomes differ from the answered action`);
  if (verify.phantom > 0) problems.push(`${verify.phantom} stored events were never sent`);
  if (verify.badVersions > 0) problems.push(`${verify.badVersions} sessions whose version does not match their change history`);
  if (verify.totalChanges < statusUpdated || verify.totalChanges > statusUpdated + unanswered.length) {
    problems.push(`${verify.totalChanges} session changes stored for ${statusUpdated} status_updated/live_updated answers`);
  }
  if (verify.unpublished > 0) problems.push(`${verify.unpublished} committed changes not marked published 1.5 s after the run`);
  if (publishedTotal !== verify.totalChanges) problems.push(`published ${publishedTotal} changes, stored ${verify.totalChanges}`);
  if (non200.length > 0) problems.push(`${non200.length} non-200 answers: ${JSON.stringify(countBy(non200, (p) => `${p.status} ${p.action}`))}`);
  const retryNotDuplicate = retriesAnswered.filter((p) => p.action !== 'duplicate').length;
  if (retryNotDuplicate > 0) problems.push(`${retryNotDuplicate} retries were not answered as duplicates`);
  return { problems, verify: { ...verify, unanswered: unanswered.length }, ok200, unanswered, answered, actions, retryActions };
}

function countBy<T>(items: T[], key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) {
    const k = key(item);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
