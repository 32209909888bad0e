import type { Db } from '../db/connect.js';
import type { SessionRow } from '../db/types.js';
import type { Logger } from '../logger.js';
import { findByIdBatched } from '../sessions/batched-reads.js';
import { snapshotOf, type SessionChange } from '../sessions/change.js';
import { changesBetween } from '../sessions/repo.js';
import type { ChangeBus, Unsubscribe } from './bus.js';

export type FeedDeps = { db: Db; bus: ChangeBus; logger: Logger };
/** Which changes a subscriber is handed (the snapshot always goes first); versions it skips still count as seen. */
export type ChangeFilter = (change: SessionChange) => boolean;

/** One subscriber of a session's feed: handed its snapshot, then every newer version once, in order, synchronously. */
export type FeedSubscriber = {
  deliver(change: SessionChange): void;
  /** A read the feed needed failed: nothing more will be delivered (the subscriber should end). */
  fail(err: unknown): void;
};

type Member = {
  sub: FeedSubscriber;
  only: ChangeFilter | undefined;
  lastVersion: number;
  /** Changes that arrived while its snapshot was being read; null once the snapshot went out. */
  queue: SessionChange[] | null;
  /** The broker reconnected before its snapshot went out: re-read what it may have missed. */
  recheck: boolean;
};

/** The snapshot change of a row, one object per row (subscribers whose snapshots were read together share it). */
const snapshots = new WeakMap<SessionRow, SessionChange>();
function sharedSnapshot(row: SessionRow): SessionChange {
  let change = snapshots.get(row);
  if (!change) snapshots.set(row, (change = snapshotOf(row)));
  return change;
}

/**
 * Every subscriber of one session in this process, behind ONE broker subscription and one ordered chain of
 * work: a change is decoded once and handed to each subscriber (the same object, so what they send can be
 * encoded once), a version gap is filled with one read for all, and a broker reconnect re-reads once.
 *
 * A subscriber's snapshot is read (batched with other joiners' reads) only after the broker confirmed the
 * subscription, and changes arriving meanwhile wait in its queue, so nothing between the two is missed;
 * every event not newer than what it was handed is dropped.
 */
class SessionFeed {
  private readonly members = new Set<Member>();
  private chain: Promise<void> = Promise.resolve();
  private readonly ready: Promise<void>;
  private unsubscribe: Unsubscribe | undefined;
  private readonly offReconnect: Unsubscribe;
  private closed = false;

  constructor(
    private readonly sessionId: string,
    private readonly deps: FeedDeps,
    private readonly onClosed: (feed: SessionFeed) => void,
  ) {
    this.ready = deps.bus
      .subscribe({ sessionId }, (change) => this.serially(() => this.dispatch(change)))
      .then((unsubscribe) => {
        if (this.closed) unsubscribe();
        else this.unsubscribe = unsubscribe;
      });
    this.offReconnect = deps.bus.onReconnect(() => this.serially(() => this.catchUpAll()));
  }

  /** Adds a subscriber; its snapshot follows (or `fail`). Returns how it leaves. */
  join(sub: FeedSubscriber, fallback: SessionRow, only?: ChangeFilter): () => void {
    const member: Member = { sub, only, lastVersion: 0, queue: [], recheck: false };
    this.members.add(member);
    void this.ready
      .then(() => (this.members.has(member) ? findByIdBatched(this.deps.db, this.sessionId) : undefined))
      .then(
        (row) => this.serially(() => this.activate(member, row ?? fallback)),
        (err: unknown) => this.failMember(member, err),
      );
    return () => this.leave(member);
  }

  private leave(member: Member): void {
    if (!this.members.delete(member) || this.members.size > 0) return;
    this.closed = true;
    this.unsubscribe?.();
    this.offReconnect();
    this.onClosed(this);
  }

  private failMember(member: Member, err: unknown): void {
    if (!this.members.has(member)) return;
    this.deps.logger.warn({ err, sessionId: this.sessionId }, 'session stream failed');
    this.leave(member);
    member.sub.fail(err);
  }

  /** Every step that hands something to subscribers runs here, one at a time, in order. */
  private serially(step: () => Promise<void> | void): void {
    this.chain = this.chain.then(step).catch((err: unknown) => {
      // A read failed: every subscriber may now have a gap it cannot fill, so each ends (clients resubscribe).
      for (const member of [...this.members]) this.failMember(member, err);
    });
  }

  private async activate(member: Member, row: SessionRow): Promise<void> {
    if (!this.members.has(member)) return;
    const queued = member.queue ?? [];
    member.queue = null;
    // The snapshot goes first and past any filter.
    const snapshot = sharedSnapshot(row);
    member.lastVersion = snapshot.session.version;
    member.sub.deliver(snapshot);
    if (member.recheck) await this.fill([member]);
    for (const change of queued) await this.handInOrder([member], change);
  }

  private async dispatch(change: SessionChange): Promise<void> {
    const active: Member[] = [];
    for (const member of this.members) {
      if (member.queue) member.queue.push(change);
      else active.push(member);
    }
    await this.handInOrder(active, change);
  }

  private async catchUpAll(): Promise<void> {
    const active: Member[] = [];
    for (const member of this.members) {
      if (member.queue) member.recheck = true;
      else active.push(member);
    }
    await this.fill(active);
  }

  /** Hands `change` to these members, after one read of the versions before it that any of them lacks. */
  private async handInOrder(members: Member[], change: SessionChange): Promise<void> {
    const version = change.session.version;
    await this.fill(
      members.filter((m) => version > m.lastVersion + 1),
      version - 1,
    );
    for (const member of members) if (this.members.has(member)) this.handTo(member, change);
  }

  /** One read of what these members lack (up to `upto`), handed to each in order (none: no read). */
  private async fill(members: Member[], upto?: number): Promise<void> {
    if (members.length === 0) return;
    const from = Math.min(...members.map((m) => m.lastVersion));
    for (const change of await changesBetween(this.deps.db, this.sessionId, from, upto)) {
      for (const member of members) if (this.members.has(member)) this.handTo(member, change);
    }
  }

  private handTo(member: Member, change: SessionChange): void {
    if (change.session.version <= member.lastVersion) return;
    member.lastVersion = change.session.version;
    if (member.only && !member.only(change)) return;
    member.sub.deliver(change);
  }
}

const feedsByBus = new WeakMap<ChangeBus, Map<string, SessionFeed>>();

/**
 * Joins the feed of `session` (created on first use, one per session per bus, closed when its last
 * subscriber leaves). The subscriber gets the session's current state first, then every newer version.
 */
export function joinSessionFeed(deps: FeedDeps, session: SessionRow, sub: FeedSubscriber, only?: ChangeFilter): () => void {
  let feeds = feedsByBus.get(deps.bus);
  if (!feeds) feedsByBus.set(deps.bus, (feeds = new Map<string, SessionFeed>()));
  let feed = feeds.get(session.id);
  if (!feed) {
    const all = feeds;
    // A feed closes once, when its last subscriber leaves, and no other feed of the session exists before that.
    feed = new SessionFeed(session.id, deps, () => all.delete(session.id));
    feeds.set(session.id, feed);
  }
  return feed.join(sub, session, only);
}
