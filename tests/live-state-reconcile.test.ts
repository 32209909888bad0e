/**
 * Issue 10 "Done when" (reconciliation): participantCount drift is repaired from LiveKit's RoomService — ListRooms'
 * numParticipants shows the drift, ListParticipants says who is there — through the same live-state rule as the
 * webhooks (a participant removed by a repair does not come back with a late joined), as a 'reconcile' change that
 * subscribers see; a room LiveKit no longer lists ends its participants with its status.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sseClient } from '../tools/kit/clients.js';
import { adminToken, createSession, gql } from '../tools/kit/graphql.js';
import { newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startRoomServiceStandIn, type RoomServiceStandIn } from '../tools/kit/livekit-room-service.js';
import { startTestApp, type TestApp } from './support/app.js';
import { Watch } from './support/watch.js';

let t: TestApp;
let lk: RoomServiceStandIn;
let admin: string;

beforeAll(async () => {
  lk = await startRoomServiceStandIn();
  t = await startTestApp({ LIVEKIT_URL: lk.url, RECONCILE_INTERVAL_SECONDS: '0' });
  admin = await adminToken();
});
afterAll(async () => {
  await t?.stop();
  await lk?.close();
});

const person = (sid: string, identity: string, joinedAtMs = Date.now() - 60_000) => ({ sid, identity, joinedAtMs });
const live = async (name: string) =>
  (await gql(t.url, 'query($r: String!) { sessionByRoom(roomName: $r) { status version participantCount participants { identity } } }', { r: name }, admin))
    .body.data.sessionByRoom;

describe('reconciliation repairs participant drift', () => {
  it('a lost participant_left and a lost participant_joined are repaired from ListParticipants; a late joined does not undo it', async () => {
    const name = `rec-${Math.random().toString(36).slice(2, 8)}`;
    await createSession(t.url, name, admin);
    const room = newRoomInstance(name, Date.now() - 120_000);
    lk.rooms.push(room);
    const [alice, bob, carol] = [person('PA_alice', 'alice'), person('PA_bob', 'bob'), person('PA_carol', 'carol')];
    await sendEvent(t.url, 'room_started', room);
    await sendEvent(t.url, 'participant_joined', room, { participant: alice });
    await sendEvent(t.url, 'participant_joined', room, { participant: bob });
    expect(await live(name)).toMatchObject({ status: 'LIVE', participantCount: 2 });

    const watch = new Watch(
      sseClient(t.url, admin),
      'subscription($r: String) { sessionUpdated(roomName: $r) { version eventType session { participantCount } } }',
      { r: name },
    );
    await watch.until((w) => w.received.length === 1, 10_000, 'snapshot');

    // Bob's participant_left never arrived: LiveKit has only alice.
    lk.participants[name] = [alice];
    expect(await t.app.reconcileNow()).toBe(1);
    expect(await live(name)).toMatchObject({ participantCount: 1, participants: [{ identity: 'alice' }] });
    await watch.until((w) => w.values('sessionUpdated').at(-1)?.eventType === 'reconcile', 10_000, 'the reconcile update');
    expect(watch.values('sessionUpdated').at(-1)).toMatchObject({ eventType: 'reconcile', session: { participantCount: 1 } });
    watch.dispose();

    // Nothing to repair: a second round changes nothing.
    expect(await t.app.reconcileNow()).toBe(0);

    // Carol's participant_joined never arrived: LiveKit lists her.
    lk.participants[name] = [alice, carol];
    expect(await t.app.reconcileNow()).toBe(1);
    expect((await live(name)).participants).toEqual([{ identity: 'alice' }, { identity: 'carol' }]);

    // Bob's joined arriving late (a retry) cannot bring him back: the repair removed him for good.
    const late = await sendEvent(t.url, 'participant_joined', room, { participant: bob });
    expect(late.json.results.action).toBe('no_change');
    expect(await live(name)).toMatchObject({ participantCount: 2 });

    // The room is gone from LiveKit: the session stops and its participants end with it.
    lk.rooms.splice(lk.rooms.indexOf(room), 1);
    expect(await t.app.reconcileNow()).toBe(1);
    expect(await live(name)).toMatchObject({ status: 'STOPPED', participantCount: 0, participants: [] });
  });

  it('equal counts are not asked about: drift that keeps the count is what it cannot see', async () => {
    const name = `rec-eq-${Math.random().toString(36).slice(2, 8)}`;
    await createSession(t.url, name, admin);
    const room = newRoomInstance(name, Date.now() - 120_000);
    lk.rooms.push(room);
    await sendEvent(t.url, 'room_started', room);
    await sendEvent(t.url, 'participant_joined', room, { participant: person('PA_x', 'x') });
    // LiveKit has someone else (a lost left and a lost join): the counts match, so nothing is asked or changed.
    lk.participants[name] = [person('PA_y', 'y')];
    expect(await t.app.reconcileNow()).toBe(0);
    expect((await live(name)).participants).toEqual([{ identity: 'x' }]);
    lk.rooms.splice(lk.rooms.indexOf(room), 1);
  });
});
