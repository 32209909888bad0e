import { writeSession, writeSessions, type ConditionalWrite, type SessionWrite } from './repo.js';
import type { Db } from './tables.js';

/** Applies one conditional session write (repo.ts `writeSession`'s contract). */
export type SessionWriter = (write: SessionWrite) => Promise<ConditionalWrite>;

type Pending = { write: SessionWrite; resolve: (result: ConditionalWrite) => void; reject: (err: unknown) => void };

/**
 * Group commit for the webhook path: while `maxInFlight` statements are running, further writes wait, and each
 * statement that ends sends what waited as one statement (`writeSessions`: one round trip and one commit for up
 * to `maxBatch` webhooks). Nothing waits on a timer: under light load every write goes alone at once, and the
 * batches grow only as fast as Postgres falls behind. Each caller is answered with its own write's result, after
 * the statement committed.
 *
 * A statement takes at most one write per session (the row is updated once per statement); a second write of the
 * same session (none come while a room's webhooks take turns, fast-path.ts) would wait for the next one. If
 * a batch fails as a whole (an event id taken by a concurrent copy, the database gone), each of its writes is
 * retried alone, so one write's failure is nobody else's.
 */
export function batchingWriter(
  db: Db,
  opts: {
    maxInFlight: number;
    maxBatch: number;
    /** Told each statement's number of writes. */
    onStatement?: (writes: number) => void;
    /** Told of each write that found its row changed since it was read (it is planned again). */
    onConflict?: () => void;
  },
): SessionWriter {
  const queue: Pending[] = [];
  let inFlight = 0;

  const runAlone = (p: Pending) => writeSession(db, p.write).then(p.resolve, p.reject);

  function takeBatch(): Pending[] {
    const batch: Pending[] = [];
    const sessions = new Set<string>();
    for (let i = 0; i < queue.length && batch.length < opts.maxBatch;) {
      const id = queue[i]!.write.next.id;
      if (sessions.has(id)) {
        i++;
        continue;
      }
      sessions.add(id);
      batch.push(queue.splice(i, 1)[0]!);
    }
    return batch;
  }

  async function send(batch: Pending[]): Promise<void> {
    opts.onStatement?.(batch.length);
    try {
      if (batch.length === 1) return await runAlone(batch[0]!);
      let results: ConditionalWrite[];
      try {
        results = await writeSessions(
          db,
          batch.map((p) => p.write),
        );
      } catch {
        await Promise.all(batch.map(runAlone));
        return;
      }
      batch.forEach((p, i) => p.resolve(results[i]!));
    } finally {
      inFlight--;
      pump();
    }
  }

  function pump(): void {
    while (inFlight < opts.maxInFlight && queue.length > 0) {
      inFlight++;
      void send(takeBatch());
    }
  }

  return (write) =>
    new Promise<ConditionalWrite>((resolve, reject) => {
      queue.push({
        write,
        resolve: (result) => {
          if (result.kind === 'conflict') opts.onConflict?.();
          resolve(result);
        },
        reject,
      });
      pump();
    });
}
