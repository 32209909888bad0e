import type { Db } from '../db/connect.js';
import type { Logger } from '../logger.js';
import type { SessionChange } from '../sessions/change.js';
import { claimUnpublishedChanges, markChangesPublished } from '../sessions/repo.js';
import type { ChangeBus } from './bus.js';

export type ChangePublisher = {
  /** Publishes a committed change now; on failure the outbox drain publishes it later. Never throws. */
  publishCommitted(change: SessionChange, changeId: string): void;
  /** Publishes changes whose fast-path publish failed or was lost. Returns how many it published. */
  drain(): Promise<number>;
  start(): void;
  stop(): Promise<void>;
};

const MARK_FLUSH_MS = 100;
const DRAIN_BATCH = 200;
/** After a reconnect, how long the drain waits for the publisher's own connection: 20 × 250 ms. */
const RECONNECT_WAIT_STEPS = 20;
const RECONNECT_WAIT_STEP_MS = 250;

/**
 * Publish after commit. Every change is written to `session_changes` in the same transaction as the
 * status change; a change is marked published once the broker took it. Changes left unmarked (Redis
 * down, process died between commit and publish) are drained by any replica, one at a time per row.
 */
export function createChangePublisher(deps: {
  db: Db;
  bus: ChangeBus;
  logger: Logger;
  intervalMs: number;
  onPublished?: (n: number) => void;
}): ChangePublisher {
  const { db, bus, logger, intervalMs } = deps;
  let toMark: string[] = [];
  let markTimer: NodeJS.Timeout | undefined;
  let drainTimer: NodeJS.Timeout | undefined;
  let draining: Promise<number> | undefined;
  let offReconnect: (() => void) | undefined;
  let stopped = false;
  /** A fast-path publish failed since the last reconnect drain: this process has changes of its own to catch up. */
  let publishFailed = false;

  const flushMarks = async () => {
    markTimer = undefined;
    const ids = toMark;
    toMark = [];
    try {
      await markChangesPublished(db, ids);
    } catch (err) {
      // Unmarked changes are re-published by the drain: harmless, subscribers drop repeated versions.
      logger.warn({ err: (err as Error).message, count: ids.length }, 'could not mark changes published');
    }
  };

  const drainOnce = async (minAgeMs: number): Promise<number> => {
    if (!bus.isConnected()) return 0;
    return db.transaction().execute(async (trx) => {
      const claimed = await claimUnpublishedChanges(trx, minAgeMs, DRAIN_BATCH);
      const done: string[] = [];
      for (const { id, change } of claimed) {
        try {
          await bus.publish(change);
        } catch {
          break;
        }
        done.push(id);
      }
      await markChangesPublished(trx, done);
      if (done.length > 0) logger.info({ count: done.length }, 'outbox: published changes left unpublished');
      return done.length;
    });
  };

  // The timer's drain leaves the last two intervals alone (their fast-path publish may still be under way).
  const drain = (minAgeMs = intervalMs * 2) => {
    draining ??= drainOnce(minAgeMs)
      .catch((err: Error) => {
        logger.warn({ err: err.message }, 'outbox drain failed');
        return 0;
      })
      .finally(() => {
        draining = undefined;
      });
    return draining;
  };

  /**
   * Right after the link returns, whatever this process failed to publish during the outage goes out at once,
   * however young (a change also under way on the fast path is published twice: subscribers drop the repeated
   * version). The publisher's connection may come back a moment after the subscriber's that announced it. A
   * process that lost no publish leaves the young changes to their own writers (the first connect of every
   * process announces itself like a reconnect); the timer's drain still covers writers that died.
   */
  const drainAfterReconnect = async () => {
    if (!publishFailed) return;
    for (let i = 0; i < RECONNECT_WAIT_STEPS && !stopped; i++) {
      if (bus.isConnected()) {
        publishFailed = false;
        await draining;
        await drain(0);
        return;
      }
      await new Promise((r) => setTimeout(r, RECONNECT_WAIT_STEP_MS));
    }
  };

  return {
    publishCommitted(change, changeId) {
      bus.publish(change).then(
        () => {
          deps.onPublished?.(1);
          toMark.push(changeId);
          markTimer ??= setTimeout(flushMarks, MARK_FLUSH_MS);
        },
        (err: Error) => {
          publishFailed = true;
          logger.warn({ err: err.message, sessionId: change.session.id, version: change.session.version }, 'publish failed; the outbox will retry');
        },
      );
    },
    drain: () => drain(),
    start() {
      drainTimer = setInterval(() => void drain(), intervalMs);
      drainTimer.unref();
      offReconnect = bus.onReconnect(() => void drainAfterReconnect());
    },
    async stop() {
      stopped = true;
      clearInterval(drainTimer);
      offReconnect?.();
      // Marks still waiting for their timer are written now (none waiting: nothing to write).
      clearTimeout(markTimer);
      await flushMarks();
      await draining;
    },
  };
}
