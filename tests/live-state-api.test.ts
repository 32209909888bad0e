/**
 * Issue 10, GraphQL: Session.participantCount / participants / recording / egresses / ingresses / events over real
 * HTTP after signed webhooks; grants as for the session itself; sessionUpdated (snapshot first, each change with the
 * full state, versions increasing) and sessionsUpdated; sessionStatusChanged not woken by participant churn.
 */
import { EgressStatus, ParticipantInfo_Kind, TrackSource, TrackType } from '@livekit/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sseClient, wsClient } from '../tools/kit/clients.js';
import { adminToken, createSession, gql, mintToken } from '../tools/kit/graphql.js';
import { newRoomInstance, sendEvent, type EventOptions, type RoomInstance } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';
import { Watch } from './support/watch.js';

let t: TestApp;
let admin: string;
const disposers: Array<() => unknown> = [];
const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 10)}`;

beforeAll(async () => {
  t = await startTestApp();
  admin = await adminToken();
});
afterAll(async () => {
  for (const d of disposers) await d();
  await t?.stop();
});

const LIVE_FIELDS = `id roomName status version participantCount recording
  participants { sid identity name kind joinedAt tracks { sid type source muted } }
  egresses { egressId status startedAt endedAt } ingresses { ingressId status }`;

async function send(type: string, room: RoomInstance, opts: EventOptions = {}) {
  const res = await sendEvent(t.url, type, room, opts);
  expect(res.status, res.text).toBe(200);
  return res;
}

const alice = { sid: 'PA_alice', identity: 'alice' };
const bob = { sid: 'PA_bob', identity: 'bob' };
const recorder = { sid: 'PA_rec', identity: 'EG_rec', kind: ParticipantInfo_Kind.EGRESS };
const camera = { sid: 'TR_cam', type: TrackType.VIDEO, source: TrackSource.CAMERA };

describe('Session live fields', () => {
  it('participants with their tracks, the count without the recorder, recording, egresses and ingresses', async () => {
    const name = unique('live');
    await createSession(t.url, name, admin);
    const room = newRoomInstance(name, Date.now() - 5_000);
    const now = Date.now();
    await send('room_started', room);
    await send('participant_joined', room, { participant: { ...alice, joinedAtMs: now - 3_000 } });
    await send('participant_joined', room, { participant: { ...bob, joinedAtMs: now - 2_000 } });
    await send('participant_joined', room, { participant: { ...recorder, joinedAtMs: now - 1_000 } });
    await send('track_published', room, { participant: alice, track: camera });
    await send('egress_started', room, { egress: { egressId: 'EG_rec', startedAtMs: now - 1_000, updatedAtMs: now - 1_000 } });
    await send('egress_updated', room, { egress: { egressId: 'EG_rec', status: EgressStatus.EGRESS_ACTIVE, startedAtMs: now - 1_000, updatedAtMs: now } });
    await send('ingress_started', room, { ingress: { ingressId: 'IN_1' } });
    // LiveKit's numParticipants in the event is stale here on purpose: it must not matter.
    await send('participant_left', room, { participant: bob, numParticipants: 3 });

    const res = await gql(t.url, `query($r: String!) { sessionByRoom(roomName: $r) { ${LIVE_FIELDS} } }`, { r: name }, admin);
    expect(res.body.errors).toBeUndefined();
    const s = res.body.data.sessionByRoom;
    expect(s).toMatchObject({ status: 'LIVE', participantCount: 1, recording: true });
    expect(s.participants).toEqual([
      {
        sid: 'PA_alice',
        identity: 'alice',
        name: 'alice',
        kind: 'STANDARD',
        joinedAt: new Date(now - 3_000).toISOString(),
        tracks: [{ sid: 'TR_cam', type: 'VIDEO', source: 'CAMERA', muted: false }],
      },
      { sid: 'PA_rec', identity: 'EG_rec', name: 'EG_rec', kind: 'EGRESS', joinedAt: new Date(now - 1_000).toISOString(), tracks: [] },
    ]);
    expect(s.egresses).toEqual([{ egressId: 'EG_rec', status: 'EGRESS_ACTIVE', startedAt: new Date(now - 1_000).toISOString(), endedAt: null }]);
    expect(s.ingresses).toEqual([{ ingressId: 'IN_1', status: 'ENDPOINT_PUBLISHING' }]);
    // 9 webhooks, 9 visible changes, plus the creation.
    expect(s.version).toBe(10);

    await send('room_finished', room);
    const after = await gql(t.url, `query($r: String!) { sessionByRoom(roomName: $r) { ${LIVE_FIELDS} } }`, { r: name }, admin);
    expect(after.body.data.sessionByRoom).toMatchObject({ status: 'STOPPED', participantCount: 0, participants: [], recording: false });
  });

  it('events: newest first, paginated with cursors, with who and what each was about; a bad cursor is BAD_USER_INPUT', async () => {
    const name = unique('events');
    await createSession(t.url, name, admin);
    const room = newRoomInstance(name);
    const ids: string[] = [];
    ids.push((await send('room_started', room)).eventId);
    ids.push((await send('participant_joined', room, { participant: alice })).eventId);
    ids.push((await send('track_published', room, { participant: alice, track: camera })).eventId);
    ids.push((await send('egress_started', room, { egress: { egressId: 'EG_x' } })).eventId);
    ids.push((await send('participant_joined', room, { participant: alice })).eventId);

    const Q = `query($r: String!, $after: String) { sessionByRoom(roomName: $r) { events(first: 3, after: $after) {
      edges { cursor node { id eventType outcome participantIdentity trackSid egressId createdAt receivedAt } } pageInfo { hasNextPage endCursor } } } }`;
    const page1 = (await gql(t.url, Q, { r: name }, admin)).body.data.sessionByRoom.events;
    expect(page1.edges.map((e: any) => e.node.id)).toEqual([ids[4], ids[3], ids[2]]);
    expect(page1.edges.map((e: any) => [e.node.eventType, e.node.outcome, e.node.participantIdentity, e.node.trackSid, e.node.egressId])).toEqual([
      ['participant_joined', 'no_change', 'alice', null, null],
      ['egress_started', 'live_updated', null, null, 'EG_x'],
      ['track_published', 'live_updated', 'alice', 'TR_cam', null],
    ]);
    expect(page1.pageInfo.hasNextPage).toBe(true);
    const page2 = (await gql(t.url, Q, { r: name, after: page1.pageInfo.endCursor }, admin)).body.data.sessionByRoom.events;
    expect(page2.edges.map((e: any) => e.node.id)).toEqual([ids[1], ids[0]]);
    expect(page2.pageInfo.hasNextPage).toBe(false);

    const bad = await gql(t.url, Q, { r: name, after: Buffer.from('ev:99999999999999999999').toString('base64url') }, admin);
    expect(bad.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('grants: a roomJoin token for R reads R’s participants and events, and nothing of another room', async () => {
    const mine = unique('mine');
    const other = unique('other');
    for (const name of [mine, other]) {
      await createSession(t.url, name, admin);
      await send('participant_joined', newRoomInstance(name), { participant: alice });
    }
    const join = await mintToken({ roomJoin: true, room: mine }, { identity: 'viewer' });
    const Q = `query($r: String!) { sessionByRoom(roomName: $r) { participantCount participants { identity } events(first: 5) { edges { node { eventType } } } } }`;
    const ok = await gql(t.url, Q, { r: mine }, join);
    expect(ok.body.errors).toBeUndefined();
    expect(ok.body.data.sessionByRoom).toEqual({
      participantCount: 1,
      participants: [{ identity: 'alice' }],
      events: { edges: [{ node: { eventType: 'participant_joined' } }] },
    });
    const refused = await gql(t.url, Q, { r: other }, join);
    expect(refused.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(refused.body.data?.sessionByRoom ?? null).toBeNull();

    const list = await gql(t.url, 'subscription { sessionsUpdated { version } }', {}, join);
    const sub = new Watch(sseClient(t.url, join), 'subscription { sessionsUpdated { version } }');
    disposers.push(() => sub.dispose());
    await sub.until((w) => w.received.length > 0 || w.errors.length > 0 || w.completed, 10_000, 'an answer').catch(() => {});
    const codes = [...sub.values('sessionsUpdated'), ...sub.errors].map((v: any) => JSON.stringify(v));
    expect(codes.join(' '), `sessionsUpdated with a roomJoin token: ${JSON.stringify(list.body)}`).toMatch(/FORBIDDEN/);
  });
});

describe('sessionUpdated / sessionsUpdated / sessionStatusChanged', () => {
  const UPDATED = `subscription($r: String) { sessionUpdated(roomName: $r) { version eventType changedAt session { status participantCount participants { identity } recording } } }`;
  const STATUS = `subscription($r: String) { sessionStatusChanged(roomName: $r) { version eventType status } }`;

  it('snapshot first, then each change with the full state, versions increasing; the status stream sees only status changes', async () => {
    const name = unique('sub');
    await createSession(t.url, name, admin);
    const room = newRoomInstance(name);
    const ws = wsClient(t.url, admin);
    disposers.push(() => ws.dispose());
    const updated = new Watch(ws, UPDATED, { r: name });
    const status = new Watch(sseClient(t.url, admin), STATUS, { r: name });
    const all = new Watch(sseClient(t.url, admin), `subscription { sessionsUpdated(status: LIVE) { version eventType session { roomName } } }`);
    disposers.push(
      () => updated.dispose(),
      () => status.dispose(),
      () => all.dispose(),
    );
    await updated.until((w) => w.received.length === 1, 10_000, 'snapshot');
    await status.until((w) => w.received.length === 1, 10_000, 'status snapshot');
    await new Promise((r) => setTimeout(r, 300)); // sessionsUpdated has no snapshot to wait for

    await send('room_started', room);
    await send('participant_joined', room, { participant: alice });
    await send('participant_joined', room, { participant: bob });
    await send('participant_left', room, { participant: alice });
    await send('egress_started', room, { egress: { egressId: 'EG_s' } });
    await send('room_finished', room);

    await updated.until((w) => w.values('sessionUpdated').at(-1)?.eventType === 'room_finished', 10_000, 'room_finished update');
    const seen = updated.values('sessionUpdated');
    expect(seen.map((u) => u.eventType)).toEqual([
      'snapshot',
      'room_started',
      'participant_joined',
      'participant_joined',
      'participant_left',
      'egress_started',
      'room_finished',
    ]);
    expect(seen.map((u) => u.version)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(seen.map((u) => u.session.participants.map((p: any) => p.identity))).toEqual([[], [], ['alice'], ['alice', 'bob'], ['bob'], ['bob'], []]);
    expect(seen.map((u) => u.session.recording)).toEqual([false, false, false, false, false, true, false]);
    expect(seen.at(-1).session).toMatchObject({ status: 'STOPPED', participantCount: 0 });

    await status.until((w) => w.received.length >= 3, 10_000, 'status changes');
    await new Promise((r) => setTimeout(r, 300));
    expect(status.values('sessionStatusChanged')).toEqual([
      { version: 1, eventType: 'snapshot', status: 'READY' },
      { version: 2, eventType: 'room_started', status: 'LIVE' },
      { version: 7, eventType: 'room_finished', status: 'STOPPED' },
    ]);

    // sessionsUpdated(status: LIVE): the updates while the session was LIVE, not the STOPPED one.
    await all.until((w) => w.values('sessionsUpdated').filter((u) => u.session.roomName === name).length >= 5, 10_000, 'dashboard updates');
    await new Promise((r) => setTimeout(r, 300));
    expect(
      all
        .values('sessionsUpdated')
        .filter((u) => u.session.roomName === name)
        .map((u) => u.version),
    ).toEqual([2, 3, 4, 5, 6]);
  });

  it('sessionUpdated needs id or roomName, and the room grant', async () => {
    const res = await gql(t.url, 'subscription { sessionUpdated { version } }', {}, admin);
    const other = unique('nogrant');
    await createSession(t.url, other, admin);
    const join = await mintToken({ roomJoin: true, room: 'somewhere-else' });
    const w = new Watch(sseClient(t.url, join), UPDATED, { r: other });
    disposers.push(() => w.dispose());
    await w.until((x) => x.received.length > 0 || x.errors.length > 0 || x.completed, 10_000, 'an answer').catch(() => {});
    expect(JSON.stringify([...w.values('sessionUpdated'), ...w.errors])).toMatch(/FORBIDDEN/);
    expect(JSON.stringify(res.body)).toMatch(/BAD_USER_INPUT|Give id or roomName/);
  });
});
