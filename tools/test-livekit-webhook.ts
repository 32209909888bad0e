/**
 * Sends LiveKit webhooks to a running server the way LiveKit does and prints each response
 * (`npm run webhook:test -- --help`): the whole life of a room, or one event at a time so a person
 * can watch the session change in GraphiQL.
 */
import { AccessToken } from 'livekit-server-sdk';
import { ConfigError, loadConfig, type Config } from '../src/config.js';
import { LIVEKIT_EVENT_TYPES } from '../src/sessions/live-state.js';
import { fail, parseToolArgs, usageError } from './cli.js';
import { buildEvent, encodeEvent, newRoomInstance, postWebhook, signBody, type EventType, type RoomInstance } from './kit/livekit-emulator.js';

const EVENT_TYPES: readonly EventType[] = LIVEKIT_EVENT_TYPES;
const SEQUENCE: readonly EventType[] = ['room_started', 'participant_joined', 'track_published', 'participant_left', 'room_finished'];

const cli = {
  name: 'webhook:test',
  usage: `usage: npm run webhook:test -- [--url URL] [--room NAME] [--event TYPE]

Sends signed LiveKit webhooks to a running server (start one with \`npm start\`), creating the room's
session first through the createSession mutation if it has none, and prints each response.

  --url URL      the server (default http://127.0.0.1:PORT, PORT from the environment or env.local, else 3000)
  --room NAME    the room (default: a new webhook-test-… room)
  --event TYPE   send only this event, then print the session's status (needs --room). TYPE is one of
                 ${EVENT_TYPES.join(', ')}
  -h, --help     this text

Without --event it sends ${SEQUENCE.join(', ')} and one tampered request (which must get 401).

To watch a session go LIVE: open the server's /graphql (GraphiQL), run
  subscription { sessionStatusChanged(roomName: "demo") { status version eventType } }
then, in a terminal:
  npm run webhook:test -- --room demo --event room_started
  npm run webhook:test -- --room demo --event room_finished`,
};

const values = parseToolArgs(cli, { url: { type: 'string' }, room: { type: 'string' }, event: { type: 'string' } });

if (values.url !== undefined && !/^https?:\/\/[^/]/.test(values.url)) usageError(cli, `--url "${values.url}" is not an http:// or https:// URL`);
if (values.room !== undefined && values.room.trim() === '') usageError(cli, '--room needs a room name');
const event = values.event as EventType | undefined;
if (event !== undefined && !EVENT_TYPES.includes(event)) usageError(cli, `--event "${event}" is not one of ${EVENT_TYPES.join(', ')}`);
if (event !== undefined && values.room === undefined) usageError(cli, '--event needs --room NAME (the room whose session you watch)');

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  fail(cli, err instanceof ConfigError ? err.message : (err as Error).message);
}
const baseUrl = (values.url ?? `http://${clientHost(config.host)}:${config.port}`).replace(/\/+$/, '');
const creds = { apiKey: config.livekit.apiKey, apiSecret: config.livekit.apiSecret };
const roomName = values.room ?? `webhook-test-${Date.now().toString(36)}`;

try {
  const before = await ensureSession(roomName);
  if (event === undefined) await sendSequence(roomName);
  else await sendOne(event, before);
} catch (err) {
  fail(cli, explain(err));
}

type SessionView = { id: string; status: string; version: number; roomSid: string | null };

/** Creates the room's session unless it has one; returns its current state. */
async function ensureSession(room: string): Promise<SessionView> {
  const created = await graphql<{ createSession: { session: SessionView } }>(
    'mutation($input: CreateSessionInput!) { createSession(input: $input) { session { id status version roomSid } } }',
    { input: { roomName: room, title: 'webhook:test' } },
  );
  if (created.data?.createSession) {
    process.stdout.write(`created session for room ${room}: ${describe(created.data.createSession.session)}\n`);
    return created.data.createSession.session;
  }
  if (created.errors?.some((e) => e.extensions?.code !== 'ALREADY_EXISTS')) throw new Error(`createSession failed: ${JSON.stringify(created.errors)}`);
  const session = await currentSession(room);
  process.stdout.write(`session for room ${room}: ${describe(session)}\n`);
  return session;
}

async function currentSession(room: string): Promise<SessionView> {
  const found = await graphql<{ sessionByRoom: SessionView | null }>('query($room: String!) { sessionByRoom(roomName: $room) { id status version roomSid } }', {
    room,
  });
  if (!found.data?.sessionByRoom) throw new Error(`sessionByRoom failed: ${JSON.stringify(found.errors ?? found.data)}`);
  return found.data.sessionByRoom;
}

async function sendSequence(room: string): Promise<void> {
  const instance = newRoomInstance(room);
  for (const type of SEQUENCE) {
    const res = await send(type, instance);
    if (res.status !== 200) process.exitCode = 1;
  }
  const body = encodeEvent(buildEvent('room_started', instance));
  const tampered = await postWebhook(baseUrl, body.replace('room_started', 'room_finished'), await signBody(body, creds));
  process.stdout.write(`${'tampered body'.padEnd(20)} → ${tampered.status} ${tampered.text}\n`);
  if (tampered.status !== 401) process.exitCode = 1;
  process.stdout.write(`session now: ${describe(await currentSession(room))}\n`);
}

async function sendOne(type: EventType, before: SessionView): Promise<void> {
  // A room that starts is a new LiveKit room instance (a new sid); every other event belongs to the running one.
  const instance: RoomInstance =
    type !== 'room_started' && before.roomSid ? { name: roomName, sid: before.roomSid, createdMs: Date.now() } : newRoomInstance(roomName);
  const res = await send(type, instance);
  if (res.status !== 200) process.exitCode = 1;
  process.stdout.write(`session now: ${describe(await currentSession(roomName))}\n`);
}

async function send(type: EventType, room: RoomInstance) {
  const body = encodeEvent(buildEvent(type, room));
  const res = await postWebhook(baseUrl, body, await signBody(body, creds));
  process.stdout.write(`${type.padEnd(20)} → ${res.status} ${res.text}\n`);
  return res;
}

type GraphQLResult<T> = { data?: T | null; errors?: { message: string; extensions?: { code?: string } }[] };

async function graphql<T>(query: string, variables: Record<string, unknown>): Promise<GraphQLResult<T>> {
  const admin = new AccessToken(creds.apiKey, creds.apiSecret, { identity: 'webhook-test', ttl: '5m' });
  admin.addGrant({ roomCreate: true, roomList: true });
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await admin.toJwt()}` },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  try {
    return JSON.parse(text) as GraphQLResult<T>;
  } catch {
    throw new Error(`${baseUrl}/graphql answered ${res.status} with something other than GraphQL JSON: ${text.slice(0, 200)}`);
  }
}

function describe(s: SessionView): string {
  return `${s.status} (version ${s.version}${s.roomSid ? `, room instance ${s.roomSid}` : ''})`;
}

/** The server listens on every interface by default; a client reaches it on loopback. */
function clientHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** "fetch failed" says nothing: name the URL, the cause, and how to point elsewhere. */
function explain(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (err instanceof TypeError && cause) {
    return (
      `cannot reach the service at ${baseUrl} (${cause.code ?? cause.message}). ` +
      `Start it with \`npm start\`, or point this tool at it with --url http://HOST:PORT ` +
      `(the default follows PORT from the environment or env.local).`
    );
  }
  return (err as Error).message;
}
