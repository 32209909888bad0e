/**
 * Prints the GraphQL schema as sorted SDL into schema/schema.graphql (`npm run schema:print`),
 * or with --check fails when the committed file differs from the code (`npm run schema:check`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { printedSchema } from '../src/graphql/schema.js';

const file = fileURLToPath(new URL('../schema/schema.graphql', import.meta.url));
const sdl = printedSchema();

if (process.argv.includes('--check')) {
  let committed = '';
  try {
    committed = readFileSync(file, 'utf8');
  } catch {
    // missing file: reported below as a difference
  }
  if (committed !== sdl) {
    process.stderr.write('schema/schema.graphql is out of date with the code: run `npm run schema:print` and commit it.\n');
    process.exit(1);
  }
  process.stdout.write('schema/schema.graphql is up to date\n');
} else {
  writeFileSync(file, sdl);
  process.stdout.write(`wrote ${file}\n`);
}
