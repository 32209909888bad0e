/**
 * `npm start`: runs src/main.ts from source without a TypeScript loader at run time. esbuild (the compiler
 * tsx uses) bundles src/ and migrations/ into one ES module in node_modules/.cache/lkss-start/ (packages stay
 * external, loaded by Node as usual), only when a source file changed since the last bundle; then this
 * process imports it. Through tsx's loader every module, the dependencies' too, is resolved and loaded
 * through a worker thread: about a second of CPU per start. Nothing is type-checked here (tsx does not
 * either): `npm run typecheck`. `npm run dev` keeps tsx for its watch mode.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cacheDir = join(root, 'node_modules', '.cache', 'lkss-start');

/** Every input's path, size and mtime: another list is another bundle. */
function sourceStamp() {
  const entries = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const { size, mtimeMs } = statSync(path);
        entries.push(`${path}:${size}:${mtimeMs}`);
      }
    }
  };
  for (const dir of ['src', 'migrations']) walk(join(root, dir));
  for (const file of ['package.json', 'package-lock.json', 'tsconfig.json', 'tools/start.mjs']) {
    const { size, mtimeMs } = statSync(join(root, file));
    entries.push(`${file}:${size}:${mtimeMs}`);
  }
  return createHash('sha256').update(entries.sort().join('\n')).digest('hex').slice(0, 16);
}

const outDir = join(cacheDir, sourceStamp());
let built = false;
try {
  built = statSync(join(outDir, 'main.js')).isFile();
} catch {
  // not built yet
}
let throughTsx = false;
if (!built) {
  try {
    await bundle();
  } catch (err) {
    throughTsx = true;
    // A read-only node_modules (or no esbuild): run through tsx's loader, as `npm start` used to.
    process.stderr.write(`npm start: cannot bundle into ${cacheDir} (${err.message}); running through tsx\n`);
    const { register } = await import('tsx/esm/api');
    register();
    await import(pathToFileURL(join(root, 'src', 'main.ts')).href);
  }
}
if (!throughTsx) {
  // Stack traces name the TypeScript files and lines, as under tsx.
  process.setSourceMapsEnabled(true);
  await import(pathToFileURL(join(outDir, 'main.js')).href);
}

async function bundle() {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: { main: join(root, 'src', 'main.ts') },
    outdir: outDir,
    bundle: true,
    // main.ts imports the rest of the service with import(): a chunk of its own, so its packages load only then.
    splitting: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    tsconfig: join(root, 'tsconfig.json'),
    logLevel: 'warning',
    write: false,
  });
  // Written into a folder of its own and renamed into place: two starts at once never read half a bundle.
  const staging = `${outDir}.${process.pid}`;
  try {
    for (const file of result.outputFiles) {
      const path = join(staging, file.path.slice(outDir.length));
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, file.contents);
    }
    renameSync(staging, outDir);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    // Another start got there first: its bundle is this one.
    if (!statSync(join(outDir, 'main.js'), { throwIfNoEntry: false })?.isFile()) throw err;
  }
  // Earlier bundles are of no use any more.
  for (const old of readdirSync(cacheDir))
    if (join(cacheDir, old) !== outDir && !old.includes('.')) rmSync(join(cacheDir, old), { recursive: true, force: true });
}
