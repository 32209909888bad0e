import { resolveCursorConnection } from '@pothos/plugin-relay';
import type { SessionRow } from '../db/types.js';
import { listSessionEvents, type SessionEventRow } from '../sessions/repo.js';
import { liveView, type LiveEgress, type LiveIngress, type LiveParticipant, type LiveTrack } from '../sessions/live-state.js';
import { builder } from './builder.js';
import { userError } from './errors.js';
import { assertPageSize, PAGE_DEFAULT, PAGE_MAX } from './pagination.js';
import { SessionRef } from './session.js';

/**
 * The live state of a session (participants, tracks, egresses, ingresses, its event log). Every field sits on
 * Session, so it is readable exactly where the Session is: roomList, or roomJoin/roomAdmin for its room.
 */

const msDate = (ms: number) => (ms > 0 ? new Date(ms) : null);

const TrackRef = builder.objectRef<LiveTrack>('Track').implement({
  description: 'A track a participant publishes. Readable where its Session is.',
  fields: (t) => ({
    sid: t.exposeString('sid', { description: "LiveKit's track sid" }),
    type: t.exposeString('type', { description: "LiveKit's TrackType: AUDIO, VIDEO or DATA" }),
    source: t.exposeString('source', { description: "LiveKit's TrackSource: CAMERA, MICROPHONE, SCREEN_SHARE, SCREEN_SHARE_AUDIO or UNKNOWN" }),
    muted: t.exposeBoolean('muted', { description: 'Muted when published (LiveKit sends no webhook for later mutes)' }),
  }),
});

const ParticipantRef = builder.objectRef<LiveParticipant & { tracks: LiveTrack[] }>('Participant').implement({
  description: 'Someone (or something: a recorder, a stream input, an agent) in the room now. Readable where its Session is.',
  fields: (t) => ({
    sid: t.exposeString('sid', { description: "LiveKit's participant sid: a rejoin is a new sid" }),
    identity: t.exposeString('identity', { description: 'The identity of the token it joined with' }),
    name: t.exposeString('name', { description: 'Its display name (may be empty)' }),
    kind: t.exposeString('kind', { description: "LiveKit's participant kind: STANDARD, SIP, AGENT, EGRESS (a recorder), INGRESS (a stream input), ..." }),
    joinedAt: t.field({ type: 'DateTime', nullable: true, description: 'When it joined (null if LiveKit did not say)', resolve: (p) => msDate(p.joinedAtMs) }),
    tracks: t.field({ type: [TrackRef], description: 'Its published tracks, by sid', resolve: (p) => p.tracks }),
  }),
});

const EgressRef = builder.objectRef<LiveEgress>('Egress').implement({
  description: 'A recording or stream out of the room (LiveKit egress), with its latest status. Readable where its Session is.',
  fields: (t) => ({
    egressId: t.exposeString('egressId', { description: "LiveKit's egress id" }),
    status: t.exposeString('status', {
      description:
        "LiveKit's EgressStatus: EGRESS_STARTING, EGRESS_ACTIVE, EGRESS_ENDING (active), EGRESS_COMPLETE, EGRESS_FAILED, EGRESS_ABORTED, EGRESS_LIMIT_REACHED",
    }),
    startedAt: t.field({ type: 'DateTime', nullable: true, description: 'When it started', resolve: (e) => msDate(e.startedAtMs) }),
    endedAt: t.field({ type: 'DateTime', nullable: true, description: 'When it ended (null while active)', resolve: (e) => msDate(e.endedAtMs) }),
  }),
});

const IngressRef = builder.objectRef<LiveIngress>('Ingress').implement({
  description: 'A stream coming into the room (LiveKit ingress), with its latest status. Readable where its Session is.',
  fields: (t) => ({
    ingressId: t.exposeString('ingressId', { description: "LiveKit's ingress id" }),
    status: t.exposeString('status', {
      description: "LiveKit's ingress state: ENDPOINT_INACTIVE, ENDPOINT_BUFFERING, ENDPOINT_PUBLISHING, ENDPOINT_ERROR, ENDPOINT_COMPLETE",
    }),
  }),
});

const SessionEventRef = builder.objectRef<SessionEventRow>('SessionEvent').implement({
  description: 'One LiveKit webhook event recorded for a session, and what it did. Readable where its Session is.',
  fields: (t) => ({
    id: t.exposeString('id', { description: "LiveKit's event id (retries repeat it; recorded once)" }),
    eventType: t.exposeString('event_type', { description: 'room_started, participant_joined, track_published, egress_updated, ...' }),
    createdAt: t.expose('created_at', { type: 'DateTime', nullable: true, description: "LiveKit's time for the event" }),
    receivedAt: t.expose('received_at', { type: 'DateTime', description: 'When this service recorded it' }),
    outcome: t.exposeString('outcome', {
      description: 'What it did: status_updated, live_updated, no_change (nothing visible changed), stale_event (an older room instance), session_not_found',
    }),
    participantIdentity: t.exposeString('participant_identity', { nullable: true, description: 'The participant it is about, if any' }),
    trackSid: t.exposeString('track_sid', { nullable: true, description: 'The track it is about, if any' }),
    egressId: t.exposeString('egress_id', { nullable: true, description: 'The egress it is about, if any' }),
  }),
});

const view = (s: SessionRow) => liveView(s.live_state);

const encodeEventCursor = (seq: string) => Buffer.from(`ev:${seq}`).toString('base64url');
function decodeEventCursor(cursor: string): string {
  const match = /^ev:(0|[1-9]\d{0,17})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match || encodeEventCursor(match[1]!) !== cursor) throw userError('BAD_USER_INPUT', 'Malformed cursor');
  return match[1]!;
}

builder.objectFields(SessionRef, (t) => ({
  participantCount: t.int({
    description:
      'People in the current room instance: participants of kind STANDARD or SIP. Recorders (EGRESS), stream inputs (INGRESS) and agents (AGENT) are listed in `participants` but not counted. Counted from our own per-sid set (a left participant never comes back), never from the count inside webhooks.',
    resolve: (s) => view(s).participantCount,
  }),
  participants: t.field({
    type: [ParticipantRef],
    description: 'Who is in the current room instance, by join time (empty once it finished)',
    resolve: (s) => view(s).participants,
  }),
  recording: t.boolean({
    description: 'An egress of the current room instance is active (EGRESS_STARTING, EGRESS_ACTIVE or EGRESS_ENDING) and the instance has not finished',
    resolve: (s) => view(s).recording,
  }),
  egresses: t.field({ type: [EgressRef], description: "The current room instance's egresses, by start time", resolve: (s) => view(s).egresses }),
  ingresses: t.field({ type: [IngressRef], description: "The current room instance's ingresses", resolve: (s) => view(s).ingresses }),
  events: t.connection(
    {
      type: SessionEventRef,
      description: `The LiveKit webhook events recorded for this session, newest first, in pages of 1..${PAGE_MAX} (default ${PAGE_DEFAULT}). Kept RETENTION_DAYS.`,
      resolve: async (session, args, ctx) => {
        assertPageSize(args);
        return resolveCursorConnection<Promise<SessionEventRow[]>>(
          { args, toCursor: (e: SessionEventRow) => encodeEventCursor(e.seq), defaultSize: PAGE_DEFAULT, maxSize: PAGE_MAX },
          ({ before, after, limit, inverted }) =>
            listSessionEvents(ctx.db, session.id, {
              olderThan: after ? decodeEventCursor(after) : null,
              newerThan: before ? decodeEventCursor(before) : null,
              limit,
              oldestFirst: inverted,
            }),
        );
      },
    },
    { name: 'SessionEventConnection', description: "A page of a session's events" },
    { name: 'SessionEventEdge', description: 'One event in a page, with its cursor' },
  ),
}));
