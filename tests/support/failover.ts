/**
 * What the failover tests share: LiveKit's retrying webhook sender, sessions whose status flips with every
 * event, subscribers that record what they saw (across reconnects), and the convergence checks.
 */
import { performance } from 'node:perf_hooks';
import type { Client as SseClient } from 'graphql-sse';
import type { Client as WsClient } from 'graphql-ws';
import pg from 'pg';
import { buildEvent, encodeEvent, newRoomInstance, postWebhook, signBody, type RoomInstance } from '../../tools/kit/livekit-emulator.js';
import { TEST_DATABASE_URL } from '../../tools/kit/backends.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** LiveKit retries on 5xx, 429 and network errors, 5 attempts in all, backing off; any other answer is final. */
export const LIVEKIT_ATTEMPTS = 5;
const RETRY_DELAYS_MS = [500, 1_000, 2_000, 4_000];

export type Delivery = { eventId: string; type: string; status: number | 'network-error'; action?: string; attempts: number; answeredAt: number };

/** Sends one signed webhook (the same bytes and token on every attempt), choosing the target per attempt. */
export async function deliverLikeLiveKit(
  target: (attempt: number) => string,
  eventId: string,
  type: string,
  body: string,
  authorization: string,
): Promise<Delivery> {
  for (let attempt = 1; ; attempt++) {
    let status: number | 'network-error';
    let action: string | undefined;
    try {
      const res = await postWebhook(target(attempt), body, authorization);
      status = res.status;
      action = res.json?.results?.action;
    } catch {
      status = 'network-error';
    }
    const retryable = status === 'network-error' || status === 429 || status >= 500;
    if (!retryable || attempt >= LIVEKIT_ATTEMPTS) return { eventId, type, status, action, attempts: attempt, answeredAt: performance.now() };
    await sleep(RETRY_DELAYS_MS[attempt - 1]!);
  }
}

/**
 * A room whose session status flips with every event: started, finished, a newer instance started, …
 * (each one a status change, so the session's final version is 1 + the number of events).
 */
export class FlippingRoom {
  private instance: RoomInstance;
  private live = false;
  readonly deliveries: Delivery[] = [];

  constructor(readonly name: string) {
    this.instance = newRoomInstance(name, Date.now() - 60_000);
  }

  /** Sends the next event like LiveKit and records the outcome. */
  async next(target: (attempt: number) => string): Promise<Delivery> {
    if (this.live) {
      this.live = false;
      return this.send('room_finished', target);
    }
    // Each new instance is newer than the last, whatever the clock says.
    this.instance = newRoomInstance(this.name, this.instance.createdMs + 1_000);
    this.live = true;
    return this.send('room_started', target);
  }

  private async send(type: 'room_started' | 'room_finished', target: (attempt: number) => string): Promise<Delivery> {
    const event = buildEvent(type, this.instance);
    const body = encodeEvent(event);
    const delivery = await deliverLikeLiveKit(target, event.id, type, body, await signBody(body));
    this.deliveries.push(delivery);
    return delivery;
  }

  /** What the database must say once everything was delivered. */
  expected() {
    return { status: this.live ? 'LIVE' : 'STOPPED', version: 1 + this.deliveries.length };
  }
}

export const WATCH_QUERY = 'subscription($roomName: String) { sessionStatusChanged(roomName: $roomName) { status version eventType } }';
export type Seen = { status: string; version: number; eventType: string; at: number; connection: number };
type AnyClient = SseClient | WsClient;

/** One subscription through an official client; `connection` counts the (re)connections it went through. */
export class RecordingWatch {
  readonly seen: Seen[] = [];
  readonly errors: unknown[] = [];
  completed = false;
  connection = 1;
  private readonly dispose: () => void;

  constructor(
    client: AnyClient,
    readonly roomName: string,
    readonly label: string,
  ) {
    this.dispose = client.subscribe<{ sessionStatusChanged: { status: string; version: number; eventType: string } }>(
      { query: WATCH_QUERY, variables: { roomName } },
      {
        next: (r) => {
          if (r.errors || !r.data) return void this.errors.push(r.errors ?? r);
          const c = r.data.sessionStatusChanged;
          // A snapshot after the first one means the client reconnected and subscribed again.
          if (c.eventType === 'snapshot' && this.seen.length > 0) this.connection++;
          this.seen.push({ ...c, at: performance.now(), connection: this.connection });
        },
        error: (err) => this.errors.push(err),
        complete: () => (this.completed = true),
      },
    );
  }

  last(): Seen | undefined {
    return this.seen[this.seen.length - 1];
  }

  /**
   * Problems with what this subscriber saw: versions must never go back, and no change may arrive twice.
   * With `contiguous`, every change after a snapshot is the next version (no gaps within one connection).
   * Across a reconnect only the new snapshot may repeat (or jump past) the version the subscriber already had.
   */
  problems(contiguous: boolean): string[] {
    const out: string[] = [];
    const changes = new Set<number>();
    for (let i = 1; i < this.seen.length; i++) {
      const [prev, cur] = [this.seen[i - 1]!, this.seen[i]!];
      if (cur.version < prev.version) out.push(`${this.label}: version went back ${prev.version} → ${cur.version}`);
      if (cur.version === prev.version && cur.eventType !== 'snapshot') out.push(`${this.label}: version ${cur.version} delivered twice`);
      if (contiguous && cur.eventType !== 'snapshot' && cur.version !== prev.version + 1)
        out.push(`${this.label}: ${prev.version} → ${cur.version} (${cur.eventType})`);
    }
    for (const s of this.seen) {
      if (s.eventType === 'snapshot') continue;
      if (changes.has(s.version)) out.push(`${this.label}: change ${s.version} delivered twice`);
      changes.add(s.version);
    }
    if (this.errors.length > 0) out.push(`${this.label}: errors ${JSON.stringify(this.errors.map(String))}`);
    return out;
  }

  close() {
    this.dispose();
  }
}

/** Our own read of one schema in the real Postgres: what was (not) stored. */
export async function readSchema(schema: string) {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
  await client.connect();
  try {
    const sessions = await client.query<{ room_name: string; status: string; version: number }>('select room_name, status, version from sessions');
    const events = await client.query<{ id: string }>('select id from webhook_events');
    const unpublished = await client.query<{ n: string }>('select count(*) as n from session_changes where published_at is null');
    return {
      sessions: new Map(sessions.rows.map((r) => [r.room_name, { status: r.status, version: r.version }])),
      eventIds: new Set(events.rows.map((r) => r.id)),
      unpublished: Number(unpublished.rows[0]!.n),
    };
  } finally {
    await client.end();
  }
}

/** The database agrees with what LiveKit was told (200) and with what each room must have come to. */
export async function databaseProblems(schema: string, rooms: FlippingRoom[]): Promise<string[]> {
  const db = await readSchema(schema);
  const out: string[] = [];
  for (const room of rooms) {
    for (const d of room.deliveries) {
      if (d.status !== 200) out.push(`${room.name}: ${d.type} ${d.eventId} ended with ${d.status} after ${d.attempts} attempts`);
      else if (!db.eventIds.has(d.eventId)) out.push(`${room.name}: ${d.eventId} answered 200 but not stored`);
    }
    const row = db.sessions.get(room.name);
    const want = room.expected();
    if (row?.status !== want.status || row.version !== want.version)
      out.push(`${room.name}: database ${JSON.stringify(row)}, expected ${JSON.stringify(want)}`);
  }
  return out;
}

export const attemptsHistogram = (rooms: FlippingRoom[]) => {
  const histogram: Record<string, number> = {};
  for (const d of rooms.flatMap((r) => r.deliveries)) histogram[d.attempts] = (histogram[d.attempts] ?? 0) + 1;
  return histogram;
};

export const percentile = (values: number[], p: number) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};

/** Waits until every subscriber shows its room's expected version; on timeout, says who lags and where. */
export async function waitForConvergence(watches: RecordingWatch[], expectedVersion: (roomName: string) => number, timeoutMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    const lagging = watches.filter((w) => w.last()?.version !== expectedVersion(w.roomName));
    if (lagging.length === 0) return Math.round(performance.now() - started);
    if (performance.now() - started > timeoutMs) {
      const sample = lagging
        .slice(0, 5)
        .map(
          (w) =>
            `${w.label}: at ${w.last()?.version} (${w.last()?.eventType}, connection ${w.connection}, errors ${w.errors.length}), expected ${expectedVersion(w.roomName)}`,
        );
      throw new Error(`${lagging.length} of ${watches.length} subscribers not on the latest version after ${timeoutMs} ms, e.g. ${sample.join('; ')}`);
    }
    await sleep(50);
  }
}
