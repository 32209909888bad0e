/**
 * Where the time goes: summarises V8 .cpuprofile files (written by the service under --cpu-prof) by
 * area (npm package, src file, node internals, GC), by function (self time), and by src function
 * including callees. Also usable alone: `npx tsx tools/bench/cpuprofile.ts <dir-or-file>...`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

type CallFrame = { functionName: string; url: string; lineNumber: number };
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
type Profile = { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number };

export type ProfileSummary = {
  file: string;
  busyMs: number;
  idleMs: number;
  byArea: Array<{ area: string; ms: number; pct: number }>;
  topSelf: Array<{ fn: string; ms: number; pct: number; calledFrom: string }>;
  srcInclusive: Array<{ fn: string; ms: number; pct: number }>;
};

const IDLE = new Set(['(idle)', '(program)']);

/** The peer runs from node_modules/.cache/lkss-bench/<copy>/: read its files as if it were a project of its own. */
const unCached = (url: string) => url.replace(/^.*node_modules\/\.cache\/lkss-bench\/[^/]+\//, 'file:///');

function area(frame: CallFrame): string {
  const { functionName } = frame;
  const url = unCached(frame.url);
  if (functionName.startsWith('(')) return functionName;
  if (url === '') return '(native)';
  const pkg = /.*node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const src = /\/(src\/.+|tools\/.+|migrations\/.+)$/.exec(url);
  if (src) return src[1]!;
  if (url.startsWith('node:'))
    return url
      .replace(/^node:internal\//, 'node:')
      .split('/')
      .slice(0, 2)
      .join('/');
  return url;
}

// Line numbers of tsx-compiled src files are those of the generated code: shown for node internals only.
const label = (frame: CallFrame) => `${frame.functionName || '(anonymous)'} ${area(frame)}${frame.url.startsWith('node:') ? `:${frame.lineNumber + 1}` : ''}`;

export function summarizeProfile(file: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  let busy = 0;
  let idle = 0;
  const byArea = new Map<string, number>();
  const bySelf = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const callers = new Map<string, Map<string, number>>();
  for (const [id, t] of self) {
    const node = byId.get(id)!;
    if (IDLE.has(node.callFrame.functionName)) {
      idle += t;
      continue;
    }
    busy += t;
    const a = area(node.callFrame);
    byArea.set(a, (byArea.get(a) ?? 0) + t);
    const l = label(node.callFrame);
    bySelf.set(l, (bySelf.get(l) ?? 0) + t);
    const chain: string[] = [];
    for (let at = parent.get(id); at !== undefined && chain.length < 4; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      if (frame.functionName === '(root)') break;
      chain.push(`${frame.functionName || '(anonymous)'} ${area(frame)}`);
    }
    const perCaller = callers.get(l) ?? new Map<string, number>();
    callers.set(l, perCaller);
    const chainKey = chain.join(' < ');
    perCaller.set(chainKey, (perCaller.get(chainKey) ?? 0) + t);
    // Inclusive time of our own functions: every distinct src/ frame on this stack.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      if (!/\/src\//.test(unCached(frame.url)) || /node_modules/.test(unCached(frame.url))) continue;
      const key = label(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + t);
    }
  }
  const rank = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => ({ k, ms: Math.round(v), pct: Math.round((1000 * v) / Math.max(1, busy)) / 10 }));
  return {
    file: basename(file),
    busyMs: Math.round(busy),
    idleMs: Math.round(idle),
    byArea: rank(byArea).map(({ k, ms, pct }) => ({ area: k, ms, pct })),
    topSelf: rank(bySelf).map(({ k, ms, pct }) => ({ fn: k, ms, pct, calledFrom: [...callers.get(k)!].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '' })),
    srcInclusive: rank(inclusive).map(({ k, ms, pct }) => ({ fn: k, ms, pct })),
  };
}

function profileFiles(paths: string[]): string[] {
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => join(p, f))
          .sort()
      : [p],
  );
}

export function formatSummary(s: ProfileSummary): string {
  const lines = [`-- CPU profile ${s.file}: ${s.busyMs} ms busy, ${s.idleMs} ms idle --`, '  by area (self time):'];
  for (const a of s.byArea) lines.push(`    ${String(a.pct).padStart(5)} %  ${a.area}`);
  lines.push('  top functions (self time):');
  for (const f of s.topSelf) lines.push(`    ${String(f.pct).padStart(5)} %  ${f.fn}${f.calledFrom ? `\n             < ${f.calledFrom}` : ''}`);
  lines.push('  src functions (including callees):');
  for (const f of s.srcInclusive) lines.push(`    ${String(f.pct).padStart(5)} %  ${f.fn}`);
  return lines.join('\n');
}

export function summarizeCpuProfiles(dir: string): { text: string; data: ProfileSummary[] } {
  const data = profileFiles([dir]).map((f) => summarizeProfile(f));
  return { text: data.map(formatSummary).join('\n\n'), data };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = profileFiles(process.argv.slice(2));
  if (files.length === 0) {
    process.stderr.write('usage: npx tsx tools/bench/cpuprofile.ts <dir-or-.cpuprofile>...\n');
    process.exit(2);
  }
  for (const f of files) process.stdout.write(`${formatSummary(summarizeProfile(f))}\n\n`);
}
