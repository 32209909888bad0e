/**
 * The cost of a participant event next to a status event (issue 10): the service as its own process in production
 * mode on the real Postgres and Redis, the same number of pre-signed webhooks of each kind sent over HTTP with the
 * same concurrency, each a visible change (a status change; a participant joining or leaving a room that already
 * holds `PRESENT` people, so the live-state document has a realistic size). Reports latency percentiles and the
 * service's CPU per event.
 *
 *   npx tsx tools/bench/live-events.ts [--rooms 20] [--per-room 40] [--present 25] [--concurrency 8]
 */
import { mapLimit } from '../kit/async.js';
import { buildEvent, encodeEvent, newRoomInstance, postWebhook, signBody, type RoomInstance } from '../kit/livekit-emulator.js';
import {
  BENCH_CREDENTIALS,
  cpuBetween,
  cpuSnapshot,
  ms,
  newNamespace,
  percentiles,
  round,
  startService,
  type BenchResult,
  type ServiceOptions,
} from './common.js';

export type LiveEventsOptions = { rooms: number; perRoom: number; present: number; concurrency: number; service: ServiceOptions };
export const LIVE_EVENTS_DEFAULTS = { rooms: 20, perRoom: 40, present: 25, concurrency: 8 };

type Signed = { body: string; auth: string };
const sign = async (type: string, room: RoomInstance, opts: Parameters<typeof buildEvent>[2] = {}): Promise<Signed> => {
  const body = encodeEvent(buildEvent(type, room, opts));
  return { body, auth: await signBody(body, BENCH_CREDENTIALS) };
};

export async function runLiveEventsBench(opts: LiveEventsOptions): Promise<BenchResult> {
  const { rooms: ROOMS, perRoom: PER_ROOM, present: PRESENT, concurrency: CONCURRENCY } = opts;
  const ns = newNamespace('live');
  const service = await startService(ns, { ...opts.service, env: { ...opts.service.env, SESSION_AUTO_CREATE: 'true' } });
  try {
    return await measure(service, ROOMS, PER_ROOM, PRESENT, CONCURRENCY);
  } finally {
    await service.stop();
  }
}

async function measure(
  service: Awaited<ReturnType<typeof startService>>,
  ROOMS: number,
  PER_ROOM: number,
  PRESENT: number,
  CONCURRENCY: number,
): Promise<BenchResult> {
  const base = Date.now() - 3_600_000;
  const rooms = Array.from({ length: ROOMS }, (_, r) => newRoomInstance(`bench-live-${r}`, base));

  // Setup (not measured): every room started, with PRESENT people in it.
  const setup: Signed[] = [];
  for (const room of rooms) {
    setup.push(await sign('room_started', room));
    for (let p = 0; p < PRESENT; p++) setup.push(await sign('participant_joined', room, { participant: { sid: `PA_${room.sid}_p${p}`, identity: `p${p}` } }));
  }
  await mapLimit(setup, CONCURRENCY, (s) => postWebhook(service.url, s.body, s.auth));

  // Status events: each a status change (a newer instance finishing, then the next one starting).
  const status: Signed[] = [];
  const instance = (room: RoomInstance, k: number) => (k < 0 ? room : { ...room, sid: `${room.sid}_i${k}`, createdMs: base + 1_000 * (k + 1) });
  for (const room of rooms) {
    // finished (the current instance) → STOPPED, started (a newer one) → LIVE, and so on.
    for (let k = 0; k < PER_ROOM; k++) status.push(await sign(k % 2 === 0 ? 'room_finished' : 'room_started', instance(room, k % 2 === 0 ? k - 1 : k)));
  }
  // Participant events: on a fresh room set (same size) so both kinds see the same live-state document.
  const churnRooms = rooms.map((r) => newRoomInstance(`${r.name}-churn`, base));
  const churnSetup: Signed[] = [];
  for (const room of churnRooms) {
    churnSetup.push(await sign('room_started', room));
    for (let p = 0; p < PRESENT; p++)
      churnSetup.push(await sign('participant_joined', room, { participant: { sid: `PA_${room.sid}_p${p}`, identity: `p${p}` } }));
  }
  await mapLimit(churnSetup, CONCURRENCY, (s) => postWebhook(service.url, s.body, s.auth));
  const participant: Signed[] = [];
  for (const room of churnRooms) {
    for (let k = 0; k < PER_ROOM; k++) {
      const who = { sid: `PA_${room.sid}_c${Math.floor(k / 2)}`, identity: `c${k}` };
      participant.push(await sign(k % 2 === 0 ? 'participant_joined' : 'participant_left', room, { participant: who }));
    }
  }

  const results: Record<string, { lat: ReturnType<typeof percentiles>; cpu: Record<string, number>; wallS: number; actions: Record<string, number> }> = {};
  for (const [label, list] of [
    ['status event', status],
    ['participant event', participant],
  ] as const) {
    // Interleave rooms so concurrent requests hit different rows (as real traffic does); each room's own order kept.
    const order = list.map((s, i) => ({ s, room: Math.floor(i / PER_ROOM), k: i % PER_ROOM })).sort((a, b) => a.k - b.k || a.room - b.room);
    const latencies: number[] = [];
    const actions: Record<string, number> = {};
    const before = cpuSnapshot([service.pid]);
    const t0 = performance.now();
    // One request per room at a time: a room's events in order, rooms side by side.
    const perRoom = new Map<number, Signed[]>();
    for (const o of order) perRoom.set(o.room, [...(perRoom.get(o.room) ?? []), o.s]);
    await mapLimit([...perRoom.values()], CONCURRENCY, async (events) => {
      for (const s of events) {
        const start = performance.now();
        const res = await postWebhook(service.url, s.body, s.auth);
        latencies.push(performance.now() - start);
        const action = res.json?.results?.action ?? `http ${res.status}`;
        actions[action] = (actions[action] ?? 0) + 1;
      }
    });
    const wallS = (performance.now() - t0) / 1000;
    const cpu = cpuBetween(before, cpuSnapshot([service.pid]), { service: service.pid });
    results[label] = { lat: percentiles(latencies), cpu, wallS, actions };
  }

  const problems: string[] = [];
  const rows: BenchResult['rows'] = [['run', `${ROOMS} rooms × ${PER_ROOM} events per kind, ${PRESENT} people present, ${CONCURRENCY} rooms at a time`]];
  const cpuPerEvent: Record<string, number> = {};
  for (const [label, r] of Object.entries(results)) {
    const perEvent = round((r.cpu.service! * r.wallS * 1000) / r.lat.count, 3);
    cpuPerEvent[label] = perEvent;
    rows.push([
      label,
      `p50/p90/p99 ${ms(r.lat.p50)} / ${ms(r.lat.p90)} / ${ms(r.lat.p99)}, ${round(r.lat.count / r.wallS, 1)}/s, service CPU ${perEvent} ms/event (machine ${r.cpu.machineBusyPct} % busy); ${JSON.stringify(r.actions)}`,
    ]);
    const expected = label === 'status event' ? 'status_updated' : 'live_updated';
    if (r.actions[expected] !== r.lat.count) problems.push(`${label}: expected ${r.lat.count} × ${expected}, got ${JSON.stringify(r.actions)}`);
  }
  rows.push(['participant / status event CPU', `${round(cpuPerEvent['participant event']! / cpuPerEvent['status event']!, 2)}×`]);
  return { name: 'live', ok: problems.length === 0, problems, rows, data: { results, cpuPerEvent } };
}
