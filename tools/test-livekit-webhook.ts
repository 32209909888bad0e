/**
 * Sends a realistic LiveKit webhook sequence for one room to a running server, the way LiveKit does,
 * and prints each response (`npm run webhook:test`). It first creates the room's session through the
 * GraphQL `createSession` mutation, then sends: room_started, participant_joined, track_published,
 * participant_left, room_finished, and one tampered request (which must be refused).
 * Options: --url http://127.0.0.1:3000  --room NAME
 */
import { parseArgs } from 'node:util';
import { AccessToken } from 'livekit-server-sdk';
import { ConfigError, loadConfig } from '../src/config.js';
import { buildEvent, encodeEvent, newRoomInstance, postWebhook, signBody, type EventType } from './kit/livekit-emulator.js';

const { values } = parseArgs({ options: { url: { type: 'string' }, room: { type: 'string' } } });

try {
  const config = loadConfig();
  const url = values.url ?? `http://127.0.0.1:${config.port}`;
  const roomName = values.room ?? `webhook-test-${Date.now().toString(36)}`;
  const creds = { apiKey: config.livekit.apiKey, apiSecret: config.livekit.apiSecret };

  const admin = new AccessToken(creds.apiKey, creds.apiSecret, { identity: 'webhook-test', ttl: '5m' });
  admin.addGrant({ roomCreate: true, roomList: true });
  const created = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await admin.toJwt()}` },
    body: JSON.stringify({
      query: 'mutation($input: CreateSessionInput!) { createSession(input: $input) { session { id roomName status version } } }',
      variables: { input: { roomName, title: 'webhook:test' } },
    }),
  }).then((r) => r.json());
  process.stdout.write(`createSession ${roomName}: ${JSON.stringify(created)}\n\n`);

  const room = newRoomInstance(roomName);
  const sequence: EventType[] = ['room_started', 'participant_joined', 'track_published', 'participant_left', 'room_finished'];
  for (const type of sequence) {
    const body = encodeEvent(buildEvent(type, room));
    const res = await postWebhook(url, body, await signBody(body, creds));
    process.stdout.write(`${type.padEnd(20)} → ${res.status} ${res.text}\n`);
  }

  const body = encodeEvent(buildEvent('room_started', room));
  const tampered = await postWebhook(url, body.replace('room_started', 'room_finished'), await signBody(body, creds));
  process.stdout.write(`${'tampered body'.padEnd(20)} → ${tampered.status} ${tampered.text}\n`);
  if (tampered.status !== 401) process.exitCode = 1;
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  process.exit(1);
}
