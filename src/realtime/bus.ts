import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisNode, RedisTarget } from '../config.js';
import type { Logger } from '../logger.js';
import { decodeChange, encodeChange, originPrefix, type SessionChange } from '../sessions/change.js';

/** One session's changes, or every session's. */
export type Topic = { sessionId: string } | 'all';
export type Unsubscribe = () => void;

/**
 * Typed pub/sub of session changes between processes. Only the composition root knows whether
 * it is Redis or in-process.
 */
export interface ChangeBus {
  readonly description: string;
  /** Rejects when the broker cannot take it now (the outbox retries later). */
  publish(change: SessionChange): Promise<void>;
  /** Resolves once messages on the topic will be delivered (or after a bounded wait while the broker is down). */
  subscribe(topic: Topic, listener: (change: SessionChange) => void): Promise<Unsubscribe>;
  /** Called when the broker connection comes back: messages may have been lost meanwhile. */
  onReconnect(listener: () => void): Unsubscribe;
  /** Whether publishing can work right now. */
  isConnected(): boolean;
  close(): Promise<void>;
}

type Listener = (change: SessionChange) => void;

/** Reference-counted listeners per channel: the first listener subscribes, the last one leaving unsubscribes. */
class ChannelListeners {
  private readonly byChannel = new Map<string, Set<Listener>>();

  add(channel: string, listener: Listener): boolean {
    let set = this.byChannel.get(channel);
    const first = set === undefined;
    if (!set) this.byChannel.set(channel, (set = new Set()));
    set.add(listener);
    return first;
  }

  remove(channel: string, listener: Listener): boolean {
    const set = this.byChannel.get(channel);
    if (!set?.delete(listener) || set.size > 0) return false;
    this.byChannel.delete(channel);
    return true;
  }

  dispatch(channel: string, change: SessionChange, logger: Logger): void {
    for (const listener of this.byChannel.get(channel) ?? []) {
      try {
        listener(change);
      } catch (err) {
        logger.error({ err }, 'change listener failed');
      }
    }
  }

  /** Hands `change` to the listeners of these channels in a later microtask, as a broker would deliver it. */
  deliverLater(channels: readonly string[], change: SessionChange, logger: Logger): void {
    queueMicrotask(() => {
      for (const channel of channels) this.dispatch(channel, change, logger);
    });
  }

  channels(): string[] {
    return [...this.byChannel.keys()];
  }
}

export function channelName(prefix: string, topic: Topic): string {
  return topic === 'all' ? `${prefix}sessions` : `${prefix}session:${topic.sessionId}`;
}

/** Where a change goes: its session's channel and every session's. */
function changeChannels(prefix: string, change: SessionChange): string[] {
  return [channelName(prefix, { sessionId: change.session.id }), channelName(prefix, 'all')];
}

export function createLocalBus(logger: Logger): ChangeBus {
  const listeners = new ChannelListeners();
  return {
    description: 'in-process',
    publish(change) {
      listeners.deliverLater(changeChannels('', change), change, logger);
      return Promise.resolve();
    },
    subscribe(topic, listener) {
      const channel = channelName('', topic);
      listeners.add(channel, listener);
      return Promise.resolve(() => void listeners.remove(channel, listener));
    },
    onReconnect: () => () => {},
    isConnected: () => true,
    async close() {},
  };
}

const SUBSCRIBE_WAIT_MS = 1_000;

/** The raw broker under a Redis bus: one plain connection pair (single server or Sentinel), or a Cluster pair. */
type Broker = {
  description: string;
  publish(channels: readonly string[], message: string): Promise<void>;
  /** Resolves when the broker acknowledged every channel. */
  subscribe(channels: readonly string[]): Promise<unknown>;
  unsubscribe(channels: readonly string[]): Promise<unknown>;
  isConnected(): boolean;
  close(): Promise<void>;
};
type BrokerEvents = {
  message(channel: string, message: string): void;
  /** The subscriber side came back after a loss: subscriptions may have lapsed and messages may be lost. */
  resubscribeNeeded(): void;
};

/**
 * Redis pub/sub: a single server or a Sentinel-managed master (`SUBSCRIBE`/`PUBLISH`), or a Cluster with
 * sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`: each session's channel lives on the shard owning its slot).
 * One channel subscription per watched session per process, released when the last local listener leaves.
 * Publishing never queues while Redis is down (it fails fast and the outbox retries), and no Redis failure
 * escapes as an unhandled rejection.
 *
 * This process's own listeners get its changes at once, not by way of Redis (one round trip less between a
 * webhook's commit and the streams it wakes, and they get them during an outage too); its messages coming back
 * from Redis are known by their origin and dropped unread. Listeners already drop versions they have seen (the
 * outbox may publish a change twice), so a change reaching them both ways would do no harm either.
 */
export function createRedisBus(target: RedisTarget, prefix: string, logger: Logger): ChangeBus {
  const listeners = new ChannelListeners();
  const origin = randomBytes(8).toString('base64url');
  const ownMessage = originPrefix(origin);
  const reconnectListeners = new Set<() => void>();
  const acks = new Map<string, Promise<unknown>>();
  let closed = false;
  let resubscribing: Promise<void> | undefined;
  let resubscribeAgain = false;

  // Subscribe again (harmless where the client already re-sent it) and wait for the acknowledgement, so the
  // catch-up reads that follow cannot miss a change published in between. Coalesced: one pass at a time.
  const resubscribeAll = async (): Promise<void> => {
    do {
      resubscribeAgain = false;
      const channels = listeners.channels();
      if (channels.length > 0) {
        await withWait(broker.subscribe(channels), SUBSCRIBE_WAIT_MS * 5).catch((err: Error) => logger.warn({ err: err.message }, 'redis resubscribe failed'));
      }
      for (const listener of reconnectListeners) {
        try {
          listener();
        } catch (err) {
          logger.error({ err }, 'reconnect listener failed');
        }
      }
    } while (resubscribeAgain && !closed);
  };

  const events: BrokerEvents = {
    message(channel, message) {
      if (message.startsWith(ownMessage)) return;
      let change: SessionChange;
      try {
        change = decodeChange(message);
      } catch (err) {
        logger.warn({ err, channel }, 'ignored malformed change message');
        return;
      }
      listeners.dispatch(channel, change, logger);
    },
    resubscribeNeeded() {
      if (closed) return;
      if (resubscribing) {
        resubscribeAgain = true;
        return;
      }
      resubscribing = resubscribeAll().finally(() => (resubscribing = undefined));
    },
  };
  const broker = target.kind === 'cluster' ? openClusterBroker(target, logger, events) : openConnectionBroker(target, logger, events);
  const commands = batchedSubscriptions(broker, logger);

  return {
    description: broker.description,
    async publish(change) {
      const channels = changeChannels(prefix, change);
      listeners.deliverLater(channels, change, logger);
      await broker.publish(channels, encodeChange(change, origin));
    },
    async subscribe(topic, listener) {
      const channel = channelName(prefix, topic);
      if (listeners.add(channel, listener)) acks.set(channel, commands.subscribe(channel));
      // Wait for the broker's acknowledgement so a snapshot read afterwards cannot miss a change.
      await acks.get(channel);
      return () => {
        if (listeners.remove(channel, listener)) {
          acks.delete(channel);
          void commands.unsubscribe(channel);
        }
      };
    },
    onReconnect(listener) {
      reconnectListeners.add(listener);
      return () => void reconnectListeners.delete(listener);
    },
    isConnected: () => broker.isConnected(),
    async close() {
      closed = true;
      await broker.close();
    },
  };
}

/**
 * SUBSCRIBE and UNSUBSCRIBE of one turn of the event loop sent as one command each (in the order they were
 * asked for): 1,000 sessions watched or left at once cost a few commands, not 1,000 writes to the socket.
 * A subscription resolves when the broker acknowledged its batch (or after a bounded wait).
 */
function batchedSubscriptions(broker: Broker, logger: Logger) {
  type Run = { kind: 'subscribe' | 'unsubscribe'; channels: string[]; done: Promise<unknown>; settle: () => void };
  let runs: Run[] = [];
  const flush = () => {
    const batch = runs;
    runs = [];
    for (const run of batch) {
      const sent = run.kind === 'subscribe' ? broker.subscribe(run.channels) : broker.unsubscribe(run.channels);
      sent
        .catch((err: Error) =>
          logger[run.kind === 'subscribe' ? 'warn' : 'debug']({ err: err.message, channels: run.channels.length }, `redis ${run.kind} failed`),
        )
        .finally(run.settle);
    }
  };
  const add = (kind: Run['kind'], channel: string): Promise<unknown> => {
    if (runs.length === 0) setImmediate(flush);
    let run = runs.at(-1);
    if (run?.kind !== kind) {
      let settle!: () => void;
      const done = new Promise<void>((resolve) => (settle = resolve));
      run = { kind, channels: [], done: kind === 'subscribe' ? withWait(done, SUBSCRIBE_WAIT_MS) : done, settle };
      runs.push(run);
    }
    run.channels.push(channel);
    return run.done;
  };
  return { subscribe: (channel: string) => add('subscribe', channel), unsubscribe: (channel: string) => add('unsubscribe', channel) };
}

/** Resolves when `promise` settles or after `ms`, whichever is first (never rejects with a timeout). */
function withWait(promise: Promise<unknown>, ms: number): Promise<unknown> {
  return Promise.race([promise, new Promise((r) => setTimeout(r, ms).unref())]);
}

/** Logs a connection's first error and its recovery, not every retry in between. */
function logOutages(client: EventEmitter, name: string, logger: Logger, errorEvents = ['error']): void {
  let down = false;
  for (const event of errorEvents) {
    client.on(event, (err: Error) => {
      if (!down) logger.warn({ err: err?.message, connection: name }, 'redis connection error');
      down = true;
    });
  }
  client.on('ready', () => {
    if (down) logger.info({ connection: name }, 'redis connection restored');
    down = false;
  });
}

const retryStrategy = (n: number) => Math.min(100 * 2 ** n, 2_000);
const nodeList = (nodes: readonly RedisNode[]) => nodes.map((n) => `${n.host}:${n.port}`).join(',');

/** A publisher and a subscriber connection to one server, or to the master a set of Sentinels names. */
function openConnectionBroker(target: Exclude<RedisTarget, { kind: 'cluster' }>, logger: Logger, events: BrokerEvents): Broker {
  const common: RedisOptions = { lazyConnect: false, connectTimeout: 2_000, retryStrategy };
  const open = (options: RedisOptions) =>
    target.kind === 'single'
      ? new Redis(target.url, { ...common, ...options })
      : new Redis({
          ...common,
          ...options,
          sentinels: target.sentinels.map((n) => ({ ...n })),
          name: target.name,
          role: 'master',
          // Sentinel announces +switch-master: reconnect to the promoted replica at once, not on the next error.
          failoverDetector: true,
          sentinelRetryStrategy: retryStrategy,
        });
  const publisher = open({ enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName: 'lkss-pub' });
  const subscriber = open({ autoResubscribe: true, maxRetriesPerRequest: null, connectionName: 'lkss-sub' });
  logOutages(publisher, 'publisher', logger);
  logOutages(subscriber, 'subscriber', logger);
  // ioredis emits 'ready' before it re-sends its SUBSCRIBEs; the bus subscribes again and waits for the acknowledgement.
  // The first 'ready' too (as the Cluster's first 'subscribersReady'): Redis may have been down before it, with
  // subscriptions made and changes published meanwhile, which the catch-up then reads.
  subscriber.on('ready', () => events.resubscribeNeeded());
  subscriber.on('message', (channel: string, message: string) => events.message(channel, message));

  return {
    description: target.kind === 'single' ? `redis ${new URL(target.url).host}` : `redis sentinel "${target.name}" via ${nodeList(target.sentinels)}`,
    publish: coalescedPublish(publisher),
    subscribe: (channels) => subscriber.subscribe(...channels),
    unsubscribe: (channels) => subscriber.unsubscribe(...channels),
    isConnected: () => publisher.status === 'ready',
    close: () => closeClients(publisher, subscriber),
  };
}

type Publish = { channels: readonly string[]; message: string; done: (err?: Error) => void };

/**
 * PUBLISH through one pipeline per tick: the changes of one group commit (sessions/write-batch.ts) are answered
 * in the same tick and go to Redis in one write. Each change still learns whether its own commands failed.
 */
function coalescedPublish(publisher: Redis): Broker['publish'] {
  let queued: Publish[] = [];
  const flush = () => {
    const batch = queued;
    queued = [];
    const pipeline = publisher.pipeline();
    for (const p of batch) for (const channel of p.channels) pipeline.publish(channel, p.message);
    pipeline.exec().then(
      (results) => {
        let at = 0;
        for (const p of batch) {
          p.done(results?.slice(at, at + p.channels.length).find(([err]) => err)?.[0] ?? undefined);
          at += p.channels.length;
        }
      },
      (err: unknown) => {
        for (const p of batch) p.done(err instanceof Error ? err : new Error(String(err)));
      },
    );
  };
  return (channels, message) =>
    new Promise<void>((resolve, reject) => {
      if (queued.length === 0) process.nextTick(flush);
      queued.push({ channels, message, done: (err) => (err ? reject(err) : resolve()) });
    });
}

/**
 * Redis Cluster with sharded pub/sub. ioredis needs `shardedSubscribers: true` to deliver `smessage` (one
 * subscriber connection per master); after a master dies, `SPUBLISH` to its slots fails until the replica is
 * promoted and the slots refresh (the outbox retries), and the subscriber group reconnects to the new owner
 * and emits `subscribersReady`, upon which the bus re-subscribes and catches up.
 */
function openClusterBroker(target: Extract<RedisTarget, { kind: 'cluster' }>, logger: Logger, events: BrokerEvents): Broker {
  const nodes = target.nodes.map((n) => ({ ...n }));
  const redisOptions: RedisOptions = { connectTimeout: 2_000, maxRetriesPerRequest: 1 };
  const common: ClusterOptions = { lazyConnect: false, clusterRetryStrategy: retryStrategy, slotsRefreshTimeout: 2_000 };
  const publisher = new Cluster(nodes, { ...common, enableOfflineQueue: false, redisOptions: { ...redisOptions, connectionName: 'lkss-pub' } });
  const subscriber = new Cluster(nodes, { ...common, shardedSubscribers: true, redisOptions: { ...redisOptions, connectionName: 'lkss-sub' } });
  logOutages(publisher, 'cluster publisher', logger, ['error', 'node error']);
  logOutages(subscriber, 'cluster subscriber', logger, ['error', 'node error']);
  // Emitted after the initial connect and after every topology change or lost shard subscriber.
  subscriber.on('subscribersReady', () => events.resubscribeNeeded());
  subscriber.on('smessage', (channel: string, message: string) => events.message(channel, message));

  return {
    description: `redis cluster ${nodeList(target.nodes)} (sharded pub/sub)`,
    async publish(channels, message) {
      // Channels hash to different slots (and shards): one SPUBLISH each.
      await Promise.all(channels.map((channel) => publisher.spublish(channel, message)));
    },
    // One SSUBSCRIBE per channel: a command's channels must share a slot. ioredis keeps every channel it was
    // asked for (repeats included) until it is unsubscribed, and re-sends them to a shard's new owner.
    subscribe: (channels) => Promise.all(channels.map((channel) => subscriber.ssubscribe(channel))),
    unsubscribe: (channels) => Promise.all(channels.map((channel) => subscriber.sunsubscribe(channel))),
    isConnected: () => publisher.status === 'ready',
    close: () => closeClients(publisher, subscriber),
  };
}

/** Quits politely, then drops whatever did not answer (a dead server must not hold up shutdown). */
async function closeClients(...clients: (Redis | Cluster)[]): Promise<void> {
  await Promise.allSettled(clients.map((c) => c.quit()));
  for (const c of clients) c.disconnect();
}
