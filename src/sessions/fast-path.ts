import { LRUCache } from 'lru-cache';
import type { SessionChange } from './change.js';
import { writeSession, type SessionRead } from './repo.js';
import type { Db } from './tables.js';
import { batchingWriter, type SessionWriter } from './write-batch.js';

/**
 * What lets a webhook cost one statement, shared by one process's webhooks (sessions/ingest.ts):
 * - `cache`: the session rows it last read or wrote (no read before the write);
 * - `write`: group commit (sessions/write-batch.ts);
 * - `inTurn`: one room's webhooks are planned and written one after another, in arrival order. Written together,
 *   all but one would find the row changed and be planned again (a room's join storm at a meeting's start);
 *   one after another, each plans on the row the previous one wrote. Rooms still go at once.
 *
 * Replicas behind a load balancer each get some of a room's webhooks: a replica's cached row is then often
 * older than another replica's last write, and its write conflicts once (planned again on the row the statement
 * found). From the first conflict on, the process follows every session's published changes (`watchChanges`)
 * and caches the rows other replicas wrote, with their version, as they come. A process that is the only
 * writer never conflicts and never listens.
 */
export type FastPath = {
  cache: SessionCache;
  write: SessionWriter;
  inTurn: <T>(roomName: string, task: () => Promise<T>) => Promise<T>;
};

/**
 * The last version of each session row this process read or wrote, by room name, so a webhook can skip its
 * read. It is never trusted: every write checks that the row is still the version cached (`xmin`), so an entry
 * made stale by another replica, reconciliation or a GraphQL mutation costs one retry, never a lost change.
 */
export type SessionCache = {
  get(roomName: string): SessionRead | undefined;
  set(roomName: string, read: SessionRead): unknown;
  delete(roomName: string): unknown;
};

/** No cache (every webhook reads its row). */
const NO_SESSION_CACHE: SessionCache = { get: () => undefined, set: () => undefined, delete: () => undefined };

/** Session rows kept (each a few KiB at most; least recently used first out). */
const CACHE_ROOMS = 10_000;
/**
 * Group commit: write statements running at once, and webhooks one statement writes at most. Measured on 2 cores
 * (tools/bench): 1 in flight packs ~8 webhooks per statement but leaves Postgres idle while the service works; 4
 * packs ~2; 2 gave the best rate.
 */
const STATEMENTS_IN_FLIGHT = 2;
const WRITES_PER_STATEMENT = 32;

export function createFastPath(
  db: Db,
  opts: {
    /** Every session's published changes, from every process (resolves once they flow). */
    watchChanges?: (listener: (change: SessionChange) => void) => Promise<unknown>;
    onStatement?: (writes: number) => void;
    onConflict?: () => void;
  } = {},
): FastPath {
  const cache = new LRUCache<string, SessionRead>({ max: CACHE_ROOMS });
  const learn = (change: SessionChange) => {
    if (change.rowVersion === undefined) return;
    const cached = cache.get(change.session.room_name);
    if (cached && cached.row.version >= change.session.version) return;
    cache.set(change.session.room_name, { row: change.session, xmin: change.rowVersion });
  };
  let watching = false;
  const onConflict = () => {
    opts.onConflict?.();
    if (watching || !opts.watchChanges) return;
    watching = true;
    opts.watchChanges(learn).catch(() => {
      watching = false;
    });
  };
  return {
    cache,
    write: batchingWriter(db, { maxInFlight: STATEMENTS_IN_FLIGHT, maxBatch: WRITES_PER_STATEMENT, onStatement: opts.onStatement, onConflict }),
    inTurn: turnsByKey(),
  };
}

/** Every webhook reads its row and writes alone: one-off callers and tests of the plain path. */
export function plainPath(db: Db): FastPath {
  return { cache: NO_SESSION_CACHE, write: (write) => writeSession(db, write), inTurn: (_, task) => task() };
}

/** Tasks of one key run one after another, in the order they came; tasks of different keys at once. Idle keys hold nothing. */
function turnsByKey(): FastPath['inTurn'] {
  const tails = new Map<string, Promise<unknown>>();
  return (key, task) => {
    const previous = tails.get(key);
    const result = previous ? previous.then(task) : task();
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return result;
  };
}
