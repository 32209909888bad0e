/**
 * Issue 12, replicas that die: two service processes behind a local TCP load balancer, 1,000 subscribers
 * split over them through the official graphql-sse and graphql-ws clients with their retry on, and a burst of
 * webhooks sent like LiveKit (through the balancer, retried on 5xx, 429 and connection errors, 5 attempts).
 * (400 by default, KILL_TEST_ROOMS=50 for 1,000). One process is killed with SIGKILL mid-burst. Every subscriber must reconnect through the balancer and end on
 * the database's latest version, no change may arrive twice, and the database must end as if nothing happened.
 */
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { availableBackends, dropSchema, uniqueName } from '../tools/kit/backends.js';
import { startBalancer, type Balancer } from './support/balancer.js';
import { attemptsHistogram, databaseProblems, waitForConvergence, FlippingRoom, percentile, RecordingWatch } from './support/failover.js';
import { adminToken, createSession } from '../tools/kit/graphql.js';
import { until } from './support/redis-servers.js';
import { startServiceProcess, type ServiceProcess } from '../tools/kit/service-process.js';

const backends = await availableBackends();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}`;

// 20 sessions × 20 = 400 subscribers by default, to keep CI's time on a shared 2-core machine reasonable;
// KILL_TEST_ROOMS=50 runs the full 1,000 (passed here too, but took ~3.5 min under load).
const ROOMS = Number(process.env.KILL_TEST_ROOMS ?? 20);
const SUBSCRIBERS_PER_ROOM = 20; // half SSE, half WebSocket: 1,000 in all
const WS_SUBSCRIPTIONS_PER_SOCKET = 10;

describe.skipIf(!backends.postgres || !backends.redis)(
  `a replica killed (SIGKILL) behind a load balancer, ${ROOMS * SUBSCRIBERS_PER_ROOM} subscribers, webhooks bursting`,
  () => {
    const schema = uniqueName('kill');
    const prefix = `${schema}:`;
    let a: ServiceProcess | undefined;
    let b: ServiceProcess | undefined;
    let balancer: Balancer | undefined;
    const disposers: Array<() => unknown> = [];
    const alive = (p: ServiceProcess | undefined) => p !== undefined && p.child.exitCode === null && p.child.signalCode === null;

    beforeAll(async () => {
      a = await startServiceProcess({ schema, prefix, env: { LOG_LEVEL: 'warn' }, readyTimeoutMs: 90_000 });
      b = await startServiceProcess({ schema, prefix, env: { LOG_LEVEL: 'warn' }, readyTimeoutMs: 90_000 });
      balancer = await startBalancer(() => [a!, b!].filter(alive).map((p) => p.port));
    }, 200_000);

    afterAll(async () => {
      for (const dispose of disposers) await dispose();
      await balancer?.close();
      await Promise.all([a, b].filter(alive).map((p) => p!.stop()));
      await dropSchema(schema).catch(() => {});
    }, 60_000);

    it('every subscriber reconnects and ends on the latest version, each change at most once; every webhook ends stored, as if nothing happened', async () => {
      const url = balancer!.url;
      const token = await adminToken();
      const rooms: FlippingRoom[] = [];
      for (let i = 0; i < ROOMS; i++) {
        const room = new FlippingRoom(unique(`kill${i}`));
        await createSession(a!.url, room.name, token);
        rooms.push(room);
      }

      // The official clients as a frontend configures them, retries on (their default backoff), through the balancer.
      const watches: RecordingWatch[] = [];
      const wsClients = Array.from({ length: (ROOMS * SUBSCRIBERS_PER_ROOM) / 2 / WS_SUBSCRIPTIONS_PER_SOCKET }, () =>
        createWsClient({
          url: `${url.replace(/^http/, 'ws')}/graphql`,
          webSocketImpl: WebSocket,
          connectionParams: { authorization: `Bearer ${token}` },
          retryAttempts: 10,
          lazy: true,
        }),
      );
      for (const c of wsClients) disposers.push(() => c.dispose());
      let wsSubscriptions = 0;
      for (const [index, room] of rooms.entries()) {
        // Viewers arrive in waves of 100, not 1,000 in one instant (no client-side test artefact on 2 cores).
        if (index > 0 && index % 5 === 0) await until(() => watches.every((w) => w.seen.length >= 1 || w.errors.length > 0), 60_000, 'a wave of snapshots');
        for (let k = 0; k < SUBSCRIBERS_PER_ROOM / 2; k++) {
          const sse = createSseClient({ url: `${url}/graphql`, headers: { Authorization: `Bearer ${token}` }, retryAttempts: 10 });
          disposers.push(() => sse.dispose());
          watches.push(new RecordingWatch(sse, room.name, `sse ${room.name}#${k}`));
          const ws = wsClients[Math.floor(wsSubscriptions++ / WS_SUBSCRIPTIONS_PER_SOCKET)]!;
          watches.push(new RecordingWatch(ws, room.name, `ws ${room.name}#${k}`));
        }
      }
      for (const w of watches) disposers.push(() => w.close());
      expect(watches).toHaveLength(ROOMS * SUBSCRIBERS_PER_ROOM);
      const subscribedIn = await until(() => watches.every((w) => w.seen.length >= 1), 60_000, 'every snapshot').catch((err: Error) => {
        const waiting = watches.filter((w) => w.seen.length === 0);
        const describe = (e: any) => (e && typeof e === 'object' && 'code' in e ? `close ${e.code} ${e.reason}` : String(e?.message ?? e));
        const sample = waiting.slice(0, 3).map((w) => `${w.label} ${JSON.stringify(w.errors.map(describe))}`);
        throw new Error(
          `${err.message}: ${waiting.length} without a snapshot (${waiting.filter((w) => w.label.startsWith('sse')).length} SSE), e.g. ${sample.join('; ')}`,
        );
      });

      // Every room flips every ~500 ms through the balancer, until 6 s after the kill.
      let sending = true;
      const burst = Promise.all(
        rooms.map(async (room, i) => {
          await sleep((i * 500) / ROOMS);
          while (sending) {
            await room.next(() => url);
            await sleep(500);
          }
        }),
      );
      await sleep(2_500);
      const exited = once(b!.child, 'exit');
      const killedAt = performance.now();
      b!.child.kill('SIGKILL');
      await exited;
      await sleep(6_000);
      sending = false;
      await burst;
      const lastAnswer = performance.now();

      const converged = await waitForConvergence(watches, (name) => rooms.find((r) => r.name === name)!.expected().version, 60_000);
      await sleep(1_000); // nothing more may arrive

      // Reconnection time: from the kill to the snapshot of the new connection, for subscribers the kill cut off.
      const reconnected = watches.filter((w) => w.connection > 1);
      const reconnectMs = reconnected.map((w) => w.seen.find((s) => s.connection === 2)!.at - killedAt);
      const bySse = reconnected.filter((w) => w.label.startsWith('sse')).length;
      const webhooks = rooms.reduce((n, r) => n + r.deliveries.length, 0);
      const retried = rooms.flatMap((r) => r.deliveries).filter((d) => d.attempts > 1).length;
      const deliveries = watches.reduce((n, w) => n + w.seen.filter((s) => s.eventType !== 'snapshot').length, 0);
      const repeatedSnapshots = watches.reduce(
        (n, w) => n + w.seen.filter((s, i) => i > 0 && s.eventType === 'snapshot' && s.version === w.seen[i - 1]!.version).length,
        0,
      );
      console.info(
        `replica kill: ${watches.length} subscribers (${ROOMS} sessions; snapshots in ${subscribedIn} ms); ${reconnected.length} were on the killed process ` +
          `(${bySse} SSE, ${reconnected.length - bySse} WebSocket) and reconnected through the balancer in median ${Math.round(percentile(reconnectMs, 50))} ms, ` +
          `p95 ${Math.round(percentile(reconnectMs, 95))} ms, max ${Math.round(Math.max(0, ...reconnectMs))} ms after the kill; all on the latest version ${converged} ms after ` +
          `the last webhook answer; ${webhooks} webhooks, ${retried} retried like LiveKit (attempts ${JSON.stringify(attemptsHistogram(rooms))}); ${deliveries} changes delivered, ` +
          `${repeatedSnapshots} reconnect snapshots repeated the version the subscriber already had`,
      );

      expect(await databaseProblems(schema, rooms)).toEqual([]);
      expect(watches.flatMap((w) => w.problems(true))).toEqual([]);
      // The kill cut off a real share of the subscribers, and every one of them came back.
      expect(reconnected.length).toBeGreaterThan(watches.length / 5);
      expect(watches.filter((w) => w.completed).map((w) => w.label)).toEqual([]);
      expect(lastAnswer).toBeGreaterThan(killedAt);
    }, 300_000);
  },
);
