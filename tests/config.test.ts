import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, readEnv } from '../src/config.js';
import { printedSchema } from '../src/graphql/schema.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('configuration', () => {
  it('needs nothing in development: dev LiveKit keys, embedded database, in-process pub/sub', () => {
    const config = loadConfig({});
    expect(config.env).toBe('development');
    expect(config.livekit).toMatchObject({ apiKey: 'devkey', apiSecret: 'secret', clockToleranceSeconds: 60 });
    expect(config.database.kind).toBe('pglite');
    expect(config.redis.url).toBeUndefined();
    expect(config.graphql).toMatchObject({ graphiql: true, introspection: true, authMode: 'token' });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('refuses dev keys, a missing DATABASE_URL and AUTH_MODE=off in production, naming every problem at once', () => {
    const problems = problemsOf({ NODE_ENV: 'production', LIVEKIT_API_KEY: 'devkey', AUTH_MODE: 'off' });
    expect(problems).toEqual([
      'LIVEKIT_API_KEY: the development key "devkey" is refused in production',
      'LIVEKIT_API_SECRET: required in production',
      'DATABASE_URL: required in production (the embedded database is for development)',
      'AUTH_MODE: "off" is refused in production',
    ]);
  });

  it('takes a complete production configuration, with production defaults', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      LIVEKIT_API_KEY: 'APIabc',
      LIVEKIT_API_SECRET: 'a-long-production-secret-of-32-chars!',
      LIVEKIT_WEBHOOK_KEYS: 'APIold:old-secret-value, APInew:new-secret-value',
      DATABASE_URL: 'postgres://db.internal/app',
    });
    expect([...config.livekit.webhookKeys.keys()]).toEqual(['APIabc', 'APIold', 'APInew']);
    expect(config.graphql).toMatchObject({ graphiql: false, introspection: false, corsOrigins: [] });
  });

  it('reports malformed values by name', () => {
    expect(problemsOf({ PORT: 'eighty', LOG_LEVEL: 'loud', LIVEKIT_WEBHOOK_KEYS: 'nocolon' }).join('\n')).toMatch(/PORT[\s\S]*LOG_LEVEL/);
    expect(problemsOf({ LIVEKIT_WEBHOOK_KEYS: 'nocolon' })).toEqual(['LIVEKIT_WEBHOOK_KEYS: each entry must be "key:secret"']);
    expect(problemsOf({ DATABASE_URL: 'mysql://x' })).toEqual(['DATABASE_URL: must start with postgres:// or postgresql://']);
  });

  it('reads env.local under the real environment (real variables win)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lkss-'));
    const file = join(dir, 'env.local');
    writeFileSync(file, 'LIVEKIT_API_KEY=fromfile\nLIVEKIT_API_SECRET=filesecret\nPORT=4000\n');
    const env = readEnv({ PORT: '5000' }, file);
    expect(loadConfig(env)).toMatchObject({ port: 5000, livekit: { apiKey: 'fromfile', apiSecret: 'filesecret' } });
  });

  it('the process exits non-zero at start with every problem listed', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, NODE_ENV: 'production', LIVEKIT_API_KEY: 'devkey', LIVEKIT_API_SECRET: 'secret' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('LIVEKIT_API_KEY: the development key "devkey" is refused in production');
    expect(result.stderr).toContain('LIVEKIT_API_SECRET: the development secret is refused in production');
    expect(result.stderr).toContain('DATABASE_URL: required in production');
  });
});

describe('schema/schema.graphql', () => {
  it('matches the code (npm run schema:check)', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'tools/print-schema.ts', '--check'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(printedSchema()).toMatch(/sessionStatusChanged\([\s\S]*?\n {4}id: ID\n[\s\S]*?\n {4}roomName: String\n {2}\): SessionStatusChange!/);
  });
});
