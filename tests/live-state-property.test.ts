/**
 * Issue 10 "Done when" (property): for random participant, track, egress and ingress events over several room
 * instances, sent as signed webhooks over real HTTP to the running service (real Postgres and Redis), in a random
 * order with retries to one room and in LiveKit's order to its twin, the final live state (participants, tracks,
 * egresses, ingresses, participantCount, recording) is the same, and equals the pure rule folded in order.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLiveEvent, EMPTY_LIVE_STATE, liveView } from '../src/sessions/live-state.js';
import { buildEvent, encodeEvent, postWebhook, signBody, type RoomInstance } from '../tools/kit/livekit-emulator.js';
import { mapLimit } from '../tools/kit/async.js';
import { modelEvents, roomArb, toLiveEvent, type ModelEvent } from './support/live-model.js';
import { startTestApp, type TestApp } from './support/app.js';

const NUM_RUNS = Number(process.env.LIVE_STATE_RUNS ?? 6);
const ROOMS_PER_RUN = 4;

let t: TestApp;
const stats = { rooms: 0, requests: 0, liveUpdated: 0, duplicates: 0 };

beforeAll(async () => {
  t = await startTestApp({ SESSION_AUTO_CREATE: 'true' });
});
afterAll(async () => {
  await t?.stop();
});

type Signed = { id: string; body: string; token: string };

async function sign(e: ModelEvent, instances: RoomInstance[], id: string): Promise<Signed> {
  const body = encodeEvent(buildEvent(e.type, instances[e.instance]!, { ...e.opts, id }));
  return { id, body, token: await signBody(body) };
}

async function send(list: Signed[]): Promise<void> {
  for (const s of list) {
    const res = await postWebhook(t.url, s.body, s.token);
    expect(res.status, res.text).toBe(200);
    stats.requests++;
    if (res.json.results.action === 'live_updated') stats.liveUpdated++;
    if (res.json.results.action === 'duplicate') stats.duplicates++;
  }
}

async function viewOf(roomName: string) {
  const row = await t.app.database.db.selectFrom('sessions').select(['live_state', 'version']).where('room_name', '=', roomName).executeTakeFirstOrThrow();
  return liveView(row.live_state);
}

describe('live state over HTTP: arrival order and retries do not matter', () => {
  it('random order with retries ends where LiveKit order ends, for every room', { timeout: 120_000 }, async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          roomArb.chain((model) => {
            const n = modelEvents(model, 'x', 'x', 0).events.length;
            return fc.record({
              model: fc.constant(model),
              keys: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: n, maxLength: n }),
              retries: fc.array(fc.nat({ max: n - 1 }), { maxLength: 3 }),
            });
          }),
          { minLength: ROOMS_PER_RUN, maxLength: ROOMS_PER_RUN },
        ),
        async (cases) => {
          run++;
          await mapLimit(cases, ROOMS_PER_RUN, async ({ model, keys, retries }, c) => {
            const tag = `${run}x${c}x${Math.random().toString(36).slice(2, 8)}`;
            const baseMs = Date.now() - 60_000;
            const ordered = modelEvents(model, `live-ord-${tag}`, `O${tag}`, baseMs);
            const shuffled = modelEvents(model, `live-rnd-${tag}`, `R${tag}`, baseMs);
            const inOrder = await Promise.all(ordered.events.map((e, i) => sign(e, ordered.instances, `EV_O${tag}n${i}`)));
            const signed = await Promise.all(shuffled.events.map((e, i) => sign(e, shuffled.instances, `EV_R${tag}n${i}`)));
            const order = signed.map((_, i) => i).sort((a, b) => keys[a]! - keys[b]!);
            // A retry is the same body again (LiveKit repeats id and body), here at a random later point.
            const random = [...order.map((i) => signed[i]!), ...retries.map((i) => signed[i]!)];
            await Promise.all([send(inOrder), send(random)]);
            stats.rooms += 2;

            const expected = liveView(ordered.events.map((e) => toLiveEvent(e, ordered.instances)).reduce(applyLiveEvent, EMPTY_LIVE_STATE));
            const viaOrdered = await viewOf(`live-ord-${tag}`);
            const viaRandom = await viewOf(`live-rnd-${tag}`);
            expect(viaOrdered, 'LiveKit order: the service agrees with the pure rule').toEqual(expected);
            // The twin's ids differ only by their tag: compare with the tags taken out.
            const untag = (v: unknown) => JSON.parse(JSON.stringify(v).replaceAll(`R${tag}`, `O${tag}`));
            expect(untag(viaRandom), `random order ${JSON.stringify(order)} + retries ${JSON.stringify(retries)}`).toEqual(viaOrdered);
          });
        },
      ),
      { numRuns: NUM_RUNS, endOnFailure: true },
    );
    expect(stats.liveUpdated).toBeGreaterThan(0);
    console.info(`live-state property: ${JSON.stringify(stats)}`);
  });

  it('the recorded events keep who and what they were about', async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const room = { name: `live-detail-${tag}`, sid: `RM_d${tag}`, createdMs: Date.now() };
    const participant = { sid: `PA_d${tag}`, identity: 'bob' };
    const track = { sid: `TR_d${tag}` };
    const egress = { egressId: `EG_d${tag}` };
    for (const [type, opts] of [
      ['participant_joined', { participant }],
      ['track_published', { participant, track }],
      ['egress_started', { egress }],
    ] as const) {
      const body = encodeEvent(buildEvent(type, room, opts));
      expect((await postWebhook(t.url, body, await signBody(body))).json.results.action).toBe('live_updated');
    }
    const rows = await t.app.database.db
      .selectFrom('webhook_events')
      .select(['event_type', 'participant_identity', 'track_sid', 'egress_id', 'outcome'])
      .where('room_name', '=', room.name)
      .orderBy('seq')
      .execute();
    expect(rows).toEqual([
      { event_type: 'participant_joined', participant_identity: 'bob', track_sid: null, egress_id: null, outcome: 'live_updated' },
      { event_type: 'track_published', participant_identity: 'bob', track_sid: track.sid, egress_id: null, outcome: 'live_updated' },
      { event_type: 'egress_started', participant_identity: null, track_sid: null, egress_id: egress.egressId, outcome: 'live_updated' },
    ]);
  });
});
