/**
 * Issue 8, item 4: two processes on one embedded PGlite folder. The second opener (a second service, or
 * `npm run migrate` while the service runs) is refused with a message naming the folder and the holder's
 * pid; once the holder is dead (SIGKILL leaves its lock file behind) the lock is taken over.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startServiceProcess, type ServiceProcess } from '../tools/kit/service-process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const parent = mkdtempSync(join(tmpdir(), 'lkss-lock-'));
const dataDir = join(parent, 'pglite');
// No DATABASE_URL: the embedded database in dataDir.
const env = { DATABASE_URL: '', PGLITE_DATA_DIR: dataDir, RECONCILE_INTERVAL_SECONDS: '0' };

let svc: ServiceProcess | undefined;
afterAll(async () => {
  await svc?.stop('SIGKILL');
  rmSync(parent, { recursive: true, force: true });
});

/** `npm run migrate` (tools/migrate.ts) with the service's configuration, as its own process. */
async function runMigrate(): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'tools/migrate.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', NODE_ENV: 'test', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

describe('one embedded PGlite folder, two processes', () => {
  it('refuses migrate and a second service while the first runs, naming the folder and its pid; takes over a dead holder’s lock', async () => {
    // The first creation of a PGlite folder is slow (10-40 s on a loaded machine): let migrate do it, with no
    // start-up deadline. It must release the lock when it exits, or the service could not start next.
    const created = await runMigrate();
    expect(created.code, created.output).toBe(0);
    expect(existsSync(`${dataDir}.lock`)).toBe(false);

    svc = await startServiceProcess({ schema: 'public', prefix: `lock-${process.pid}:`, env, readyTimeoutMs: 120_000 });
    const holderPid = svc.child.pid!;

    const migrate = await runMigrate();
    expect(migrate.code, migrate.output).not.toBe(0);
    expect(migrate.output).toContain(dataDir);
    expect(migrate.output).toContain(`process ${holderPid}`);
    expect(existsSync(`${dataDir}.lock`)).toBe(true);

    const second = await startServiceProcess({ schema: 'public', prefix: `lock2-${process.pid}:`, env, readyTimeoutMs: 120_000 }).then(
      async (s) => {
        await s.stop('SIGKILL');
        return 'started';
      },
      (err: Error) => err.message,
    );
    expect(second).toContain(`The embedded database folder ${dataDir} is in use by process ${holderPid}`);
    // The first service was not disturbed.
    expect((await fetch(`${svc.url}/readyz`)).status).toBe(200);

    // A holder that dies without cleaning up leaves a stale lock: the next opener takes it over.
    await svc.stop('SIGKILL');
    svc = undefined;
    expect(existsSync(`${dataDir}.lock`)).toBe(true);
    const after = await runMigrate();
    expect(after.code, after.output).toBe(0);
    expect(after.output).toMatch(/already up to date/);
    // And releases it when done.
    expect(existsSync(`${dataDir}.lock`)).toBe(false);
  }, 480_000);
});
