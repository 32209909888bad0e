/**
 * A random model of what LiveKit says about one room over a few instances: participants (some egress recorders),
 * their tracks, egresses and ingresses, with each fact's events in LiveKit's order. Shared by the pure rule test
 * (folded as LiveEvents) and the HTTP property test (sent as signed webhooks by the emulator).
 */
import fc from 'fast-check';
import { EgressStatus, IngressState_Status, ParticipantInfo_Kind, TrackSource, TrackType } from '@livekit/protocol';
import type { LiveEvent, RoomRef } from '../../src/sessions/live-state.js';
import type { EventOptions, RoomInstance } from '../../tools/kit/livekit-emulator.js';

export type ModelEvent = { type: string; instance: number; opts: EventOptions };
export type InstanceModel = { offsetMs: number; finished: boolean; participants: ParticipantModel[]; egresses: EgressModel[]; ingresses: IngressModel[] };
type ParticipantModel = {
  kind: 'STANDARD' | 'EGRESS' | 'SIP';
  left: 'no' | 'left' | 'aborted';
  joined: boolean;
  tracks: Array<{ video: boolean; unpublished: boolean }>;
};
type EgressModel = { steps: Array<'egress_started' | 'egress_updated' | 'egress_ended'>; sameTime: boolean };
type IngressModel = { ended: boolean };

const participantArb: fc.Arbitrary<ParticipantModel> = fc.record({
  kind: fc.constantFrom<ParticipantModel['kind']>('STANDARD', 'STANDARD', 'STANDARD', 'EGRESS', 'SIP'),
  // A left without its joined is what LiveKit sends after a failed ICE connection.
  joined: fc.constantFrom(true, true, true, false),
  left: fc.constantFrom<ParticipantModel['left']>('no', 'no', 'left', 'aborted'),
  tracks: fc.array(fc.record({ video: fc.boolean(), unpublished: fc.boolean() }), { maxLength: 2 }),
});

const egressArb: fc.Arbitrary<EgressModel> = fc.record({
  steps: fc.constantFrom<EgressModel['steps']>(
    ['egress_started'],
    ['egress_started', 'egress_updated'],
    ['egress_started', 'egress_updated', 'egress_ended'],
    ['egress_started', 'egress_ended'],
  ),
  // Two updates in the same millisecond: the status order must decide.
  sameTime: fc.boolean(),
});

export const instanceArb: fc.Arbitrary<InstanceModel> = fc.record({
  offsetMs: fc.constantFrom(0, 1_000, 2_000, 2_000),
  finished: fc.boolean(),
  participants: fc.array(participantArb, { maxLength: 4 }),
  egresses: fc.array(egressArb, { maxLength: 2 }),
  ingresses: fc.array(fc.record({ ended: fc.boolean() }), { maxLength: 1 }),
});

export const roomArb = fc.array(instanceArb, { minLength: 1, maxLength: 3 });

const KIND = { STANDARD: ParticipantInfo_Kind.STANDARD, EGRESS: ParticipantInfo_Kind.EGRESS, SIP: ParticipantInfo_Kind.SIP } as const;
const EGRESS_STATUS = { egress_started: EgressStatus.EGRESS_STARTING, egress_updated: EgressStatus.EGRESS_ACTIVE, egress_ended: EgressStatus.EGRESS_COMPLETE };

/** The room's instances (sids unique per `tag`) and every event in LiveKit's order: instances oldest first. */
export function modelEvents(model: InstanceModel[], name: string, tag: string, baseMs: number): { instances: RoomInstance[]; events: ModelEvent[] } {
  const instances = model.map((m, i) => ({ name, sid: `RM_${tag}${String.fromCharCode(97 + i)}`, createdMs: baseMs + m.offsetMs }));
  const order = instances
    .map((_, i) => i)
    .sort((a, b) => instances[a]!.createdMs - instances[b]!.createdMs || (instances[a]!.sid < instances[b]!.sid ? -1 : 1));
  const events: ModelEvent[] = [];
  for (const i of order) {
    const m = model[i]!;
    const inst = instances[i]!;
    const sec = Math.floor(inst.createdMs / 1000);
    const at = (n: number) => ({ createdAt: sec + n });
    events.push({ type: 'room_started', instance: i, opts: at(0) });
    m.participants.forEach((p, pi) => {
      const participant = { sid: `PA_${tag}${i}p${pi}`, identity: `user-${pi}`, kind: KIND[p.kind], joinedAtMs: inst.createdMs + 100 * (pi + 1) };
      if (p.joined) events.push({ type: 'participant_joined', instance: i, opts: { ...at(1), participant } });
      p.tracks.forEach((tr, ti) => {
        const track = {
          sid: `TR_${tag}${i}p${pi}t${ti}`,
          type: tr.video ? TrackType.VIDEO : TrackType.AUDIO,
          source: tr.video ? TrackSource.CAMERA : TrackSource.MICROPHONE,
        };
        events.push({ type: 'track_published', instance: i, opts: { ...at(2), participant, track } });
        if (tr.unpublished) events.push({ type: 'track_unpublished', instance: i, opts: { ...at(3), participant, track } });
      });
      if (p.left !== 'no')
        events.push({ type: p.left === 'left' ? 'participant_left' : 'participant_connection_aborted', instance: i, opts: { ...at(4), participant } });
    });
    m.egresses.forEach((e, ei) => {
      const egressId = `EG_${tag}${i}e${ei}`;
      e.steps.forEach((step, si) => {
        const updatedAtMs = inst.createdMs + 500 + (e.sameTime ? 0 : si * 10);
        events.push({
          type: step,
          instance: i,
          opts: { ...at(2 + si), egress: { egressId, status: EGRESS_STATUS[step], startedAtMs: inst.createdMs + 500, endedAtMs: updatedAtMs, updatedAtMs } },
        });
      });
    });
    m.ingresses.forEach((g, gi) => {
      const ingressId = `IN_${tag}${i}g${gi}`;
      events.push({
        type: 'ingress_started',
        instance: i,
        opts: { ...at(1), ingress: { ingressId, status: IngressState_Status.ENDPOINT_PUBLISHING, updatedAtMs: inst.createdMs + 50 } },
      });
      if (g.ended)
        events.push({
          type: 'ingress_ended',
          instance: i,
          opts: { ...at(5), ingress: { ingressId, status: IngressState_Status.ENDPOINT_INACTIVE, updatedAtMs: inst.createdMs + 900 } },
        });
    });
    if (m.finished) events.push({ type: 'room_finished', instance: i, opts: at(6) });
  }
  return { instances, events };
}

/** The same event as the service reads it (what verify + live-event produce), for the pure rule test. */
export function toLiveEvent(e: ModelEvent, instances: RoomInstance[]): LiveEvent {
  const inst = instances[e.instance]!;
  const room: RoomRef = { sid: inst.sid, createdMs: inst.createdMs };
  const p = e.opts.participant;
  const participant = p
    ? { sid: p.sid!, identity: p.identity!, name: p.identity!, kind: ParticipantInfo_Kind[p.kind ?? 0]!, joinedAtMs: p.joinedAtMs! }
    : { sid: '', identity: '', name: '', kind: 'STANDARD', joinedAtMs: 0 };
  const tr = e.opts.track;
  const track = tr ? { sid: tr.sid!, participantSid: participant.sid, type: TrackType[tr.type!], source: TrackSource[tr.source!], muted: false } : null;
  switch (e.type) {
    case 'room_started':
    case 'room_finished':
      return { kind: e.type, room };
    case 'participant_joined':
      return { kind: 'participant_joined', room, participant };
    case 'participant_left':
    case 'participant_connection_aborted':
      return { kind: 'participant_left', room, participant };
    case 'track_published':
    case 'track_unpublished':
      return { kind: e.type, room, participant, track: track! };
    case 'egress_started':
    case 'egress_updated':
    case 'egress_ended': {
      const g = e.opts.egress!;
      return {
        kind: 'egress',
        room: { sid: inst.sid, createdMs: null },
        egress: {
          egressId: g.egressId!,
          status: EgressStatus[g.status!],
          startedAtMs: g.startedAtMs!,
          endedAtMs: e.type === 'egress_ended' ? g.endedAtMs! : 0,
          updatedAtMs: g.updatedAtMs!,
        },
      };
    }
    default: {
      const g = e.opts.ingress!;
      return {
        kind: 'ingress',
        room: { sid: inst.sid, createdMs: null },
        ingress: { ingressId: g.ingressId!, status: IngressState_Status[g.status!], updatedAtMs: g.updatedAtMs! },
      };
    }
  }
}
