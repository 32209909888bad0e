/**
 * CI smoke check of a running (compiled) server: /readyz answers 200, and one signed room_started webhook
 * for a session created over GraphQL is stored and turns the session LIVE. Exits 1 on any mismatch.
 * Usage: node --import tsx .ci/smoke.ts http://127.0.0.1:PORT
 */
import { AccessToken } from 'livekit-server-sdk';
import { DEV_CREDENTIALS, newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';

const url = process.argv[2];
if (!url) throw new Error('usage: smoke.ts <base url>');
// The key pair the server was started with (production refuses the development pair).
const creds = { apiKey: process.env.LIVEKIT_API_KEY ?? DEV_CREDENTIALS.apiKey, apiSecret: process.env.LIVEKIT_API_SECRET ?? DEV_CREDENTIALS.apiSecret };

async function graphql(query: string, variables: Record<string, unknown>) {
  const admin = new AccessToken(creds.apiKey, creds.apiSecret, { identity: 'ci-smoke', ttl: '5m' });
  admin.addGrant({ roomCreate: true, roomList: true });
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await admin.toJwt()}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: any; errors?: unknown };
}

const fail = (what: string, got: unknown) => {
  process.stderr.write(`smoke: ${what}: ${JSON.stringify(got)}\n`);
  process.exit(1);
};

const ready = await fetch(`${url}/readyz`);
if (ready.status !== 200) fail('/readyz', { status: ready.status, body: await ready.text() });

const roomName = `ci-smoke-${Date.now().toString(36)}`;
const created = await graphql('mutation($input: CreateSessionInput!) { createSession(input: $input) { session { id status version } } }', {
  input: { roomName },
});
if (created.data?.createSession?.session?.status !== 'READY') fail('createSession', created);

const res = await sendEvent(url, 'room_started', newRoomInstance(roomName), { creds });
if (res.status !== 200 || res.json?.results?.action !== 'status_updated') fail('signed room_started webhook', { status: res.status, body: res.text });

const read = await graphql('query($room: String!) { sessionByRoom(roomName: $room) { status version } }', { room: roomName });
if (read.data?.sessionByRoom?.status !== 'LIVE' || read.data.sessionByRoom.version !== 2) fail('session after the webhook', read);

process.stdout.write(`smoke: /readyz 200; webhook ${res.status} ${res.json.results.action}; session ${roomName} LIVE at version 2\n`);
