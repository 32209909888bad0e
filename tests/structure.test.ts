/**
 * Issue 9's structure, kept by a test: src/ imports form no cycle (files or folders), the pure status rule
 * imports nothing, SQL lives in the repository (and db/'s connect and migrate), the webhook path is spelled once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src', import.meta.url));
const files = (readdirSync(SRC, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => f.split('\\').join('/'));
const text = new Map(files.map((f) => [f, readFileSync(join(SRC, f), 'utf8')]));

/** Relative imports of a file (static, type-only and dynamic), as src-relative paths. */
function importsOf(file: string): string[] {
  const found = [...text.get(file)!.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]!);
  return found.map((spec) => relative(SRC, normalize(join(SRC, dirname(file), spec))).replace(/\.js$/, '.ts')).filter((f) => text.has(f));
}

/** Every cycle's members, found by depth-first search (empty when the graph is acyclic). */
function cycles(edges: Map<string, Set<string>>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of edges.keys()) if (!state.has(node)) visit(node);
  return found;
}

const fileEdges = new Map(files.map((f) => [f, new Set(importsOf(f))]));
/** A folder is a node; so is each file at the top of src/ (config, logger… below everything; app, router above). */
const unit = (file: string) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : file);

describe('src/ structure (issue 9)', () => {
  it('has no import cycle between files', () => {
    expect(cycles(fileEdges)).toEqual([]);
  });

  it('has no import cycle between folders', () => {
    const folderEdges = new Map<string, Set<string>>();
    for (const [file, targets] of fileEdges) {
      for (const target of targets) {
        if (unit(file) === unit(target)) continue;
        if (!folderEdges.has(unit(file))) folderEdges.set(unit(file), new Set());
        folderEdges.get(unit(file))!.add(unit(target));
      }
    }
    expect(cycles(folderEdges)).toEqual([]);
  });

  it('keeps the pure status rule free of imports', () => {
    expect(importsOf('sessions/status.ts')).toEqual([]);
  });

  it('keeps SQL in the repository (and the connection and migration plumbing of db/)', () => {
    const allowed = new Set(['sessions/repo.ts', 'db/connect.ts', 'db/migrate.ts']);
    const withSql = files.filter((f) => /\.(selectFrom|insertInto|updateTable|deleteFrom|forUpdate)\(|\bsql(<[^>]*>)?`/.test(text.get(f)!));
    expect(withSql.filter((f) => !allowed.has(f))).toEqual([]);
  });

  it('spells the webhook path once', () => {
    const spelled = files.filter((f) => text.get(f)!.includes('/api/v1/webhooks/livekit'));
    expect(spelled).toEqual(['webhooks/route.ts']);
  });
});
