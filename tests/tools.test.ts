/**
 * The newcomer's first hour (issue 9, points 8–10), with every tool and the service run as real processes:
 * each tool answers --help and a bad command line without a stack trace; webhook:test finds the server
 * through PORT or env.local, names the URL it could not reach, and sends single events a subscriber sees;
 * env.example copied as env.local starts on the embedded defaults; an unreachable database gives one line.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintAdminToken } from '../src/app.js';
import { chooseLogFormat } from '../src/logger.js';
import { startTestApp, type TestApp } from './support/app.js';
import { wsClient } from '../tools/kit/clients.js';
import { gql } from '../tools/kit/graphql.js';
import { ROOT, runNodeScript, startNodeScript, waitForOutput, type ScriptResult } from './support/node-script.js';
import { freePort } from '../tools/kit/service-process.js';

const TOOLS = [
  { name: 'token', script: 'tools/mint-token.ts' },
  { name: 'webhook:test', script: 'tools/test-livekit-webhook.ts' },
  { name: 'migrate', script: 'tools/migrate.ts' },
  { name: 'schema', script: 'tools/print-schema.ts' },
];

const tempDirs: string[] = [];
/** A fresh working directory: no env.local unless a test writes one. */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lkss-tools-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const STACK_FRAME = /^\s+at /m;

async function inPairs<T>(jobs: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < jobs.length; i += 2) results.push(...(await Promise.all(jobs.slice(i, i + 2).map((job) => job()))));
  return results;
}

/** A command-line mistake: exit 2, the tool's name and the problem on the first line, the usage after it, no stack. */
function expectUsageError(result: ScriptResult, name: string, problem: RegExp) {
  expect(result.code, JSON.stringify(result)).toBe(2);
  const [first, second] = result.stderr.split('\n');
  expect(first).toMatch(new RegExp(`^${name}: `));
  expect(first).toMatch(problem);
  expect(second).toMatch(/^usage: npm run /);
  expect(result.stderr).not.toMatch(STACK_FRAME);
  expect(result.stdout).toBe('');
}

describe('every tool answers --help and a bad command line without a stack trace', { timeout: 120_000 }, () => {
  for (const tool of TOOLS) {
    it(`${tool.name}: --help prints the usage (exit 0); an unknown flag gives one line and the usage (exit 2)`, async () => {
      const cwd = tempDir();
      const [help, bad] = await Promise.all([runNodeScript(tool.script, ['--help'], { cwd }), runNodeScript(tool.script, ['--bogus'], { cwd })]);
      expect(help.code, JSON.stringify(help)).toBe(0);
      expect(help.stdout).toMatch(/^usage: npm run /);
      expect(help.stdout).toContain('--help');
      expect(help.stderr).toBe('');
      expectUsageError(bad, tool.name, /Unknown option '--bogus'/);
    }, 120_000);
  }

  it('a flag without its value, or values that make no sense, are usage errors too', async () => {
    const cwd = tempDir();
    const cases: Array<[script: string, args: string[], name: string, problem: RegExp]> = [
      ['tools/mint-token.ts', ['--room'], 'token', /'--room <value>' argument missing/],
      ['tools/mint-token.ts', [], 'token', /--room ROOM, --list or --admin/],
      ['tools/mint-token.ts', ['--room', 'r', '--admin'], 'token', /only one of/],
      ['tools/mint-token.ts', ['--list', '--ttl', 'soon'], 'token', /--ttl "soon"/],
      ['tools/test-livekit-webhook.ts', ['--room'], 'webhook:test', /'--room <value>' argument missing/],
      ['tools/test-livekit-webhook.ts', ['--event', 'room_started'], 'webhook:test', /--event needs --room/],
      [
        'tools/test-livekit-webhook.ts',
        ['--room', 'r', '--event', 'room_exploded'],
        'webhook:test',
        /--event "room_exploded" is not one of room_started, room_finished/,
      ],
      ['tools/test-livekit-webhook.ts', ['--url', 'localhost:3000'], 'webhook:test', /--url "localhost:3000" is not an http/],
    ];
    // Two at a time: each is a Node process with tsx, and the machine running the suite may be small.
    const results = await inPairs(
      cases.map(
        ([script, args]) =>
          () =>
            runNodeScript(script, args, { cwd }),
      ),
    );
    cases.forEach(([, , name, problem], i) => {
      expectUsageError(results[i]!, name, problem);
    });
  }, 180_000);

  it('token mints a token with exactly the grant asked for, signed with the key from env.local', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'env.local'), 'LIVEKIT_API_KEY=APIlocal\nLIVEKIT_API_SECRET=a-secret-from-env-local-0123456789\n');
    const result = await runNodeScript('tools/mint-token.ts', ['--room', 'studio-1', '--ttl', '5m'], { cwd });
    expect(result.code, JSON.stringify(result)).toBe(0);
    const payload = JSON.parse(Buffer.from(result.stdout.trim().split('.')[1]!, 'base64url').toString()) as Record<string, any>;
    expect(payload.iss).toBe('APIlocal');
    expect(payload.video).toEqual({ roomJoin: true, room: 'studio-1' });
    expect(payload.exp - payload.nbf).toBe(300);
  }, 60_000);
});

describe('webhook:test against a running service', { timeout: 120_000 }, () => {
  let server: TestApp;
  beforeAll(async () => {
    server = await startTestApp();
  });
  afterAll(async () => {
    await server?.stop();
  });
  const port = () => new URL(server.url).port;

  it('with nobody listening, it names the URL it tried and how to point elsewhere (exit 1, no stack)', async () => {
    const closed = await freePort();
    const result = await runNodeScript('tools/test-livekit-webhook.ts', [], { cwd: tempDir(), env: { PORT: String(closed) } });
    expect(result.code, JSON.stringify(result)).toBe(1);
    expect(result.stderr).toContain(`cannot reach the service at http://127.0.0.1:${closed} (ECONNREFUSED)`);
    expect(result.stderr).toContain('--url http://HOST:PORT');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toMatch(STACK_FRAME);
  });

  it('finds the server through PORT in env.local and runs the whole room life: LIVE, then STOPPED; the tampered request gets 401', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'env.local'), `PORT=${port()}\n`);
    const result = await runNodeScript('tools/test-livekit-webhook.ts', ['--room', 'tools-sequence'], { cwd });
    expect(result.code, JSON.stringify(result)).toBe(0);
    expect(result.stdout).toContain('created session for room tools-sequence: READY (version 1)');
    for (const type of ['room_started', 'participant_joined', 'track_published', 'participant_left', 'room_finished']) {
      expect(result.stdout).toMatch(new RegExp(`^${type} +→ 200 `, 'm'));
    }
    expect(result.stdout).toMatch(/^tampered body +→ 401 .*E_WEBHOOK_INVALID_SIGNATURE/m);
    // Status events and the live state (who joined, what they publish) each bump the version; it ends STOPPED after all of them.
    expect(result.stdout).toMatch(/^session now: STOPPED \(version \d+, /m);
    expect(versionIn(result.stdout, 'STOPPED')).toBeGreaterThanOrEqual(5);
  });

  it('--event sends one event at a time, following PORT: a subscriber sees READY, then LIVE, then STOPPED of the same room instance', async () => {
    const env = { PORT: port() };
    const cwd = tempDir();
    const room = `tools-live-${Date.now().toString(36)}`;
    const first = await runNodeScript('tools/test-livekit-webhook.ts', ['--room', room, '--event', 'participant_joined'], { cwd, env });
    expect(first.code, JSON.stringify(first)).toBe(0);
    expect(first.stdout).toMatch(/^participant_joined +→ 200 /m);
    // A participant joining is a live-state change (version 2), not a status change: the session stays READY.
    expect(first.stdout).toMatch(/^session now: READY \(version 2\)/m);

    let finalVersion = 0;
    const client = wsClient(server.url, await mintAdminToken(server.app.config, '5m'));
    const seen: Array<{ status: string; eventType: string; session: { roomSid: string | null } }> = [];
    const done = new Promise<void>((resolve, reject) => {
      client.subscribe(
        { query: 'subscription($room: String!) { sessionStatusChanged(roomName: $room) { status eventType session { roomSid } } }', variables: { room } },
        {
          next: (r) => {
            seen.push((r.data as any).sessionStatusChanged);
            if (seen.length === 3) resolve();
          },
          error: reject,
          complete: () => resolve(),
        },
      );
    });
    try {
      await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(1);
      const started = await runNodeScript('tools/test-livekit-webhook.ts', ['--room', room, '--event', 'room_started'], { cwd, env });
      expect(started.code, JSON.stringify(started)).toBe(0);
      expect(started.stdout).toMatch(/^session now: LIVE \(version \d+, room instance RM_/m);
      expect(versionIn(started.stdout, 'LIVE')).toBeGreaterThan(2);
      await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(2);
      const finished = await runNodeScript('tools/test-livekit-webhook.ts', ['--room', room, '--event', 'room_finished'], { cwd, env });
      expect(finished.code, JSON.stringify(finished)).toBe(0);
      expect(finished.stdout).toMatch(/^session now: STOPPED \(version \d+, /m);
      expect(versionIn(finished.stdout, 'STOPPED')).toBeGreaterThan(versionIn(started.stdout, 'LIVE'));
      finalVersion = versionIn(finished.stdout, 'STOPPED');
      await done;
    } finally {
      await client.dispose();
    }
    expect(seen.map((c) => `${c.status}/${c.eventType}`)).toEqual(['READY/snapshot', 'LIVE/room_started', 'STOPPED/room_finished']);
    // room_finished finished the instance room_started began, not a newer one.
    expect(seen[2]!.session.roomSid).toBe(seen[1]!.session.roomSid);
    const res = await gql(
      server.url,
      'query($room: String!) { sessionByRoom(roomName: $room) { status version } }',
      { room },
      await mintAdminToken(server.app.config, '5m'),
    );
    expect(res.body.data.sessionByRoom).toEqual({ status: 'STOPPED', version: finalVersion });
  });
});

describe('starting the service as a newcomer does', { timeout: 120_000 }, () => {
  it('env.example copied as env.local starts on the embedded defaults, says it is creating the database, and answers /readyz', async () => {
    const cwd = tempDir();
    copyFileSync(join(ROOT, 'env.example'), join(cwd, 'env.local'));
    const port = await freePort();
    const start = async () => {
      const run = startNodeScript('src/main.ts', [], { cwd, env: { PORT: String(port) } });
      try {
        await waitForOutput(run, (o) => o.stdout.includes('"msg":"listening on'), 90_000);
        const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
        expect(ready.status).toBe(200);
      } finally {
        run.child.kill('SIGTERM');
      }
      expect(await run.exited).toBe(0);
      // Not a terminal: JSON lines, one object per line.
      const lines = run.output().stdout.trim().split('\n');
      return lines.map((line) => JSON.parse(line) as { level: number; msg: string; database?: string });
    };
    const first = await start();
    expect(first.find((l) => l.msg.includes('embedded database'))?.msg).toBe('creating embedded database in .data/pglite (first start only)…');
    expect(first.find((l) => l.msg.startsWith('listening on'))?.database).toBe('pglite .data/pglite (schema public)');
    expect(first.filter((l) => l.level >= 50)).toEqual([]);
    const second = await start();
    expect(second.find((l) => l.msg.includes('embedded database'))?.msg).toBe('opening embedded database in .data/pglite…');
  }, 240_000);

  it('a database that cannot be reached gives one line naming it (password masked) and what failed, and exits 1', async () => {
    const closed = await freePort();
    const result = await runNodeScript('src/main.ts', [], {
      cwd: tempDir(),
      env: { PORT: '0', DATABASE_URL: `postgres://lkss:hunter2@127.0.0.1:${closed}/sessions`, DATABASE_CONNECT_TIMEOUT_SECONDS: '3' },
    });
    expect(result.code, JSON.stringify(result)).toBe(1);
    const lines = `${result.stdout}${result.stderr}`.trim().split('\n');
    const fatal = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 60);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]!.msg).toContain(
      `failed to start: cannot connect to the database at postgres://lkss:***@127.0.0.1:${closed}/sessions: connect ECONNREFUSED 127.0.0.1:${closed}`,
    );
    expect(`${result.stdout}${result.stderr}`).not.toContain('hunter2');
    expect(`${result.stdout}${result.stderr}`).not.toContain('"stack"');
  });

  it('logs are human-readable only in development on a terminal, unless LOG_FORMAT says otherwise', () => {
    expect(chooseLogFormat(undefined, 'development', true)).toBe('pretty');
    expect(chooseLogFormat(undefined, 'development', false)).toBe('json');
    expect(chooseLogFormat(undefined, 'production', true)).toBe('json');
    expect(chooseLogFormat('json', 'development', true)).toBe('json');
    expect(chooseLogFormat('pretty', 'production', false)).toBe('pretty');
  });
});

/** The version webhook:test printed in its "session now: STATUS (version N…" line. */
function versionIn(stdout: string, status: string): number {
  const m = new RegExp(`^session now: ${status} \\(version (\\d+)`, 'm').exec(stdout);
  if (!m) throw new Error(`no "session now: ${status}" line in:\n${stdout}`);
  return Number(m[1]);
}
