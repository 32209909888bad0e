import { Repeater, SlidingBuffer } from '@repeaterjs/repeater';
import { LRUCache } from 'lru-cache';
import type { Db } from '../db/connect.js';
import type { SessionRow } from '../db/types.js';
import type { Logger } from '../logger.js';
import { snapshotOf, type SessionChange } from '../sessions/change.js';
import { changesBetween, findById } from '../sessions/repo.js';
import type { ChangeBus } from './bus.js';

/**
 * A subscriber keeps at most this many undelivered events; past that the oldest are dropped (the latest
 * status wins). A session changes a few times in its life: only a stalled client, or a burst of more
 * changes than this reaching the process at once, skips versions.
 */
const BUFFER_SIZE = 64;

export type StreamDeps = { db: Db; bus: ChangeBus; logger: Logger };
/** A stream ends when any of these aborts (the client left, the server stops). */
export type EndSignals = readonly (AbortSignal | undefined)[];

/** Listens for the first abort; returns the function that removes the listeners (so nothing outlives the stream). */
function stopOnAbort(signals: EndSignals, stop: () => void): () => void {
  const onAbort = () => stop();
  for (const signal of signals) {
    if (signal?.aborted) stop();
    else signal?.addEventListener('abort', onAbort, { once: true });
  }
  return () => {
    for (const signal of signals) signal?.removeEventListener('abort', onAbort);
  };
}

/**
 * One session's changes: its current state first ("snapshot"), then every newer version in order.
 * The broker subscription is live before the snapshot is read, every event not newer than what was
 * sent is dropped, a version gap is filled from `session_changes`, and a broker reconnect re-reads
 * what was missed meanwhile.
 */
export function watchSession(deps: StreamDeps, session: SessionRow, endOn: EndSignals = []): AsyncIterableIterator<SessionChange> {
  const { db, bus, logger } = deps;
  return new Repeater<SessionChange>(async (push, stop) => {
    let lastVersion = 0;
    let openGate!: () => void;
    // Everything that reaches the subscriber goes through this chain, one at a time, in order.
    let chain: Promise<void> = new Promise<void>((resolve) => (openGate = resolve));
    const serially = (step: () => Promise<void>) => {
      chain = chain.then(step).catch((err: unknown) => {
        logger.warn({ err, sessionId: session.id }, 'session stream failed');
        stop(err);
      });
    };
    const emit = (change: SessionChange) => {
      lastVersion = change.session.version;
      void push(change).catch(() => {});
    };
    const catchUp = async (upto?: number) => {
      for (const missed of await changesBetween(db, session.id, lastVersion, upto)) emit(missed);
    };
    const deliver = async (change: SessionChange) => {
      const version = change.session.version;
      if (version <= lastVersion) return;
      if (version > lastVersion + 1) await catchUp(version - 1);
      emit(change);
    };

    const unsubscribe = await bus.subscribe({ sessionId: session.id }, (change) => serially(() => deliver(change)));
    const offReconnect = bus.onReconnect(() => serially(() => catchUp()));
    const stopListening = stopOnAbort(endOn, stop);
    try {
      const current = (await findById(db, session.id)) ?? session;
      emit(snapshotOf(current));
      openGate();
      await stop;
    } finally {
      stopListening();
      unsubscribe();
      offReconnect();
    }
  }, new SlidingBuffer(BUFFER_SIZE));
}

/**
 * How many sessions the all-sessions stream remembers a version of (to drop repeats and stale events).
 * Bounded: a long-lived stream would otherwise keep an entry for every session it ever saw. A session
 * idle long enough to be forgotten can at worst be delivered once more (a repeat of its latest version).
 */
export const ALL_SESSIONS_TRACKED = 10_000;

/** Every session's changes, newest version per session only, as they happen (no snapshot). */
export function watchAllSessions(deps: StreamDeps, endOn: EndSignals = [], tracked = ALL_SESSIONS_TRACKED): AsyncIterableIterator<SessionChange> {
  const { bus } = deps;
  return new Repeater<SessionChange>(
    async (push, stop) => {
      const lastVersions = new LRUCache<string, number>({ max: tracked });
      const unsubscribe = await bus.subscribe('all', (change) => {
        const last = lastVersions.get(change.session.id) ?? 0;
        if (change.session.version <= last) return;
        lastVersions.set(change.session.id, change.session.version);
        void push(change).catch(() => {});
      });
      const stopListening = stopOnAbort(endOn, stop);
      try {
        await stop;
      } finally {
        stopListening();
        unsubscribe();
      }
    },
    new SlidingBuffer(BUFFER_SIZE * 4),
  );
}
