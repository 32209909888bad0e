/**
 * Shared plumbing for the benchmarks: the service as a real process in production mode on the real
 * Postgres + Redis (own schema and channel prefix), /metrics scraping, CPU accounting, statistics and
 * the table printer. Everything started here is registered for cleanup so Ctrl-C stops it too.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus as osCpus, totalmem } from 'node:os';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import type { VideoGrant } from 'livekit-server-sdk';
import { availableBackends, dropSchema, TEST_DATABASE_URL, uniqueName } from '../kit/backends.js';
import { mintToken } from '../kit/graphql.js';
import { startServiceProcess, type ServiceProcess } from '../kit/service-process.js';
import { sleep } from '../kit/async.js';
import type { Credentials } from '../kit/livekit-emulator.js';
import { ADMIN_GRANT } from '../../src/livekit/grants.js';

export { WEBHOOK_PATH } from '../../src/webhooks/route.js';

/** Per-run credentials: production mode refuses the development key. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `npm run build` unless dist/ is newer than every source file. */
export function buildIfStale(log: (line: string) => void): void {
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
  let built = 0;
  try {
    built = statSync(join(ROOT, 'dist', 'src', 'main.js')).mtimeMs;
  } catch {
    // never built
  }
  if (built > Math.max(newest(join(ROOT, 'src')), newest(join(ROOT, 'migrations')))) return;
  log('  npm run build (dist/ is older than the sources) ...');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
}

export const BENCH_CREDENTIALS: Credentials = { apiKey: 'APIbench', apiSecret: randomBytes(24).toString('base64url') };

export const benchToken = (grant: VideoGrant, identity = 'bench') =>
  mintToken(grant, { apiKey: BENCH_CREDENTIALS.apiKey, secret: BENCH_CREDENTIALS.apiSecret, identity, ttl: '1h' });
export const adminBenchToken = () => benchToken({ ...ADMIN_GRANT }, 'bench-admin');

export type ServiceOptions = {
  logLevel?: string;
  /** Write a V8 CPU profile of the service into this directory when it stops. */
  cpuProfDir?: string;
  /** Preload tools/bench/gc-hook.mjs: SIGUSR2 makes the service run a full GC (memory readings). */
  gcHook?: boolean;
  env?: Record<string, string>;
};

export type BenchService = ServiceProcess & {
  schema: string;
  prefix: string;
  pid: number;
  /** Full GC in the service (only with `gcHook`). */
  gc(): Promise<void>;
  /** Starts the service's CPU profile now, dropping what was recorded before (only with `cpuProfDir`). */
  startProfile(): void;
};

const cleanups = new Set<() => Promise<unknown>>();

/** Runs every registered cleanup (stop processes, drop schemas); safe to call twice. */
export async function cleanupAll(): Promise<void> {
  const pending = [...cleanups];
  cleanups.clear();
  for (const c of pending.reverse()) await c().catch(() => {});
}

export function onCleanup(fn: () => Promise<unknown>): () => Promise<void> {
  cleanups.add(fn);
  return async () => {
    if (cleanups.delete(fn)) await fn();
  };
}

/** A fresh schema + prefix, dropped at cleanup. */
export function newNamespace(label: string): { schema: string; prefix: string; drop: () => Promise<void> } {
  const schema = uniqueName(`bench_${label}`);
  const drop = onCleanup(() => dropSchema(schema));
  return { schema, prefix: `${schema}:`, drop };
}

export async function requireBackends(): Promise<void> {
  const b = await availableBackends();
  if (!b.postgres || !b.redis) throw new Error(`benchmarks need the real Postgres and Redis (postgres: ${b.postgres}, redis: ${b.redis})`);
}

/** The service as its own process, configured as in production (info logs, 12 s SSE pings, 1 s outbox). */
export async function startService(ns: { schema: string; prefix: string }, opts: ServiceOptions = {}): Promise<BenchService> {
  const nodeOptions: string[] = [];
  const hook = (file: string) => `--import=${pathToFileURL(new URL(file, import.meta.url).pathname).href}`;
  if (opts.cpuProfDir) nodeOptions.push(hook('./cpu-prof-hook.mjs'));
  if (opts.gcHook) nodeOptions.push(hook('./gc-hook.mjs'));
  // Compiled, as production runs it, unless profiled (a profile of the sources names src/ files and libraries).
  const compiled = !opts.cpuProfDir;
  if (compiled) buildIfStale((line) => console.error(line));
  const service = await startServiceProcess({
    compiled,
    schema: ns.schema,
    prefix: ns.prefix,
    env: {
      NODE_ENV: 'production',
      LOG_LEVEL: opts.logLevel ?? 'info',
      LIVEKIT_API_KEY: BENCH_CREDENTIALS.apiKey,
      LIVEKIT_API_SECRET: BENCH_CREDENTIALS.apiSecret,
      OUTBOX_INTERVAL_MS: '1000',
      ...(nodeOptions.length > 0 ? { NODE_OPTIONS: nodeOptions.join(' ') } : {}),
      ...(opts.cpuProfDir ? { BENCH_CPU_PROF_DIR: resolve(opts.cpuProfDir) } : {}),
      ...opts.env,
    },
  });
  const stop = onCleanup(() => service.stop());
  const pid = service.child.pid!;
  return {
    ...service,
    schema: ns.schema,
    prefix: ns.prefix,
    pid,
    stop: async () => {
      const code = service.child.exitCode;
      await stop();
      return service.child.exitCode ?? code;
    },
    startProfile() {
      if (opts.cpuProfDir) service.child.kill('SIGWINCH');
    },
    async gc() {
      if (!opts.gcHook) return;
      service.child.kill('SIGUSR2');
      // The hook runs gc() synchronously when the signal is handled; give the loop a moment.
      await sleep(300);
    },
  };
}

/** Unlabelled metric values by name; labelled series are summed per name. */
export type MetricValues = Map<string, number>;

export async function readMetrics(url: string): Promise<MetricValues> {
  let text: string;
  try {
    text = await (await fetch(`${url}/metrics`)).text();
  } catch {
    // A keep-alive socket the server closed while this process was busy (e.g. signing the pool): retry once on a new one.
    await sleep(50);
    text = await (await fetch(`${url}/metrics`)).text();
  }
  const values: MetricValues = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const series = line.slice(0, space);
    const value = Number(line.slice(space + 1));
    const brace = series.indexOf('{');
    const name = brace === -1 ? series : series.slice(0, brace);
    values.set(name, (values.get(name) ?? 0) + value);
  }
  return values;
}

export type MemoryReading = { rss: number; heapUsed: number; heapTotal: number; external: number };

export function memoryOf(m: MetricValues): MemoryReading {
  return {
    rss: m.get('process_resident_memory_bytes') ?? NaN,
    heapUsed: m.get('nodejs_heap_size_used_bytes') ?? NaN,
    heapTotal: m.get('nodejs_heap_size_total_bytes') ?? NaN,
    external: m.get('nodejs_external_memory_bytes') ?? NaN,
  };
}

/** CPU seconds so far of the machine (busy/total) and of named processes, from /proc. */
export type CpuSnapshot = { at: number; machineBusy: number; machineTotal: number; byPid: Map<number, number>; byComm: Map<string, number> };

const CLOCK_TICKS = 100;

export function cpuSnapshot(pids: number[] = []): CpuSnapshot {
  const stat = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = stat.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (stat[3] ?? 0) + (stat[4] ?? 0);
  const byPid = new Map<number, number>();
  const byComm = new Map<string, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let raw: string;
    try {
      raw = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = raw.lastIndexOf(')');
    const comm = raw.slice(raw.indexOf('(') + 1, close);
    const fields = raw.slice(close + 2).split(' ');
    const seconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    const pid = Number(entry);
    if (pids.includes(pid)) byPid.set(pid, seconds);
    byComm.set(comm, (byComm.get(comm) ?? 0) + seconds);
  }
  return { at: performance.now(), machineBusy: (total - idle) / CLOCK_TICKS, machineTotal: total / CLOCK_TICKS, byPid, byComm };
}

/** Share of one core each consumer used between two snapshots (1.0 = one full core). */
export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot, names: Record<string, number | string>): Record<string, number> {
  const wall = (b.at - a.at) / 1000;
  const out: Record<string, number> = {
    machineBusyPct: round((100 * (b.machineBusy - a.machineBusy)) / Math.max(1e-9, b.machineTotal - a.machineTotal), 1),
  };
  let ours = 0;
  for (const [label, key] of Object.entries(names)) {
    const used = typeof key === 'number' ? (b.byPid.get(key) ?? 0) - (a.byPid.get(key) ?? 0) : (b.byComm.get(key) ?? 0) - (a.byComm.get(key) ?? 0);
    ours += used;
    out[label] = round(used / wall, 2);
  }
  // Everything else on the machine (other work running at the same time skews the numbers).
  out.other = round(Math.max(0, b.machineBusy - a.machineBusy - ours) / wall, 2);
  return out;
}

export type Percentiles = { count: number; p50: number; p90: number; p99: number; max: number; mean: number };

export function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { count: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  const sum = sorted.reduce((a, b) => a + b, 0);
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1]!, mean: sum / sorted.length };
}

export const round = (n: number, digits = 2) => (Number.isFinite(n) ? Math.round(n * 10 ** digits) / 10 ** digits : n);
export const mb = (bytes: number) => `${round(bytes / 1024 / 1024, 1)} MB`;
export const kb = (bytes: number) => `${round(bytes / 1024, 1)} KB`;
export const ms = (v: number) => `${round(v, 2)} ms`;

/** A compact two-column table. */
export function printTable(title: string, rows: Array<[string, string | number]>): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [`\n== ${title} ==`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)];
  process.stdout.write(lines.join('\n') + '\n');
}

/** A short-lived Postgres client on the bench schema (of the bench database by default), for verification queries. */
export async function withDatabase<T>(schema: string, fn: (client: pg.Client) => Promise<T>, url = TEST_DATABASE_URL): Promise<T> {
  const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** What each benchmark returns: printed as a table, or as JSON with --json. */
export type BenchResult = {
  name: string;
  ok: boolean;
  problems: string[];
  rows: Array<[string, string | number]>;
  data: Record<string, unknown>;
};

export function machine() {
  const cpus = osCpus();
  return { cpus: cpus.length, cpuModel: cpus[0]?.model.trim() ?? 'unknown', node: process.version, memoryGB: round(totalmem() / 1024 ** 3, 1) };
}

/** Adds the last lines the service processes logged to an error: why a run failed is usually there. */
export function withServiceLogs(err: unknown, ...services: BenchService[]): Error {
  const tails = services.map((s) => {
    const lines = s.output().trimEnd().split('\n');
    return `--- ${s.url} (exit ${s.child.exitCode ?? 'running'}, signal ${s.child.signalCode ?? '-'}) last log lines ---\n${lines.slice(-15).join('\n')}`;
  });
  const e = err instanceof Error ? err : new Error(String(err));
  e.message = `${e.message}\n${tails.join('\n')}`;
  return e;
}

/**
 * Other work on the machine skews every number: waits (bounded) until the machine is mostly idle
 * (< `maxBusyPct` over one second). Returns the last busy share seen.
 */
export async function waitForQuietMachine(maxBusyPct: number, timeoutMs: number): Promise<{ busyPct: number; waitedS: number }> {
  const started = Date.now();
  let busyPct = 100;
  do {
    const a = cpuSnapshot();
    await sleep(1000);
    const b = cpuSnapshot();
    busyPct = round((100 * (b.machineBusy - a.machineBusy)) / Math.max(1e-9, b.machineTotal - a.machineTotal), 1);
  } while (busyPct > maxBusyPct && Date.now() - started < timeoutMs);
  return { busyPct, waitedS: round((Date.now() - started) / 1000, 1) };
}

/** Machine calibration: the time of one parameterised Postgres round trip from Node (the service needs several per webhook). */
export async function pgRoundTripMs(count = 500): Promise<number> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    for (let i = 0; i < 50; i++) await client.query('select $1::int as x', [i]);
    const t0 = performance.now();
    for (let i = 0; i < count; i++) await client.query('select $1::int as x', [i]);
    return (performance.now() - t0) / count;
  } finally {
    await client.end();
  }
}
