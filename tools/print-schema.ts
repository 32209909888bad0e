/**
 * Prints the GraphQL schema as sorted SDL into schema/schema.graphql (`npm run schema:print`),
 * or with --check fails when the committed file differs from the code (`npm run schema:check`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { printedSchema } from '../src/graphql/schema.js';
import { fail, parseToolArgs } from './cli.js';

const cli = {
  name: 'schema',
  usage: `usage: npm run schema:print | npm run schema:check

Prints the GraphQL schema the code builds as sorted SDL into schema/schema.graphql.

  --check      write nothing; exit 1 when schema/schema.graphql differs from the code
  -h, --help   this text`,
};

const values = parseToolArgs(cli, { check: { type: 'boolean', default: false } });

const file = fileURLToPath(new URL('../schema/schema.graphql', import.meta.url));
const sdl = printedSchema();

if (values.check) {
  let committed = '';
  try {
    committed = readFileSync(file, 'utf8');
  } catch {
    // missing file: reported below as a difference
  }
  if (committed !== sdl) fail(cli, 'schema/schema.graphql is out of date with the code: run `npm run schema:print` and commit it.');
  process.stdout.write('schema/schema.graphql is up to date\n');
} else {
  writeFileSync(file, sdl);
  process.stdout.write(`wrote ${file}\n`);
}
