/**
 * Start-up, spawn → `/readyz` 200, with the exact commands of package.json:
 * - the embedded quick start (`npm start`: no DATABASE_URL or REDIS_URL, PGlite in a folder, in-process pub/sub),
 *   first start on a fresh folder with a cold start cache (as right after `npm ci`), then a restart on that folder;
 * - the compiled production server (`npm run serve` after `npm run build`, NODE_ENV=production) against the real
 *   Postgres and a private redis-server: on a fresh database (it migrates), then again on that migrated database.
 * Each is repeated (`runs`) and reported as the median, with the process's CPU time and RSS at ready (a busy
 * machine stretches the wall time; the CPU time says what the start itself costs).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from '../kit/async.js';
import { startPrivateRedis } from '../kit/private-redis.js';
import { freePort } from '../kit/service-process.js';
import { BENCH_CREDENTIALS, buildIfStale, round, type BenchResult } from './common.js';
import { freshDatabase } from './targets.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const READY_TIMEOUT_MS = 120_000;

export type StartSample = { seconds: number; cpuSeconds: number; rss: number };
export type StartFigure = { median: StartSample; samples: StartSample[] };
export type StartupResult = {
  embeddedFirst: StartFigure;
  embeddedRestart: StartFigure;
  productionFresh?: StartFigure;
  productionMigrated?: StartFigure;
  load: { before: number[]; after: number[] };
};

/** `node …` of an npm script, as arguments for this Node binary. */
function scriptArgs(name: 'start' | 'serve'): string[] {
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  const [node, ...args] = scripts[name]!.split(/\s+/);
  if (node !== 'node') throw new Error(`npm run ${name} is not "node …": ${scripts[name]}`);
  return args;
}

/** utime + stime of a process (all its threads), from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : NaN;
}

/** Spawns, polls /readyz every 20 ms, samples at the first 200, then stops the process (SIGTERM) and waits for it. */
async function timeStart(args: string[], env: Record<string, string>): Promise<StartSample> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode} before it was ready:\n${output}`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (performance.now() - t0 > READY_TIMEOUT_MS) throw new Error(`${args.join(' ')} not ready within ${READY_TIMEOUT_MS / 1000} s:\n${output}`);
      await sleep(20);
    }
    return { seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuSeconds(child.pid!), rss: rssBytes(child.pid!) };
  } finally {
    if (child.exitCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
  }
}

function figure(samples: StartSample[]): StartFigure {
  const median = (pick: (s: StartSample) => number) => {
    const sorted = samples.map(pick).sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  return { median: { seconds: median((s) => s.seconds), cpuSeconds: median((s) => s.cpuSeconds), rss: median((s) => s.rss) }, samples };
}

/** The embedded quick start: each run a fresh PGlite folder and a cold `npm start` cache, then a restart on that folder. */
export async function embeddedStarts(runs: number, log: (line: string) => void): Promise<Pick<StartupResult, 'embeddedFirst' | 'embeddedRestart'>> {
  const args = scriptArgs('start');
  const first: StartSample[] = [];
  const restart: StartSample[] = [];
  for (let i = 0; i < runs; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'lkss-quickstart-'));
    try {
      rmSync(join(ROOT, 'node_modules', '.cache', 'lkss-start'), { recursive: true, force: true });
      const env = { NODE_ENV: 'development', PGLITE_DATA_DIR: join(dir, 'pglite') };
      first.push(await timeStart(args, env));
      restart.push(await timeStart(args, env));
      log(`  embedded run ${i + 1}/${runs}: first ${describe(first.at(-1)!)}, restart ${describe(restart.at(-1)!)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return { embeddedFirst: figure(first), embeddedRestart: figure(restart) };
}

/** The compiled server on a fresh database (it migrates), then on that migrated database; one private Redis. */
export async function productionStarts(runs: number, log: (line: string) => void): Promise<Pick<StartupResult, 'productionFresh' | 'productionMigrated'>> {
  buildIfStale(log);
  const args = scriptArgs('serve');
  const redis = await startPrivateRedis();
  const fresh: StartSample[] = [];
  const migrated: StartSample[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const db = await freshDatabase('start');
      try {
        const env = {
          NODE_ENV: 'production',
          DATABASE_URL: db.url,
          REDIS_URL: redis.url,
          LIVEKIT_API_KEY: BENCH_CREDENTIALS.apiKey,
          LIVEKIT_API_SECRET: BENCH_CREDENTIALS.apiSecret,
        };
        fresh.push(await timeStart(args, env));
        migrated.push(await timeStart(args, env));
        log(`  production run ${i + 1}/${runs}: fresh database ${describe(fresh.at(-1)!)}, migrated ${describe(migrated.at(-1)!)}`);
      } finally {
        await db.drop();
      }
    }
  } finally {
    await redis.close();
  }
  return { productionFresh: figure(fresh), productionMigrated: figure(migrated) };
}

const describe = (s: StartSample) => `${round(s.seconds, 2)} s (CPU ${round(s.cpuSeconds, 2)} s, ${round(s.rss / 2 ** 20, 0)} MiB)`;

/** `npm run bench -- --only startup`: both, as a table of medians. */
export async function runStartupBench(opts: { runs: number; production: boolean; log: (line: string) => void }): Promise<BenchResult> {
  const before = loadavg();
  const embedded = await embeddedStarts(opts.runs, opts.log);
  const production = opts.production ? await productionStarts(opts.runs, opts.log) : {};
  const result: StartupResult = { ...embedded, ...production, load: { before, after: loadavg() } };
  const row = (label: string, f: StartFigure | undefined, target: number): Array<[string, string]> =>
    f ? [[label, `${describe(f.median)}${f.median.seconds <= target ? '' : ` (target ≤ ${target} s)`}`]] : [];
  return {
    name: 'startup',
    ok: true,
    problems: [],
    rows: [
      ...row(`embedded quick start, first start → ready (median of ${opts.runs})`, result.embeddedFirst, 6),
      ...row('embedded quick start, restart → ready', result.embeddedRestart, 3),
      ...row('compiled production start, fresh database → ready', result.productionFresh, 1),
      ...row('compiled production start, migrated database → ready', result.productionMigrated, 1),
      ['load average before / after', `${before.map((l) => round(l, 1)).join(' ')} / ${result.load.after.map((l) => round(l, 1)).join(' ')}`],
    ],
    data: result,
  };
}
