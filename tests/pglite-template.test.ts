/**
 * Issue 11 (start-up): a new embedded database starts from a copy of PGlite's initdb output
 * (assets/pglite-template.*) instead of running initdb. The copy must belong to the installed PGlite, and a
 * folder made from it must be a real database that keeps its data across a restart.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { connectDatabase } from '../src/db/connect.js';
import { extractTar, seedDataDir, templateTar } from '../src/db/pglite-template.js';
import { createLogger } from '../src/logger.js';

const parent = mkdtempSync(join(tmpdir(), 'lkss-template-'));
afterAll(() => rmSync(parent, { recursive: true, force: true }));
const logger = createLogger('warn');

describe('the embedded database template', () => {
  it('belongs to the installed PGlite (else: npm run pglite:template)', () => {
    const template = templateTar();
    expect('missing' in template ? template.missing : 'ok').toBe('ok');
  });

  it('makes a fresh folder a database that keeps its data across a restart', async () => {
    const dataDir = join(parent, 'pglite');
    const open = () => connectDatabase({ kind: 'pglite', dataDir, schema: 'public' }, logger);
    const first = await open();
    try {
      await sql`create table kept (n int)`.execute(first.db);
      await sql`insert into kept values (42)`.execute(first.db);
    } finally {
      await first.close();
    }
    expect(existsSync(join(dataDir, 'PG_VERSION'))).toBe(true);
    const again = await open();
    try {
      const { rows } = await sql<{ n: number }>`select n from kept`.execute(again.db);
      expect(rows).toEqual([{ n: 42 }]);
    } finally {
      await again.close();
    }
  }, 120_000);

  it('leaves a folder with content alone', () => {
    const dir = join(parent, 'not-empty');
    mkdirSync(dir);
    writeFileSync(join(dir, 'something'), 'x');
    expect(seedDataDir(dir)).toEqual({ seeded: false });
    expect(existsSync(join(dir, 'PG_VERSION'))).toBe(false);
  });

  it('refuses an archive entry outside the folder', () => {
    const header = Buffer.alloc(512);
    header.write('../escape', 0, 'latin1');
    header.write('00000000000\0', 124, 'latin1');
    header.write('0', 156, 'latin1');
    expect(() => extractTar(Buffer.concat([header, Buffer.alloc(1024)]), join(parent, 'x'))).toThrow(/outside the folder/);
  });
});
