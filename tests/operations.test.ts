/**
 * The operator tools, run as an operator runs them (their own process, configured by the environment),
 * against the real app: `npm run token -- --room R` mints a token the service accepts for R only, and
 * `npm run webhook:test` drives a session READY → LIVE → STOPPED.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './support/app.js';
import { adminToken, createSession, errorCodes, gql } from '../tools/kit/graphql.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);
/** A tool as its own process, with only the dev LiveKit keys' defaults (no env.local is read: cwd is the repo, which has none). */
const tool = (script: string, args: string[]) =>
  run(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    timeout: 120_000,
  });

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
}, 300_000);
afterAll(() => t?.stop());

const READ = 'query($room: String!) { sessionByRoom(roomName: $room) { roomName status } }';
const roomName = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}`;

describe('tools', () => {
  it('token --room R mints a token that reads R and nothing else', async () => {
    const admin = await adminToken();
    const mine = roomName('tok');
    const other = roomName('tok-other');
    await createSession(t.url, mine, admin);
    await createSession(t.url, other, admin);
    const { stdout } = await tool('tools/mint-token.ts', ['--room', mine]);
    const token = stdout.trim();
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect((await gql(t.url, READ, { room: mine }, token)).body.data?.sessionByRoom).toEqual({ roomName: mine, status: 'READY' });
    expect(errorCodes(await gql(t.url, READ, { room: other }, token))).toEqual(['FORBIDDEN']);
  }, 180_000);

  it('webhook:test against a running server creates the session and takes it READY → LIVE → STOPPED', async () => {
    const room = roomName('wt');
    await tool('tools/test-livekit-webhook.ts', ['--url', t.url, '--room', room]);
    const db = t.app.database.db;
    const session = await db.selectFrom('sessions').select(['id', 'status', 'version']).where('room_name', '=', room).executeTakeFirstOrThrow();
    expect(session.status).toBe('STOPPED');
    const history = await db.selectFrom('session_changes').select(['version', 'status']).where('session_id', '=', session.id).orderBy('version').execute();
    // One change record per change after creation (status and live state alike: 2, 3, … up to the session's
    // version); the status goes READY → LIVE → STOPPED once each.
    expect(history.map((h) => h.version)).toEqual(Array.from({ length: session.version - 1 }, (_, i) => i + 2));
    const statuses = ['READY', ...history.map((h) => h.status)].filter((s, i, all) => i === 0 || s !== all[i - 1]);
    expect(statuses).toEqual(['READY', 'LIVE', 'STOPPED']);
  }, 180_000);
});
