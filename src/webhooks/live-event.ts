import {
  EgressStatus,
  IngressState_Status,
  ParticipantInfo_Kind,
  TrackSource,
  TrackType,
  type ParticipantInfo,
  type TrackInfo,
  type WebhookEvent,
} from '@livekit/protocol';
import { idProblem } from '../sessions/event-limits.js';
import type { LiveEvent, LiveParticipant, LiveTrack, RoomRef } from '../sessions/live-state.js';

/** What the event log keeps of an event besides its type and room (shown in `Session.events`). */
export type EventDetail = { participantIdentity: string | null; trackSid: string | null; egressId: string | null };

export type LiveFields = { live: LiveEvent | null; detail: EventDetail; roomName: string | null; problems: string[] };

const nsToMs = (ns: bigint) => Number(ns / 1_000_000n);
const enumName = (e: Record<number, string>, value: number) => e[value] ?? String(value);

/**
 * Reads the live-state part of a verified LiveKit WebhookEvent: who joined or left, which track, which egress or ingress,
 * and in which room instance. Egress and ingress events carry no `room`: their instance is `roomId` (creation time unknown).
 */
export function liveFieldsOf(event: WebhookEvent, room: RoomRef | null): LiveFields {
  const problems: string[] = [];
  const check = (name: string, value: string) => {
    const p = idProblem(value);
    if (p) problems.push(`${name} ${p}`);
    return value;
  };
  const detail: EventDetail = { participantIdentity: null, trackSid: null, egressId: null };
  const participant = event.participant ? participantOf(event.participant, check) : null;
  if (participant) detail.participantIdentity = participant.identity;
  const track = event.track && participant ? trackOf(event.track, participant.sid, check) : null;
  if (track) detail.trackSid = track.sid;

  let live: LiveEvent | null = null;
  let roomName: string | null = null;
  const type = event.event;
  if (room && (type === 'room_started' || type === 'room_finished')) live = { kind: type, room };
  else if (room && participant && type === 'participant_joined') live = { kind: 'participant_joined', room, participant };
  else if (room && participant && (type === 'participant_left' || type === 'participant_connection_aborted'))
    live = { kind: 'participant_left', room, participant };
  else if (room && participant && track && (type === 'track_published' || type === 'track_unpublished')) live = { kind: type, room, participant, track };
  else if (event.egressInfo && type.startsWith('egress_')) {
    const e = event.egressInfo;
    detail.egressId = check('egressInfo.egressId', e.egressId);
    roomName = e.roomName || null;
    if (e.roomId && e.egressId) {
      live = {
        kind: 'egress',
        room: { sid: check('egressInfo.roomId', e.roomId), createdMs: null },
        egress: {
          egressId: e.egressId,
          status: enumName(EgressStatus, e.status),
          startedAtMs: nsToMs(e.startedAt),
          endedAtMs: nsToMs(e.endedAt),
          updatedAtMs: nsToMs(e.updatedAt),
        },
      };
    }
  } else if (event.ingressInfo && type.startsWith('ingress_')) {
    const i = event.ingressInfo;
    roomName = i.roomName || null;
    const roomId = i.state?.roomId ?? '';
    if (roomId && i.ingressId) {
      live = {
        kind: 'ingress',
        room: { sid: check('ingressInfo.state.roomId', roomId), createdMs: null },
        ingress: {
          ingressId: check('ingressInfo.ingressId', i.ingressId),
          status: enumName(IngressState_Status, i.state?.status ?? 0),
          updatedAtMs: nsToMs(i.state?.updatedAt ?? 0n),
        },
      };
    }
  }
  if (roomName) check(type.startsWith('egress_') ? 'egressInfo.roomName' : 'ingressInfo.roomName', roomName);
  return { live, detail, roomName, problems };
}

function participantOf(p: ParticipantInfo, check: (name: string, value: string) => string): LiveParticipant {
  return {
    sid: check('participant.sid', p.sid),
    identity: check('participant.identity', p.identity),
    name: check('participant.name', p.name),
    kind: enumName(ParticipantInfo_Kind, p.kind),
    joinedAtMs: Number(p.joinedAtMs) || Number(p.joinedAt) * 1000,
  };
}

function trackOf(t: TrackInfo, participantSid: string, check: (name: string, value: string) => string): LiveTrack {
  return { sid: check('track.sid', t.sid), participantSid, type: enumName(TrackType, t.type), source: enumName(TrackSource, t.source), muted: t.muted };
}
