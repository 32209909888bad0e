/**
 * The two services the side-by-side benchmark compares, each started as its own process(es) on a fresh
 * Postgres database (CREATE DATABASE bench_<random>, dropped afterwards) and a private redis-server:
 * - ours (src/main.ts, production mode);
 * - the peer, the straightforward yoga recipe in ../shared/peers/yoga-recipe (copied out of shared/,
 *   which is read-only, into node_modules/.cache and installed there with `npm ci` once per version).
 * Their contracts differ (webhook path, what a session id is, the subscription's selection, auth), so
 * each target says how to watch a room; the workloads are otherwise the same requests.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { WEBHOOK_PATH } from '../../src/webhooks/route.js';
import { GRAPHQL_PATH } from '../../src/graphql/server.js';
import { mapLimit, sleep } from '../kit/async.js';
import { TEST_DATABASE_URL } from '../kit/backends.js';
import { createSession } from '../kit/graphql.js';
import type { RoomInstance } from '../kit/livekit-emulator.js';
import { startPrivateRedis } from '../kit/private-redis.js';
import { freePort, spawnServer, startServiceProcess, type ServiceProcess } from '../kit/service-process.js';
import { adminBenchToken, BENCH_CREDENTIALS, benchToken, buildIfStale, onCleanup } from './common.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const PEER_SOURCE = resolve(ROOT, process.env.BENCH_PEER_DIR ?? '../shared/peers/yoga-recipe');

export type TargetName = 'ours' | 'peer';

/** A busy 2-core machine can take a while to load TypeScript and migrate. */
const READY_TIMEOUT_MS = 120_000;

export type TargetOptions = {
  /** Service processes on the one database and Redis (the webhooks go to the first, subscribers spread over all). */
  processes?: number;
  /** Write V8 CPU profiles of the processes into this directory (see cpu-prof-hook.mjs). */
  cpuProfDir?: string;
};

export type Target = {
  name: TargetName;
  processes: ServiceProcess[];
  url: string;
  webhookPath: string;
  databaseUrl: string;
  redisUrl: string;
  /** Makes rooms watchable before their webhooks arrive (ours: createSession; the peer needs nothing). */
  prepareRooms(names: string[]): Promise<void>;
  /** What a subscription watching this room instance sends (query, variables, Authorization). */
  watch(room: RoomInstance): Promise<{ body: string; authorization: string }>;
  /** Full GC in every process (gc-hook.mjs), so memory readings compare live objects. */
  gc(): Promise<void>;
  /** Starts the CPU profiles now (only with cpuProfDir). */
  startProfile(): void;
  stop(): Promise<void>;
};

/** Resident set size of a process, from /proc (works for both targets alike). */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : NaN;
}

/** A fresh database on the benchmark's Postgres server, dropped at cleanup. */
export async function freshDatabase(label: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `bench_${label}_${randomBytes(4).toString('hex')}`;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`create database "${name}"`);
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  const drop = onCleanup(() => admin(`drop database if exists "${name}" with (force)`));
  return { url: url.toString(), drop };
}

const hooks = (opts: TargetOptions) => {
  const hook = (file: string) => `--import=${pathToFileURL(fileURLToPath(new URL(file, import.meta.url))).href}`;
  const nodeOptions = [hook('./gc-hook.mjs'), ...(opts.cpuProfDir ? [hook('./cpu-prof-hook.mjs')] : [])];
  return { NODE_OPTIONS: nodeOptions.join(' '), ...(opts.cpuProfDir ? { BENCH_CPU_PROF_DIR: resolve(opts.cpuProfDir) } : {}) };
};

function targetFrom(
  name: TargetName,
  processes: ServiceProcess[],
  db: { url: string; drop: () => Promise<void> },
  redis: { url: string; close: () => Promise<void> },
  extra: Pick<Target, 'webhookPath' | 'prepareRooms' | 'watch'>,
  opts: TargetOptions,
): Target {
  const stopAll = onCleanup(async () => {
    await Promise.allSettled(processes.map((p) => p.stop()));
    await redis.close();
    await db.drop();
  });
  return {
    name,
    processes,
    url: processes[0]!.url,
    databaseUrl: db.url,
    redisUrl: redis.url,
    ...extra,
    async gc() {
      for (const p of processes) p.child.kill('SIGUSR2');
      await sleep(300);
    },
    startProfile() {
      if (opts.cpuProfDir) for (const p of processes) p.child.kill('SIGWINCH');
    },
    stop: stopAll,
  };
}

export async function startOurs(opts: TargetOptions = {}): Promise<Target> {
  const db = await freshDatabase('ours');
  const redis = await startPrivateRedis();
  onCleanup(() => redis.close());
  // Ours runs as production runs it, compiled (npm run build first when the sources are newer). Profiled runs take
  // the sources instead, so that a profile names src/ files and libraries rather than one bundle.
  const compiled = !opts.cpuProfDir;
  if (compiled) buildIfStale((line) => console.error(line));
  const processes: ServiceProcess[] = [];
  for (let i = 0; i < (opts.processes ?? 1); i++) {
    processes.push(
      await startServiceProcess({
        compiled,
        readyTimeoutMs: READY_TIMEOUT_MS,
        env: {
          NODE_ENV: 'production',
          LOG_LEVEL: 'info',
          DATABASE_URL: db.url,
          REDIS_URL: redis.url,
          LIVEKIT_API_KEY: BENCH_CREDENTIALS.apiKey,
          LIVEKIT_API_SECRET: BENCH_CREDENTIALS.apiSecret,
          OUTBOX_INTERVAL_MS: '1000',
          ...hooks(opts),
        },
      }),
    );
  }
  const url = processes[0]!.url;
  const admin = await adminBenchToken();
  const tokens = new Map<string, string>();
  return targetFrom(
    'ours',
    processes,
    db,
    redis,
    {
      webhookPath: WEBHOOK_PATH,
      async prepareRooms(names) {
        await mapLimit(names, 8, (n) => createSession(url, n, admin));
      },
      async watch(room) {
        // A frontend's own token: roomJoin for its room only (one per room, as a browser tab would hold).
        let token = tokens.get(room.name);
        if (!token) tokens.set(room.name, (token = await benchToken({ roomJoin: true, room: room.name }, `sse-${room.name}`)));
        return {
          body: JSON.stringify({
            query: 'subscription W($room: String!) { sessionStatusChanged(roomName: $room) { version status eventType } }',
            variables: { room: room.name },
          }),
          authorization: `Bearer ${token}`,
        };
      },
    },
    opts,
  );
}

/** Copies the peer out of shared/ (read-only in CI) and installs it once per version of its files. */
export function preparePeer(log: (line: string) => void): string {
  if (!existsSync(join(PEER_SOURCE, 'package.json'))) throw new Error(`the peer is not at ${PEER_SOURCE} (set BENCH_PEER_DIR)`);
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir).sort()) {
      if (entry === 'node_modules') continue;
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else hash.update(path.slice(PEER_SOURCE.length)).update(readFileSync(path));
    }
  };
  walk(PEER_SOURCE);
  const dir = join(ROOT, 'node_modules', '.cache', 'lkss-bench', `yoga-recipe-${hash.digest('hex').slice(0, 12)}`);
  const stamp = join(dir, '.installed');
  if (existsSync(stamp)) return dir;
  log(`preparing the peer: copying ${PEER_SOURCE} to ${dir} and running npm ci (once) ...`);
  rmSync(dir, { recursive: true, force: true });
  cpSync(PEER_SOURCE, dir, { recursive: true, filter: (src) => !src.includes('node_modules') });
  const writable = (path: string) => {
    chmodSync(path, statSync(path).isDirectory() ? 0o755 : 0o644);
    if (statSync(path).isDirectory()) for (const e of readdirSync(path)) writable(join(path, e));
  };
  writable(dir);
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  writeFileSync(stamp, new Date().toISOString());
  return dir;
}

export async function startPeer(dir: string, opts: TargetOptions = {}): Promise<Target> {
  const db = await freshDatabase('peer');
  const redis = await startPrivateRedis();
  onCleanup(() => redis.close());
  const processes: ServiceProcess[] = [];
  for (let i = 0; i < (opts.processes ?? 1); i++) {
    const port = await freePort();
    processes.push(
      await spawnServer({
        args: ['--import', 'tsx', 'run.ts'],
        cwd: dir,
        port,
        readyLine: /^LISTENING /m,
        readyTimeoutMs: READY_TIMEOUT_MS,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          NODE_ENV: 'production',
          PORT: String(port),
          HOST: '127.0.0.1',
          DATABASE_URL: db.url,
          REDIS_URL: redis.url,
          LIVEKIT_API_KEY: BENCH_CREDENTIALS.apiKey,
          LIVEKIT_API_SECRET: BENCH_CREDENTIALS.apiSecret,
          ...hooks(opts),
        },
      }),
    );
  }
  return targetFrom(
    'peer',
    processes,
    db,
    redis,
    {
      webhookPath: '/webhooks/livekit',
      async prepareRooms() {},
      async watch(room) {
        // The peer's session id is the room sid; its auth scope only checks for this exact header.
        return {
          body: JSON.stringify({
            query: 'subscription W($id: ID!) { sessionStatusChanged(id: $id) { id status version updatedAt } }',
            variables: { id: room.sid },
          }),
          authorization: 'Bearer t',
        };
      },
    },
    opts,
  );
}

/** Channels with at least one subscriber on the target's private Redis. */
export async function redisChannels(url: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return ((await client.pubsub('CHANNELS', '*')) as string[]).length;
  } finally {
    client.disconnect();
  }
}

export const graphqlUrl = (target: Target, process = 0) => `${target.processes[process]!.url}${GRAPHQL_PATH}`;
