/**
 * Issue 5, first "Done when" bullet: hostile or broken requests to the webhook route and GraphQL, each
 * with its documented answer, sent over real HTTP (raw sockets where fetch cannot express the request)
 * to the service running as its own process (`node --import tsx src/main.ts`, LOG_LEVEL=debug).
 * After every request the process still answers /healthz, and the database (every row of sessions,
 * webhook_events and session_changes in its schema) is the same after the whole table as before it.
 * Then: verified webhooks for SQL-looking and unicode room names (they write an event row, so they run
 * after the snapshot comparison), webhook key rotation, and no token ever reaching the logs.
 * Without a real Postgres the same table runs against the app in this process on the embedded PGlite;
 * only the log check (it reads the separate process's output) is skipped there.
 */
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { CompiledQuery } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { buildEvent, bodySha256, encodeEvent, newRoomInstance, postWebhook, sendEvent, signBody } from '../tools/kit/livekit-emulator.js';
import { startTestApp } from './support/app.js';
import { availableBackends, dropSchema, TEST_DATABASE_URL, uniqueName } from '../tools/kit/backends.js';
import { adminToken, createSession, gql, mintToken } from '../tools/kit/graphql.js';
import { startServiceProcess } from '../tools/kit/service-process.js';

const WEBHOOK = '/api/v1/webhooks/livekit';
const SQLISH = `alpha'; DROP TABLE sessions; --`;
const UNICODE = 'комната-会议室-🎥-\u202eevil\u202c-é';

/** The service under test: its own process on Postgres, or (no Postgres here) the app in this process on PGlite. */
let svc: { url: string; port: number; child: { exitCode: number | null }; output(): string; stop(): Promise<unknown> };
let schema: string;
/** Reads the service's database directly: a separate connection to Postgres, or the in-process app's PGlite. */
let dbClient: { query(text: string, params?: unknown[]): Promise<{ rows: any[] }>; end(): Promise<void> };
let admin: string;
/** Tokens for room "beta" only: a frontend's view. */
let betaJoin: string;
let alpha: { id: string };
const JWT = /eyJ[\w-]+\.[\w-]+\.[\w-]+/;
const JWT_HEAD_AND_CLAIMS = /eyJ[\w-]*\.eyJ[\w-]*/;

// With Postgres the database snapshot is read straight from it, next to a separate service process.
const { postgres: hasPostgres } = await availableBackends();

beforeAll(async () => {
  schema = uniqueName('hostile');
  if (hasPostgres) {
    svc = await startServiceProcess({ schema, prefix: `${schema}:`, env: { LOG_LEVEL: 'debug', SESSION_AUTO_CREATE: 'false' } });
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    dbClient = client;
  } else {
    const t = await startTestApp({ SESSION_AUTO_CREATE: 'false' });
    schema = t.schema;
    svc = { url: t.url, port: Number(new URL(t.url).port), child: { exitCode: null }, output: () => '', stop: () => t.stop() };
    const db = t.app.database.db;
    dbClient = { query: (text, params = []) => db.executeQuery(CompiledQuery.raw(text, params)) as Promise<{ rows: any[] }>, end: async () => {} };
  }
  admin = await adminToken();
  betaJoin = await mintToken({ roomJoin: true, room: 'beta' }, { identity: 'beta-viewer' });

  // Something to protect: alpha LIVE (with history and event rows), beta and gamma READY.
  alpha = await createSession(svc.url, 'alpha', admin, 'Alpha');
  await createSession(svc.url, 'beta', admin, 'Beta');
  await createSession(svc.url, 'gamma', admin);
  const room = newRoomInstance('alpha');
  expect((await sendEvent(svc.url, 'room_started', room)).json.results.action).toBe('status_updated');
  expect((await sendEvent(svc.url, 'participant_joined', room)).json.results.action).toBe('live_updated');
  // Let the outbox mark the change published first, so the snapshot holds still.
  for (let i = 0; i < 200; i++) {
    const pending = await dbClient.query(`select count(*)::int as n from "${schema}".session_changes where published_at is null`);
    if (pending.rows[0].n === 0) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  before = await snapshot();
  // A fresh PGlite starts in seconds on an idle machine, minutes on a loaded one.
}, 300_000);

afterAll(async () => {
  await dbClient?.end();
  await svc?.stop();
  if (schema && hasPostgres) await dropSchema(schema).catch(() => {});
});

// ---------------------------------------------------------------------------------------------
// The database snapshot.

type Snapshot = Record<'sessions' | 'webhook_events' | 'session_changes', unknown[]>;
let before: Snapshot;

async function snapshot(): Promise<Snapshot> {
  const rows = async (table: string) => (await dbClient.query(`select * from "${schema}"."${table}" order by id`)).rows;
  return { sessions: await rows('sessions'), webhook_events: await rows('webhook_events'), session_changes: await rows('session_changes') };
}

// ---------------------------------------------------------------------------------------------
// Requests.

type Answer = { status: number; headers: Record<string, string>; text: string; json?: any };

const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A JWT built by hand (the SDK cannot make most of these): HMAC with the given hash, or no signature. */
function handJwt(header: Record<string, unknown>, claims: Record<string, unknown>, opts: { secret?: string; hash?: 'sha256' | 'sha512' | null } = {}): string {
  const input = `${b64(header)}.${b64(claims)}`;
  if (opts.hash === null) return `${input}.`;
  return `${input}.${createHmac(opts.hash ?? 'sha256', opts.secret ?? 'secret')
    .update(input)
    .digest('base64url')}`;
}

/** Webhook claims as LiveKit sets them (iss, nbf, exp = +5 min, sha256), with overrides; undefined removes a claim. */
function webhookClaims(body: string | Buffer, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const claims: Record<string, unknown> = { iss: 'devkey', nbf: now() - 5, exp: now() + 300, sha256: bodySha256(body), ...overrides };
  for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
  return claims;
}

/** A real event that would change beta (READY → LIVE) if anything let it through. */
const betaStarted = () => encodeEvent(buildEvent('room_started', newRoomInstance('beta')));

async function toAnswer(res: Response): Promise<Answer> {
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: Object.fromEntries(res.headers), text, json };
}

async function webhook(body: string | Buffer, auth: string | undefined, opts: { contentType?: string | null; method?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.contentType !== null) headers['Content-Type'] = opts.contentType ?? 'application/webhook+json';
  if (auth !== undefined) headers.Authorization = auth;
  const method = opts.method ?? 'POST';
  const payload = typeof body === 'string' ? body : new Uint8Array(body);
  return toAnswer(await fetch(`${svc.url}${WEBHOOK}`, { method, headers, body: method === 'GET' ? undefined : payload }));
}

async function graphql(
  body: string | Buffer,
  opts: { token?: string | null; auth?: string; contentType?: string; method?: string; path?: string; accept?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {
    'Content-Type': opts.contentType ?? 'application/json',
    Accept: opts.accept ?? 'application/graphql-response+json, application/json',
  };
  if (opts.auth !== undefined) headers.Authorization = opts.auth;
  else if (opts.token !== null) headers.Authorization = `Bearer ${opts.token ?? admin}`;
  const method = opts.method ?? 'POST';
  const payload = typeof body === 'string' ? body : new Uint8Array(body);
  return toAnswer(
    await fetch(`${svc.url}${opts.path ?? '/graphql'}`, { method, headers, body: method === 'GET' || method === 'DELETE' ? undefined : payload }),
  );
}
const q = (query: string, variables: Record<string, unknown> = {}) => JSON.stringify({ query, variables });

/**
 * One HTTP exchange over a plain TCP socket, for what fetch refuses to send (oversized headers, bytes
 * that are not UTF-8, a body larger than the server will read). The body is written in chunks with
 * backpressure and writing stops once the server has answered; the answer is complete once its
 * Content-Length bytes arrived (or the server closed).
 */
function rawHttp(
  head: string | Buffer,
  body: { bytes: number; chunk?: number; chunked?: boolean } | Buffer | null = null,
  timeoutMs = 20_000,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect(svc.port, '127.0.0.1');
    const received: Buffer[] = [];
    let settled = false;
    let socketError: string | undefined;
    const parse = () => {
      const raw = Buffer.concat(received);
      const end = raw.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0]!)?.[1]);
      const headers = Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers['content-length'] ?? NaN);
      const bodyBytes = raw.subarray(end + 4);
      if (Number.isFinite(length) && bodyBytes.length < length) return undefined;
      const text = bodyBytes.toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status, headers, text, json };
    };
    const finish = (answer = parse()) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (answer) resolve(answer);
      else
        reject(
          new Error(
            `no complete HTTP answer (socket error: ${socketError ?? 'none'}); got ${JSON.stringify(Buffer.concat(received).toString('latin1').slice(0, 200))}`,
          ),
        );
    };
    const timer = setTimeout(() => finish(), timeoutMs);
    socket.on('data', (d: Buffer) => {
      received.push(d);
      const answer = parse();
      if (answer) finish(answer);
    });
    socket.on('close', () => finish());
    socket.on('error', (err: NodeJS.ErrnoException) => (socketError = err.code ?? err.message));
    socket.on('connect', async () => {
      socket.write(head);
      if (body === null) return;
      if (Buffer.isBuffer(body)) return void socket.write(body);
      const size = body.chunk ?? 64 * 1024;
      const payload = Buffer.alloc(size, 0x61);
      const frame = body.chunked ? Buffer.concat([Buffer.from(`${size.toString(16)}\r\n`), payload, Buffer.from('\r\n')]) : payload;
      for (let sent = 0; sent < body.bytes && !socket.destroyed && received.length === 0; sent += size) {
        if (!socket.write(frame)) {
          await new Promise<void>((r) => {
            socket.once('drain', r);
            socket.once('close', r);
          });
        }
      }
      if (body.chunked && !socket.destroyed && received.length === 0) socket.write('0\r\n\r\n');
    });
  });
}

/** A request head; `Connection: close` unless the body is large (see the 413 cases). */
const requestHead = (method: string, path: string, headers: Record<string, string | number>, close = true) =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${close ? 'Connection: close\r\n' : ''}${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

/** A graphql-transport-ws exchange with a raw WebSocket: connection_init, then optionally one subscribe. */
function wsExchange(connectionParams: Record<string, unknown>, subscribe?: { query: string; variables?: Record<string, unknown> }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${svc.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    const messages: any[] = [];
    const timer = setTimeout(() => (socket.terminate(), reject(new Error(`ws timed out: ${JSON.stringify(messages)}`))), 10_000);
    const done = (answer: Answer) => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: connectionParams })));
    socket.on('message', (data) => {
      const msg = JSON.parse(String(data));
      messages.push(msg);
      if (msg.type === 'connection_ack') {
        if (!subscribe) return done({ status: 101, headers: {}, text: 'connection_ack', json: { messages } });
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: subscribe }));
      }
      if (msg.type === 'error') done({ status: 101, headers: {}, text: JSON.stringify(messages), json: { errors: msg.payload } });
      if (msg.type === 'next' && msg.payload.errors) done({ status: 101, headers: {}, text: JSON.stringify(messages), json: { errors: msg.payload.errors } });
      if (msg.type === 'next' && !msg.payload.errors) done({ status: 101, headers: {}, text: JSON.stringify(messages), json: { data: msg.payload.data } });
    });
    // A refused connection: the close code is the answer.
    socket.on('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ status: code, headers: {}, text: String(reason) });
    });
    socket.on('error', (err) => (clearTimeout(timer), reject(err)));
  });
}

/** A subscription over SSE (yoga's distinct-connection mode): the events of the stream, parsed by frames. */
async function sseSubscribe(query: string, variables: Record<string, unknown>, token: string): Promise<Answer> {
  const controller = new AbortController();
  const res = await fetch(`${svc.url}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
    signal: controller.signal,
  });
  const reader = res.body!.getReader();
  let buffer = '';
  const deadline = Date.now() + 10_000;
  try {
    while (Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += Buffer.from(value).toString('utf8');
      for (const frame of buffer.split('\n\n')) {
        const event = /^event: (\w+)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (event === 'next' && data) return { status: res.status, headers: Object.fromEntries(res.headers), text: buffer, json: JSON.parse(data) };
      }
    }
    throw new Error(`no SSE event; got ${JSON.stringify(buffer.slice(0, 300))}`);
  } finally {
    controller.abort();
  }
}

// ---------------------------------------------------------------------------------------------
// The table.

type Want = {
  status: number;
  /** Webhook envelope. */
  errcode?: string;
  errmesg?: RegExp;
  /** GraphQL: the extensions.code of each error (undefined where armor sets none). */
  codes?: Array<string | undefined>;
  message?: RegExp;
  /** GraphQL `data` exactly (e.g. null for "not found"). */
  data?: unknown;
  header?: [string, string];
};
type Case = { name: string; send: () => Promise<Answer>; want: Want };

const tokenFor = (claims: Record<string, unknown>, opts?: Parameters<typeof handJwt>[2], header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' }) =>
  handJwt(header, claims, opts);
const signedBy = (body: string | Buffer, overrides: Record<string, unknown> = {}, opts?: Parameters<typeof handJwt>[2], header?: Record<string, unknown>) =>
  tokenFor(webhookClaims(body, overrides), opts, header);

/** Signs a body properly and sends it. */
const signedWebhook = async (body: string | Buffer, contentType?: string) => webhook(body, await signBody(body), { contentType });
/** A valid-looking body with a given Authorization. */
const withAuth = (auth: (body: string) => string | undefined | Promise<string | undefined>) => async () => {
  const body = betaStarted();
  return webhook(body, await auth(body));
};
const graphqlClaims = (overrides: Record<string, unknown> = {}) => ({
  iss: 'devkey',
  sub: 'mallory',
  nbf: now() - 5,
  exp: now() + 600,
  video: { roomList: true, roomCreate: true, roomAdmin: true },
  ...overrides,
});
const SESSIONS_QUERY = '{ sessions(first: 5) { edges { node { id roomName } } } }';
const DEEP_ARRAY = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: sessionByRoom(roomName: "beta") { id }`).join(' ')} }`;

const CASES: Case[] = [
  // ---- webhook: tokens (every body below is a real room_started for READY "beta") ----
  { name: 'webhook: no Authorization', send: withAuth(() => undefined), want: { status: 401, errcode: 'E_WEBHOOK_MISSING_AUTH' } },
  { name: 'webhook: blank Authorization', send: withAuth(() => '   '), want: { status: 401, errcode: 'E_WEBHOOK_MISSING_AUTH' } },
  {
    name: 'webhook: garbage Authorization',
    send: withAuth(() => 'garbage'),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /malformed token$/ },
  },
  {
    name: 'webhook: "Bearer " with an empty token',
    send: withAuth(() => 'Bearer '),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /malformed token$/ },
  },
  {
    name: 'webhook: two dots (three empty parts)',
    send: withAuth(() => '..'),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /malformed token$/ },
  },
  {
    name: 'webhook: alg none, empty signature',
    send: withAuth((body) => signedBy(body, {}, { hash: null }, { alg: 'none', typ: 'JWT' })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /malformed token$/ },
  },
  {
    name: 'webhook: alg none with a signature',
    send: withAuth((body) => signedBy(body, {}, {}, { alg: 'none', typ: 'JWT' })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /unsupported algorithm "none"$/ },
  },
  {
    name: 'webhook: HS512 with the right secret',
    send: withAuth((body) => signedBy(body, {}, { hash: 'sha512' }, { alg: 'HS512', typ: 'JWT' })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /unsupported algorithm "HS512"$/ },
  },
  {
    name: 'webhook: header says HS256, signed with HS512',
    send: withAuth((body) => signedBy(body, {}, { hash: 'sha512' })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /bad signature$/ },
  },
  {
    name: 'webhook: token without exp',
    send: withAuth((body) => signedBy(body, { exp: undefined })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /token has no expiry$/ },
  },
  {
    name: 'webhook: nbf 5 min in the future (tolerance 60 s)',
    send: withAuth((body) => signedBy(body, { nbf: now() + 300, exp: now() + 600 })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /token not yet valid$/ },
  },
  {
    name: 'webhook: expired 60 s ago (tolerance 60 s: exp <= now - 60 is expired)',
    send: withAuth((body) => signedBy(body, { nbf: now() - 360, exp: now() - 60 })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /token expired$/ },
  },
  {
    name: 'webhook: lifetime 11 min',
    send: withAuth((body) => signedBy(body, { nbf: now() - 5, exp: now() - 5 + 660 })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /token lifetime exceeds 10 minutes$/ },
  },
  {
    name: 'webhook: neither nbf nor iat',
    send: withAuth((body) => signedBy(body, { nbf: undefined })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /token has neither nbf nor iat$/ },
  },
  {
    name: 'webhook: exp as a string',
    send: withAuth((body) => signedBy(body, { exp: String(now() + 300) })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /invalid exp claim$/ },
  },
  {
    name: 'webhook: forged (signed with another secret)',
    send: withAuth((body) => signBody(body, { apiKey: 'devkey', apiSecret: 'not-the-secret' })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /bad signature$/ },
  },
  {
    name: 'webhook: unknown API key',
    send: withAuth((body) => signBody(body, { apiKey: 'mallory', apiSecret: 'secret' })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /unknown API key$/ },
  },
  {
    name: 'webhook: no iss',
    send: withAuth((body) => signedBy(body, { iss: undefined })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /unknown API key$/ },
  },
  {
    name: 'webhook: valid token without sha256',
    send: withAuth((body) => signedBy(body, { sha256: undefined })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /token has no sha256 claim$/ },
  },
  {
    name: 'webhook: tampered body (token for another body)',
    send: async () => webhook(betaStarted(), await signBody(betaStarted())),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /hash mismatch$/ },
  },
  {
    name: 'webhook: sha256 claim of the hex digest instead of base64',
    send: withAuth((body) => signedBy(body, { sha256: Buffer.from(bodySha256(body), 'base64').toString('hex') })),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /hash mismatch$/ },
  },
  {
    name: 'webhook: Authorization with bytes that are not UTF-8 (raw)',
    send: () => {
      const body = betaStarted();
      const head = Buffer.concat([
        Buffer.from(
          `POST ${WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/webhook+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nAuthorization: `,
        ),
        Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x80]),
        Buffer.from('\r\n\r\n'),
      ]);
      return rawHttp(head, Buffer.from(body));
    },
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: /malformed token$/ },
  },

  // ---- webhook: bodies (signed properly) ----
  {
    name: 'webhook: body with bytes that are not UTF-8, signed',
    send: () => signedWebhook(Buffer.concat([Buffer.from('{"event":"room_started","id":"EV_x'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('"}')])),
    want: { status: 400, errcode: 'E_WEBHOOK_INVALID_JSON', errmesg: /not valid UTF-8 JSON$/ },
  },
  { name: 'webhook: not JSON, signed', send: () => signedWebhook('{"event": "room_started",'), want: { status: 400, errcode: 'E_WEBHOOK_INVALID_JSON' } },
  {
    name: 'webhook: empty body with application/webhook+json, signed',
    send: () => signedWebhook(''),
    want: { status: 400, errcode: 'E_WEBHOOK_INVALID_JSON', errmesg: /not valid UTF-8 JSON$/ },
  },
  {
    name: 'webhook: empty body with application/webhook+json, unsigned',
    send: () => webhook('', 'garbage'),
    want: { status: 401, errcode: 'E_WEBHOOK_INVALID_SIGNATURE' },
  },
  {
    name: 'webhook: JSON array, signed',
    send: () => signedWebhook('[]'),
    want: { status: 400, errcode: 'E_WEBHOOK_INVALID_JSON', errmesg: /not a JSON object$/ },
  },
  {
    name: 'webhook: JSON null, signed',
    send: () => signedWebhook('null'),
    want: { status: 400, errcode: 'E_WEBHOOK_INVALID_JSON', errmesg: /not a JSON object$/ },
  },
  {
    name: 'webhook: nested 100,000 deep inside room, signed',
    send: () => signedWebhook(`{"event":"room_started","id":"EV_deep","room":{"name":"beta","sid":${DEEP_ARRAY(100_000)}}}`),
    want: { status: 400, errcode: 'E_WEBHOOK_INVALID_JSON', errmesg: /not a LiveKit event/ },
  },
  {
    name: 'webhook: wrong types (room is a string), signed',
    send: () => signedWebhook('{"event":"room_started","id":"EV_types","room":"beta"}'),
    want: { status: 400, errcode: 'E_WEBHOOK_INVALID_JSON', errmesg: /not a LiveKit event/ },
  },
  {
    name: 'webhook: creationTimeMs not a number, signed',
    send: () => signedWebhook('{"event":"room_started","id":"EV_ctm","room":{"name":"beta","sid":"RM_x","creationTimeMs":"soon"}}'),
    want: { status: 400, errcode: 'E_WEBHOOK_INVALID_JSON', errmesg: /not a LiveKit event/ },
  },
  {
    name: 'webhook: no event type, signed',
    send: () => signedWebhook('{"id":"EV_notype","room":{"name":"beta","sid":"RM_x"}}'),
    want: { status: 400, errcode: 'E_WEBHOOK_MISSING_EVENT_TYPE' },
  },
  {
    // Sent like LiveKit's Go client sends (keep-alive, no "Connection: close"), and the sender keeps
    // writing: the 413 must reach it, not a connection reset.
    name: 'webhook: 10 MB body, Content-Length declared (raw)',
    send: () =>
      rawHttp(requestHead('POST', WEBHOOK, { 'Content-Type': 'application/webhook+json', Authorization: 'x', 'Content-Length': 10 * 1024 * 1024 }, false), {
        bytes: 10 * 1024 * 1024,
      }),
    want: { status: 413, errcode: 'E_PAYLOAD_TOO_LARGE' },
  },
  {
    name: 'webhook: 10 MB body, chunked without Content-Length (raw)',
    // Validly signed (for another body): a junk token is refused before the body is read (401, issue 8).
    send: async () =>
      rawHttp(
        requestHead(
          'POST',
          WEBHOOK,
          { 'Content-Type': 'application/webhook+json', Authorization: await signBody('{}'), 'Transfer-Encoding': 'chunked' },
          false,
        ),
        {
          bytes: 10 * 1024 * 1024,
          chunked: true,
        },
      ),
    want: { status: 413, errcode: 'E_PAYLOAD_TOO_LARGE' },
  },

  // ---- webhook: HTTP ----
  {
    name: 'webhook: Content-Type text/plain',
    send: async () => webhook(betaStarted(), 'x', { contentType: 'text/plain' }),
    want: { status: 415, errcode: 'E_UNSUPPORTED_MEDIA_TYPE' },
  },
  {
    name: 'webhook: no Content-Type',
    send: async () => webhook(Buffer.from(betaStarted()), 'x', { contentType: null }),
    want: { status: 415, errcode: 'E_UNSUPPORTED_MEDIA_TYPE' },
  },
  {
    name: 'webhook: multipart/form-data',
    send: async () => webhook(betaStarted(), 'x', { contentType: 'multipart/form-data; boundary=x' }),
    want: { status: 415, errcode: 'E_UNSUPPORTED_MEDIA_TYPE' },
  },
  { name: 'webhook: GET', send: () => webhook('', 'x', { method: 'GET' }), want: { status: 405, errcode: 'E_METHOD_NOT_ALLOWED', header: ['allow', 'POST'] } },
  {
    name: 'webhook: PUT',
    send: async () => webhook(betaStarted(), 'x', { method: 'PUT' }),
    want: { status: 405, errcode: 'E_METHOD_NOT_ALLOWED', header: ['allow', 'POST'] },
  },
  {
    name: 'webhook: DELETE',
    send: async () => webhook('', 'x', { method: 'DELETE' }),
    want: { status: 405, errcode: 'E_METHOD_NOT_ALLOWED', header: ['allow', 'POST'] },
  },
  {
    name: 'webhook: 32 KB header (raw)',
    send: () =>
      rawHttp(
        requestHead('POST', WEBHOOK, { 'Content-Type': 'application/webhook+json', 'X-Pad': 'p'.repeat(32 * 1024), 'Content-Length': 2 }),
        Buffer.from('{}'),
      ),
    want: { status: 431 },
  },
  {
    name: 'http: header value with a control character (raw)',
    send: () => rawHttp(requestHead('GET', '/healthz', { 'X-Evil': 'a\u0001b' })),
    want: { status: 400 },
  },
  { name: 'http: garbage request line (raw)', send: () => rawHttp('HELLO THERE\r\n\r\n'), want: { status: 400 } },
  {
    name: 'http: unknown route (path traversal-looking)',
    send: () => graphql('{}', { path: '/api/v1/webhooks/livekit/../../admin' }),
    want: { status: 404, errcode: 'E_NOT_FOUND' },
  },
  {
    name: 'http: webhook path with a trailing slash',
    send: async () => toAnswer(await fetch(`${svc.url}${WEBHOOK}/`, { method: 'POST' })),
    want: { status: 404, errcode: 'E_NOT_FOUND' },
  },

  // ---- GraphQL: authentication ----
  { name: 'graphql: no Authorization', send: () => graphql(q(SESSIONS_QUERY), { token: null }), want: { status: 200, codes: ['UNAUTHENTICATED'], data: null } },
  {
    name: 'graphql: garbage Authorization',
    send: () => graphql(q(SESSIONS_QUERY), { auth: 'garbage' }),
    want: { status: 200, codes: ['UNAUTHENTICATED'], message: /malformed token$/ },
  },
  {
    name: 'graphql: "Bearer " with an empty token',
    send: () => graphql(q(SESSIONS_QUERY), { auth: 'Bearer ' }),
    want: { status: 200, codes: ['UNAUTHENTICATED'], message: /malformed token$/ },
  },
  {
    name: 'graphql: forged token (another secret)',
    send: () => graphql(q(SESSIONS_QUERY), { token: tokenFor(graphqlClaims(), { secret: 'not-the-secret' }) }),
    want: { status: 200, codes: ['UNAUTHENTICATED'], message: /bad signature$/ },
  },
  {
    name: 'graphql: alg none token',
    send: () => graphql(q(SESSIONS_QUERY), { token: tokenFor(graphqlClaims(), {}, { alg: 'none' }) }),
    want: { status: 200, codes: ['UNAUTHENTICATED'], message: /unsupported algorithm "none"$/ },
  },
  {
    name: 'graphql: HS512 token',
    send: () => graphql(q(SESSIONS_QUERY), { token: tokenFor(graphqlClaims(), { hash: 'sha512' }, { alg: 'HS512' }) }),
    want: { status: 200, codes: ['UNAUTHENTICATED'], message: /unsupported algorithm "HS512"$/ },
  },
  {
    name: 'graphql: token without exp',
    send: () => graphql(q(SESSIONS_QUERY), { token: tokenFor(graphqlClaims({ exp: undefined })) }),
    want: { status: 200, codes: ['UNAUTHENTICATED'], message: /token has no expiry$/ },
  },
  {
    name: 'graphql: token expired 2 min ago',
    send: () => graphql(q(SESSIONS_QUERY), { token: tokenFor(graphqlClaims({ nbf: now() - 600, exp: now() - 120 })) }),
    want: { status: 200, codes: ['UNAUTHENTICATED'], message: /token expired$/ },
  },

  // ---- GraphQL: authorization (a token for room "beta" only) ----
  {
    name: 'graphql: list every session with a room token',
    send: () => graphql(q(SESSIONS_QUERY), { token: betaJoin }),
    want: { status: 200, codes: ['FORBIDDEN'] },
  },
  {
    name: "graphql: node(id:) of another room's session",
    send: () => graphql(q('query($id: ID!) { node(id: $id) { id ... on Session { status } } }', { id: alpha.id }), { token: betaJoin }),
    want: { status: 200, codes: ['FORBIDDEN'], data: { node: null } },
  },
  {
    name: "graphql: session(id:) of another room's session",
    send: () => graphql(q('query($id: ID!) { session(id: $id) { id status } }', { id: alpha.id }), { token: betaJoin }),
    want: { status: 200, codes: ['FORBIDDEN'], data: { session: null } },
  },
  {
    name: 'graphql: sessionByRoom, SQL-looking name, room token',
    send: () => graphql(q('query($r: String!) { sessionByRoom(roomName: $r) { id } }', { r: SQLISH }), { token: betaJoin }),
    want: { status: 200, codes: ['FORBIDDEN'], data: { sessionByRoom: null } },
  },
  {
    name: 'graphql: sessionByRoom, SQL-looking name, list token → not found',
    send: () => graphql(q('query($r: String!) { sessionByRoom(roomName: $r) { id } }', { r: SQLISH })),
    want: { status: 200, codes: [], data: { sessionByRoom: null } },
  },
  {
    name: 'graphql: sessionByRoom, SQL inlined in the query string, list token → not found',
    send: () => graphql(q(`{ sessionByRoom(roomName: "x' OR '1'='1") { id } }`)),
    want: { status: 200, codes: [], data: { sessionByRoom: null } },
  },
  {
    name: 'graphql: sessionByRoom, unicode name (RTL override, emoji), list token → not found',
    send: () => graphql(q('query($r: String!) { sessionByRoom(roomName: $r) { id } }', { r: UNICODE })),
    want: { status: 200, codes: [], data: { sessionByRoom: null } },
  },
  {
    name: 'graphql: sessionByRoom with a NUL character',
    send: () => graphql(q('query($r: String!) { sessionByRoom(roomName: $r) { id } }', { r: 'beta\u0000' })),
    want: { status: 200, codes: ['BAD_USER_INPUT'], message: /^roomName must not contain NUL$/ },
  },
  {
    name: 'graphql: createSession, SQL-looking name, read-only room token',
    send: () => graphql(q('mutation($r: String!) { createSession(input: { roomName: $r }) { session { id } } }', { r: SQLISH }), { token: betaJoin }),
    want: { status: 200, codes: ['FORBIDDEN'], data: null },
  },
  {
    name: 'graphql: createSession, unicode name, read-only room token',
    send: () => graphql(q('mutation($r: String!) { createSession(input: { roomName: $r }) { session { id } } }', { r: UNICODE }), { token: betaJoin }),
    want: { status: 200, codes: ['FORBIDDEN'], data: null },
  },
  {
    name: 'graphql: createSession for its own room with a join-only token',
    send: () => graphql(q('mutation { createSession(input: { roomName: "beta" }) { session { id } } }'), { token: betaJoin }),
    want: { status: 200, codes: ['FORBIDDEN'], data: null },
  },
  {
    name: 'graphql: createSession, 257-character name',
    send: () => graphql(q('mutation($r: String!) { createSession(input: { roomName: $r }) { session { id } } }', { r: 'r'.repeat(257) })),
    want: { status: 200, codes: ['BAD_USER_INPUT'], data: null },
  },
  {
    name: 'graphql: createSession for an existing room',
    send: () => graphql(q('mutation { createSession(input: { roomName: "alpha" }) { session { id } } }')),
    want: { status: 200, codes: ['ALREADY_EXISTS'], data: null },
  },
  {
    name: 'graphql: session(id:) with SQL in the id',
    send: () => graphql(q(`{ session(id: "1' OR '1'='1") { id } }`)),
    want: { status: 200, codes: ['BAD_USER_INPUT'], data: { session: null } },
  },
  {
    name: 'graphql (SSE): subscription to another room with a room token',
    send: () => sseSubscribe('subscription($r: String!) { sessionStatusChanged(roomName: $r) { version } }', { r: 'alpha' }, betaJoin),
    want: { status: 200, codes: ['FORBIDDEN'] },
  },
  {
    name: 'graphql (WS): subscription to another room with a room token',
    send: () => wsExchange({ authorization: `Bearer ${betaJoin}` }, { query: 'subscription { sessionStatusChanged(roomName: "alpha") { version } }' }),
    want: { status: 101, codes: ['FORBIDDEN'] },
  },
  {
    name: 'graphql (WS): subscription to every session with a room token',
    send: () => wsExchange({ authorization: `Bearer ${betaJoin}` }, { query: 'subscription { sessionStatusChanged { version } }' }),
    want: { status: 101, codes: ['FORBIDDEN'] },
  },
  { name: 'graphql (WS): connection without a token → close 4401', send: () => wsExchange({}), want: { status: 4401 } },
  {
    name: 'graphql (WS): connection with a forged token → close 4401',
    send: () => wsExchange({ authorization: `Bearer ${tokenFor(graphqlClaims(), { secret: 'nope' })}` }),
    want: { status: 4401 },
  },
  {
    name: 'graphql (WS): token with no grant the service uses → close 4403',
    send: async () => wsExchange({ authorization: `Bearer ${await mintToken({ canPublish: true })}` }),
    want: { status: 4403 },
  },

  // ---- GraphQL: query limits (graphql-armor) and transport ----
  {
    name: 'graphql: 1,000 aliases (the 2,000-token limit answers first)',
    send: () => graphql(q(aliases(1000))),
    want: { status: 400, codes: ['GRAPHQL_VALIDATION_FAILED'], message: /^Token limit of 2000 exceeded\.$/ },
  },
  {
    name: 'graphql: 21 aliases',
    send: () => graphql(q(aliases(21))),
    want: { status: 400, codes: ['GRAPHQL_VALIDATION_FAILED'], message: /^Aliases limit of 20 exceeded, found 21\.$/ },
  },
  {
    name: 'graphql: depth 14 (limit 12)',
    send: () => graphql(q(`{ sessionByRoom(roomName: "beta") { ${'... on Session { '.repeat(12)}id${' }'.repeat(12)} } }`)),
    want: { status: 400, codes: ['GRAPHQL_VALIDATION_FAILED'], message: /^Query depth limit of 12 exceeded, found 14\.$/ },
  },
  {
    name: 'graphql: depth 50 (the cost limit answers first)',
    send: () => graphql(q(`{ ${'... on Query { '.repeat(50)}__typename${' }'.repeat(50)} }`)),
    want: { status: 400, codes: ['GRAPHQL_VALIDATION_FAILED', 'GRAPHQL_VALIDATION_FAILED'], message: /^Query Cost limit of 5000 exceeded/ },
  },
  {
    name: 'graphql: 2,100 tokens',
    send: () => graphql(q(`{ ${'__typename '.repeat(2100)}}`)),
    want: { status: 400, codes: ['GRAPHQL_VALIDATION_FAILED'], message: /Token limit of 2000 exceeded/ },
  },
  {
    name: 'graphql: 25 directives',
    send: () => graphql(q(`{ __typename ${'@include(if: true) '.repeat(25)}}`)),
    want: { status: 400, codes: ['GRAPHQL_VALIDATION_FAILED'], message: /^Directives limit of 20 exceeded, found 25\.$/ },
  },
  {
    name: 'graphql: cost over 5,000',
    send: () =>
      graphql(
        q(
          '{ a: sessions(first: 100) { edges { node { id roomName title status version roomSid startedAt stoppedAt createdAt updatedAt } } } b: sessions(first: 100) { edges { node { id roomName title status } } } }',
        ),
      ),
    want: { status: 400, codes: ['GRAPHQL_VALIDATION_FAILED'], message: /^Query Cost limit of 5000 exceeded/ },
  },
  {
    name: 'graphql: body over 100,000 bytes',
    send: () => graphql(q(`{ __typename }${' '.repeat(120_000)}`)),
    want: { status: 413, codes: ['PAYLOAD_TOO_LARGE'] },
  },
  {
    name: 'graphql: 10 MB body, chunked, still being sent (raw)',
    send: () =>
      rawHttp(requestHead('POST', '/graphql', { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, false), {
        bytes: 10 * 1024 * 1024,
        chunked: true,
      }),
    want: { status: 413, codes: ['PAYLOAD_TOO_LARGE'] },
  },
  {
    name: 'graphql: batched array',
    send: () => graphql(JSON.stringify([{ query: '{ __typename }' }, { query: '{ __typename }' }])),
    want: { status: 400, codes: ['BAD_REQUEST'], message: /^Batching is not supported\.$/ },
  },
  {
    name: 'graphql: malformed JSON',
    send: () => graphql('{"query": '),
    want: { status: 400, codes: ['BAD_REQUEST'], message: /^POST body sent invalid JSON\.$/ },
  },
  { name: 'graphql: empty POST body', send: () => graphql(''), want: { status: 400, codes: ['BAD_REQUEST'], message: /invalid JSON/ } },
  {
    name: 'graphql: query is a number',
    send: () => graphql('{"query": 123}'),
    want: { status: 400, codes: ['BAD_REQUEST'], message: /"query" param to be a string/ },
  },
  {
    name: 'graphql: body with bytes that are not UTF-8',
    send: () => graphql(Buffer.concat([Buffer.from('{"query":"{ __typename '), Buffer.from([0xff, 0xfe]), Buffer.from(' }"}')])),
    want: { status: 400, codes: ['GRAPHQL_PARSE_FAILED'], message: /Unexpected character: U\+FFFD/ },
  },
  { name: 'graphql: Content-Type text/plain', send: () => graphql(q('{ __typename }'), { contentType: 'text/plain' }), want: { status: 415 } },
  { name: 'graphql: Content-Type application/xml', send: () => graphql('<query/>', { contentType: 'application/xml' }), want: { status: 415 } },
  {
    name: 'graphql: mutation over GET',
    send: () =>
      graphql('', {
        method: 'GET',
        path: `/graphql?query=${encodeURIComponent('mutation { createSession(input: { roomName: "via-get" }) { session { id } } }')}`,
      }),
    want: { status: 405, codes: ['BAD_REQUEST'], message: /mutation operation from a POST request/ },
  },
  { name: 'graphql: PUT', send: () => graphql(q('{ __typename }'), { method: 'PUT' }), want: { status: 405, codes: ['BAD_REQUEST'] } },
  { name: 'graphql: DELETE', send: () => graphql('', { method: 'DELETE' }), want: { status: 405, codes: ['BAD_REQUEST'] } },
  {
    name: 'graphql: operationName that is not in the document',
    send: () => graphql(JSON.stringify({ query: 'query A { __typename }', operationName: 'B' })),
    want: { status: 400, codes: ['OPERATION_RESOLUTION_FAILURE'] },
  },
  {
    name: 'graphql: 32 KB header (raw)',
    send: () =>
      rawHttp(
        requestHead('POST', '/graphql', { 'Content-Type': 'application/json', Authorization: `Bearer ${'x'.repeat(32 * 1024)}`, 'Content-Length': 2 }),
        Buffer.from('{}'),
      ),
    want: { status: 431 },
  },
  {
    // Documented: introspection (and GraphiQL, field suggestions) are on unless NODE_ENV=production.
    name: 'graphql: introspection is allowed in the test environment',
    send: () => graphql(q('{ __schema { queryType { name } } }'), { token: null }),
    want: { status: 200, codes: [], data: { __schema: { queryType: { name: 'Query' } } } },
  },
];

// ---------------------------------------------------------------------------------------------

function expectAnswer(answer: Answer, want: Want, name: string) {
  expect(answer.status, `${name}: ${answer.text.slice(0, 300)}`).toBe(want.status);
  if (want.header) expect(answer.headers[want.header[0]], `${name}: header ${want.header[0]}`).toBe(want.header[1]);
  if (want.errcode) {
    expect(Object.keys(answer.json ?? {}).sort(), name).toEqual(['errcode', 'erresid', 'errmesg', 'success']);
    expect(answer.json.success).toBe(false);
    expect(answer.json.errcode, name).toBe(want.errcode);
    if (want.errcode !== 'E_NOT_FOUND') expect(answer.json.erresid).toMatch(/^[0-9a-f]{10}$/);
  }
  if (want.errmesg) expect(answer.json.errmesg, name).toMatch(want.errmesg);
  if (want.codes)
    expect(
      (answer.json?.errors ?? []).map((e: any) => e.extensions?.code),
      `${name}: ${answer.text.slice(0, 300)}`,
    ).toEqual(want.codes);
  if (want.message) expect(answer.json.errors[0].message, name).toMatch(want.message);
  if ('data' in want) expect(answer.json.data, name).toEqual(want.data);
}

describe('hostile and broken requests (issue 5)', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const answer = await c.send();
    expectAnswer(answer, c.want, c.name);
    // The process is still up and answering.
    expect(svc.child.exitCode, 'service process exited').toBeNull();
    const health = await fetch(`${svc.url}/healthz`);
    expect(health.status).toBe(200);
  });

  it('an endless body gets its 413, then the connection is cut after a short linger (not kept for the request timeout)', async () => {
    const started = Date.now();
    const result = await new Promise<{ answer: string; closedAfterMs: number; sentBytes: number }>((resolve) => {
      const socket = connect(svc.port, '127.0.0.1');
      let answer = '';
      let sentBytes = 0;
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      socket.on('error', () => {});
      socket.on('close', () => resolve({ answer, closedAfterMs: Date.now() - started, sentBytes }));
      socket.on('connect', () => {
        socket.write(requestHead('POST', WEBHOOK, { 'Content-Type': 'application/webhook+json', Authorization: 'x', 'Content-Length': 10 ** 12 }, false));
        const chunk = Buffer.alloc(256 * 1024, 0x61);
        const pump = setInterval(() => {
          if (socket.destroyed) return void clearInterval(pump);
          socket.write(chunk);
          sentBytes += chunk.length;
        }, 5);
      });
    });
    expect(result.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(result.answer).toContain('"errcode":"E_PAYLOAD_TOO_LARGE"');
    // The server reads and drops for a while, then closes: the connection ended within this test's 20 s,
    // well before Node's own 30-60 s request timeout, after the client had pushed more than the limit.
    expect(result.sentBytes).toBeGreaterThan(1024 * 1024);
    console.info(`hostile: endless body closed ${result.closedAfterMs} ms after it started`);
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
  }, 20_000);

  it('changed nothing in the database: every row of sessions, webhook_events and session_changes is as before', async () => {
    const after = await snapshot();
    expect(before.sessions).toHaveLength(3);
    expect(before.webhook_events).toHaveLength(2);
    // room_started, then participant_joined (a live-state change since issue 10).
    expect(before.session_changes).toHaveLength(2);
    expect(after).toEqual(before);
  });
});

describe('verified webhooks for hostile room names (they record an event, so they run after the snapshot)', () => {
  it.each([
    ['SQL-looking', SQLISH],
    ['unicode', UNICODE],
    ['quotes and backslashes', `a"b\\c'd`],
  ])('%s room name: 200 session_not_found, the exact name is stored, no session is touched', async (_label, name) => {
    const sessionsBefore = (await dbClient.query(`select * from "${schema}".sessions order by id`)).rows;
    const res = await sendEvent(svc.url, 'room_started', newRoomInstance(name));
    expect(res.status).toBe(200);
    expect(res.json.results).toMatchObject({ processed: false, action: 'session_not_found', room_id: name });
    const stored = await dbClient.query(`select room_name, outcome from "${schema}".webhook_events where id = $1`, [res.eventId]);
    expect(stored.rows).toEqual([{ room_name: name, outcome: 'session_not_found' }]);
    expect((await dbClient.query(`select * from "${schema}".sessions order by id`)).rows).toEqual(sessionsBefore);
  });

  it('an admin can create a session with such a name, and it is found by exactly that name', async () => {
    const created = await createSession(svc.url, SQLISH, admin);
    expect(created.roomName).toBe(SQLISH);
    const found = await gql(svc.url, 'query($r: String!) { sessionByRoom(roomName: $r) { id roomName } }', { r: SQLISH }, admin);
    expect(found.body.data.sessionByRoom).toEqual({ id: created.id, roomName: SQLISH });
    const count = await dbClient.query(`select count(*)::int as n from "${schema}".sessions`);
    expect(count.rows[0].n).toBe(4);
  });
});

describe('webhook key rotation (LIVEKIT_WEBHOOK_KEYS)', () => {
  const OLD = { apiKey: 'oldkey', apiSecret: 'oldsecret-0123456789abcdef' };
  const NEW = { apiKey: 'newkey', apiSecret: 'newsecret-fedcba9876543210' };

  async function statusOf(url: string, creds: { apiKey: string; apiSecret: string }, room: string) {
    const body = encodeEvent(buildEvent('room_started', newRoomInstance(room)));
    return postWebhook(url, body, await signBody(body, creds));
  }

  it('accepts both keys while rotating, then only the new one once the old one is removed', async () => {
    const rotating = await startTestApp({ LIVEKIT_WEBHOOK_KEYS: `${OLD.apiKey}:${OLD.apiSecret},${NEW.apiKey}:${NEW.apiSecret}` });
    try {
      const token = await adminToken();
      await createSession(rotating.url, 'r-old', token);
      await createSession(rotating.url, 'r-new', token);
      expect((await statusOf(rotating.url, OLD, 'r-old')).json.results.action).toBe('status_updated');
      expect((await statusOf(rotating.url, NEW, 'r-new')).json.results.action).toBe('status_updated');
    } finally {
      await rotating.stop();
    }

    const rotated = await startTestApp({ LIVEKIT_WEBHOOK_KEYS: `${NEW.apiKey}:${NEW.apiSecret}` });
    try {
      const token = await adminToken();
      await createSession(rotated.url, 'r-old', token);
      await createSession(rotated.url, 'r-new', token);
      const refused = await statusOf(rotated.url, OLD, 'r-old');
      expect(refused.status).toBe(401);
      expect(refused.json).toMatchObject({ success: false, errcode: 'E_WEBHOOK_INVALID_SIGNATURE', errmesg: 'Webhook verification failed: unknown API key' });
      const accepted = await statusOf(rotated.url, NEW, 'r-new');
      expect(accepted.status).toBe(200);
      expect(accepted.json.results).toMatchObject({ action: 'status_updated', new_status: 'live' });
      // The new key's secret is what counts: the new key with a wrong secret is refused.
      const wrongSecret = await statusOf(rotated.url, { apiKey: NEW.apiKey, apiSecret: OLD.apiSecret }, 'r-new');
      expect(wrongSecret.status).toBe(401);
      expect(wrongSecret.json.errmesg).toMatch(/bad signature$/);
      const rows = await rotated.app.database.db.selectFrom('sessions').select(['room_name', 'status']).orderBy('room_name').execute();
      expect(rows).toEqual([
        { room_name: 'r-new', status: 'LIVE' },
        { room_name: 'r-old', status: 'READY' },
      ]);
    } finally {
      await rotated.stop();
    }
    // Two fresh apps: on PGlite (no Postgres here) each starts slowly on a loaded machine.
  }, 300_000);
});

// It reads the separate service process's output: only with Postgres.
describe.skipIf(!hasPostgres)('logs (LOG_LEVEL=debug, after every request above)', () => {
  it('never contain a token, an Authorization value or a connection parameter', async () => {
    const output = svc.output();
    if (process.env.HOSTILE_LOG_FILE) writeFileSync(process.env.HOSTILE_LOG_FILE, output);
    const lines = output.split('\n').filter(Boolean);
    // The capture works and covers what happened: refused webhooks and GraphQL debug lines were logged.
    expect(lines.filter((l) => l.includes('"webhook refused"')).length).toBeGreaterThan(20);
    expect(lines.some((l) => l.includes('"level":20'))).toBe(true);
    const leaks = lines.filter((l) => JWT.test(l) || JWT_HEAD_AND_CLAIMS.test(l) || /Bearer\s+\S/i.test(l) || l.includes('xxxxxxxxxxxxxxxx'));
    expect(leaks.map((l) => l.slice(0, 300))).toEqual([]);

    console.log(`hostile: ${lines.length} log lines checked, no token found`);
  });
});
