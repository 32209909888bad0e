import type { SessionStatus } from './status.js';
import type { SessionChangeRow, SessionRow, SessionSnapshotJson } from './tables.js';

/** A session's status change as subscribers see it: the row as of `session.version`. */
export type SessionChange = {
  session: SessionRow;
  previousStatus: SessionStatus | null;
  /** What caused it: room_started, room_finished, reconcile, or "snapshot" for a subscription's first event. */
  eventType: string;
  changedAt: Date;
  /**
   * The row's version (`xmin`) right after the write, when the writer knows it (not for changes the outbox
   * publishes again): other processes put the row in their webhook cache with it (sessions/fast-path.ts).
   */
  rowVersion?: string;
};

const DATE_FIELDS = ['started_at', 'stopped_at', 'created_at', 'updated_at'] as const;

export function snapshotToJson(row: SessionRow): SessionSnapshotJson {
  return {
    ...row,
    started_at: row.started_at?.toISOString() ?? null,
    stopped_at: row.stopped_at?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export function snapshotFromJson(json: SessionSnapshotJson): SessionRow {
  const row = { ...json } as unknown as Record<string, unknown>;
  for (const f of DATE_FIELDS) row[f] = json[f] === null ? null : new Date(json[f]);
  return row as unknown as SessionRow;
}

export function changeFromRow(row: SessionChangeRow): SessionChange {
  const json = typeof row.session === 'string' ? (JSON.parse(row.session) as SessionSnapshotJson) : row.session;
  return {
    session: snapshotFromJson(json),
    previousStatus: row.previous_status,
    eventType: row.event_type,
    changedAt: row.changed_at,
  };
}

export function snapshotOf(session: SessionRow): SessionChange {
  return { session, previousStatus: null, eventType: 'snapshot', changedAt: session.updated_at };
}

/** The session's JSON as the change record stored it, kept so publishing does not serialise the row again. */
const storedSnapshots = new WeakMap<SessionChange, string>();

/** Remembers `snapshotJson` (JSON.stringify(snapshotToJson(change.session))) as the encoding of the change's session. */
export function withSnapshotJson(change: SessionChange, snapshotJson: string): SessionChange {
  storedSnapshots.set(change, snapshotJson);
  return change;
}

/**
 * Wire format between processes (Redis): small, self-contained, versioned by the row. `origin` names the publishing
 * process first thing in the text, so that process can know its own messages without parsing them (readers that
 * do not know the field ignore it).
 */
export function encodeChange(change: SessionChange, origin?: string): string {
  const session = storedSnapshots.get(change) ?? JSON.stringify(snapshotToJson(change.session));
  const rest = JSON.stringify({
    previousStatus: change.previousStatus,
    eventType: change.eventType,
    changedAt: change.changedAt.toISOString(),
    rowVersion: change.rowVersion,
  });
  return `${origin === undefined ? '{' : `${originPrefix(origin)},`}"session":${session},${rest.slice(1)}`;
}

/** How a message published with `origin` begins. */
export function originPrefix(origin: string): string {
  return `{"origin":${JSON.stringify(origin)}`;
}

export function decodeChange(text: string): SessionChange {
  const raw = JSON.parse(text) as {
    session: SessionSnapshotJson;
    previousStatus: SessionStatus | null;
    eventType: string;
    changedAt: string;
    rowVersion?: string;
  };
  const change: SessionChange = {
    session: snapshotFromJson(raw.session),
    previousStatus: raw.previousStatus,
    eventType: raw.eventType,
    changedAt: new Date(raw.changedAt),
  };
  if (typeof raw.rowVersion === 'string') change.rowVersion = raw.rowVersion;
  return change;
}
