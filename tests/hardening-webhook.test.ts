/**
 * Issue 8 hardening of the webhook route: signed events that cannot be stored are refused with a final
 * 400 (not a 500 LiveKit retries forever).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ID_LENGTH, MAX_ROOM_NAME_LENGTH } from '../src/sessions/limits.js';
import { buildEvent, encodeEvent, newRoomInstance, postWebhook, signBody } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';

let t: TestApp;

beforeAll(async () => {
  // Auto-create on: every accepted room_started would write a session, so "nothing written" is a real check.
  t = await startTestApp({ SESSION_AUTO_CREATE: 'true' });
});
afterAll(() => t?.stop());

const db = () => t.app.database.db;
const roomName = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}`;

type WebhookEvent = ReturnType<typeof buildEvent>;

async function send(event: WebhookEvent) {
  const body = encodeEvent(event);
  return postWebhook(t.url, body, await signBody(body));
}

/** Rows in the app's own schema (only this file writes there); a NUL cannot even be a query parameter. */
async function rowCount() {
  const count = async (table: 'webhook_events' | 'sessions' | 'session_changes') =>
    Number(
      (
        await db()
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return (await count('webhook_events')) + (await count('sessions')) + (await count('session_changes'));
}

describe('signed webhooks that cannot be stored (issue 8, item 6)', () => {
  const cases: [string, (e: WebhookEvent) => void, RegExp][] = [
    ['a room name with U+0000', (e) => (e.room!.name = `nul\u0000${roomName('x')}`), /room\.name must not contain NUL/],
    ['a room name over LiveKit’s limit', (e) => (e.room!.name = 'r'.repeat(MAX_ROOM_NAME_LENGTH + 1)), /room\.name must be at most 256/],
    ['a room name of a few KB', (e) => (e.room!.name = 'r'.repeat(4096)), /room\.name/],
    ['a blank room name', (e) => (e.room!.name = '   '), /room\.name must not be empty/],
    ['an event id of a few KB', (e) => (e.id = `EV_${'i'.repeat(4096)}`), /id must be at most 256/],
    ['an event id with U+0000', (e) => (e.id = `EV_\u0000${Math.random()}`), /id must not contain NUL/],
    ['a room sid of a few KB', (e) => (e.room!.sid = `RM_${'s'.repeat(4096)}`), /room\.sid/],
    ['an event type of a few KB', (e) => (e.event = 'x'.repeat(4096)), /event must be at most/],
    ['createdAt 9223372036854775807', (e) => (e.createdAt = 9223372036854775807n), /createdAt must be a time/],
    ['a negative createdAt', (e) => (e.createdAt = -5n), /createdAt must be a time/],
    ['room creationTimeMs 9223372036854775807', (e) => (e.room!.creationTimeMs = 9223372036854775807n), /room\.creationTime must be a time/],
  ];

  it.each(cases)('%s: 400 E_WEBHOOK_INVALID_PAYLOAD in the envelope, nothing written', async (_label, mutate, message) => {
    const event = buildEvent('room_started', newRoomInstance(roomName('bad')));
    mutate(event);
    const before = await rowCount();
    const res = await send(event);
    expect(res.status, res.text).toBe(400);
    expect(Object.keys(res.json).sort()).toEqual(['errcode', 'erresid', 'errmesg', 'success']);
    expect(res.json).toMatchObject({ success: false, errcode: 'E_WEBHOOK_INVALID_PAYLOAD' });
    expect(res.json.errmesg).toMatch(message);
    expect(await rowCount()).toBe(before);
    // The same body again: still refused (final), still nothing written.
    expect((await send(event)).status).toBe(400);
    expect(await rowCount()).toBe(before);
  });

  it('accepts names and ids exactly at the limits, and stores them as sent', async () => {
    const name = `${roomName('edge')}-`.padEnd(MAX_ROOM_NAME_LENGTH, 'n');
    const event = buildEvent('room_started', newRoomInstance(name));
    event.id = `EV_${'e'.repeat(MAX_ID_LENGTH - 3 - 8)}${Math.random().toString(36).slice(2, 10)}`;
    const res = await send(event);
    expect(res.status, res.text).toBe(200);
    expect(res.json.results).toMatchObject({ action: 'status_updated', new_status: 'live' });
    const row = await db().selectFrom('sessions').select(['room_name', 'status']).where('room_name', '=', name).executeTakeFirstOrThrow();
    expect(row).toEqual({ room_name: name, status: 'LIVE' });
  });
});
