/**
 * Issue 12, Redis Sentinel: one master, one replica and three Sentinels started by the test; two service
 * processes configured with REDIS_SENTINELS / REDIS_SENTINEL_NAME; the master is killed (SIGKILL) during a
 * webhook burst. The Sentinels promote the replica, both processes follow it, and everything converges: every
 * subscriber on the database's latest version, each version exactly once, no webhook answered 200 lost.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends, dropSchema, uniqueName } from '../tools/kit/backends.js';
import { sseClient, wsClient } from '../tools/kit/clients.js';
import { attemptsHistogram, databaseProblems, waitForConvergence, FlippingRoom, percentile, RecordingWatch } from './support/failover.js';
import { adminToken, createSession } from '../tools/kit/graphql.js';
import { startRedisSentinel, until, type RedisSentinelSetup, haveRedisBinaries } from './support/redis-servers.js';
import { sleep } from '../tools/kit/async.js';
import { startServiceProcess, type ServiceProcess } from '../tools/kit/service-process.js';

const backends = await availableBackends();
const hasRedisServer = haveRedisBinaries('redis-server');

const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}`;

describe.skipIf(!backends.postgres || !hasRedisServer)('Redis Sentinel (master + replica + 3 sentinels, two service processes)', () => {
  const schema = uniqueName('sentinel');
  const prefix = `${schema}:`;
  let sentinel: RedisSentinelSetup | undefined;
  let a: ServiceProcess | undefined;
  let b: ServiceProcess | undefined;
  const disposers: Array<() => unknown> = [];

  beforeAll(async () => {
    const started = performance.now();
    sentinel = await startRedisSentinel();
    const env = { REDIS_URL: '', REDIS_SENTINELS: sentinel.sentinelsEnv, REDIS_SENTINEL_NAME: sentinel.masterName, LOG_LEVEL: 'warn' };
    a = await startServiceProcess({ schema, prefix, env, readyTimeoutMs: 90_000 });
    b = await startServiceProcess({ schema, prefix, env, readyTimeoutMs: 90_000 });
    console.info(`master, replica, 3 sentinels and two service processes ready in ${Math.round(performance.now() - started)} ms`);
  }, 200_000);

  afterAll(async () => {
    for (const dispose of disposers) await dispose();
    await Promise.all([a?.stop(), b?.stop()]);
    await sentinel?.close();
    await dropSchema(schema).catch(() => {});
  }, 60_000);

  it('killing the master during a webhook burst: both replicas follow the promoted one, every subscriber converges, each version once, no 200 lost', async () => {
    const token = await adminToken();
    const rooms: FlippingRoom[] = [];
    for (let i = 0; i < 16; i++) {
      const room = new FlippingRoom(unique(`sent${i}`));
      await createSession(a!.url, room.name, token);
      rooms.push(room);
    }
    const wsOnB = wsClient(b!.url, token);
    const wsOnA = wsClient(a!.url, token);
    disposers.push(
      () => wsOnB.dispose(),
      () => wsOnA.dispose(),
    );
    const watches: RecordingWatch[] = [];
    for (const room of rooms) {
      const sse = sseClient(b!.url, token);
      disposers.push(() => sse.dispose());
      watches.push(new RecordingWatch(wsOnB, room.name, `ws@B ${room.name}`), new RecordingWatch(sse, room.name, `sse@B ${room.name}`));
      watches.push(new RecordingWatch(wsOnA, room.name, `ws@A ${room.name}`));
    }
    for (const w of watches) disposers.push(() => w.close());
    await until(() => watches.every((w) => w.seen.length >= 1), 60_000, 'every snapshot');

    // Subscribers on B see webhooks taken by A, through the Sentinel-named master.
    for (const room of rooms) expect((await room.next(() => a!.url)).status).toBe(200);
    await until(() => watches.every((w) => w.last()?.version === 2), 30_000, 'LIVE on every subscriber');

    // Every room flips every ~250 ms, alternating replicas; a quarter of them get their last event just after the kill.
    let sending = true;
    let killedAt = Infinity;
    const quiet = new Set(rooms.filter((_, i) => i % 4 === 0).map((r) => r.name));
    const burst = Promise.all(
      rooms.map(async (room, i) => {
        while (sending && !(quiet.has(room.name) && performance.now() > killedAt + 200)) {
          await room.next((attempt) => ((i + attempt + room.deliveries.length) % 2 === 0 ? a!.url : b!.url));
          await sleep(250);
        }
      }),
    );
    await sleep(2_000);
    killedAt = performance.now();
    await sentinel!.killMaster();
    const failoverMs = await until(async () => (await sentinel!.masterPort()) === sentinel!.replicaPort, 30_000, 'the Sentinels to promote the replica');
    await sleep(6_000);
    sending = false;
    await burst;

    const converged = await waitForConvergence(watches, (name) => rooms.find((r) => r.name === name)!.expected().version, 60_000);
    await sleep(500); // nothing more may arrive

    const pauses = watches
      .filter((w) => !quiet.has(w.roomName))
      .map((w) => {
        const times = w.seen.map((x) => x.at);
        let longest = 0;
        for (let i = 1; i < times.length; i++)
          if (times[i - 1]! <= killedAt + 1_000 && times[i]! >= killedAt) longest = Math.max(longest, times[i]! - times[i - 1]!);
        return longest;
      });
    const output = a!.output() + b!.output();
    const publishFailures = output.split('publish failed; the outbox will retry').length - 1;
    const webhooks = rooms.reduce((n, r) => n + r.deliveries.length, 0);
    const deliveries = watches.reduce((n, w) => n + w.seen.filter((s) => s.eventType !== 'snapshot').length, 0);
    console.info(
      `sentinel failover: master killed, replica ${sentinel!.replicaPort} named master after ${failoverMs} ms; ` +
        `subscribers paused for median ${Math.round(percentile(pauses, 50))} ms, max ${Math.round(Math.max(0, ...pauses))} ms (webhooks every ~250 ms per session); ` +
        `all ${watches.length} subscribers on the latest version ${converged} ms after the last webhook answer; ${webhooks} webhooks (attempts ${JSON.stringify(attemptsHistogram(rooms))}), ` +
        `${deliveries} changes delivered; ${publishFailures} fast-path publishes failed (the outbox and the reconnect catch-up covered them)`,
    );

    expect(await databaseProblems(schema, rooms)).toEqual([]);
    expect(watches.flatMap((w) => w.problems(true))).toEqual([]);
    // The service processes stayed up: no client had to reconnect.
    expect(watches.filter((w) => w.connection > 1).map((w) => w.label)).toEqual([]);
  }, 300_000);
});
