/**
 * Fan-out latency across replicas: process A takes the webhooks, process B serves the subscribers
 * (graphql-ws clients carrying many subscriptions each, plus SSE subscribers via graphql-sse), both on
 * one Postgres schema and one Redis prefix. Status webhooks go to A at a steady rate; every version is
 * timed from the moment its POST left to each subscriber's receipt, and every subscriber must get every
 * version exactly once, in order, after its snapshot.
 */
import { createClient as createSseClient, type Client as SseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import WebSocket from 'ws';
import { buildEvent, encodeEvent, newRoomInstance, signBody, type RoomInstance } from '../kit/livekit-emulator.js';
import { createSession } from '../kit/graphql.js';
import { mapLimit, waitFor } from '../kit/async.js';
import {
  adminBenchToken,
  BENCH_CREDENTIALS,
  benchToken,
  cpuBetween,
  cpuSnapshot,
  memoryOf,
  mb,
  ms,
  newNamespace,
  percentiles,
  readMetrics,
  round,
  startService,
  WEBHOOK_PATH,
  withServiceLogs,
  type BenchResult,
  type ServiceOptions,
} from './common.js';

export type FanoutBenchOptions = {
  durationS: number;
  /** Status webhooks per second posted to process A. */
  rate: number;
  /** Sessions watched (the webhooks cycle through them). */
  sessions: number;
  subscribers: number;
  /** How many of the subscribers use SSE (each its own connection); the rest share the WebSocket clients. */
  sseSubscribers: number;
  wsClients: number;
  service: ServiceOptions;
};

export const FANOUT_DEFAULTS: Omit<FanoutBenchOptions, 'service'> = {
  durationS: 15,
  rate: 40,
  sessions: 20,
  subscribers: 200,
  sseSubscribers: 20,
  wsClients: 4,
};

const SUBSCRIPTION = 'subscription Watch($id: ID!) { sessionStatusChanged(id: $id) { version status eventType } }';

type Change = { version: number; status: string; eventType: string };

type Subscriber = {
  kind: 'ws' | 'sse';
  session: number;
  snapshot?: number;
  versions: number[];
  latencies: number[];
  errors: string[];
  completed: boolean;
};

type Planned = { session: number; version: number; body: string; auth: string };

export async function runFanoutBench(opts: FanoutBenchOptions): Promise<BenchResult> {
  const problems: string[] = [];
  const ns = newNamespace('fan');
  const a = await startService(ns, opts.service);
  const b = await startService(ns, opts.service);
  const wsClients: WsClient[] = [];
  const sseClients: SseClient[] = [];
  const disposers: Array<() => void> = [];
  try {
    const admin = await adminBenchToken();
    const names = Array.from({ length: opts.sessions }, (_, i) => `fanout-room-${i}`);
    const sessions = await mapLimit(names, 8, (name) => createSession(a.url, name, admin));
    const listToken = await benchToken({ roomList: true }, 'fanout-ws');

    // Subscribers on B.
    const subscribers: Subscriber[] = [];
    const sentAt = new Map<string, number>();
    const onChange = (sub: Subscriber, change: Change) => {
      const now = performance.now();
      if (change.eventType === 'snapshot') {
        if (sub.snapshot !== undefined || sub.versions.length > 0) sub.errors.push(`snapshot after ${sub.versions.length} changes`);
        sub.snapshot = change.version;
        return;
      }
      if (sub.snapshot === undefined) sub.errors.push('change before snapshot');
      sub.versions.push(change.version);
      const sent = sentAt.get(key(sub.session, change.version));
      if (sent !== undefined) sub.latencies.push(now - sent);
      else sub.errors.push(`version ${change.version} never posted`);
    };
    const sink = (sub: Subscriber) => ({
      next: (msg: { data?: unknown; errors?: unknown }) => {
        const data = msg.data as { sessionStatusChanged?: Change } | undefined;
        if (data?.sessionStatusChanged) onChange(sub, data.sessionStatusChanged);
        else sub.errors.push(`unexpected message ${JSON.stringify(msg).slice(0, 200)}`);
      },
      error: (err: unknown) => sub.errors.push(`error ${err instanceof Error ? err.message : JSON.stringify(err).slice(0, 200)}`),
      complete: () => (sub.completed = true),
    });

    const wsUrl = b.url.replace(/^http/, 'ws') + '/graphql';
    for (let c = 0; c < opts.wsClients; c++) {
      wsClients.push(
        createWsClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${listToken}` }, retryAttempts: 0, lazy: true }),
      );
    }
    const wsCount = Math.max(0, opts.subscribers - opts.sseSubscribers);
    for (let i = 0; i < opts.subscribers; i++) {
      const sub: Subscriber = { kind: i < wsCount ? 'ws' : 'sse', session: i % opts.sessions, versions: [], latencies: [], errors: [], completed: false };
      subscribers.push(sub);
      const payload = { query: SUBSCRIPTION, variables: { id: sessions[sub.session]!.id } };
      if (sub.kind === 'ws') {
        disposers.push(wsClients[i % opts.wsClients]!.subscribe(payload, sink(sub)));
      } else {
        // A frontend's own token: roomJoin for its room only.
        const token = await benchToken({ roomJoin: true, room: names[sub.session]! }, `sse-${i}`);
        const client = createSseClient({ url: `${b.url}/graphql`, headers: { Authorization: `Bearer ${token}` }, retryAttempts: 0 });
        sseClients.push(client);
        disposers.push(client.subscribe(payload, sink(sub)));
      }
    }
    const subscribedAll = await waitFor(() => subscribers.every((s) => s.snapshot !== undefined || s.errors.length > 0), 20_000);
    if (!subscribedAll)
      throw new Error(`only ${subscribers.filter((s) => s.snapshot !== undefined).length}/${subscribers.length} subscribers got their snapshot`);
    const failedEarly = subscribers.filter((s) => s.errors.length > 0);
    if (failedEarly.length > 0) throw new Error(`${failedEarly.length} subscribers failed: ${failedEarly[0]!.errors[0]}`);

    // Pre-build and pre-sign the status webhooks: per session, alternately start a new room instance and finish it.
    const total = Math.round(opts.rate * opts.durationS);
    const state = sessions.map((s, i) => ({ name: names[i]!, version: s.version, live: false, instances: 0, room: undefined as RoomInstance | undefined }));
    const baseMs = Date.now() - 3_600_000;
    const planned: Planned[] = [];
    for (let i = 0; i < total; i++) {
      const s = state[i % opts.sessions]!;
      if (!s.live) s.room = newRoomInstance(s.name, baseMs + ++s.instances * 1000);
      const body = encodeEvent(buildEvent(s.live ? 'room_finished' : 'room_started', s.room!));
      s.live = !s.live;
      planned.push({ session: i % opts.sessions, version: ++s.version, body, auth: '' });
    }
    await Promise.all(planned.map(async (p) => (p.auth = await signBody(p.body, BENCH_CREDENTIALS))));
    const finalVersion = state.map((s) => s.version);

    // Post at a steady rate; a session's next webhook waits for its previous answer (LiveKit sends a room's events in order).
    const postLatencies: number[] = [];
    const postProblems: string[] = [];
    const inFlight = new Map<number, Promise<void>>();
    let late = 0;
    a.startProfile();
    b.startProfile();
    const cpuStart = cpuSnapshot([a.pid, b.pid, process.pid]);
    const started = performance.now();
    for (let i = 0; i < planned.length; i++) {
      const p = planned[i]!;
      const due = started + (i * 1000) / opts.rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else if (wait < -50) late++;
      await inFlight.get(p.session);
      const t0 = performance.now();
      sentAt.set(key(p.session, p.version), t0);
      inFlight.set(
        p.session,
        fetch(`${a.url}${WEBHOOK_PATH}`, { method: 'POST', headers: { 'Content-Type': 'application/webhook+json', Authorization: p.auth }, body: p.body })
          .then(async (res) => {
            const json = (await res.json()) as { results?: { action?: string } };
            postLatencies.push(performance.now() - t0);
            if (res.status !== 200 || json.results?.action !== 'status_updated') postProblems.push(`${res.status} ${JSON.stringify(json).slice(0, 200)}`);
          })
          .catch((err: Error) => void postProblems.push(err.message)),
      );
    }
    await Promise.all(inFlight.values());
    const sendSeconds = (performance.now() - started) / 1000;
    const delivered = await waitFor(() => subscribers.every((s) => s.versions.at(-1) === finalVersion[s.session]), 10_000);
    const cpuEnd = cpuSnapshot([a.pid, b.pid, process.pid]);
    const metricsEnd = await readMetrics(b.url);
    const cpu = cpuBetween(cpuStart, cpuEnd, { serviceA: a.pid, serviceB: b.pid, bench: process.pid, postgres: 'postgres', redis: 'redis-server' });

    // Every subscriber: snapshot, then snapshot+1 .. final, each exactly once, in order.
    let missing = 0;
    let duplicates = 0;
    let outOfOrder = 0;
    let badSubscribers = 0;
    for (const s of subscribers) {
      const seen = new Set<number>();
      let prev = s.snapshot ?? 0;
      for (const v of s.versions) {
        if (seen.has(v)) duplicates++;
        else if (v < prev) outOfOrder++;
        seen.add(v);
        prev = Math.max(prev, v);
      }
      for (let v = (s.snapshot ?? 0) + 1; v <= finalVersion[s.session]!; v++) if (!seen.has(v)) missing++;
      const expected = finalVersion[s.session]! - (s.snapshot ?? 0);
      if (s.errors.length > 0 || s.versions.length !== expected || s.completed) badSubscribers++;
    }
    if (postProblems.length > 0) problems.push(`${postProblems.length} webhooks not answered status_updated (first: ${postProblems[0]})`);
    if (!delivered) problems.push('not every subscriber reached its final version within 10 s of the last webhook');
    if (missing > 0) problems.push(`${missing} versions missed`);
    if (duplicates > 0) problems.push(`${duplicates} versions delivered twice`);
    if (outOfOrder > 0) problems.push(`${outOfOrder} versions out of order`);
    const withErrors = subscribers.filter((s) => s.errors.length > 0);
    if (withErrors.length > 0) problems.push(`${withErrors.length} subscribers saw errors (first: ${withErrors[0]!.errors[0]})`);
    if (late > planned.length / 20) problems.push(`${late} webhooks left more than 50 ms late: the sender could not hold the rate`);

    const all = percentiles(subscribers.flatMap((s) => s.latencies));
    const ws = percentiles(subscribers.filter((s) => s.kind === 'ws').flatMap((s) => s.latencies));
    const sse = percentiles(subscribers.filter((s) => s.kind === 'sse').flatMap((s) => s.latencies));
    const post = percentiles(postLatencies);
    const fmt = (p: ReturnType<typeof percentiles>) => `${ms(p.p50)} / ${ms(p.p99)} / ${ms(p.max)}  (n=${p.count})`;
    const memB = memoryOf(metricsEnd);
    const deliveries = subscribers.reduce((n, s) => n + s.versions.length, 0);
    const rows: Array<[string, string | number]> = [
      [
        'setup',
        `A takes webhooks, B serves ${opts.subscribers} subscribers (${wsCount} over ${opts.wsClients} graphql-ws sockets, ${opts.subscribers - wsCount} SSE) on ${opts.sessions} sessions`,
      ],
      [
        'webhooks',
        `${planned.length} status changes at ${opts.rate}/s over ${round(sendSeconds, 1)} s (${late} late); POST p50/p99/max ${ms(post.p50)} / ${ms(post.p99)} / ${ms(post.max)}`,
      ],
      [
        'deliveries',
        `${deliveries} (expected ${subscribers.reduce((n, s) => n + finalVersion[s.session]! - (s.snapshot ?? 0), 0)}), ${round(deliveries / sendSeconds, 0)}/s`,
      ],
      ['POST→receipt p50/p99/max', fmt(all)],
      ['  graphql-ws', fmt(ws)],
      ['  SSE', fmt(sse)],
      [
        'exactly once, in order',
        `${subscribers.length - badSubscribers}/${subscribers.length} subscribers (missing ${missing}, duplicates ${duplicates}, out of order ${outOfOrder})`,
      ],
      [
        'CPU (cores)',
        `A ${cpu.serviceA}, B ${cpu.serviceB}, bench ${cpu.bench}, postgres ${cpu.postgres}, redis ${cpu.redis}, other ${cpu.other}; machine ${cpu.machineBusyPct} % busy`,
      ],
      ['B memory', `RSS ${mb(memB.rss)}, heap used ${mb(memB.heapUsed)}; active subscriptions ${metricsEnd.get('lkss_subscriptions_active')}`],
      ['B event-loop lag p99', `${ms((metricsEnd.get('nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000)} (since start)`],
    ];
    return {
      name: 'fanout',
      ok: problems.length === 0,
      problems,
      rows,
      data: {
        options: {
          durationS: opts.durationS,
          rate: opts.rate,
          sessions: opts.sessions,
          subscribers: opts.subscribers,
          sseSubscribers: opts.subscribers - wsCount,
          wsClients: opts.wsClients,
        },
        changes: planned.length,
        deliveries,
        latencyMs: { all, ws, sse },
        postLatencyMs: post,
        verify: { missing, duplicates, outOfOrder, badSubscribers, late, postProblems: postProblems.length },
        cpuCores: cpu,
        memoryB: memB,
      },
    };
  } catch (err) {
    throw withServiceLogs(err, a, b);
  } finally {
    for (const d of disposers) d();
    for (const c of sseClients) c.dispose();
    await Promise.allSettled(wsClients.map(async (c) => c.dispose()));
    await Promise.allSettled([a.stop(), b.stop()]);
    await ns.drop();
  }
}

const key = (session: number, version: number) => `${session}:${version}`;
