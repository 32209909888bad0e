/**
 * Issue 12, Redis Cluster with sharded pub/sub: a real local cluster (3 masters + 3 replicas) that the test
 * starts, two service processes on it (REDIS_CLUSTER_NODES), subscribers over the official clients. Each
 * session's channel must live on the master owning its slot (`PUBSUB SHARDCHANNELS`); then the master owning a
 * watched session's slot is killed while webhooks keep coming, and everything must converge: every subscriber
 * on the database's latest version, every version exactly once, no webhook answered 200 lost.
 */
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { channelName, createRedisBus } from '../src/realtime/bus.js';
import { encodeChange, type SessionChange } from '../src/sessions/change.js';
import { availableBackends, dropSchema, uniqueName } from '../tools/kit/backends.js';
import { sseClient, wsClient } from '../tools/kit/clients.js';
import { attemptsHistogram, databaseProblems, waitForConvergence, FlippingRoom, percentile, RecordingWatch } from './support/failover.js';
import { adminToken, createSession } from '../tools/kit/graphql.js';
import { redisCommand, startRedisCluster, until, type RedisCluster, haveRedisBinaries } from './support/redis-servers.js';
import { sleep } from '../tools/kit/async.js';
import { startServiceProcess, type ServiceProcess } from '../tools/kit/service-process.js';
import { EMPTY_LIVE_STATE } from '../src/sessions/live-state.js';

const backends = await availableBackends();
const hasRedisBinaries = haveRedisBinaries('redis-server', 'redis-cli');

const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}`;
/** The uuid inside a Session global id: what the channel is named after. */
const uuidOf = (globalId: string) =>
  Buffer.from(globalId, 'base64')
    .toString('utf8')
    .replace(/^Session:/, '');

/** A change message as the service publishes it, for one version of a made-up session. */
function changeAt(sessionId: string, version: number): SessionChange {
  const now = new Date();
  return {
    session: {
      id: sessionId,
      seq: 1,
      room_name: `bus-${sessionId}`,
      title: null,
      status: version % 2 === 0 ? 'LIVE' : 'STOPPED',
      room_sid: null,
      room_created_ms: null,
      version,
      started_at: null,
      stopped_at: null,
      created_at: now,
      updated_at: now,
      live_state: EMPTY_LIVE_STATE,
    },
    previousStatus: null,
    eventType: 'room_started',
    changedAt: now,
  };
}

describe.skipIf(!backends.postgres || !hasRedisBinaries)('Redis Cluster with sharded pub/sub (3 masters + 3 replicas, two service processes)', () => {
  const schema = uniqueName('cluster');
  const prefix = `${schema}:`;
  let cluster: RedisCluster | undefined;
  let a: ServiceProcess | undefined;
  let b: ServiceProcess | undefined;
  let token: string;
  const disposers: Array<() => unknown> = [];

  beforeAll(async () => {
    const started = performance.now();
    cluster = await startRedisCluster();
    const env = { REDIS_URL: '', REDIS_CLUSTER_NODES: cluster.nodesEnv, LOG_LEVEL: 'warn' };
    a = await startServiceProcess({ schema, prefix, env, readyTimeoutMs: 90_000 });
    b = await startServiceProcess({ schema, prefix, env, readyTimeoutMs: 90_000 });
    token = await adminToken();
    console.info(`cluster of 6 and two service processes ready in ${Math.round(performance.now() - started)} ms`);
  }, 200_000);

  afterAll(async () => {
    for (const dispose of disposers) await dispose();
    await Promise.all([a?.stop(), b?.stop()]);
    await cluster?.close();
    await dropSchema(schema).catch(() => {});
  }, 60_000);

  const channelOf = (sessionId: string) => `${prefix}session:${uuidOf(sessionId)}`;
  const shardChannels = async (port: number) => ((await redisCommand(port, 'PUBSUB', 'SHARDCHANNELS', `${prefix}*`)) as string[] | null) ?? [];

  async function watchedRooms(count: number, label: string) {
    const rooms: Array<{ room: FlippingRoom; channel: string }> = [];
    for (let i = 0; i < count; i++) {
      const room = new FlippingRoom(unique(`${label}${i}`));
      rooms.push({ room, channel: channelOf((await createSession(a!.url, room.name, token)).id) });
    }
    const ws = wsClient(b!.url, token);
    const wsOnA = wsClient(a!.url, token);
    disposers.push(
      () => ws.dispose(),
      () => wsOnA.dispose(),
    );
    const watches: RecordingWatch[] = [];
    for (const { room } of rooms) {
      const sse = sseClient(b!.url, token);
      disposers.push(() => sse.dispose());
      watches.push(new RecordingWatch(ws, room.name, `ws@B ${room.name}`), new RecordingWatch(sse, room.name, `sse@B ${room.name}`));
      watches.push(new RecordingWatch(wsOnA, room.name, `ws@A ${room.name}`));
    }
    for (const w of watches) disposers.push(() => w.close());
    await until(() => watches.every((w) => w.seen.length >= 1), 60_000, 'every snapshot');
    return { rooms, watches };
  }

  it('the bus re-subscribes on the promoted replica and signals a reconnect after that, so catch-up covers whatever the dead shard lost', async () => {
    const busPrefix = `${prefix}bus:`;
    const bus = createRedisBus({ kind: 'cluster', nodes: cluster!.ports.map((port) => ({ host: '127.0.0.1', port })) }, busPrefix, createLogger('silent'));
    let raw: Redis | undefined;
    try {
      let sessionId = randomUUID();
      let victim = await cluster!.ownerOf(channelName(busPrefix, { sessionId }));
      while (!(await cluster!.hasLiveReplica(victim))) victim = await cluster!.ownerOf(channelName(busPrefix, { sessionId: (sessionId = randomUUID()) }));
      const channel = channelName(busPrefix, { sessionId });
      const received: number[] = [];
      await bus.subscribe({ sessionId }, (change) => received.push(change.session.version));
      let published = 0;
      const reconnects: Array<{ afterVersion: number; at: number }> = [];
      bus.onReconnect(() => reconnects.push({ afterVersion: published, at: performance.now() }));
      await bus.publish(changeAt(sessionId, ++published));
      await until(() => received.includes(1), 20_000, 'the first change through the cluster');
      const reconnectsBefore = reconnects.length;

      const killedAt = performance.now();
      await cluster!.kill(victim.port);
      let owner = victim;
      await until(
        async () => {
          owner = (await cluster!.ownerOf(channel).catch(() => null)) ?? victim;
          return owner.port !== victim.port;
        },
        30_000,
        'a promoted replica',
      );
      const promotedAt = performance.now();
      // Publish straight to the new owner from the moment it is promoted, before the bus may be listening there.
      raw = new Redis({ host: '127.0.0.1', port: owner.port, maxRetriesPerRequest: 1 });
      while (performance.now() - promotedAt < 4_000) {
        await raw.spublish(channel, encodeChange(changeAt(sessionId, published + 1)));
        published++;
        await sleep(10);
      }
      await until(() => received.includes(published), 30_000, 'the last change');
      const signalled = reconnects.slice(reconnectsBefore);
      const covered = Math.max(0, ...signalled.map((r) => r.afterVersion));
      const missed = Array.from({ length: published }, (_, i) => i + 1).filter((v) => !received.includes(v));
      console.info(
        `bus on cluster: replica promoted ${Math.round(promotedAt - killedAt)} ms after the kill; reconnect signalled ${signalled.map((r) => Math.round(r.at - promotedAt)).join(', ')} ms after the promotion; ` +
          `${missed.length} of ${published} changes published to the new owner from the moment of promotion were not delivered live (catch-up covers those published before the signal: ${missed.filter((v) => v <= Math.max(0, ...reconnects.map((r) => r.afterVersion))).length})`,
      );
      expect(signalled.length).toBeGreaterThan(0);
      // Whatever was not delivered live was published before a reconnect signal: the catch-up that follows covers it.
      expect(missed.filter((v) => v > covered)).toEqual([]);
      expect(received).toEqual([...new Set(received)]);
    } finally {
      raw?.disconnect();
      await bus.close();
    }
  }, 120_000);

  it('subscribers on B see webhooks taken by A; each session channel is on the master that owns its slot, spread over the shards', async () => {
    const { rooms, watches } = await watchedRooms(12, 'spread');
    for (const { room } of rooms) expect((await room.next(() => a!.url)).status).toBe(200);
    await until(() => watches.every((w) => w.last()?.version === 2), 30_000, 'LIVE on every subscriber');
    await sleep(300);
    for (const w of watches) {
      expect(w.seen.map((s) => `${s.status}@${s.version}`)).toEqual(['READY@1', 'LIVE@2']);
      expect(w.problems(true)).toEqual([]);
    }

    const masters = (await cluster!.nodes()).filter((n) => n.role === 'master' && n.slots.length > 0);
    const byMaster = new Map<number, string[]>();
    for (const m of masters) byMaster.set(m.port, await shardChannels(m.port));
    for (const { channel } of rooms) {
      const owner = await cluster!.ownerOf(channel);
      const carriers = [...byMaster].filter(([, channels]) => channels.includes(channel)).map(([port]) => port);
      expect(carriers, channel).toEqual([owner.port]);
    }
    const spread = [...byMaster].map(([port, channels]) => `${port}: ${channels.filter((c) => c.includes(':session:')).length}`);
    console.info(`session channels per master (PUBSUB SHARDCHANNELS): ${spread.join(', ')}`);
    expect([...byMaster.values()].filter((channels) => channels.some((c) => c.includes(':session:'))).length).toBeGreaterThan(1);
  }, 120_000);

  it("killing the master that owns a watched session's slot during a webhook burst: every subscriber converges, each version once, no 200 lost", async () => {
    const { rooms, watches } = await watchedRooms(24, 'kill');
    // A master that still has a replica (an earlier test may have killed one).
    let victim = await cluster!.ownerOf(rooms[0]!.channel);
    while (!(await cluster!.hasLiveReplica(victim))) {
      rooms.push(rooms.shift()!);
      victim = await cluster!.ownerOf(rooms[0]!.channel);
    }
    const onVictim = new Set<string>();
    for (const { room, channel } of rooms) if ((await cluster!.ownerOf(channel)).port === victim.port) onVictim.add(room.name);

    // Every room flips status every ~250 ms, alternating replicas, until 6 s after the kill; half the killed
    // shard's rooms get their last event just after the kill, so only the catch-up after re-subscribing can bring it.
    let sending = true;
    let killedAt = Infinity;
    const quiet = new Set([...onVictim].filter((_, i) => i % 2 === 0));
    const burst = Promise.all(
      rooms.map(async ({ room }, i) => {
        while (sending && !(quiet.has(room.name) && performance.now() > killedAt + 200)) {
          await room.next((attempt) => ((i + attempt + room.deliveries.length) % 2 === 0 ? a!.url : b!.url));
          await sleep(250);
        }
      }),
    );
    await sleep(2_000);
    killedAt = performance.now();
    await cluster!.kill(victim.port);

    const failoverMs = await until(
      async () => {
        const owner = await cluster!.ownerOf(rooms[0]!.channel).catch(() => null);
        return owner !== null && owner.port !== victim.port;
      },
      30_000,
      'a replica promoted for the killed shard',
    );
    const promoted = await cluster!.ownerOf(rooms[0]!.channel);
    expect(promoted.port).not.toBe(victim.port);
    await sleep(6_000);
    sending = false;
    await burst;
    const lastAnswer = performance.now();

    const converged = await waitForConvergence(watches, (name) => rooms.find((r) => r.room.name === name)!.room.expected().version, 60_000);
    await sleep(500); // nothing more may arrive

    // The pause subscribers of the killed shard saw: the longest gap between two arrivals around the kill.
    const pauses = watches
      .filter((w) => onVictim.has(w.roomName) && !quiet.has(w.roomName))
      .map((w) => {
        const times = w.seen.map((x) => x.at);
        let longest = 0;
        for (let i = 1; i < times.length; i++)
          if (times[i - 1]! <= killedAt + 1_000 && times[i]! >= killedAt) longest = Math.max(longest, times[i]! - times[i - 1]!);
        return longest;
      });
    const deliveries = watches.reduce((n, w) => n + w.seen.filter((s) => s.eventType !== 'snapshot').length, 0);
    const publishFailures = (a!.output() + b!.output()).split('publish failed; the outbox will retry').length - 1;
    const webhooks = rooms.reduce((n, r) => n + r.room.deliveries.length, 0);
    console.info(
      `cluster failover: killed master ${victim.port} (${onVictim.size}/${rooms.length} watched sessions on it, ${quiet.size} of them quiet after the kill); replica ${promoted.port} owns the slot after ${failoverMs} ms; ` +
        `subscribers of the killed shard paused for median ${Math.round(percentile(pauses, 50))} ms, max ${Math.round(Math.max(0, ...pauses))} ms (webhooks every ~250 ms per session); ` +
        `all ${watches.length} subscribers on the latest version ${converged} ms after the last webhook answer; ${webhooks} webhooks (attempts ${JSON.stringify(attemptsHistogram(rooms.map((r) => r.room)))}), ` +
        `${deliveries} changes delivered, ${publishFailures} fast-path publishes failed and went through the outbox`,
    );

    expect(
      await databaseProblems(
        schema,
        rooms.map((r) => r.room),
      ),
    ).toEqual([]);
    expect(watches.flatMap((w) => w.problems(true))).toEqual([]);
    // The service processes stayed up: no client had to reconnect.
    expect(watches.filter((w) => w.connection > 1).map((w) => w.label)).toEqual([]);
    for (const w of watches) expect(w.seen[0]!.eventType).toBe('snapshot');
    // The killed shard's subscriptions were re-established on the promoted replica.
    const carried = await shardChannels(promoted.port);
    for (const { room, channel } of rooms) if (onVictim.has(room.name)) expect(carried).toContain(channel);
    expect(lastAnswer - killedAt).toBeGreaterThan(0);
  }, 300_000);
});

describe('Redis topology configuration', () => {
  const problemsOf = (env: Record<string, string>) => {
    try {
      loadConfig({ NODE_ENV: 'test', ...env });
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.problems;
    }
  };

  it('parses cluster nodes and sentinels; REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS are mutually exclusive, with clear errors', () => {
    expect(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, [::1]:7001' }).redis.target).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '::1', port: 7001 },
      ],
    });
    expect(loadConfig({ REDIS_SENTINELS: 's1:26379,s2:26379', REDIS_SENTINEL_NAME: 'main' }).redis.target).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      name: 'main',
    });
    expect(loadConfig({ REDIS_URL: 'redis://r:6379' }).redis.target).toEqual({ kind: 'single', url: 'redis://r:6379' });
    expect(loadConfig({}).redis.target).toBeUndefined();

    expect(problemsOf({ REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: 'a:1' })).toEqual([
      'REDIS_URL, REDIS_CLUSTER_NODES: set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS',
    ]);
    expect(problemsOf({ REDIS_SENTINELS: 'a:1' })).toEqual(['REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the master name the Sentinels monitor)']);
    expect(problemsOf({ REDIS_SENTINEL_NAME: 'x' })).toEqual(['REDIS_SENTINEL_NAME: only meaningful with REDIS_SENTINELS']);
    expect(problemsOf({ REDIS_CLUSTER_NODES: 'a:1,nohost,b:99999' })).toEqual([
      'REDIS_CLUSTER_NODES: each entry must be "host:port" (got "nohost", "b:99999")',
    ]);
  });
});
