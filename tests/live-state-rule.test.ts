/**
 * The pure live-state rule (src/sessions/live-state.ts): table cases for each event kind, and the property the
 * service relies on — the view after any arrival order (with retries) of one set of events equals the view after
 * LiveKit's order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyLiveEvent, EMPTY_LIVE_STATE, liveView, sameView, type LiveEvent, type LiveParticipant, type LiveState } from '../src/sessions/live-state.js';
import { modelEvents, roomArb, toLiveEvent } from './support/live-model.js';

const fold = (events: LiveEvent[], from: LiveState = EMPTY_LIVE_STATE) => events.reduce(applyLiveEvent, from);
const A = { sid: 'RM_a', createdMs: 1_000 };
const B = { sid: 'RM_b', createdMs: 2_000 };
const person = (sid: string, kind = 'STANDARD'): LiveParticipant => ({ sid, identity: `id-${sid}`, name: sid, kind, joinedAtMs: 1_100 });
const track = (sid: string, participantSid: string) => ({ sid, participantSid, type: 'VIDEO', source: 'CAMERA', muted: false });
const egress = (status: string, updatedAtMs: number) => ({ egressId: 'EG_1', status, startedAtMs: 1_500, endedAtMs: 0, updatedAtMs });

describe('live-state rule: cases', () => {
  it('joined then left, and left before joined, both end with the participant gone', () => {
    const joined: LiveEvent = { kind: 'participant_joined', room: A, participant: person('PA_1') };
    const left: LiveEvent = { kind: 'participant_left', room: A, participant: person('PA_1') };
    expect(liveView(fold([joined, left])).participants).toEqual([]);
    expect(liveView(fold([left, joined])).participants).toEqual([]);
    expect(liveView(fold([joined])).participantCount).toBe(1);
  });

  it('an egress recorder and an agent are participants but not counted; SIP callers are', () => {
    const s = fold(
      ['STANDARD', 'EGRESS', 'AGENT', 'SIP', 'INGRESS'].map((k, i) => ({ kind: 'participant_joined', room: A, participant: person(`PA_${i}`, k) })),
    );
    expect(liveView(s).participants).toHaveLength(5);
    expect(liveView(s).participantCount).toBe(2);
  });

  it('tracks: unpublished wins, a track before its participant joined still shows, a track of someone who left does not', () => {
    const pub: LiveEvent = { kind: 'track_published', room: A, participant: person('PA_1'), track: track('TR_1', 'PA_1') };
    const unpub: LiveEvent = { kind: 'track_unpublished', room: A, participant: person('PA_1'), track: track('TR_1', 'PA_1') };
    expect(liveView(fold([pub])).participants[0]!.tracks.map((t) => t.sid)).toEqual(['TR_1']);
    expect(liveView(fold([unpub, pub])).participants[0]!.tracks).toEqual([]);
    const left: LiveEvent = { kind: 'participant_left', room: A, participant: person('PA_1') };
    expect(liveView(fold([left, pub])).participants).toEqual([]);
  });

  it('egress: the newest updatedAt wins whatever the order; same time: the later status; recording while active', () => {
    const started: LiveEvent = { kind: 'egress', room: { sid: A.sid, createdMs: null }, egress: egress('EGRESS_STARTING', 10) };
    const active: LiveEvent = { kind: 'egress', room: { sid: A.sid, createdMs: null }, egress: egress('EGRESS_ACTIVE', 20) };
    const ended: LiveEvent = { kind: 'egress', room: { sid: A.sid, createdMs: null }, egress: { ...egress('EGRESS_COMPLETE', 20), endedAtMs: 20 } };
    const base = fold([{ kind: 'room_started', room: A }]);
    expect(liveView(fold([started, active], base))).toMatchObject({ recording: true, egresses: [{ status: 'EGRESS_ACTIVE' }] });
    expect(liveView(fold([active, started], base)).egresses[0]!.status).toBe('EGRESS_ACTIVE');
    expect(liveView(fold([ended, active, started], base))).toMatchObject({ recording: false, egresses: [{ status: 'EGRESS_COMPLETE' }] });
  });

  it('an egress seen before its instance is dated shows once the instance is known', () => {
    const eg: LiveEvent = { kind: 'egress', room: { sid: B.sid, createdMs: null }, egress: egress('EGRESS_ACTIVE', 10) };
    const s = fold([{ kind: 'room_started', room: A }, eg]);
    expect(liveView(s)).toMatchObject({ roomSid: A.sid, recording: false });
    expect(sameView(fold([{ kind: 'room_started', room: A }]), s)).toBe(true);
    expect(liveView(applyLiveEvent(s, { kind: 'room_started', room: B }))).toMatchObject({ roomSid: B.sid, recording: true });
  });

  it('a new instance starts empty, late events of the old one change nothing, room_finished ends everything of its instance', () => {
    const inA = fold([{ kind: 'participant_joined', room: A, participant: person('PA_1') }]);
    const inB = applyLiveEvent(inA, { kind: 'room_started', room: B });
    expect(liveView(inB)).toMatchObject({ roomSid: B.sid, participants: [] });
    expect(applyLiveEvent(inB, { kind: 'participant_joined', room: A, participant: person('PA_2') })).toEqual(
      expect.objectContaining({ instances: inB.instances }),
    );
    const withOne = applyLiveEvent(inB, { kind: 'participant_joined', room: B, participant: person('PA_3') });
    const withRec = applyLiveEvent(withOne, { kind: 'egress', room: { sid: B.sid, createdMs: null }, egress: egress('EGRESS_ACTIVE', 5) });
    expect(liveView(withRec)).toMatchObject({ participantCount: 1, recording: true });
    const finished = applyLiveEvent(withRec, { kind: 'room_finished', room: B });
    expect(liveView(finished)).toMatchObject({ finished: true, participants: [], participantCount: 0, recording: false });
  });

  it('a repeated event returns the same state object (no write, no version)', () => {
    const joined: LiveEvent = { kind: 'participant_joined', room: A, participant: person('PA_1') };
    const once = fold([joined]);
    expect(applyLiveEvent(once, joined)).toBe(once);
  });

  it("reconciliation: LiveKit's list removes who joined before the question and is not listed, adds who is", () => {
    const s = fold([
      { kind: 'participant_joined', room: A, participant: person('PA_1') },
      { kind: 'participant_joined', room: A, participant: { ...person('PA_2'), joinedAtMs: 9_000 } },
    ]);
    const listed = applyLiveEvent(s, { kind: 'participants_listed', room: A, participants: [person('PA_3')], askedAtMs: 5_000 });
    expect(liveView(listed).participants.map((p) => p.sid)).toEqual(['PA_3', 'PA_2']);
    // PA_1 left for good: a late joined of it does not bring it back.
    expect(liveView(applyLiveEvent(listed, { kind: 'participant_joined', room: A, participant: person('PA_1') })).participantCount).toBe(2);
  });
});

describe('live-state rule: arrival order does not matter', () => {
  it('any order with retries gives the view of LiveKit order (and survives a JSON round trip, as through Postgres)', () => {
    fc.assert(
      fc.property(
        roomArb.chain((model) => {
          const { events, instances } = modelEvents(model, 'room', 'x', 1_000_000);
          return fc.record({
            events: fc.constant(events.map((e) => toLiveEvent(e, instances))),
            order: fc.shuffledSubarray(
              events.map((_, i) => i),
              { minLength: events.length, maxLength: events.length },
            ),
            retries: fc.array(fc.nat({ max: Math.max(0, events.length - 1) }), { maxLength: 3 }),
          });
        }),
        ({ events, order, retries }) => {
          const inOrder = liveView(fold(events));
          let state = EMPTY_LIVE_STATE;
          for (const i of [...order, ...retries.filter((r) => r < events.length)]) {
            state = JSON.parse(JSON.stringify(applyLiveEvent(state, events[i]!))) as LiveState;
          }
          expect(liveView(state)).toEqual(inOrder);
        },
      ),
      { numRuns: 1_000 },
    );
  });
});
