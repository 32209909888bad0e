import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';

/**
 * A fresh PGlite folder starts from a copy of what PGlite's own initdb writes (`assets/pglite-template.tar.br`,
 * made by `npm run pglite:template`), instead of running initdb: initdb in WebAssembly takes 5-10 s of CPU and
 * about 900 MB of memory (a second Postgres instance hosts it), unpacking the copy well under a second.
 * The copy is only used with the PGlite version it was made by (`assets/pglite-template.json`); with any
 * other, PGlite runs initdb as before.
 */
export const TEMPLATE_FILE = 'pglite-template.tar.br';
export const TEMPLATE_INFO_FILE = 'pglite-template.json';

export type TemplateInfo = { pglite: string; postgres: string; tarBytes: number };

/** The project's `assets/` folder, found from this file whether it runs from src/, dist/src/ or a bundle in node_modules/.cache. */
export function assetsDir(from: string = fileURLToPath(import.meta.url)): string | undefined {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    try {
      if (readdirSync(join(dir, 'assets')).includes(TEMPLATE_INFO_FILE)) return join(dir, 'assets');
    } catch {
      // no assets/ here: one level up
    }
    if (dirname(dir) === dir) return undefined;
  }
}

export function installedPgliteVersion(): string {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  for (let dir = dirname(entry); dirname(dir) !== dir; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@electric-sql/pglite' && pkg.version) return pkg.version;
    } catch {
      // not the package root yet
    }
  }
  throw new Error('cannot find the version of @electric-sql/pglite');
}

/**
 * The template as an uncompressed tar, or why there is none (missing, or made by another PGlite version).
 * Read once per process (tests open many in-memory databases).
 */
export function templateTar(): { tar: Buffer } | { missing: string } {
  cached ??= loadTemplate();
  return cached;
}
let cached: ReturnType<typeof templateTar> | undefined;

function loadTemplate(): ReturnType<typeof templateTar> {
  const dir = assetsDir();
  if (!dir) return { missing: `no assets/${TEMPLATE_INFO_FILE}` };
  const info = JSON.parse(readFileSync(join(dir, TEMPLATE_INFO_FILE), 'utf8')) as TemplateInfo;
  const installed = installedPgliteVersion();
  if (info.pglite !== installed) return { missing: `the template is for PGlite ${info.pglite}, ${installed} is installed (npm run pglite:template)` };
  const tar = brotliDecompressSync(readFileSync(join(dir, TEMPLATE_FILE)));
  if (tar.length !== info.tarBytes) return { missing: `assets/${TEMPLATE_FILE} is damaged (${tar.length} bytes, expected ${info.tarBytes})` };
  return { tar };
}

/**
 * Fills a missing or empty data folder from the template. Unpacked next to it and renamed into place, so a
 * start killed half-way leaves no half-made cluster behind (the next start sees an empty folder again).
 * Leaves a folder with content alone; says why when it has no template to use (then PGlite runs initdb).
 */
export function seedDataDir(dataDir: string): { seeded: boolean; missing?: string } {
  const target = resolve(dataDir);
  let entries: string[] = [];
  try {
    entries = readdirSync(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (entries.length > 0) return { seeded: false };
  const template = templateTar();
  if ('missing' in template) return { seeded: false, missing: template.missing };
  const staging = `${target}.seeding-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  try {
    extractTar(template.tar, staging);
    // rename(2) replaces an empty directory.
    renameSync(staging, target);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  return { seeded: true };
}

/** Unpacks a plain ustar archive (directories and regular files only: what PGlite's dumpDataDir writes). */
export function extractTar(tar: Buffer, into: string): void {
  const root = resolve(into);
  mkdirSync(root, { recursive: true });
  for (let offset = 0; offset + 512 <= tar.length;) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) => header.toString('latin1', start, start + length).replace(/\0.*$/s, '');
    const prefix = field(345, 155);
    const name = (prefix ? `${prefix}/` : '') + field(0, 100);
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1) || '0';
    const path = resolve(root, `.${sep}${name}`);
    if (path !== root && !path.startsWith(root + sep)) throw new Error(`template entry outside the folder: ${name}`);
    offset += 512;
    if (type === '5') mkdirSync(path, { recursive: true });
    else if (type === '0') {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, tar.subarray(offset, offset + size));
    } else throw new Error(`template entry of unsupported type ${JSON.stringify(type)}: ${name}`);
    offset += Math.ceil(size / 512) * 512;
  }
}
