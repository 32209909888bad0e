/**
 * Webhook verification and access tokens, edge by edge, over real HTTP against the real app: the clock
 * tolerance LiveKit needs, the lifetime and algorithm limits, every refusal reason, how a verified body
 * becomes an event (creation times down to the millisecond, ids, rooms), and what each grant may read.
 */
import { createHash, createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { AccessToken } from 'livekit-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bodySha256,
  buildEvent,
  encodeEvent,
  newEventId,
  postWebhook,
  protoRoom,
  sendEvent,
  signBody,
  type RoomInstance,
} from '../tools/kit/livekit-emulator.js';
import { WebhookEvent } from '@livekit/protocol';
import { startTestApp, type TestApp } from './support/app.js';
import { adminToken, createSession, errorCodes, gql, mintToken } from '../tools/kit/graphql.js';
import { wsClient } from '../tools/kit/clients.js';

let t: TestApp;
let admin: string;

beforeAll(async () => {
  t = await startTestApp();
  admin = await adminToken();
});
afterAll(() => t?.stop());

const db = () => t.app.database.db;
const roomName = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}`;
const sessionRow = (name: string) => db().selectFrom('sessions').selectAll().where('room_name', '=', name).executeTakeFirstOrThrow();
const eventRow = (id: string) => db().selectFrom('webhook_events').selectAll().where('id', '=', id).executeTakeFirst();
const now = () => Math.floor(Date.now() / 1000);
const SECRET = new TextEncoder().encode('secret');

/** A JWT with exactly these header fields and claims, HMAC-signed with `secret` (default: the dev secret). */
async function craftJwt(claims: Record<string, unknown>, opts: { alg?: 'HS256' | 'HS384' | 'HS512'; secret?: string; header?: Record<string, unknown> } = {}) {
  const alg = opts.alg ?? 'HS256';
  return new SignJWT(claims).setProtectedHeader({ alg, ...opts.header }).sign(opts.secret ? new TextEncoder().encode(opts.secret) : SECRET);
}

/** A webhook token for `body` with explicit times (seconds relative to now). */
function webhookJwt(body: string, times: { nbf?: number | null; iat?: number | null; exp?: number | string | null }, extra: Record<string, unknown> = {}) {
  const claims: Record<string, unknown> = { iss: 'devkey', sha256: bodySha256(body), ...extra };
  if (times.nbf != null) claims.nbf = now() + times.nbf;
  if (times.iat != null) claims.iat = now() + times.iat;
  if (typeof times.exp === 'number') claims.exp = now() + times.exp;
  else if (times.exp !== null && times.exp !== undefined) claims.exp = times.exp;
  return craftJwt(claims);
}

const startedBody = (name: string) =>
  encodeEvent(buildEvent('room_started', { name, sid: `RM_${Math.random().toString(36).slice(2, 14)}`, createdMs: Date.now() }));

async function expectRefused(body: string, auth: string | undefined, status: number, errcode: string, mesg: string | RegExp) {
  const res = await postWebhook(t.url, body, auth);
  expect(res.status, res.text).toBe(status);
  expect(res.json).toMatchObject({ success: false, errcode });
  if (typeof mesg === 'string') expect(res.json.errmesg).toBe(mesg);
  else expect(res.json.errmesg).toMatch(mesg);
}
const refusedAs = (reason: string) => `Webhook verification failed: ${reason}`;

describe('webhook tokens', () => {
  it('accepts a token 30 s past its expiry (LiveKit clocks drift; tolerance 60 s) and refuses one 90 s past it', async () => {
    const name = roomName('skew');
    await createSession(t.url, name, admin);
    const body = startedBody(name);
    await expectRefused(body, await webhookJwt(body, { nbf: -390, exp: -90 }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('token expired'));
    const late = await postWebhook(t.url, body, await webhookJwt(body, { nbf: -330, exp: -30 }));
    expect(late.status, late.text).toBe(200);
    expect(late.json.results).toMatchObject({ action: 'status_updated', new_status: 'live' });
  });

  it('accepts a token whose nbf is 30 s ahead, refuses one 90 s ahead (not yet valid)', async () => {
    const name = roomName('nbf');
    await createSession(t.url, name, admin);
    const body = startedBody(name);
    await expectRefused(body, await webhookJwt(body, { nbf: 90, exp: 300 }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('token not yet valid'));
    expect((await postWebhook(t.url, body, await webhookJwt(body, { nbf: 30, exp: 300 }))).status).toBe(200);
  });

  it('takes a lifetime of up to 10 minutes (from nbf, or iat without nbf), and refuses longer or unanchored tokens', async () => {
    const body = startedBody(roomName('life'));
    expect((await postWebhook(t.url, body, await webhookJwt(body, { nbf: -10, exp: 590 }))).status).toBe(200);
    expect((await postWebhook(t.url, body, await webhookJwt(body, { iat: -10, exp: 590 }))).status).toBe(200);
    await expectRefused(
      body,
      await webhookJwt(body, { nbf: -10, exp: 591 }),
      401,
      'E_WEBHOOK_INVALID_SIGNATURE',
      refusedAs('token lifetime exceeds 10 minutes'),
    );
    await expectRefused(
      body,
      await webhookJwt(body, { iat: -10, exp: 591 }),
      401,
      'E_WEBHOOK_INVALID_SIGNATURE',
      refusedAs('token lifetime exceeds 10 minutes'),
    );
    // nbf wins over iat when both are there.
    expect((await postWebhook(t.url, body, await webhookJwt(body, { nbf: -10, iat: -3600, exp: 590 }))).status).toBe(200);
    await expectRefused(body, await webhookJwt(body, { exp: 300 }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('token has neither nbf nor iat'));
    await expectRefused(body, await webhookJwt(body, { nbf: -10 }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('token has no expiry'));
    await expectRefused(body, await webhookJwt(body, { nbf: -10, exp: 'soon' }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('invalid exp claim'));
    await expectRefused(body, await webhookJwt(body, { nbf: -10, exp: 300 }, { iat: 'x' }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('invalid iat claim'));
  });

  it('refuses other algorithms, unknown or non-string issuers, and malformed tokens, each with its reason', async () => {
    const body = startedBody(roomName('alg'));
    const claims = { iss: 'devkey', sha256: bodySha256(body), nbf: now() - 10, exp: now() + 290 };
    await expectRefused(body, await craftJwt(claims, { alg: 'HS384' }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('unsupported algorithm "HS384"'));
    await expectRefused(body, await craftJwt(claims, { alg: 'HS512' }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('unsupported algorithm "HS512"'));
    await expectRefused(body, await craftJwt({ ...claims, iss: 'otherkey' }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('unknown API key'));
    await expectRefused(body, await craftJwt({ ...claims, iss: 7 }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('unknown API key'));
    await expectRefused(body, await craftJwt(claims, { secret: 'not-the-secret' }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('bad signature'));
    const good = await craftJwt(claims);
    const [h, p, s] = good.split('.') as [string, string, string];
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    // Not a JWT at all is "malformed" before it is anything else (even with an issuer nobody knows).
    const stranger = await craftJwt({ ...claims, iss: 'otherkey' });
    for (const bad of [
      `${stranger}.x`,
      `${h}.${p}`,
      `${h}.${p}.`,
      `${h}.${p}.${s}.x`,
      `x.${p}.${s}`,
      `${b64([1])}.${p}.${s}`,
      `${b64(null)}.${p}.${s}`,
      `${h}.${b64('str')}.${s}`,
    ]) {
      await expectRefused(body, bad, 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('malformed token'));
    }
    // Correctly signed, but with a critical header extension nobody knows: refused as malformed.
    const critHeader = b64({ alg: 'HS256', crit: ['x-unknown'], 'x-unknown': 1 });
    const critSig = createHmac('sha256', 'secret').update(`${critHeader}.${p}`).digest('base64url');
    await expectRefused(body, `${critHeader}.${p}.${critSig}`, 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('malformed token'));
    await expectRefused(body, `${h}.${p}.${s.slice(1)}`, 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('bad signature'));
    // The header's alg is quoted and cut short in the message, whatever it holds.
    await expectRefused(
      body,
      `${b64({ alg: 'x'.repeat(100) })}.${p}.${s}`,
      401,
      'E_WEBHOOK_INVALID_SIGNATURE',
      /^Webhook verification failed: unsupported algorithm "x{39}$/,
    );
  });

  it('needs a sha256 claim that matches the exact body bytes; a short or empty claim is a mismatch, not a crash', async () => {
    const body = startedBody(roomName('sha'));
    const times = { nbf: -10, exp: 290 };
    await expectRefused(body, await webhookJwt(body, times, { sha256: '' }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('token has no sha256 claim'));
    await expectRefused(body, await webhookJwt(body, times, { sha256: 5 }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('token has no sha256 claim'));
    const short = createHash('sha1').update(body).digest('base64');
    await expectRefused(body, await webhookJwt(body, times, { sha256: short }), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('hash mismatch'));
    await expectRefused(`${body} `, await webhookJwt(body, times), 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('hash mismatch'));
  });

  it('takes the bare token, "Bearer " in any case and surrounding spaces; a blank header is a missing one', async () => {
    const body = startedBody(roomName('hdr'));
    const jwt = await signBody(body);
    for (const auth of [jwt, `Bearer ${jwt}`, `bearer   ${jwt}`, `  ${jwt}  `])
      expect((await postWebhook(t.url, body, auth)).status, auth.slice(0, 12)).toBe(200);
    await expectRefused(body, '   ', 401, 'E_WEBHOOK_MISSING_AUTH', 'Missing Authorization header');
    await expectRefused(body, `Token ${jwt}`, 401, 'E_WEBHOOK_INVALID_SIGNATURE', refusedAs('malformed token'));
  });
});

/** Signs and posts an arbitrary body as LiveKit would. */
const postSigned = async (body: string | Buffer) => postWebhook(t.url, body, await signBody(body));

describe('verified bodies', () => {
  it('must be UTF-8 JSON objects holding a LiveKit event with a type', async () => {
    const cases: Array<[string | Buffer, string, string | RegExp]> = [
      [Buffer.from([0x7b, 0xff, 0x7d]), 'E_WEBHOOK_INVALID_JSON', 'Webhook body is not valid UTF-8 JSON'],
      ['{"event":', 'E_WEBHOOK_INVALID_JSON', 'Webhook body is not valid UTF-8 JSON'],
      ['null', 'E_WEBHOOK_INVALID_JSON', 'Webhook body is not a JSON object'],
      ['[{"event":"room_started"}]', 'E_WEBHOOK_INVALID_JSON', 'Webhook body is not a JSON object'],
      ['42', 'E_WEBHOOK_INVALID_JSON', 'Webhook body is not a JSON object'],
      ['{"event":"room_started","room":"not-a-room"}', 'E_WEBHOOK_INVALID_JSON', /^Webhook body is not a LiveKit event: .+/],
      ['{"id":"EV_x","room":{"name":"r"}}', 'E_WEBHOOK_MISSING_EVENT_TYPE', 'Webhook event has no "event" type'],
      ['{"event":""}', 'E_WEBHOOK_MISSING_EVENT_TYPE', 'Webhook event has no "event" type'],
    ];
    for (const [body, errcode, mesg] of cases) {
      const res = await postSigned(body);
      expect(res.status, String(body)).toBe(400);
      expect(res.json.errcode).toBe(errcode);
      if (typeof mesg === 'string') expect(res.json.errmesg).toBe(mesg);
      else expect(res.json.errmesg).toMatch(mesg);
    }
    // Unknown fields are ignored (newer LiveKit versions add some).
    const name = roomName('unknown');
    const res = await postSigned(
      JSON.stringify({ ...(buildEvent('participant_joined', { name, sid: 'RM_x', createdMs: Date.now() }).toJson() as object), futureField: 1 }),
    );
    expect(res.status, res.text).toBe(200);
  });

  it('orders instances created in the same second by creationTimeMs (a later instance with a smaller sid still wins)', async () => {
    const name = roomName('ms');
    await createSession(t.url, name, admin);
    const second = Math.floor(Date.now() / 1000) * 1000;
    const older: RoomInstance = { name, sid: 'RM_zzzzzzzzzzzz', createdMs: second + 100 };
    const newer: RoomInstance = { name, sid: 'RM_AAAAAAAAAAAA', createdMs: second + 900 };
    expect((await sendEvent(t.url, 'room_started', older)).json.results.action).toBe('status_updated');
    expect((await sendEvent(t.url, 'room_started', newer)).json.results.action).toBe('no_change');
    expect(await sessionRow(name)).toMatchObject({ room_sid: newer.sid, room_created_ms: second + 900 });
    // The older instance finishing must not stop the session its newer instance keeps live.
    expect((await sendEvent(t.url, 'room_finished', older)).json.results.action).toBe('stale_event');
    expect(await sessionRow(name)).toMatchObject({ status: 'LIVE', room_sid: newer.sid });
    expect((await sendEvent(t.url, 'room_finished', newer)).json.results).toMatchObject({ action: 'status_updated', new_status: 'stopped' });
  });

  it('falls back to creationTime (seconds), then to the event time, when a sender leaves out creationTimeMs', async () => {
    const send = async (name: string, room: { sid: string; creationTime?: bigint; creationTimeMs?: bigint }, createdAt?: bigint) => {
      const event = new WebhookEvent({ event: 'room_started', id: newEventId(), createdAt: createdAt ?? 0n });
      event.room = protoRoom({ name, sid: room.sid, createdMs: 0 });
      event.room.creationTime = room.creationTime ?? 0n;
      event.room.creationTimeMs = room.creationTimeMs ?? 0n;
      const body = encodeEvent(event);
      expect(body.includes('creationTimeMs')).toBe(room.creationTimeMs !== undefined);
      const res = await postSigned(body);
      expect(res.status, res.text).toBe(200);
      return { res, id: event.id };
    };
    const cases = [
      { room: { sid: 'RM_ms', creationTime: 1_700_000_000n, creationTimeMs: 1_700_000_000_123n }, createdAt: 1_700_000_005n, expected: 1_700_000_000_123 },
      { room: { sid: 'RM_s', creationTime: 1_700_000_001n }, createdAt: 1_700_000_005n, expected: 1_700_000_001_000 },
      { room: { sid: 'RM_at' }, createdAt: 1_700_000_002n, expected: 1_700_000_002_000 },
      { room: { sid: 'RM_none' }, createdAt: undefined, expected: 0 },
    ];
    for (const c of cases) {
      const name = roomName('fallback');
      await createSession(t.url, name, admin);
      const { id } = await send(name, c.room, c.createdAt);
      expect(await sessionRow(name), c.room.sid).toMatchObject({ status: 'LIVE', room_sid: c.room.sid, room_created_ms: c.expected });
      const stored = await eventRow(id);
      expect(stored?.created_at === null ? null : new Date(stored!.created_at).getTime()).toBe(c.createdAt === undefined ? null : Number(c.createdAt) * 1000);
    }
  });

  it('records the room name and sid; an event without an id is deduplicated by its body hash', async () => {
    const name = roomName('noid');
    await createSession(t.url, name, admin);
    const event = buildEvent('room_started', { name, sid: 'RM_noid', createdMs: Date.now() });
    event.id = '';
    const body = encodeEvent(event);
    const first = await postSigned(body);
    expect(first.json.results).toMatchObject({ action: 'status_updated' });
    expect(await eventRow(`sha256:${createHash('sha256').update(body).digest('hex')}`)).toMatchObject({
      room_name: name,
      room_sid: 'RM_noid',
      event_type: 'room_started',
    });
    expect((await postSigned(body)).json.results.action).toBe('duplicate');
    // A room without a name names no session: logged, nothing changes.
    const nameless = buildEvent('room_started', { name: '', sid: 'RM_nameless', createdMs: Date.now() });
    const res = await postSigned(encodeEvent(nameless));
    expect(res.status).toBe(200);
    expect(await eventRow(nameless.id)).toMatchObject({ room_name: null, session_id: null });
  });
});

const READ = 'query($room: String!) { sessionByRoom(roomName: $room) { roomName } }';
const LIST = '{ sessions(first: 1) { edges { node { id } } } }';
const CREATE = 'mutation($room: String!) { createSession(input: { roomName: $room }) { session { roomName } } }';

describe('access tokens on GraphQL', () => {
  let room: string;
  beforeAll(async () => {
    room = roomName('gq');
    await createSession(t.url, room, admin);
  });
  const messages = (res: Awaited<ReturnType<typeof gql>>) => (res.body.errors ?? []).map((e) => e.message);

  it('a roomAdmin token for room R reads R (and only R)', async () => {
    const token = await mintToken({ roomAdmin: true, room });
    expect((await gql(t.url, READ, { room }, token)).body.data?.sessionByRoom).toEqual({ roomName: room });
    const other = roomName('other');
    await createSession(t.url, other, admin);
    expect(errorCodes(await gql(t.url, READ, { room: other }, token))).toEqual(['FORBIDDEN']);
    expect(errorCodes(await gql(t.url, LIST, {}, token))).toEqual(['FORBIDDEN']);
  });

  it('a roomJoin token without a room reads nothing; roomCreate alone creates but cannot read or list', async () => {
    expect(errorCodes(await gql(t.url, READ, { room }, await mintToken({ roomJoin: true })))).toEqual(['FORBIDDEN']);
    const creator = await mintToken({ roomCreate: true });
    const fresh = roomName('made');
    expect((await gql(t.url, CREATE, { room: fresh }, creator)).body.data?.createSession.session).toEqual({ roomName: fresh });
    expect(errorCodes(await gql(t.url, READ, { room: fresh }, creator))).toEqual(['FORBIDDEN']);
    expect(errorCodes(await gql(t.url, LIST, {}, creator))).toEqual(['FORBIDDEN']);
    expect(errorCodes(await gql(t.url, CREATE, { room: roomName('x') }, await mintToken({ roomJoin: true, room })))).toEqual(['FORBIDDEN']);
  });

  it('30 s past expiry still works; 90 s past is UNAUTHENTICATED with the reason; other algorithms are refused', async () => {
    const claims = { iss: 'devkey', sub: 'late', video: { roomList: true } };
    const late = await craftJwt({ ...claims, nbf: now() - 600, exp: now() - 30 });
    expect((await gql(t.url, LIST, {}, late)).body.errors).toBeUndefined();
    const expired = await gql(t.url, LIST, {}, await craftJwt({ ...claims, nbf: now() - 600, exp: now() - 90 }));
    expect(errorCodes(expired)).toEqual(['UNAUTHENTICATED']);
    expect(messages(expired)).toEqual(['Invalid access token: token expired']);
    const hs512 = await gql(t.url, LIST, {}, await craftJwt({ ...claims, nbf: now() - 10, exp: now() + 600 }, { alg: 'HS512' }));
    expect(messages(hs512)).toEqual(['Invalid access token: unsupported algorithm "HS512"']);
    // Access tokens may live long (LiveKit's default is 6 h): the webhook lifetime limit does not apply.
    const long = await craftJwt({ ...claims, nbf: now() - 10, exp: now() + 6 * 3600 });
    expect((await gql(t.url, LIST, {}, long)).body.errors).toBeUndefined();
  });

  it('no token, a blank header, or a token in another scheme → UNAUTHENTICATED saying what to send; "bearer" in any case works', async () => {
    const list = await mintToken({ roomList: true });
    for (const headers of [{}, { Authorization: '   ' }]) {
      const res = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(headers as Record<string, string>) },
        body: JSON.stringify({ query: LIST }),
      });
      const json = (await res.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
      expect(json.errors.map((e) => e.extensions.code)).toEqual(['UNAUTHENTICATED']);
      expect(json.errors[0]!.message).toBe('Authentication required: send a LiveKit access token as "Authorization: Bearer <token>"');
    }
    for (const auth of [`bearer ${list}`, `BEARER  ${list}`, `  Bearer ${list}  `]) {
      const res = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: auth },
        body: JSON.stringify({ query: LIST }),
      });
      expect(((await res.json()) as { errors?: unknown }).errors, auth.slice(0, 10)).toBeUndefined();
    }
    const basic = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Basic ${list}` },
      body: JSON.stringify({ query: LIST }),
    });
    expect(((await basic.json()) as { errors: Array<{ message: string }> }).errors[0]!.message).toBe('Invalid access token: malformed token');
  });

  it('over WebSocket: a non-string authorization is no token (4401); a valid one subscribes', async () => {
    const closeCode = (params: Record<string, unknown>) =>
      new Promise<number>((resolve) => {
        const ws = wsClient(t.url, null, {
          connectionParams: params,
          lazy: false,
          onNonLazyError: () => {},
          on: { closed: (e) => resolve((e as { code: number }).code) },
        });
        setTimeout(() => void ws.dispose(), 10_000).unref();
      });
    expect(await closeCode({ authorization: 42 })).toBe(4401);
    expect(await closeCode({ authorization: `Bearer ${await new AccessToken('devkey', 'wrong', { ttl: '1m' }).toJwt()}` })).toBe(4401);
  });
});

describe('AUTH_MODE=off', () => {
  it('lets any client read, list, create and watch without a token', async () => {
    const open = await startTestApp({ AUTH_MODE: 'off' });
    try {
      const name = roomName('open');
      expect((await gql(open.url, CREATE, { room: name })).body.data?.createSession.session).toEqual({ roomName: name });
      expect((await gql(open.url, READ, { room: name })).body.data?.sessionByRoom).toEqual({ roomName: name });
      expect((await gql(open.url, LIST, {})).body.errors).toBeUndefined();
      // Even a garbage token is not looked at.
      expect((await gql(open.url, READ, { room: name }, 'garbage')).body.data?.sessionByRoom).toEqual({ roomName: name });
    } finally {
      await open.stop();
    }
  });
});
