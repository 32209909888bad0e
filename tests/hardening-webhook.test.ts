/**
 * Issue 8 hardening of the webhook route: signed events that cannot be stored are refused with a final
 * 400 (not a 500 LiveKit retries forever); the token is checked before the body is read, the body read
 * is capped in time (408), and a sender that disconnects mid-body is not an error.
 */
import { connect } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { MAX_ID_LENGTH, MAX_ROOM_NAME_LENGTH } from '../src/sessions/limits.js';
import { buildEvent, encodeEvent, newRoomInstance, postWebhook, signBody } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';

let t: TestApp;
/** Every line the app logged (JSON, parsed). */
const logLines: { level: number; msg: string; [k: string]: unknown }[] = [];

beforeAll(async () => {
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
  // Auto-create on: every accepted room_started would write a session, so "nothing written" is a real check.
  t = await startTestApp({ SESSION_AUTO_CREATE: 'true', WEBHOOK_BODY_TIMEOUT_SECONDS: '1' }, undefined, { logger });
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

  it('names every problem of one event, each with its field, separated by "; "', async () => {
    const event = buildEvent('room_started', newRoomInstance('r'.repeat(MAX_ROOM_NAME_LENGTH + 1)));
    event.room!.sid = `RM_${'s'.repeat(4096)}`;
    const res = await send(event);
    expect(res.status, res.text).toBe(400);
    expect(res.json.errmesg).toMatch(/^Webhook event cannot be stored: room\.name must be at most 256 [^;]*; room\.sid must be at most 256 [^;]*$/);
  });

  it('a signed body LiveKit’s parser refuses: 400 E_WEBHOOK_INVALID_JSON quoting at most 200 characters of its complaint, not the 5 KB value', async () => {
    const json = JSON.parse(encodeEvent(buildEvent('room_started', newRoomInstance(roomName('junk'))))) as Record<string, unknown>;
    json.createdAt = 'x'.repeat(5000);
    const body = JSON.stringify(json);
    const res = await postWebhook(t.url, body, await signBody(body));
    expect(res.status, res.text).toBe(400);
    expect(res.json).toMatchObject({ success: false, errcode: 'E_WEBHOOK_INVALID_JSON' });
    const prefix = 'Webhook body is not a LiveKit event: ';
    expect(res.json.errmesg).toMatch(new RegExp(`^${prefix}cannot decode field livekit\\.WebhookEvent\\.created_at`));
    expect(res.json.errmesg.length).toBeLessThanOrEqual(prefix.length + 200);
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

/**
 * Sends a raw request: the head, then `body` (possibly only part of what Content-Length announced), then
 * waits for the answer (until the server closes, or `waitMs`), or disconnects at once when `disconnect`.
 */
function rawRequest(head: Record<string, string>, body: string, opts: { disconnect?: boolean; waitMs?: number } = {}): Promise<string> {
  const { port } = new URL(t.url);
  const lines = Object.entries({ Host: `127.0.0.1:${port}`, 'Content-Type': 'application/webhook+json', ...head }).map(([k, v]) => `${k}: ${v}`);
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(`POST /api/v1/webhooks/livekit HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n${body}`);
      if (opts.disconnect) setTimeout(() => (socket.destroy(), resolve('')), 50);
    });
    const timer = setTimeout(() => (socket.destroy(), resolve(answer)), opts.waitMs ?? 20_000);
    socket.on('data', (d: Buffer) => {
      answer += d.toString();
      // One complete answer is enough (the server may keep lingering on the connection).
      const [headText, rest] = answer.split('\r\n\r\n');
      const length = Number(/content-length: (\d+)/i.exec(headText ?? '')?.[1]);
      if (rest !== undefined && Buffer.byteLength(rest) >= length) {
        clearTimeout(timer);
        socket.destroy();
        resolve(answer);
      }
    });
    socket.on('close', () => (clearTimeout(timer), resolve(answer)));
    socket.on('error', (err) => (opts.disconnect ? undefined : reject(err)));
  });
}

const answerJson = (answer: string) => JSON.parse(answer.split('\r\n\r\n')[1] ?? 'null');

describe('webhook body handling (issue 8, item 11)', () => {
  it('refuses a junk token before the body is sent: 401 while the upload has not even started', async () => {
    const forged = await signBody('{}', { apiKey: 'devkey', apiSecret: 'not-the-secret' });
    for (const authorization of ['junk', forged, `Bearer ${forged}`]) {
      // 100 KB announced, nothing sent: the answer can only come from the headers.
      const answer = await rawRequest({ Authorization: authorization, 'Content-Length': '100000' }, '');
      expect(answer).toMatch(/^HTTP\/1\.1 401 /);
      expect(answerJson(answer)).toMatchObject({ success: false, errcode: 'E_WEBHOOK_INVALID_SIGNATURE' });
    }
    const missing = await rawRequest({ 'Content-Length': '100000' }, '');
    expect(answerJson(missing)).toMatchObject({ errcode: 'E_WEBHOOK_MISSING_AUTH' });
  });

  it('answers 408 E_REQUEST_TIMEOUT when a validly signed body does not arrive in time, and writes nothing', async () => {
    const event = buildEvent('room_started', newRoomInstance(roomName('slow')));
    const body = encodeEvent(event);
    const before = await rowCount();
    const answer = await rawRequest({ Authorization: await signBody(body), 'Content-Length': String(Buffer.byteLength(body)) }, body.slice(0, 20));
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(Object.keys(answerJson(answer)).sort()).toEqual(['errcode', 'erresid', 'errmesg', 'success']);
    expect(answerJson(answer)).toMatchObject({ success: false, errcode: 'E_REQUEST_TIMEOUT' });
    expect(await rowCount()).toBe(before);
  });

  it('logs a sender that disconnects mid-body at info (not as an error), and keeps serving', async () => {
    const body = encodeEvent(buildEvent('room_started', newRoomInstance(roomName('gone'))));
    const from = logLines.length;
    await rawRequest({ Authorization: await signBody(body), 'Content-Length': String(Buffer.byteLength(body)) }, body.slice(0, 20), { disconnect: true });
    const deadline = Date.now() + 10_000;
    while (!logLines.slice(from).some((l) => /disconnected/.test(l.msg)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const lines = logLines.slice(from);
    expect(lines.map((l) => l.msg)).toContainEqual(expect.stringMatching(/client disconnected before the body was complete/));
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    const ok = await send(buildEvent('room_started', newRoomInstance(roomName('after'))));
    expect(ok.status).toBe(200);
  });

  it('WEBHOOK_BODY_TIMEOUT_SECONDS defaults to 10', () => {
    expect(loadConfig({}).livekit.bodyTimeoutSeconds).toBe(10);
    expect(loadConfig({ WEBHOOK_BODY_TIMEOUT_SECONDS: '3' }).livekit.bodyTimeoutSeconds).toBe(3);
  });
});
