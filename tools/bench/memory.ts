/**
 * Memory under subscriptions, on one service process (with a GC hook so readings compare live objects):
 * 1. cycles of opening N graphql-ws subscriptions (one socket each, like N browser tabs), reading heap
 *    and RSS from /metrics, closing them all: bytes per subscription, and whether memory and Redis
 *    channels return to the baseline;
 * 2. a slow consumer: one socket carrying S subscriptions to one session stops reading while C changes
 *    are published for that session. Each subscription keeps at most 16 undelivered events (sliding
 *    buffer), so the server's memory must stay bounded; the stalled subscriptions must still end on the
 *    latest version once the client reads again, and a normal subscriber on the same session must end
 *    on it too. The changes are published on the session's Redis channel in the service's own wire
 *    format (encodeChange), paced, as the webhook replica would: 2,000 sequential webhooks take 10-30 s
 *    on this machine, and graphql-ws terminates a socket that has not answered its pings for ~24 s, which
 *    would end the experiment before it measures the buffer.
 */
import { Redis } from 'ioredis';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import WebSocket from 'ws';
import { TEST_REDIS_URL } from '../kit/backends.js';
import { createSession } from '../kit/graphql.js';
import type { SessionRow } from '../../src/db/types.js';
import { channelName } from '../../src/realtime/bus.js';
import { encodeChange } from '../../src/sessions/change.js';
import { mapLimit, sleep, waitFor } from '../kit/async.js';
import {
  adminBenchToken,
  benchToken,
  kb,
  mb,
  memoryOf,
  newNamespace,
  readMetrics,
  round,
  startService,
  withDatabase,
  withServiceLogs,
  type BenchResult,
  type BenchService,
  type MemoryReading,
  type ServiceOptions,
} from './common.js';

export type MemoryBenchOptions = {
  subscriptions: number;
  cycles: number;
  /** Sessions the N subscriptions spread over. */
  sessions: number;
  /** Subscriptions on the slow consumer's one socket. */
  slowSubscriptions: number;
  slowChanges: number;
  /** Changes per second published to the slow consumer's session. */
  slowRate: number;
  service: ServiceOptions;
};

export const MEMORY_DEFAULTS: Omit<MemoryBenchOptions, 'service'> = {
  subscriptions: 1000,
  cycles: 3,
  sessions: 100,
  slowSubscriptions: 100,
  slowChanges: 2000,
  slowRate: 400,
};

const SUBSCRIPTION = `subscription Watch($id: ID!) {
  sessionStatusChanged(id: $id) { version status previousStatus eventType changedAt session { id roomName status version startedAt stoppedAt } }
}`;

type Change = { version: number; eventType: string };
type Opened = { clients: WsClient[]; snapshots: number; errors: string[] };

async function reading(service: BenchService): Promise<MemoryReading & { subscriptions: number }> {
  await service.gc();
  const m = await readMetrics(service.url);
  return { ...memoryOf(m), subscriptions: m.get('lkss_subscriptions_active') ?? NaN };
}

/** N subscriptions, one graphql-ws socket each, opened 50 at a time; resolves once each got its snapshot. */
async function openSubscriptions(wsUrl: string, ids: string[], tokens: string[], n: number): Promise<Opened> {
  const opened: Opened = { clients: [], snapshots: 0, errors: [] };
  await mapLimit(
    Array.from({ length: n }, (_, i) => i),
    50,
    (i) =>
      new Promise<void>((resolve) => {
        const client = createWsClient({
          url: wsUrl,
          webSocketImpl: WebSocket,
          connectionParams: { authorization: `Bearer ${tokens[i % tokens.length]}` },
          retryAttempts: 0,
          lazy: true,
        });
        opened.clients.push(client);
        const timer = setTimeout(() => {
          opened.errors.push('no snapshot within 15 s');
          resolve();
        }, 15_000);
        client.subscribe(
          { query: SUBSCRIPTION, variables: { id: ids[i % ids.length] } },
          {
            next: (msg) => {
              if ((msg.data as { sessionStatusChanged?: Change } | undefined)?.sessionStatusChanged?.eventType === 'snapshot') {
                opened.snapshots++;
                clearTimeout(timer);
                resolve();
              }
            },
            error: (err) => {
              opened.errors.push(err instanceof Error ? err.message : JSON.stringify(err).slice(0, 200));
              clearTimeout(timer);
              resolve();
            },
            complete: () => {},
          },
        );
      }),
  );
  return opened;
}

async function closeAll(service: BenchService, clients: WsClient[]): Promise<boolean> {
  await Promise.allSettled(clients.map(async (c) => c.dispose()));
  return waitFor(async () => (await readMetrics(service.url)).get('lkss_subscriptions_active') === 0, 15_000, 100);
}

/** The changes a webhook replica would publish for `row`'s session: versions +1..+count, alternating LIVE/STOPPED. */
function changeMessages(row: SessionRow, count: number): string[] {
  const out: string[] = [];
  const base = Date.now();
  for (let i = 1; i <= count; i++) {
    const live = i % 2 === 1;
    const at = new Date(base + i);
    const session: SessionRow = {
      ...row,
      version: row.version + i,
      status: live ? 'LIVE' : 'STOPPED',
      started_at: live ? at : row.started_at,
      stopped_at: live ? null : at,
      updated_at: at,
    };
    out.push(
      encodeChange({
        session,
        previousStatus: i === 1 ? row.status : live ? 'STOPPED' : 'LIVE',
        eventType: live ? 'room_started' : 'room_finished',
        changedAt: at,
      }),
    );
  }
  return out;
}

export async function runMemoryBench(opts: MemoryBenchOptions): Promise<BenchResult> {
  const problems: string[] = [];
  const ns = newNamespace('mem');
  const service = await startService(ns, { ...opts.service, gcHook: true });
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const openClients: WsClient[] = [];
  let raw: WebSocket | undefined;
  try {
    await redis.connect();
    const channels = async () => ((await redis.pubsub('CHANNELS', `${ns.prefix}*`)) as string[]).length;
    const admin = await adminBenchToken();
    const names = Array.from({ length: opts.sessions }, (_, i) => `memory-room-${i}`);
    const sessions = await mapLimit(names, 8, (name) => createSession(service.url, name, admin));
    const ids = sessions.map((s) => s.id);
    // Each frontend's own token: roomJoin for its room.
    const tokens = await Promise.all(names.map((room, i) => benchToken({ roomJoin: true, room }, `viewer-${i}`)));
    const wsUrl = service.url.replace(/^http/, 'ws') + '/graphql';

    // Warm-up (JIT, lazy module state, pools), then the baseline. Two full-size rounds: V8 keeps
    // compiling the hot paths for about three rounds of 1,000, which would otherwise read as growth.
    for (let w = 0; w < 2; w++) {
      const warm = await openSubscriptions(wsUrl, ids, tokens, opts.subscriptions);
      await closeAll(service, warm.clients);
    }
    const baseline = await reading(service);
    const baselineChannels = await channels();

    type Cycle = { openSeconds: number; open: MemoryReading; closed: MemoryReading; channelsOpen: number; channelsClosed: number; errors: number };
    const cycles: Cycle[] = [];
    for (let c = 0; c < opts.cycles; c++) {
      const t0 = performance.now();
      const opened = await openSubscriptions(wsUrl, ids, tokens, opts.subscriptions);
      const openSeconds = (performance.now() - t0) / 1000;
      if (opened.snapshots !== opts.subscriptions)
        problems.push(`cycle ${c + 1}: ${opened.snapshots}/${opts.subscriptions} subscriptions started (${opened.errors[0] ?? ''})`);
      const open = await reading(service);
      if (open.subscriptions !== opts.subscriptions) problems.push(`cycle ${c + 1}: server counts ${open.subscriptions} open subscriptions`);
      const channelsOpen = await channels();
      if (!(await closeAll(service, opened.clients))) problems.push(`cycle ${c + 1}: subscriptions still open 15 s after closing`);
      const closed = await reading(service);
      const channelsClosed = await channels();
      cycles.push({ openSeconds, open, closed, channelsOpen, channelsClosed, errors: opened.errors.length });
    }
    const perSub = (r: MemoryReading, key: 'heapUsed' | 'rss') => (r[key] - baseline[key]) / opts.subscriptions;
    const heapPerSub = cycles.map((c) => perSub(c.open, 'heapUsed'));
    const rssPerSub = cycles.map((c) => perSub(c.open, 'rss'));
    const heapOpenDelta = cycles[0]!.open.heapUsed - baseline.heapUsed;
    const heapResidue = cycles.map((c) => c.closed.heapUsed - baseline.heapUsed);
    const lastResidue = heapResidue.at(-1)!;
    const growthPerCycle = cycles.length > 1 ? (cycles.at(-1)!.closed.heapUsed - cycles[0]!.closed.heapUsed) / (cycles.length - 1) : 0;
    // Back to baseline: what stays after closing is small next to what the subscriptions held, and it does not grow per cycle.
    const returns = lastResidue < Math.max(1024 * 1024, 0.1 * heapOpenDelta) && growthPerCycle < Math.max(512 * 1024, 0.02 * heapOpenDelta);
    if (!returns) problems.push(`heap did not return to baseline: +${mb(lastResidue)} after the last cycle, ${mb(growthPerCycle)} growth per cycle`);
    if (cycles.some((c) => c.channelsClosed !== baselineChannels))
      problems.push(`Redis channels after closing: ${cycles.map((c) => c.channelsClosed).join(', ')} (baseline ${baselineChannels})`);

    // Slow consumer.
    const slowName = 'memory-slow-room';
    const slowSession = await createSession(service.url, slowName, admin);
    const slowToken = await benchToken({ roomJoin: true, room: slowName }, 'slow-viewer');
    const control: number[] = [];
    let controlMessageBytes = 0;
    const controlClient = createWsClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${slowToken}` },
      retryAttempts: 0,
      lazy: true,
    });
    openClients.push(controlClient);
    controlClient.subscribe(
      { query: SUBSCRIPTION, variables: { id: slowSession.id } },
      {
        next: (msg) => {
          const change = (msg.data as { sessionStatusChanged?: Change }).sessionStatusChanged;
          if (change && change.eventType !== 'snapshot') control.push(change.version);
          controlMessageBytes = JSON.stringify({ id: 'x', type: 'next', payload: msg }).length;
        },
        error: () => {},
        complete: () => {},
      },
    );

    const slowReceived = new Map<string, number[]>();
    let acked = false;
    let closeCode: number | undefined;
    raw = new WebSocket(wsUrl, 'graphql-transport-ws');
    const socket = raw;
    socket.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as { type: string; id?: string; payload?: { data?: { sessionStatusChanged?: Change } } };
      if (msg.type === 'connection_ack') acked = true;
      else if (msg.type === 'next' && msg.id) slowReceived.get(msg.id)?.push(msg.payload?.data?.sessionStatusChanged?.version ?? -1);
    });
    socket.on('close', (code) => (closeCode = code));
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const connectedAt = performance.now();
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${slowToken}` } }));
    if (!(await waitFor(() => acked, 5_000))) throw new Error('slow consumer: no connection_ack');
    for (let i = 0; i < opts.slowSubscriptions; i++) {
      slowReceived.set(`s${i}`, []);
      socket.send(JSON.stringify({ id: `s${i}`, type: 'subscribe', payload: { query: SUBSCRIPTION, variables: { id: slowSession.id } } }));
    }
    const slowStarted = await waitFor(() => [...slowReceived.values()].every((v) => v.length === 1) && control.length === 0 && controlMessageBytes > 0, 10_000);
    if (!slowStarted) throw new Error('slow consumer: subscriptions did not start');
    const row = await withDatabase(ns.schema, async (db) => (await db.query<SessionRow>('select * from sessions where room_name = $1', [slowName])).rows[0]!);
    const messages = changeMessages(row, opts.slowChanges);
    const channel = channelName(ns.prefix, { sessionId: row.id });
    const finalVersion = row.version + opts.slowChanges;

    const beforeSlow = await reading(service);
    service.startProfile();
    socket.pause();
    const pausedAt = performance.now();
    let posting = true;
    let peak = { heapUsed: 0, external: 0, rss: 0 };
    const sampler = (async () => {
      for (let i = 0; posting && i < 300; i++) {
        await sleep(1000);
        const m = memoryOf(await readMetrics(service.url));
        peak = { heapUsed: Math.max(peak.heapUsed, m.heapUsed), external: Math.max(peak.external, m.external), rss: Math.max(peak.rss, m.rss) };
      }
    })();
    const postStarted = performance.now();
    let receivers = 0;
    for (let i = 0; i < messages.length; i++) {
      const ahead = postStarted + (i * 1000) / opts.slowRate - performance.now();
      if (ahead >= 1) await sleep(ahead);
      receivers = Math.max(receivers, await redis.publish(channel, messages[i]!));
    }
    const postSeconds = (performance.now() - postStarted) / 1000;
    const controlDone = await waitFor(() => control.at(-1) === finalVersion, 10_000);
    posting = false;
    await sampler;
    const pausedReading = await reading(service);
    const pausedSeconds = (performance.now() - pausedAt) / 1000;

    socket.resume();
    const drained = await waitFor(() => closeCode !== undefined || [...slowReceived.values()].every((v) => v.at(-1) === finalVersion), 15_000);
    // graphql-ws pings every 12 s and terminates a socket that has not answered the next 12 s: a client
    // that stops reading for ~24 s is cut off (the close only shows once the client reads again).
    const stillOpen = closeCode === undefined;
    const closeCodeAtCheck = closeCode;
    const openSeconds = (performance.now() - connectedAt) / 1000;
    const counts = [...slowReceived.values()].map((v) => v.length - 1);
    const endedOnLatest = [...slowReceived.values()].filter((v) => v.at(-1) === finalVersion).length;
    const inOrder = [...slowReceived.values()].every((v) => v.every((x, i) => i === 0 || x > v[i - 1]!));
    socket.close();
    await controlClient.dispose();
    openClients.length = 0;
    await waitFor(async () => (await readMetrics(service.url)).get('lkss_subscriptions_active') === 0, 15_000, 100);
    const afterSlow = await reading(service);

    const heldWhilePaused = pausedReading.heapUsed + pausedReading.external - beforeSlow.heapUsed - beforeSlow.external;
    const controlMissing = finalVersion - slowSession.version - new Set(control).size;
    const unbounded = opts.slowSubscriptions * opts.slowChanges * controlMessageBytes;
    if (receivers !== 1) problems.push(`slow consumer: ${receivers} Redis subscribers on the session channel (expected the one service process)`);
    // The reading subscriber must end on the latest version, each version at most once, in order. It may
    // skip versions: the sliding buffer also drops when more than 64 changes of one session reach the
    // process at once (see README), so skips are reported, not failed.
    if (!controlDone || new Set(control).size !== control.length || !control.every((v, i) => i === 0 || v > control[i - 1]!)) {
      problems.push(
        `slow consumer: the reading subscriber got ${control.length}/${opts.slowChanges} versions (${new Set(control).size} distinct), last ${control.at(-1)} of ${finalVersion}`,
      );
    }
    if (heldWhilePaused > Math.max(16 * 1024 * 1024, 0.1 * unbounded))
      problems.push(`slow consumer: heap + external grew ${mb(heldWhilePaused)} while the client was paused`);
    if (!stillOpen) {
      problems.push(
        `slow consumer: the server closed the stalled socket (code ${closeCodeAtCheck}) ${round(openSeconds, 1)} s after it opened, before the check (publishing took ${round(postSeconds, 1)} s)`,
      );
    } else if (!drained || endedOnLatest !== opts.slowSubscriptions) {
      problems.push(`slow consumer: ${endedOnLatest}/${opts.slowSubscriptions} stalled subscriptions ended on the latest version`);
    }
    if (!inOrder) problems.push('slow consumer: versions out of order after resuming');

    const rows: Array<[string, string | number]> = [
      ['baseline (after warm-up, GC)', `heap ${mb(baseline.heapUsed)}, RSS ${mb(baseline.rss)}, ${baselineChannels} Redis channels`],
      ...cycles.map((c, i): [string, string] => [
        `cycle ${i + 1}: ${opts.subscriptions} open / closed`,
        `heap ${mb(c.open.heapUsed)} / ${mb(c.closed.heapUsed)}, RSS ${mb(c.open.rss)} / ${mb(c.closed.rss)}, channels ${c.channelsOpen} / ${c.channelsClosed}, opened in ${round(c.openSeconds, 1)} s`,
      ]),
      ['per subscription (heap)', heapPerSub.map(kb).join(', ')],
      ['per subscription (RSS)', rssPerSub.map(kb).join(', ')],
      ['back to baseline', `${returns ? 'yes' : 'NO'}: heap residue ${heapResidue.map(mb).join(', ')}; growth per cycle ${kb(growthPerCycle)}`],
      [
        'slow consumer',
        `${opts.slowSubscriptions} subscriptions on one paused socket; ${opts.slowChanges} changes published in ${round(postSeconds, 1)} s (paused ${round(pausedSeconds, 1)} s)`,
      ],
      [
        '  heap+external before / paused / after',
        `${mb(beforeSlow.heapUsed + beforeSlow.external)} / ${mb(pausedReading.heapUsed + pausedReading.external)} / ${mb(afterSlow.heapUsed + afterSlow.external)} (after GC; held ${mb(heldWhilePaused)}, unbuffered it would be ~${mb(unbounded)})`,
      ],
      [
        '  RSS before / paused / after',
        `${mb(beforeSlow.rss)} / ${mb(pausedReading.rss)} / ${mb(afterSlow.rss)}; peak sampled heap ${mb(peak.heapUsed)} (garbage included), external ${mb(peak.external)}, RSS ${mb(peak.rss)}`,
      ],
      [
        '  stalled subscriptions',
        `${stillOpen ? 'socket stayed open' : `socket closed by the server (code ${closeCodeAtCheck}) within ${round(openSeconds, 1)} s of opening`}; received ${Math.min(...counts)}-${Math.max(...counts)} of ${opts.slowChanges} each; ${endedOnLatest}/${opts.slowSubscriptions} ended on the latest version`,
      ],
      [
        '  reading subscriber',
        `${control.length}/${opts.slowChanges} versions (${controlMissing} skipped), ${control.at(-1) === finalVersion ? 'ended on the latest' : `ended on ${control.at(-1)} of ${finalVersion}`}`,
      ],
    ];
    return {
      name: 'memory',
      ok: problems.length === 0,
      problems,
      rows,
      data: {
        options: {
          subscriptions: opts.subscriptions,
          cycles: opts.cycles,
          sessions: opts.sessions,
          slowSubscriptions: opts.slowSubscriptions,
          slowChanges: opts.slowChanges,
          slowRate: opts.slowRate,
        },
        baseline,
        cycles,
        bytesPerSubscription: { heap: heapPerSub.map((v) => Math.round(v)), rss: rssPerSub.map((v) => Math.round(v)) },
        returnsToBaseline: returns,
        heapResidueBytes: heapResidue,
        slowConsumer: {
          before: beforeSlow,
          paused: pausedReading,
          after: afterSlow,
          peak,
          heldWhilePausedBytes: heldWhilePaused,
          unboundedEstimateBytes: unbounded,
          publishSeconds: round(postSeconds, 2),
          socketStayedOpen: stillOpen,
          closeCode: closeCodeAtCheck ?? null,
          receivedPerSubscription: { min: Math.min(...counts), max: Math.max(...counts) },
          endedOnLatest,
          controlReceived: control.length,
          controlSkipped: controlMissing,
        },
      },
    };
  } catch (err) {
    throw withServiceLogs(err, service);
  } finally {
    raw?.terminate();
    await Promise.allSettled(openClients.map(async (c) => c.dispose()));
    redis.disconnect();
    await service.stop();
    await ns.drop();
  }
}
