/** Writes the embedded database's starting point, assets/pglite-template.* (`npm run pglite:template -- --help`). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants } from 'node:zlib';
import { PGlite } from '@electric-sql/pglite';
import { installedPgliteVersion, TEMPLATE_FILE, TEMPLATE_INFO_FILE, type TemplateInfo } from '../src/db/pglite-template.js';
import { fail, parseToolArgs } from './cli.js';

const cli = {
  name: 'pglite:template',
  usage: `usage: npm run pglite:template

Runs PGlite's initdb once (in memory) and writes what it made to assets/${TEMPLATE_FILE} (a brotli-compressed
tar) and assets/${TEMPLATE_INFO_FILE} (the PGlite version it belongs to). A fresh embedded database folder starts
from that copy instead of running initdb (seconds of CPU and ~900 MB of memory). Run it after upgrading
@electric-sql/pglite: with another version installed the copy is ignored and every first start runs initdb.

  -h, --help   this text`,
};

parseToolArgs(cli, {});

try {
  const pglite = new PGlite();
  await pglite.waitReady;
  const { rows } = await pglite.query<{ server_version: string }>('show server_version');
  const tar = Buffer.from(await (await pglite.dumpDataDir('none')).arrayBuffer());
  await pglite.close();
  // A 24-bit window (16 MiB) lets brotli match the three near-identical databases (template0, template1, postgres).
  const packed = brotliCompressSync(tar, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_LGWIN]: 24, [constants.BROTLI_PARAM_SIZE_HINT]: tar.length },
  });
  const assets = fileURLToPath(new URL('../assets', import.meta.url));
  mkdirSync(assets, { recursive: true });
  const info: TemplateInfo = { pglite: installedPgliteVersion(), postgres: rows[0]!.server_version, tarBytes: tar.length };
  writeFileSync(join(assets, TEMPLATE_FILE), packed);
  writeFileSync(join(assets, TEMPLATE_INFO_FILE), `${JSON.stringify(info, null, 2)}\n`);
  process.stdout.write(`assets/${TEMPLATE_FILE}: PGlite ${info.pglite} (Postgres ${info.postgres}), ${tar.length} bytes packed to ${packed.length}\n`);
} catch (err) {
  fail(cli, (err as Error).message);
}
