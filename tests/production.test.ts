/**
 * What NODE_ENV=production changes, observed over HTTP on the service running as its own process (not
 * only the config values): no introspection, no GraphiQL, no field suggestions, CORS only for listed
 * origins; and what operations rely on: X-Request-Id echoed and logged with the error's erresid,
 * the Prometheus metrics counting webhooks; an unexpected failure (a database trigger that raises, for one
 * room name only) reaches the client masked, with no message or stack, and the log has it under the erresid.
 * A development app is the control for each difference.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../tools/kit/async.js';
import { newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';
import { availableBackends, dropSchema, TEST_DATABASE_URL, uniqueName } from '../tools/kit/backends.js';
import { gql, mintToken } from '../tools/kit/graphql.js';
import { startServiceProcess, type ServiceProcess } from '../tools/kit/service-process.js';

const { postgres: hasPostgres } = await availableBackends();
const CREDS = { apiKey: 'prodkey', apiSecret: 'prod-secret-0123456789abcdef0123456789' };
const ALLOWED = 'https://app.example';
/** Tokens signed with the service's (non-dev) key, as the LiveKit app minting them would. */
const SIGNING = { apiKey: CREDS.apiKey, secret: CREDS.apiSecret };

const introspection = '{ __schema { queryType { name } } }';
const typo = '{ sesions(first: 1) { edges { node { id } } } }';

async function preflight(url: string, origin: string) {
  return fetch(`${url}/graphql`, {
    method: 'OPTIONS',
    headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,authorization' },
  });
}

describe.skipIf(!hasPostgres)('NODE_ENV=production (service process)', () => {
  const schema = uniqueName('prod');
  let svc: ServiceProcess;
  let token: string;
  beforeAll(async () => {
    svc = await startServiceProcess({
      schema,
      prefix: `${schema}:`,
      env: { NODE_ENV: 'production', LIVEKIT_API_KEY: CREDS.apiKey, LIVEKIT_API_SECRET: CREDS.apiSecret, CORS_ORIGINS: ALLOWED, LOG_LEVEL: 'info' },
    });
    token = await mintToken({ roomList: true }, SIGNING);
  }, 60_000);
  afterAll(async () => {
    await svc?.stop();
    await dropSchema(schema).catch(() => {});
  });

  it('refuses introspection', async () => {
    const res = await gql(svc.url, introspection, {}, token);
    expect(res.body.data?.__schema).toBeUndefined();
    expect(res.body.errors?.[0]?.message).toMatch(/introspection/i);
  });

  it('serves no GraphiQL page', async () => {
    const res = await fetch(`${svc.url}/graphql`, { headers: { Accept: 'text/html' } });
    const text = await res.text();
    expect(text).not.toMatch(/graphiql/i);
  });

  it('suggests no field names in errors', async () => {
    const res = await gql(svc.url, typo, {}, token);
    expect(res.body.errors?.length).toBeGreaterThan(0);
    expect(JSON.stringify(res.body.errors)).not.toMatch(/did you mean/i);
    expect(JSON.stringify(res.body.errors)).not.toContain('"sessions"');
  });

  it('allows cross-origin requests only from CORS_ORIGINS', async () => {
    const allowed = await preflight(svc.url, ALLOWED);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    const other = await preflight(svc.url, 'https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).not.toBe('https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).not.toBe('*');
  });

  it('echoes X-Request-Id and logs the refused webhook under it with the same erresid; /metrics counts the outcomes', async () => {
    const metric = async () => {
      const text = await (await fetch(`${svc.url}/metrics`)).text();
      expect(text).toContain('lkss_webhook_duration_seconds');
      expect(text).toContain('lkss_subscriptions_active');
      const sum = (re: RegExp) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
      return {
        total: sum(/^lkss_webhook_requests_total\{[^}]*\} (\d+)/gm),
        refused: sum(/^lkss_webhook_requests_total\{[^}]*outcome="[^"]*(?:refused|invalid|401|unauth)[^"]*"[^}]*\} (\d+)/gm),
      };
    };
    const before = await metric();
    const requestId = `req-${Math.random().toString(36).slice(2, 10)}`;
    const res = await fetch(`${svc.url}/api/v1/webhooks/livekit`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/webhook+json', Authorization: 'not-a-token', 'X-Request-Id': requestId },
      body: '{}',
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('x-request-id')).toBe(requestId);
    const { erresid } = (await res.json()) as { erresid: string };
    // A request without one gets a fresh id.
    const fresh = (await fetch(`${svc.url}/healthz`)).headers.get('x-request-id');
    expect(fresh).toMatch(/\S{8,}/);
    expect(fresh).not.toBe(requestId);

    const accepted = await sendEvent(svc.url, 'participant_joined', newRoomInstance('metrics-room'), { creds: CREDS });
    expect(accepted.status).toBe(200);
    const after = await metric();
    expect(after.total - before.total).toBe(2);

    const linesOf = () =>
      svc
        .output()
        .split('\n')
        .filter((l) => l.includes(`"reqId":"${requestId}"`));
    await waitFor(() => linesOf().some((l) => l.includes(erresid)), 10_000);
    const logged = linesOf();
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.some((l) => l.includes(erresid))).toBe(true);
    expect(logged.join('\n')).not.toContain('not-a-token');
  });

  describe('an unexpected failure', () => {
    // A failure nothing anticipates, with a text that must stay in the log: the database raises it when
    // a row for a room named boom-* is written (a session created over GraphQL, a webhook recorded).
    const SECRET = 'secret-trigger-detail';
    let db: pg.Client;
    beforeAll(async () => {
      db = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await db.connect();
      await db.query(`create function "${schema}".boom() returns trigger language plpgsql as $$
        begin
          if new.room_name like 'boom-%' then raise exception '${SECRET} for %', new.room_name; end if;
          return new;
        end $$`);
      for (const table of ['sessions', 'webhook_events'])
        await db.query(`create trigger boom before insert on "${schema}".${table} for each row execute function "${schema}".boom()`);
    });
    afterAll(() => db?.end());

    const leaks = /secret-trigger-detail|stack|at [\w.<>]+ \(|\.ts:\d+|P0001|insert into/i;

    it('a resolver error reaches the client as "Unexpected error." with no message or stack; the log has the real error', async () => {
      const admin = await mintToken({ roomCreate: true, roomList: true, roomAdmin: true }, SIGNING);
      const res = await gql(
        svc.url,
        'mutation($input: CreateSessionInput!) { createSession(input: $input) { session { id } } }',
        { input: { roomName: `boom-gql-${Date.now()}` } },
        admin,
      );
      expect(res.body.errors?.map((e) => e.message)).toEqual(['Unexpected error.']);
      expect(JSON.stringify(res.body)).not.toMatch(leaks);
      await waitFor(() => svc.output().includes(SECRET), 10_000);
      expect(svc.output()).toContain(SECRET);
    });

    it('a webhook answers 500 E_INTERNAL with an erresid and "Internal error" only; the log has the real error under that erresid', async () => {
      const res = await sendEvent(svc.url, 'participant_joined', newRoomInstance(`boom-wh-${Date.now()}`), { creds: CREDS });
      expect(res.status).toBe(500);
      const body = res.json as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual(['errcode', 'erresid', 'errmesg', 'success']);
      expect(body).toMatchObject({ success: false, errcode: 'E_INTERNAL', errmesg: 'Internal error' });
      expect(JSON.stringify(body)).not.toMatch(leaks);
      // The log line is written before the answer, but it reaches this process through another pipe: wait for it (bounded).
      const logged = () =>
        svc
          .output()
          .split('\n')
          .filter((l) => l.includes(String(body.erresid)))
          .join('\n');
      await waitFor(() => logged().includes(SECRET), 10_000);
      expect(logged()).toContain(SECRET);
    });
  });
});

describe('development defaults (the control)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ NODE_ENV: 'development' });
  }, 300_000);
  afterAll(() => t?.stop());

  it('allows introspection, serves GraphiQL, suggests field names and allows any origin', async () => {
    const token = await mintToken({ roomList: true });
    expect((await gql(t.url, introspection, {}, token)).body.data?.__schema).toEqual({ queryType: { name: 'Query' } });
    expect(await (await fetch(`${t.url}/graphql`, { headers: { Accept: 'text/html' } })).text()).toMatch(/graphiql/i);
    expect(JSON.stringify((await gql(t.url, typo, {}, token)).body.errors)).toMatch(/did you mean/i);
    expect((await preflight(t.url, 'https://anywhere.example')).headers.get('access-control-allow-origin')).toMatch(/^(\*|https:\/\/anywhere\.example)$/);
  });
});
