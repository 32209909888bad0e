/**
 * A faithful stand-in for a LiveKit server's webhook sender (LiveKit itself cannot run here), shared by
 * the tests and the tools. What it sends matches livekit-server's webhook notifier:
 * - POST with `Content-Type: application/webhook+json` and `Authorization: <bare JWT>`;
 * - the JWT is HS256, `iss` = API key, `nbf`, `exp` = now + 5 min, and a `sha256` claim holding the
 *   padded standard base64 of SHA-256 over the exact body bytes (signed with the SDK's AccessToken);
 * - the body is protobuf JSON of `WebhookEvent`: camelCase, unset fields omitted, int64 as strings,
 *   enums as strings, fields in .proto order, compact or with ", " after commas (Go's protojson
 *   adds such spaces at random);
 * - event ids `EV_` + 12 chars repeat on retries; room sids are `RM_` + 12 chars.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  EgressInfo,
  EgressStatus,
  IngressInfo,
  IngressInput,
  IngressState,
  IngressState_Status,
  ParticipantInfo,
  ParticipantInfo_Kind,
  ParticipantInfo_State,
  Room,
  TrackInfo,
  TrackSource,
  TrackType,
  WebhookEvent,
} from '@livekit/protocol';
import { AccessToken } from 'livekit-server-sdk';
import { DEV_API_KEY, DEV_API_SECRET } from '../../src/config.js';
import { WEBHOOK_PATH } from '../../src/webhooks/route.js';
import type { LiveKitEventType } from '../../src/sessions/live-state.js';

export type Credentials = { apiKey: string; apiSecret: string };
export const DEV_CREDENTIALS: Credentials = { apiKey: DEV_API_KEY, apiSecret: DEV_API_SECRET };

const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
/** LiveKit's short ids: a prefix and 12 base57 characters. */
export function shortId(prefix: string): string {
  const bytes = randomBytes(12);
  let out = prefix;
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}
export const newEventId = () => shortId('EV_');
export const newRoomSid = () => shortId('RM_');

/** One room instance: a name, and the sid and creation time LiveKit gave it. */
export type RoomInstance = { name: string; sid: string; createdMs: number };

export function newRoomInstance(name: string, createdMs = Date.now()): RoomInstance {
  return { name, sid: newRoomSid(), createdMs };
}

export type EventType = LiveKitEventType;

/** A room as LiveKit describes it in webhooks and in RoomService answers. */
export function protoRoom(room: RoomInstance, numParticipants = 0): Room {
  return new Room({
    sid: room.sid,
    name: room.name,
    emptyTimeout: 300,
    departureTimeout: 20,
    creationTime: BigInt(Math.floor(room.createdMs / 1000)),
    creationTimeMs: BigInt(room.createdMs),
    turnPassword: '',
    numParticipants,
  });
}

/** Who an event is about; the same sid across events is the same participant (a rejoin is a new sid). */
export type ParticipantSpec = { sid?: string; identity?: string; name?: string; kind?: ParticipantInfo_Kind; joinedAtMs?: number };
export type TrackSpec = { sid?: string; type?: TrackType; source?: TrackSource; muted?: boolean; name?: string };
/** Times in ms (LiveKit sends nanoseconds). */
export type EgressSpec = { egressId?: string; status?: EgressStatus; startedAtMs?: number; endedAtMs?: number; updatedAtMs?: number };
export type IngressSpec = { ingressId?: string; status?: IngressState_Status; updatedAtMs?: number };

export type EventOptions = {
  id?: string;
  createdAt?: number;
  identity?: string;
  participant?: ParticipantSpec;
  track?: TrackSpec;
  egress?: EgressSpec;
  ingress?: IngressSpec;
  /** `room.numParticipants` as LiveKit puts it in the event (often stale: never count from it). */
  numParticipants?: number;
};

const msToNs = (ms: number) => BigInt(Math.round(ms)) * 1_000_000n;

const DEFAULT_EGRESS_STATUS: Record<string, EgressStatus> = {
  egress_started: EgressStatus.EGRESS_STARTING,
  egress_updated: EgressStatus.EGRESS_ACTIVE,
  egress_ended: EgressStatus.EGRESS_COMPLETE,
};

/**
 * Builds a WebhookEvent as livekit-server fills it for each event type: participant events carry `room` and
 * `participant`; track events add `track`; egress events carry only `egressInfo` (room by `roomId`/`roomName`,
 * times in ns); ingress events only `ingressInfo` (room in `state.roomId`).
 */
export function buildEvent(type: EventType | (string & {}), room: RoomInstance, opts: EventOptions = {}): WebhookEvent {
  const createdAt = BigInt(opts.createdAt ?? Math.floor(Date.now() / 1000));
  const spec = opts.participant ?? {};
  const identity = spec.identity ?? opts.identity ?? 'alice';
  const joinedAtMs = BigInt(spec.joinedAtMs ?? Number(createdAt) * 1000);
  const participant = new ParticipantInfo({
    sid: spec.sid ?? shortId('PA_'),
    identity,
    name: spec.name ?? identity,
    kind: spec.kind ?? ParticipantInfo_Kind.STANDARD,
    state: type === 'participant_left' || type === 'participant_connection_aborted' ? ParticipantInfo_State.DISCONNECTED : ParticipantInfo_State.ACTIVE,
    joinedAt: joinedAtMs / 1000n,
    joinedAtMs,
    version: 1,
  });
  const t = opts.track ?? {};
  const track = new TrackInfo({
    sid: t.sid ?? shortId('TR_'),
    type: t.type ?? TrackType.AUDIO,
    name: t.name ?? 'microphone',
    source: t.source ?? TrackSource.MICROPHONE,
    muted: t.muted ?? false,
    mimeType: (t.type ?? TrackType.AUDIO) === TrackType.VIDEO ? 'video/VP8' : 'audio/red',
  });
  const event = new WebhookEvent({ event: type, id: opts.id ?? newEventId(), createdAt });
  const nowMs = Number(createdAt) * 1000;

  if (type.startsWith('participant_')) {
    event.room = protoRoom(room, opts.numParticipants ?? 1);
    event.participant = participant;
  } else if (type.startsWith('track_')) {
    event.room = protoRoom(room, opts.numParticipants ?? 1);
    event.participant = participant;
    event.track = track;
  } else if (type.startsWith('egress_')) {
    const e = opts.egress ?? {};
    const status = e.status ?? DEFAULT_EGRESS_STATUS[type] ?? EgressStatus.EGRESS_ACTIVE;
    event.egressInfo = new EgressInfo({
      egressId: e.egressId ?? shortId('EG_'),
      roomId: room.sid,
      roomName: room.name,
      status,
      startedAt: msToNs(e.startedAtMs ?? nowMs),
      endedAt: type === 'egress_ended' ? msToNs(e.endedAtMs ?? nowMs) : 0n,
      updatedAt: msToNs(e.updatedAtMs ?? nowMs),
    });
  } else if (type.startsWith('ingress_')) {
    const i = opts.ingress ?? {};
    event.ingressInfo = new IngressInfo({
      ingressId: i.ingressId ?? shortId('IN_'),
      name: 'camera',
      streamKey: shortId(''),
      url: 'rtmp://localhost/x',
      inputType: IngressInput.RTMP_INPUT,
      roomName: room.name,
      participantIdentity: 'ingress',
      state: new IngressState({
        status: i.status ?? (type === 'ingress_ended' ? IngressState_Status.ENDPOINT_INACTIVE : IngressState_Status.ENDPOINT_PUBLISHING),
        roomId: room.sid,
        updatedAt: msToNs(i.updatedAtMs ?? nowMs),
      }),
    });
  } else {
    event.room = protoRoom(room, opts.numParticipants ?? 0);
  }
  return event;
}

export type BodyStyle = 'compact' | 'spaced';

/** Protobuf JSON of the event; "spaced" puts ", " after commas as some LiveKit builds do. */
export function encodeEvent(event: WebhookEvent, style: BodyStyle = 'compact'): string {
  const json = event.toJson() as unknown;
  return style === 'compact' ? JSON.stringify(json) : stringifySpaced(json);
}

function stringifySpaced(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stringifySpaced).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${stringifySpaced(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value);
}

export const bodySha256 = (body: string | Buffer) => createHash('sha256').update(body).digest('base64');

/** The bare JWT LiveKit puts in `Authorization` for this exact body. */
export async function signBody(body: string | Buffer, creds: Credentials = DEV_CREDENTIALS, ttl: string | number = '5m'): Promise<string> {
  const token = new AccessToken(creds.apiKey, creds.apiSecret, { ttl });
  token.sha256 = bodySha256(body);
  return token.toJwt();
}

export type WebhookResponse = { status: number; headers: Headers; json: any; text: string };

/** POSTs a body exactly as LiveKit does. */
export async function postWebhook(
  baseUrl: string,
  body: string | Buffer,
  authorization: string | undefined,
  opts: { contentType?: string; method?: string; headers?: Record<string, string> } = {},
): Promise<WebhookResponse> {
  const headers: Record<string, string> = { 'Content-Type': opts.contentType ?? 'application/webhook+json', ...opts.headers };
  if (authorization !== undefined) headers.Authorization = authorization;
  const payload = typeof body === 'string' ? body : new Uint8Array(body);
  const res = await fetch(`${baseUrl}${WEBHOOK_PATH}`, { method: opts.method ?? 'POST', headers, body: opts.method === 'GET' ? undefined : payload });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** Builds, encodes, signs and sends one event. */
export async function sendEvent(
  baseUrl: string,
  type: EventType | (string & {}),
  room: RoomInstance,
  opts: EventOptions & { style?: BodyStyle; creds?: Credentials } = {},
): Promise<WebhookResponse & { eventId: string; body: string }> {
  const event = buildEvent(type, room, opts);
  const body = encodeEvent(event, opts.style);
  const response = await postWebhook(baseUrl, body, await signBody(body, opts.creds));
  return { ...response, eventId: event.id, body };
}
