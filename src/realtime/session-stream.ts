import { Repeater, SlidingBuffer } from '@repeaterjs/repeater';
import { LRUCache } from 'lru-cache';
import type { Db } from '../db/connect.js';
import type { SessionRow } from '../db/types.js';
import type { Logger } from '../logger.js';
import type { SessionChange } from '../sessions/change.js';
import type { ChangeBus } from './bus.js';
import type { EndAll } from './end-all.js';
import { joinSessionFeed, type ChangeFilter } from './session-feed.js';

export type { ChangeFilter } from './session-feed.js';

/**
 * A subscriber keeps at most this many undelivered events; past that the oldest are dropped (the latest
 * status wins). A session changes a few times in its life: only a stalled client, or a burst of more
 * changes than this reaching the process at once, skips versions.
 */
export const BUFFER_SIZE = 64;

export type StreamDeps = { db: Db; bus: ChangeBus; logger: Logger };
/** Only status changes: participant, track, egress and ingress changes keep the status (previous = current). */
export const statusChangesOnly: ChangeFilter = (change) => change.previousStatus !== change.session.status;
/**
 * A stream ends when any of these ends (the server stops). A client that leaves ends it through its transport:
 * yoga (SSE) and graphql-ws (WebSocket) call the iterator's return(), also for a subscription completed before
 * its iterator was ready; the direct SSE route leaves the session's feed itself.
 */
export type EndSignals = readonly EndAll[];

/** Listens for the first end; returns the function that removes the listeners (so nothing outlives the stream). */
function stopOnEnd(signals: EndSignals, stop: () => void): () => void {
  const removers = signals.map((signal) => signal.add(() => stop()));
  return () => {
    for (const remove of removers) remove();
  };
}

/**
 * One session's changes: its current state first ("snapshot"), then every newer version in order (see
 * session-feed.ts: one broker subscription per session per process, the snapshot read after it is live,
 * gaps filled from `session_changes`, a broker reconnect re-read).
 *
 * Lazy: nothing happens until it is iterated. A transport that writes events itself (the SSE route) joins
 * the session's feed directly with `deps`, `session` and `only`, without an iterator or a buffer per stream.
 */
export class SessionWatch implements AsyncIterable<SessionChange> {
  constructor(
    readonly deps: StreamDeps,
    readonly session: SessionRow,
    readonly endOn: EndSignals = [],
    readonly only?: ChangeFilter,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<SessionChange> {
    const { deps, session, endOn, only } = this;
    return new Repeater<SessionChange>(async (push, stop) => {
      const leave = joinSessionFeed(deps, session, { deliver: (change) => void push(change).catch(() => {}), fail: (err) => stop(err) }, only);
      const stopListening = stopOnEnd(endOn, stop);
      try {
        await stop;
      } finally {
        stopListening();
        leave();
      }
    }, new SlidingBuffer(BUFFER_SIZE));
  }
}

export function watchSession(deps: StreamDeps, session: SessionRow, endOn: EndSignals = [], only?: ChangeFilter): SessionWatch {
  return new SessionWatch(deps, session, endOn, only);
}

/**
 * How many sessions the all-sessions stream remembers a version of (to drop repeats and stale events).
 * Bounded: a long-lived stream would otherwise keep an entry for every session it ever saw. A session
 * idle long enough to be forgotten can at worst be delivered once more (a repeat of its latest version).
 */
export const ALL_SESSIONS_TRACKED = 10_000;

/** Every session's changes, newest version per session only, as they happen (no snapshot). */
export function watchAllSessions(
  deps: StreamDeps,
  endOn: EndSignals = [],
  tracked = ALL_SESSIONS_TRACKED,
  only?: ChangeFilter,
): AsyncIterableIterator<SessionChange> {
  const { bus } = deps;
  return new Repeater<SessionChange>(
    async (push, stop) => {
      const lastVersions = new LRUCache<string, number>({ max: tracked });
      const unsubscribe = await bus.subscribe('all', (change) => {
        const last = lastVersions.get(change.session.id) ?? 0;
        if (change.session.version <= last) return;
        lastVersions.set(change.session.id, change.session.version);
        if (only && !only(change)) return;
        void push(change).catch(() => {});
      });
      const stopListening = stopOnEnd(endOn, stop);
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
