import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import { decodeChange, encodeChange, type SessionChange } from '../sessions/change.js';

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

  channels(): string[] {
    return [...this.byChannel.keys()];
  }
}

export function channelName(prefix: string, topic: Topic): string {
  return topic === 'all' ? `${prefix}sessions` : `${prefix}session:${topic.sessionId}`;
}

export function createLocalBus(logger: Logger): ChangeBus {
  const listeners = new ChannelListeners();
  return {
    description: 'in-process',
    async publish(change) {
      // Delivered asynchronously, like a broker would.
      queueMicrotask(() => {
        listeners.dispatch(channelName('', { sessionId: change.session.id }), change, logger);
        listeners.dispatch(channelName('', 'all'), change, logger);
      });
    },
    async subscribe(topic, listener) {
      const channel = channelName('', topic);
      listeners.add(channel, listener);
      return () => void listeners.remove(channel, listener);
    },
    onReconnect: () => () => {},
    isConnected: () => true,
    async close() {},
  };
}

const SUBSCRIBE_WAIT_MS = 1_000;

/**
 * Redis pub/sub on two connections. One channel subscription per watched session per process,
 * released when the last local listener leaves. Publishing never queues while Redis is down
 * (it fails fast and the outbox retries), and no Redis failure escapes as an unhandled rejection.
 */
export function createRedisBus(url: string, prefix: string, logger: Logger): ChangeBus {
  const common = { lazyConnect: false, connectTimeout: 2_000, retryStrategy: (n: number) => Math.min(100 * 2 ** n, 2_000) };
  const publisher = new Redis(url, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName: 'lkss-pub' });
  const subscriber = new Redis(url, { ...common, autoResubscribe: true, maxRetriesPerRequest: null, connectionName: 'lkss-sub' });
  const listeners = new ChannelListeners();
  const reconnectListeners = new Set<() => void>();
  const acks = new Map<string, Promise<unknown>>();
  let subscriberWasReady = false;
  let closed = false;

  for (const [name, client] of [
    ['publisher', publisher],
    ['subscriber', subscriber],
  ] as const) {
    let down = false;
    client.on('error', (err) => {
      if (!down) logger.warn({ err: err.message, connection: name }, 'redis connection error');
      down = true;
    });
    client.on('ready', () => {
      if (down) logger.info({ connection: name }, 'redis connection restored');
      down = false;
    });
  }
  subscriber.on('ready', () => {
    if (subscriberWasReady && !closed) {
      // ioredis emits 'ready' before it re-sends its SUBSCRIBEs: subscribe again (harmless) and wait for the
      // acknowledgement, so the catch-up reads that follow cannot miss a change published in between.
      const channels = listeners.channels();
      const resubscribed = channels.length > 0 ? subscriber.subscribe(...channels) : Promise.resolve();
      void resubscribed
        .catch((err: Error) => logger.warn({ err: err.message }, 'redis resubscribe failed'))
        .then(() => {
          for (const listener of reconnectListeners) listener();
        });
    }
    subscriberWasReady = true;
  });
  subscriber.on('message', (channel: string, message: string) => {
    let change: SessionChange;
    try {
      change = decodeChange(message);
    } catch (err) {
      logger.warn({ err, channel }, 'ignored malformed change message');
      return;
    }
    listeners.dispatch(channel, change, logger);
  });

  return {
    description: `redis ${new URL(url).host}`,
    async publish(change) {
      const message = encodeChange(change);
      const results = await publisher
        .pipeline()
        .publish(channelName(prefix, { sessionId: change.session.id }), message)
        .publish(channelName(prefix, 'all'), message)
        .exec();
      const failed = results?.find(([err]) => err);
      if (failed) throw failed[0];
    },
    async subscribe(topic, listener) {
      const channel = channelName(prefix, topic);
      if (listeners.add(channel, listener)) {
        const ack = subscriber.subscribe(channel).catch((err: Error) => logger.warn({ err: err.message, channel }, 'redis subscribe failed'));
        acks.set(channel, Promise.race([ack, new Promise((r) => setTimeout(r, SUBSCRIBE_WAIT_MS).unref())]));
      }
      // Wait for the broker's acknowledgement so a snapshot read afterwards cannot miss a change.
      await acks.get(channel);
      return () => {
        if (listeners.remove(channel, listener)) {
          acks.delete(channel);
          subscriber.unsubscribe(channel).catch((err: Error) => logger.debug({ err: err.message, channel }, 'redis unsubscribe failed'));
        }
      };
    },
    onReconnect(listener) {
      reconnectListeners.add(listener);
      return () => void reconnectListeners.delete(listener);
    },
    isConnected: () => publisher.status === 'ready',
    async close() {
      closed = true;
      await Promise.allSettled([publisher.quit(), subscriber.quit()]);
      publisher.disconnect();
      subscriber.disconnect();
    },
  };
}
