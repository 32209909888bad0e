import { LRUCache } from 'lru-cache';
import { findByIds, findByRoomNames } from './repo.js';
import type { Db, SessionRow } from './tables.js';

/** At most this many keys per read (one `IN (...)` list). */
const MAX_BATCH = 500;
/** Reads of one kind in flight at once; keys asked for meanwhile wait for the next read. */
const MAX_IN_FLIGHT = 2;

type Waiter = { resolve: (row: SessionRow | undefined) => void; reject: (err: unknown) => void };

/**
 * Point reads of sessions that many subscribers ask for at once, answered by one query per batch. A key's
 * read always STARTS after `load` was called (keys arriving while a read is in flight wait for the next),
 * so a caller that subscribed to a session's changes before calling `load` cannot miss a change between
 * the two. All callers of one key in one batch get the same row object.
 */
class BatchedReads {
  private pending = new Map<string, Waiter[]>();
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly readMany: (keys: string[]) => Promise<SessionRow[]>,
    private readonly keyOf: (row: SessionRow) => string,
  ) {}

  load(key: string): Promise<SessionRow | undefined> {
    return new Promise((resolve, reject) => {
      const waiters = this.pending.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= MAX_IN_FLIGHT || this.pending.size === 0) return;
    this.scheduled = true;
    // Let the callers of this turn of the event loop join the batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = new Map<string, Waiter[]>();
    for (const [key, waiters] of this.pending) {
      batch.set(key, waiters);
      this.pending.delete(key);
      if (batch.size >= MAX_BATCH) break;
    }
    this.inFlight++;
    try {
      const rows = await this.readMany([...batch.keys()]);
      const byKey = new Map(rows.map((row) => [this.keyOf(row), row]));
      for (const [key, waiters] of batch) for (const w of waiters) w.resolve(byKey.get(key));
    } catch (err) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(err);
    } finally {
      this.inFlight--;
      this.schedule();
    }
  }
}

type Readers = { byId: BatchedReads; byRoomName: BatchedReads; rooms: LRUCache<string, SessionRow> };
/** Rooms whose session is remembered (a session is never deleted and its room name never changes). */
const ROOMS_REMEMBERED = 10_000;
const readersByDb = new WeakMap<Db, Readers>();

function readersOf(db: Db): Readers {
  let readers = readersByDb.get(db);
  if (!readers) {
    readers = {
      byId: new BatchedReads(
        (ids) => findByIds(db, ids),
        (row) => row.id,
      ),
      byRoomName: new BatchedReads(
        (names) => findByRoomNames(db, names),
        (row) => row.room_name,
      ),
      rooms: new LRUCache({ max: ROOMS_REMEMBERED }),
    };
    readersByDb.set(db, readers);
  }
  return readers;
}

/** A session by id (a uuid: callers pass ids of rows they read), read together with concurrent callers'. */
export const findByIdBatched = (db: Db, id: string) => readersOf(db).byId.load(id);

/**
 * Which session a room has, for its identity only (id, room_name): the row may be an older read, so every
 * other column may be stale. Rooms with a session are remembered (sessions are never deleted and a session's
 * room never changes); the others are read each time (together with concurrent callers'), since a session
 * may be created for them at any moment.
 */
export async function findSessionOfRoom(db: Db, roomName: string): Promise<SessionRow | undefined> {
  const readers = readersOf(db);
  const known = readers.rooms.get(roomName);
  if (known) return known;
  const row = await readers.byRoomName.load(roomName);
  if (row) readers.rooms.set(roomName, row);
  return row;
}
