import type { SessionRead } from './repo.js';

/**
 * The last version of each session row this process read or wrote, by room name, so a webhook can skip its
 * read. It is never trusted: every write checks that the row is still the version cached (`xmin`), so an entry
 * made stale by another replica, reconciliation or a GraphQL mutation costs one retry, never a lost change.
 * Bounded: least recently used rooms go first.
 */
export type SessionCache = {
  get(roomName: string): SessionRead | undefined;
  set(roomName: string, read: SessionRead): void;
  delete(roomName: string): void;
};

export function createSessionCache(maxRooms: number): SessionCache {
  const entries = new Map<string, SessionRead>();
  return {
    get(roomName) {
      const read = entries.get(roomName);
      if (read) {
        entries.delete(roomName);
        entries.set(roomName, read);
      }
      return read;
    },
    set(roomName, read) {
      entries.delete(roomName);
      entries.set(roomName, read);
      if (entries.size > maxRooms) entries.delete(entries.keys().next().value!);
    },
    delete(roomName) {
      entries.delete(roomName);
    },
  };
}

/** No cache (every webhook reads its row): for one-off callers and tests of the uncached path. */
export const NO_SESSION_CACHE: SessionCache = { get: () => undefined, set: () => {}, delete: () => {} };
