/**
 * Side by side: the same workloads on our service and on the peer (the straightforward yoga recipe), each
 * on a fresh database and a private Redis (targets.ts), printed as one table: figure | ours | peer | ratio.
 *
 * - ingest: pre-signed webhooks driven by autocannon (16 connections), status events only and a realistic mix
 *   (room lifecycles, mostly participant and track events, which the peer answers 204 without storing);
 *   ours is then checked for exactly-once storage (webhooks.ts `checkExactlyOnce`);
 * - pgbench: each target's per-webhook SQL (sql/*.sql) on its own database, 16 clients;
 * - subscriptions: N SSE streams over M sessions opened at most 200 at once (streams/s), RSS per idle
 *   stream after a full GC, one change per session (latency from the webhook's response to each receipt,
 *   lost and duplicated deliveries), then all N closed at once (the private Redis must drop the channels);
 * - start-up (ours only, startup.ts): the embedded quick start's first start and restart, and the compiled
 *   server on a fresh and on a migrated database, spawn → ready (median), with RSS and CPU.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WRITE_SESSIONS } from '../../src/sessions/repo.js';
import { mapLimit, sleep, waitFor } from '../kit/async.js';
import { buildEvent, encodeEvent, newRoomInstance, signBody, type RoomInstance } from '../kit/livekit-emulator.js';
import { BENCH_CREDENTIALS, cpuBetween, cpuSnapshot, percentiles, readMetrics, round, withDatabase } from './common.js';
import { openSse, type SseStream } from './sse.js';
import { embeddedStarts, productionStarts, type StartFigure } from './startup.js';
import { graphqlUrl, preparePeer, redisChannels, rssBytes, startOurs, startPeer, type Target, type TargetName, type TargetOptions } from './targets.js';
import { buildPool, checkExactlyOnce, drive, lifecycle, signPool, type Driver, type PoolItem } from './webhooks.js';

const run = promisify(execFile);

export type CompareOptions = {
  targets: TargetName[];
  ingestS: number;
  warmupS: number;
  connections: number;
  /** Sessions (rooms) the ingest pools cycle through. */
  sessions: number;
  pgbenchS: number;
  /** SSE streams and the sessions they watch. */
  streams: number;
  rooms: number;
  openConcurrency: number;
  /** Webhooks in flight while sending the fan-out's one change per session. */
  fanoutConcurrency: number;
  quickStart: boolean;
  /** Starts of each kind for the start-up figures (median reported). */
  startRuns?: number;
  /** Only the subscription figures (open rate, memory, fan-out, channels): no ingest, no pgbench. */
  streamsOnly?: boolean;
  /** Scale curve: subscriber counts and process counts to repeat the fan-out and ingest with. */
  scaleStreams: number[];
  scaleProcesses: number[];
  cpuProfDir?: string;
  log: (line: string) => void;
};

export const COMPARE_DEFAULTS: Omit<CompareOptions, 'targets' | 'log'> = {
  ingestS: 10,
  warmupS: 2,
  connections: 16,
  sessions: 200,
  pgbenchS: 10,
  streams: 10_000,
  rooms: 1_000,
  openConcurrency: 200,
  fanoutConcurrency: 16,
  quickStart: true,
  scaleStreams: [],
  scaleProcesses: [],
};

export const COMPARE_QUICK: Partial<CompareOptions> = { ingestS: 3, warmupS: 1, pgbenchS: 3, streams: 1_000, rooms: 100, quickStart: false };

/** One figure: its label, whether more is better, and each target's value (NaN: not measured). */
export type Figure = {
  key: string;
  label: string;
  higherIsBetter: boolean;
  unit: string;
  values: Partial<Record<TargetName, number>>;
  notes: Partial<Record<TargetName, string>>;
};

export type CompareResult = { figures: Figure[]; problems: string[]; details: Record<string, unknown>; scale: Array<Record<string, unknown>> };

/** Status webhooks only: each room instance starts and finishes. */
const statusOnly = () => [{ type: 'room_started' }, { type: 'room_finished' }];

/** Pre-signed pools, built once and sent to both targets (fresh databases: the same event ids are new to each). */
async function buildPools(opts: CompareOptions) {
  // Requests per second of run: enough that neither target replays the pool (the peer answers the mix's noise without a query).
  const size = (perS: number) => Math.round((opts.ingestS + opts.warmupS) * perS);
  const statusRooms = Array.from({ length: opts.sessions }, (_, i) => `bench-room-${i}`);
  const mixRooms = Array.from({ length: opts.sessions }, (_, i) => `mix-room-${i}`);
  const t0 = performance.now();
  // Unsigned here: each target's copy is signed just before its run (tokens live 5 minutes, a run takes longer).
  const status = await buildPool(statusRooms, [], size(4000), statusOnly, 0, false);
  const mix = await buildPool(mixRooms, [], size(8000), lifecycle, 0.01, false);
  return { status, mix, statusRooms, mixRooms, seconds: (performance.now() - t0) / 1000 };
}

type IngestOutcome = {
  reqPerS: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  exhausted: boolean;
  /** CPU milliseconds per request: the target's processes, and every postgres process (a shared server: other work and exited backends skew it, so JSON only). */
  cpuMsPerReq: { service: number; postgres: number; generator: number; machineBusyPct: number };
  problems: string[];
  /** The requests as sent, with each answer (ours is checked for exactly-once storage afterwards). */
  items: PoolItem[];
};

async function ingest(target: Target, pool: PoolItem[], opts: CompareOptions, label: string, profile = false): Promise<IngestOutcome> {
  const items = pool.map((p) => ({ ...p, sends: 0, status: undefined, action: undefined }));
  await signPool(items);
  const driver: Driver = { next: 0, replays: 0, replayAnswers: new Map(), bodies: 0 };
  const n = target.processes.length;
  const per = (i: number) => Math.max(1, Math.floor(opts.connections / n) + (i < opts.connections % n ? 1 : 0));
  const all = (seconds: number) => Promise.all(target.processes.map((p, i) => drive(p.url, items, driver, seconds, per(i), target.webhookPath)));
  if (opts.warmupS > 0) await all(opts.warmupS);
  if (profile) target.startProfile();
  const pids = target.processes.map((p) => p.child.pid!);
  const cpuStart = cpuSnapshot(pids);
  const generatorStart = process.cpuUsage();
  const results = await all(opts.ingestS);
  const generatorCpu = process.cpuUsage(generatorStart);
  const cpuEnd = cpuSnapshot(pids);
  const cpu = cpuBetween(cpuStart, cpuEnd, { postgres: 'postgres', ...Object.fromEntries(pids.map((pid, i) => [`service${i}`, pid])) });
  const serviceCores = pids.reduce((a, _, i) => a + (cpu[`service${i}`] ?? 0), 0);
  const requests = results.reduce((a, r) => a + r.requests.total, 0);
  const duration = Math.max(...results.map((r) => r.duration || opts.ingestS));
  // Latency percentiles of the first process's generator (with one process: the whole run).
  const outcome: IngestOutcome = {
    reqPerS: requests / duration,
    p50: results[0]!.latency.p50,
    p99: Math.max(...results.map((r) => r.latency.p99)),
    non2xx: results.reduce((a, r) => a + r.non2xx, 0),
    errors: results.reduce((a, r) => a + r.errors + r.timeouts, 0),
    exhausted: driver.next > items.length,
    cpuMsPerReq: { service: 0, postgres: 0, generator: 0, machineBusyPct: cpu.machineBusyPct! },
    problems: [],
    items,
  };
  outcome.cpuMsPerReq.service = round((serviceCores * 1000) / Math.max(1, outcome.reqPerS), 3);
  outcome.cpuMsPerReq.postgres = round(((cpu.postgres ?? 0) * 1000) / Math.max(1, outcome.reqPerS), 3);
  // autocannon runs in this process: the same load generator for both targets, sharing their 2 cores.
  outcome.cpuMsPerReq.generator = round((generatorCpu.user + generatorCpu.system) / 1000 / Math.max(1, requests), 3);
  if (outcome.exhausted) outcome.problems.push(`${target.name} ${label}: the pool of ${items.length} ran out (${driver.replays} replays)`);
  if (outcome.non2xx > 0 || outcome.errors > 0) outcome.problems.push(`${target.name} ${label}: ${outcome.non2xx} non-2xx, ${outcome.errors} errors/timeouts`);
  return outcome;
}

/**
 * Ours' group commit over its runs so far, from each process's /metrics: session writes, the statements that
 * carried them, and the writes that found their row changed since it was read or cached (planned again).
 */
async function writesPerStatement(target: Target): Promise<{ writes: number; statements: number; perStatement: number; conflicts: number }> {
  let writes = 0;
  let statements = 0;
  let conflicts = 0;
  for (const { url } of target.processes) {
    const text = await (await fetch(`${url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    writes += value('lkss_webhook_write_batch_size_sum');
    statements += value('lkss_webhook_write_batch_size_count');
    conflicts += value('lkss_webhook_write_conflicts_total');
  }
  return { writes, statements, perStatement: statements === 0 ? 0 : round(writes / statements, 2), conflicts };
}

/** Ours after its ingest runs: every request answered 200 stored exactly once, as announced, and published. */
async function verifyOurs(target: Target, items: PoolItem[]) {
  // Let in-flight requests finish and the publisher mark its changes.
  await sleep(1500);
  let published = 0;
  for (const p of target.processes) published += (await readMetrics(p.url)).get('lkss_changes_published_total') ?? 0;
  const checked = await withDatabase('public', (db) => checkExactlyOnce(db, items, published), target.databaseUrl);
  return { verify: checked.verify, problems: checked.problems.map((p) => `ours ingest: ${p}`) };
}

/** Capacity of the database for the target's per-webhook SQL: pgbench with 16 clients on its fresh database. */
async function pgbenchCapacity(target: Target, opts: CompareOptions): Promise<{ webhooksPerS: number; latencyMs: number; output: string }> {
  const script = pgbenchScript(target.name);
  const url = new URL(target.databaseUrl);
  const args = [
    '-n',
    '-M',
    // Each the way its service talks to Postgres: ours prepares its webhook statements (src/sessions/prepared.ts), the peer does not.
    target.name === 'ours' ? 'prepared' : 'extended',
    '-c',
    '16',
    '-j',
    '2',
    '-T',
    String(opts.pgbenchS),
    '-D',
    `rooms=${opts.sessions}`,
    '-f',
    script,
    '-h',
    url.hostname,
    '-p',
    url.port || '5432',
    '-U',
    decodeURIComponent(url.username || 'postgres'),
    url.pathname.slice(1),
  ];
  const { stdout, stderr } = await run('pgbench', args, { env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) }, maxBuffer: 1 << 24 });
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
  const latency = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0);
  if (!Number.isFinite(tps) || failed > 0) throw new Error(`pgbench on ${target.name} failed:\n${stdout}\n${stderr}`);
  const perRun = target.name === 'ours' ? 8 : 2;
  return { webhooksPerS: tps * perRun, latencyMs: latency / perRun, output: stdout };
}

/**
 * The target's pgbench script (sql/<target>-status-webhooks.sql). Ours names its write statement instead of
 * copying it: `-- WRITE_SESSIONS(:name)` becomes repo.ts' WRITE_SESSIONS with :name for its parameter.
 */
function pgbenchScript(name: TargetName): string {
  const source = fileURLToPath(new URL(`./sql/${name}-status-webhooks.sql`, import.meta.url));
  if (name !== 'ours') return source;
  const text = readFileSync(source, 'utf8').replace(/^-- WRITE_SESSIONS\((:\w+)\)$/gm, (_, param: string) => `${WRITE_SESSIONS.trim().replace('$1', param)};`);
  if (text.includes('$1') || !text.includes('jsonb_to_recordset')) throw new Error('sql/ours-status-webhooks.sql: WRITE_SESSIONS not substituted');
  const file = join(tmpdir(), `lkss-pgbench-ours-${process.pid}.sql`);
  writeFileSync(file, text);
  return file;
}

type WatchedRoom = {
  room: RoomInstance;
  started: { body: string; auth: string };
  finished?: { body: string; auth: string };
  respondedAt?: number;
  sentAt?: number;
};

async function signed(type: string, room: RoomInstance) {
  const body = encodeEvent(buildEvent(type, room));
  return { body, auth: await signBody(body, BENCH_CREDENTIALS) };
}

async function post(target: Target, w: { body: string; auth: string }): Promise<number> {
  const res = await fetch(`${target.url}${target.webhookPath}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/webhook+json', Authorization: w.auth },
    body: w.body,
  });
  await res.arrayBuffer();
  return res.status;
}

const versionOf = (data: unknown) => (data as { data?: { sessionStatusChanged?: { version?: number } } }).data?.sessionStatusChanged?.version;
const totalRss = (target: Target) => target.processes.reduce((a, p) => a + rssBytes(p.child.pid!), 0);

type SubscriptionsOutcome = {
  streams: number;
  opened: number;
  openPerS: number;
  /** Service CPU (all its processes) per opened stream, ms: what the machine's load does not change much. */
  openCpuMs: number;
  generatorCpuMsPerOpen: number;
  rssPerStream: number;
  rssBefore: number;
  rssOpen: number;
  fanout: { p50: number; p99: number; max: number; fromSendP50: number; fromSendP99: number; lost: number; duplicated: number; delivered: number };
  channels: { before: number; open: number; afterClose3s: number; releasedS: number | null };
  problems: string[];
};

async function subscriptions(target: Target, streamsWanted: number, roomCount: number, opts: CompareOptions): Promise<SubscriptionsOutcome> {
  const problems: string[] = [];
  const watched: WatchedRoom[] = [];
  const names = Array.from({ length: roomCount }, (_, i) => `watch-room-${i}`);
  await target.prepareRooms(names);
  for (const name of names) {
    const room = newRoomInstance(name, Date.now() - 60_000);
    watched.push({ room, started: await signed('room_started', room) });
  }
  const startedStatus = await mapLimit(watched, opts.fanoutConcurrency, (w) => post(target, w.started));
  if (startedStatus.some((s) => s !== 200)) problems.push(`${target.name}: room_started answered ${startedStatus.find((s) => s !== 200)}`);
  const watches = await mapLimit(watched, 8, (w) => target.watch(w.room));

  await sleep(1000);
  await target.gc();
  const rssBefore = totalRss(target);
  const channelsBefore = await redisChannels(target.redisUrl);

  // Open: at most openConcurrency at once, each counted when its snapshot arrived.
  const streams: Array<{ room: number; stream: SseStream }> = [];
  const pids = target.processes.map((p) => p.child.pid!);
  // Streams only: the profile covers opening, fan-out and closing (otherwise it started with the ingest).
  if (opts.streamsOnly) target.startProfile();
  const cpuOpening = cpuSnapshot(pids);
  const generatorOpening = process.cpuUsage();
  const opening = performance.now();
  let failed = 0;
  await mapLimit(
    Array.from({ length: streamsWanted }, (_, i) => i),
    opts.openConcurrency,
    async (i) => {
      const room = i % roomCount;
      const w = watches[room]!;
      const stream = openSse(graphqlUrl(target, i % target.processes.length), w.body, w.authorization);
      streams.push({ room, stream });
      await stream.first.catch(() => failed++);
    },
  );
  const openS = (performance.now() - opening) / 1000;
  const cpuOpened = cpuSnapshot(pids);
  const generatorCpu = process.cpuUsage(generatorOpening);
  const openCpuS = pids.reduce((sum, pid) => sum + (cpuOpened.byPid.get(pid) ?? 0) - (cpuOpening.byPid.get(pid) ?? 0), 0);
  if (failed > 0)
    problems.push(
      `${target.name}: ${failed}/${streamsWanted} streams failed to open (first: ${streams.find((s) => s.stream.errors.length)?.stream.errors[0]})`,
    );
  const opened = streamsWanted - failed;
  if (failed > 0) {
    // Why, from the service's own log (ours logs errors as JSON lines with level >= 50).
    const errorLine = target.processes.flatMap((p) => p.output().split('\n')).find((l) => /"level":(50|60)/.test(l) || /Error/.test(l));
    if (errorLine) problems.push(`${target.name}: service log: ${errorLine.slice(0, 400)}`);
  }

  await sleep(2000);
  await target.gc();
  const rssOpen = totalRss(target);
  const channelsOpen = await redisChannels(target.redisUrl);

  // One change per session; each delivery timed from its webhook's response (and from its send).
  const baseline = streams.map((s) => s.stream.events.length);
  const refused: number[] = [];
  // Signed now: opening thousands of streams on a busy machine can outlast a 5-minute token.
  for (const w of watched) w.finished = await signed('room_finished', w.room);
  await mapLimit(watched, opts.fanoutConcurrency, async (w) => {
    w.sentAt = performance.now();
    const status = await post(target, w.finished!);
    w.respondedAt = performance.now();
    if (status !== 200) refused.push(status);
  });
  if (refused.length > 0) problems.push(`${target.name}: ${refused.length} room_finished answered ${refused[0]} (first)`);
  const expected = streams.filter((s) => s.stream.events.length > 0);
  await waitFor(() => expected.every((s) => s.stream.events.length >= 2), 15_000, 100);
  await sleep(500); // late duplicates
  const fromResponse: number[] = [];
  const fromSend: number[] = [];
  let lost = 0;
  let duplicated = 0;
  let delivered = 0;
  for (const [i, s] of streams.entries()) {
    if (baseline[i] === 0) continue;
    const snapshot = versionOf(s.stream.events[0]!.data) ?? NaN;
    const changes = s.stream.events.slice(1);
    const next = changes.filter((e) => versionOf(e.data) === snapshot + 1);
    if (next.length === 0) lost++;
    duplicated += Math.max(0, changes.length - 1);
    if (next.length > 0) {
      delivered++;
      const w = watched[s.room]!;
      fromResponse.push(next[0]!.at - w.respondedAt!);
      fromSend.push(next[0]!.at - w.sentAt!);
    }
  }
  if (lost > 0) problems.push(`${target.name}: ${lost} streams never got their change`);
  if (duplicated > 0) problems.push(`${target.name}: ${duplicated} duplicated or unexpected deliveries`);
  const lat = percentiles(fromResponse);
  const latSend = percentiles(fromSend);

  // All closed at once: the private Redis must drop the channels within 3 s.
  for (const s of streams) s.stream.close();
  const closedAt = performance.now(); // once every close was issued
  let releasedS: number | null = null;
  let afterClose3s = NaN;
  while (performance.now() - closedAt < 10_000) {
    const n = await redisChannels(target.redisUrl);
    const elapsed = (performance.now() - closedAt) / 1000;
    if (elapsed <= 3 || Number.isNaN(afterClose3s)) afterClose3s = n;
    if (n <= channelsBefore) {
      releasedS = elapsed;
      if (elapsed <= 3) afterClose3s = n;
      break;
    }
    await sleep(100);
  }
  if (releasedS === null || releasedS > 3) problems.push(`${target.name}: ${afterClose3s - channelsBefore} Redis channels still subscribed 3 s after closing`);
  await sleep(500);

  return {
    streams: streamsWanted,
    opened,
    openPerS: opened / openS,
    openCpuMs: (openCpuS * 1000) / Math.max(1, opened),
    // This process opens and reads the streams: its share of the 2 cores caps the rate for both targets alike.
    generatorCpuMsPerOpen: round((generatorCpu.user + generatorCpu.system) / 1000 / Math.max(1, opened), 3),
    rssPerStream: (rssOpen - rssBefore) / Math.max(1, opened),
    rssBefore,
    rssOpen,
    fanout: { p50: lat.p50, p99: lat.p99, max: lat.max, fromSendP50: latSend.p50, fromSendP99: latSend.p99, lost, duplicated, delivered },
    channels: { before: channelsBefore, open: channelsOpen, afterClose3s, releasedS },
    problems,
  };
}

/** Largest number of SSE streams this process can hold open (one descriptor each, plus headroom). */
export function streamLimit(): number {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const soft = Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? 1024);
  return soft - 500;
}

export async function runCompare(opts: CompareOptions): Promise<CompareResult> {
  const problems: string[] = [];
  const details: Record<string, unknown> = {};
  const figures = new Map<string, Figure>();
  const put = (key: string, label: string, higherIsBetter: boolean, unit: string, target: TargetName, value: number, note?: string) => {
    const f = figures.get(key) ?? { key, label, higherIsBetter, unit, values: {}, notes: {} };
    f.values[target] = value;
    if (note) f.notes[target] = note;
    figures.set(key, f);
  };
  const limit = streamLimit();
  let streams = opts.streams;
  if (streams > limit) {
    opts.log(`only ${limit} streams fit the open-file limit (ulimit -n); measuring ${limit} instead of ${streams}`);
    streams = limit;
  }

  const peerDir = opts.targets.includes('peer') ? preparePeer(opts.log) : undefined;
  opts.log('building and signing the webhook pools ...');
  // Streams only: no ingest, so (almost) nothing to sign.
  const pools = await buildPools(opts.streamsOnly ? { ...opts, ingestS: 0, warmupS: 0 } : opts);
  details.pools = { status: pools.status.length, mix: pools.mix.length, signSeconds: round(pools.seconds, 1) };
  // Each target's profiles in their own folder: <dir>/ours, <dir>/peer.
  const targetOptions = (name: TargetName): TargetOptions => ({ cpuProfDir: opts.cpuProfDir ? join(opts.cpuProfDir, name) : undefined });
  const start = (name: TargetName, extra: TargetOptions = {}) =>
    name === 'ours' ? startOurs({ ...targetOptions(name), ...extra }) : startPeer(peerDir!, { ...targetOptions(name), ...extra });

  for (const name of opts.targets) {
    if (opts.cpuProfDir) mkdirSync(join(opts.cpuProfDir, name), { recursive: true });
    opts.log(`${name}: starting on a fresh database and a private Redis ...`);
    try {
      const target = await start(name);
      try {
        let ingestDetails: Record<string, unknown> = {};
        if (!opts.streamsOnly) {
          await target.prepareRooms([...pools.statusRooms, ...pools.mixRooms]);
          opts.log(`${name}: ingest, status webhooks only (${opts.connections} connections, ${opts.ingestS} s) ...`);
          const status = await ingest(target, pools.status, opts, 'status ingest', true);
          problems.push(...status.problems);
          put('ingestStatusRps', `ingest req/s, status webhooks, ${opts.connections} connections`, true, 'req/s', name, status.reqPerS);
          put('ingestStatusP99', 'ingest p99, status webhooks', false, 'ms', name, status.p99);
          put('ingestStatusCpu', 'service CPU per status webhook', false, 'ms', name, status.cpuMsPerReq.service);
          put('ingestStatusPgCpu', 'Postgres CPU per status webhook (all its processes)', false, 'ms', name, status.cpuMsPerReq.postgres);
          opts.log(`${name}: ingest, realistic mix ...`);
          const mix = await ingest(target, pools.mix, opts, 'mixed ingest');
          problems.push(...mix.problems);
          put('ingestMixRps', `ingest req/s, realistic mix, ${opts.connections} connections`, true, 'req/s', name, mix.reqPerS);
          put('ingestMixP99', 'ingest p99, realistic mix', false, 'ms', name, mix.p99);
          put('ingestMixCpu', 'service CPU per webhook, realistic mix', false, 'ms', name, mix.cpuMsPerReq.service);
          const verified = name === 'ours' ? await verifyOurs(target, [...status.items, ...mix.items]) : undefined;
          if (verified) problems.push(...verified.problems);
          const grouping = name === 'ours' ? await writesPerStatement(target) : undefined;
          if (grouping) {
            opts.log(`${name}: ${grouping.writes} session writes in ${grouping.statements} statements (group commit), ${grouping.conflicts} conflicts`);
          }
          opts.log(`${name}: pgbench on its per-webhook SQL ...`);
          const pgb = await pgbenchCapacity(target, opts);
          put('pgbench', 'Postgres capacity for the per-webhook SQL (pgbench, 16 clients), webhooks/s', true, '/s', name, pgb.webhooksPerS);
          const strip = ({ items: _items, ...rest }: IngestOutcome) => rest;
          ingestDetails = {
            status: strip(status),
            mix: strip(mix),
            verify: verified?.verify,
            groupCommit: grouping,
            pgbench: { webhooksPerS: round(pgb.webhooksPerS, 0), latencyMs: pgb.latencyMs },
          };
        }
        opts.log(`${name}: ${streams} SSE streams over ${opts.rooms} sessions ...`);
        const subs = await subscriptions(target, streams, Math.min(opts.rooms, streams), opts);
        problems.push(...subs.problems);
        put('openRate', `opening SSE subscriptions (≤${opts.openConcurrency} at once), streams/s`, true, '/s', name, subs.openPerS);
        put('openCpu', 'service CPU per opened SSE subscription', false, 'ms', name, subs.openCpuMs);
        put(
          'fanoutP50',
          `fan-out p50, ${streams.toLocaleString('en-US')} streams over ${opts.rooms.toLocaleString('en-US')} sessions, from the webhook's response`,
          false,
          'ms',
          name,
          subs.fanout.p50,
        );
        put('fanoutP99', "fan-out p99, from the webhook's response", false, 'ms', name, subs.fanout.p99);
        put(
          'fanoutLost',
          'fan-out lost / duplicated deliveries',
          false,
          '',
          name,
          subs.fanout.lost + subs.fanout.duplicated,
          `${subs.fanout.lost} / ${subs.fanout.duplicated}`,
        );
        put('rssPerStream', `RSS per idle SSE subscription at ${streams.toLocaleString('en-US')}`, false, 'KiB', name, subs.rssPerStream / 1024);
        put(
          'channelsReleased',
          `${streams.toLocaleString('en-US')} closed at once: Redis channels released within 3 s`,
          true,
          '',
          name,
          subs.channels.releasedS !== null && subs.channels.releasedS <= 3 ? 1 : 0,
          subs.channels.releasedS !== null && subs.channels.releasedS <= 3
            ? `yes (${round(subs.channels.releasedS, 1)} s)`
            : `no (${subs.channels.afterClose3s - subs.channels.before} of ${subs.channels.open - subs.channels.before} left)`,
        );
        details[name] = { ...ingestDetails, subscriptions: subs };
      } finally {
        await target.stop();
      }
    } catch (err) {
      // Report what failed and keep the other target's figures.
      problems.push(`${name}: ${(err as Error).stack ?? String(err)}`);
    }
  }

  if (opts.quickStart && opts.targets.includes('ours')) {
    // Ours only (startup.ts): the embedded quick start (npm start) and the compiled server (npm run serve), median of startRuns.
    const runs = opts.startRuns ?? 3;
    const startFigure = (key: string, label: string, f: StartFigure) =>
      put(
        key,
        label,
        false,
        's',
        'ours',
        f.median.seconds,
        `${round(f.median.seconds, 1)} s (${round(f.median.rss / 2 ** 20, 0)} MiB, CPU ${round(f.median.cpuSeconds, 1)} s)`,
      );
    opts.log(`ours: embedded quick start, ${runs}× (first start, then restart) ...`);
    try {
      const q = await embeddedStarts(runs, opts.log);
      startFigure('quickFirst', 'embedded quick start: first start → ready', q.embeddedFirst);
      startFigure('quickRestart', 'embedded quick start: restart → ready', q.embeddedRestart);
      details.quickStart = q;
    } catch (err) {
      problems.push(`quick start: ${(err as Error).message}`);
    }
    opts.log(`ours: compiled production start, ${runs}× (fresh database, then migrated) ...`);
    try {
      const p = await productionStarts(runs, opts.log);
      startFigure('prodFresh', 'compiled production start (npm run serve): fresh database → ready', p.productionFresh!);
      startFigure('prodMigrated', 'compiled production start: migrated database → ready', p.productionMigrated!);
      details.productionStart = p;
    } catch (err) {
      problems.push(`production start: ${(err as Error).message}`);
    }
  }

  const scale: Array<Record<string, unknown>> = [];
  // A failed step (a process not ready on a busy machine, say) is reported in its row; the rest still runs.
  const step = async (name: TargetName, processes: number, streamCount: number, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      const message = (err as Error).message.split('\n')[0]!;
      problems.push(`scale ${name} ×${processes}, ${streamCount} streams: ${message}`);
      scale.push({ target: name, processes, streams: streamCount, skipped: `failed: ${message}` });
    }
  };
  for (const name of opts.targets) {
    for (const n of opts.scaleProcesses) {
      opts.log(`scale: ${name} with ${n} processes ...`);
      await step(name, n, streams, async () => {
        const target = await start(name, { processes: n, cpuProfDir: undefined });
        try {
          await target.prepareRooms(pools.statusRooms);
          const status = await ingest(target, pools.status, opts, `status ingest, ${n} processes`);
          if (name === 'ours') problems.push(...(await verifyOurs(target, status.items)).problems);
          // Each process caches the rows it wrote: a webhook reaching another process conflicts once, and is planned again.
          const grouping = name === 'ours' ? await writesPerStatement(target) : undefined;
          const subs = await subscriptions(target, streams, Math.min(opts.rooms, streams), opts);
          problems.push(...status.problems, ...subs.problems);
          scale.push({
            target: name,
            processes: n,
            streams: subs.streams,
            ingestReqPerS: round(status.reqPerS, 0),
            ingestP99: status.p99,
            writeConflictsPerWebhook: grouping ? round(grouping.conflicts / Math.max(1, status.items.filter((i) => i.sends > 0).length), 2) : undefined,
            ...pickFanout(subs),
          });
        } finally {
          await target.stop();
        }
      });
    }
    for (const s of opts.scaleStreams) {
      if (s > limit) {
        scale.push({ target: name, processes: 1, streams: s, skipped: `open-file limit ${limit + 500} (raise ulimit -n)` });
        continue;
      }
      opts.log(`scale: ${name} with ${s} streams ...`);
      await step(name, 1, s, async () => {
        const target = await start(name, { cpuProfDir: undefined });
        try {
          const subs = await subscriptions(target, s, Math.min(opts.rooms, s), opts);
          problems.push(...subs.problems);
          scale.push({ target: name, processes: 1, streams: s, ...pickFanout(subs) });
        } finally {
          await target.stop();
        }
      });
    }
  }

  return { figures: [...figures.values()], problems, details, scale };
}

const pickFanout = (s: SubscriptionsOutcome) => ({
  openPerS: round(s.openPerS, 0),
  fanoutP50: round(s.fanout.p50, 1),
  fanoutP99: round(s.fanout.p99, 1),
  lost: s.fanout.lost,
  duplicated: s.fanout.duplicated,
  rssPerStreamKiB: round(s.rssPerStream / 1024, 1),
  channelsReleasedS: s.channels.releasedS === null ? null : round(s.channels.releasedS, 1),
});

/** The table: figure | ours | peer | ratio (ours / peer; > 1 is better for ours when more is better). */
export function formatCompare(result: CompareResult): string {
  const fmt = (f: Figure, t: TargetName) => {
    const note = f.notes[t];
    if (note) return note;
    const v = f.values[t];
    if (v === undefined || !Number.isFinite(v)) return '–';
    const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
    return `${round(v, digits).toLocaleString('en-US')}${f.unit === 'ms' ? ' ms' : f.unit === 'KiB' ? ' KiB' : ''}`;
  };
  const ratio = (f: Figure) => {
    const a = f.values.ours;
    const b = f.values.peer;
    if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0 || f.unit === '') return '–';
    return `${round(a / b, 2)}×`;
  };
  const rows = [
    ['figure', 'ours', 'peer', 'ours / peer'],
    ...result.figures.map((f) => [`${f.label} ${f.higherIsBetter ? '↑' : '↓'}`, fmt(f, 'ours'), fmt(f, 'peer'), ratio(f)]),
  ];
  const out = markdownTable(rows);
  if (result.scale.length > 0) {
    const cell = (v: unknown) => (v === undefined || v === null ? '–' : typeof v === 'object' ? JSON.stringify(v) : String(v));
    const scaleRows = [
      [
        'scale curve',
        'processes',
        'streams',
        'ingest req/s',
        'ingest p99 ms',
        'conflicts / webhook',
        'open/s',
        'fan-out p50 / p99 ms',
        'lost / dup',
        'RSS/stream KiB',
        'channels released s',
      ],
      ...result.scale.map((s) =>
        s.skipped
          ? [cell(s.target), cell(s.processes), cell(s.streams), `skipped: ${cell(s.skipped)}`, '', '', '', '', '', '', '']
          : [
              cell(s.target),
              cell(s.processes),
              cell(s.streams),
              cell(s.ingestReqPerS),
              cell(s.ingestP99),
              cell(s.writeConflictsPerWebhook),
              cell(s.openPerS),
              `${cell(s.fanoutP50)} / ${cell(s.fanoutP99)}`,
              `${cell(s.lost)} / ${cell(s.duplicated)}`,
              cell(s.rssPerStreamKiB),
              cell(s.channelsReleasedS),
            ],
      ),
    ];
    out.push('', ...markdownTable(scaleRows));
  }
  return out.join('\n');
}

function markdownTable(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
  return [line(rows[0]!), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.slice(1).map(line)];
}
