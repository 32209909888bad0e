/**
 * Speed and memory benchmarks (targets live here, not in timed tests).
 *
 *   npm run bench                                  # ours and the peer side by side (compare.ts), under ~10 min
 *   npm run bench -- --quick                       # the same, scaled down (~2-3 min)
 *   npm run bench -- --only webhooks --duration 15 # our own detailed benchmarks: webhooks, fanout, memory
 *   npm run bench -- --only fanout,memory --json   # machine-readable result on stdout
 *
 * Needs the real Postgres and Redis (TEST_DATABASE_URL, TEST_REDIS_URL). Each benchmark starts the
 * service as its own process(es) in production mode, with its own schema and channel prefix, and
 * stops them and drops the schema at the end (also on Ctrl-C).
 */
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { cleanupAll, machine, printTable, requireBackends, waitForQuietMachine, type BenchResult, type ServiceOptions } from './common.js';
import { COMPARE_DEFAULTS, COMPARE_QUICK, formatCompare, runCompare, streamLimit, type CompareOptions } from './compare.js';
import type { TargetName } from './targets.js';
import { summarizeCpuProfiles } from './cpuprofile.js';
import { FANOUT_DEFAULTS, runFanoutBench } from './fanout.js';
import { LIVE_EVENTS_DEFAULTS, runLiveEventsBench } from './live-events.js';
import { MEMORY_DEFAULTS, runMemoryBench } from './memory.js';
import { runStartupBench } from './startup.js';
import { runWebhookBench, WEBHOOK_DEFAULTS } from './webhooks.js';

const BENCHES = ['compare', 'live', 'webhooks', 'fanout', 'memory', 'startup'] as const;
type BenchName = (typeof BENCHES)[number];

const USAGE = `Usage: npm run bench -- [options]
  --only <list>         compare,live (default: ours and the peer side by side, then participant vs status event cost),
                        or our own webhooks,fanout,memory,startup
  --quick               compare, scaled down: ${COMPARE_QUICK.streams} streams over ${COMPARE_QUICK.rooms} sessions, ${COMPARE_QUICK.ingestS} s runs, no quick start
  --targets <list>      compare: ours,peer (default both)
  --subscribers <n>     compare: SSE streams (default ${COMPARE_DEFAULTS.streams}); fanout: subscribers on process B (default ${FANOUT_DEFAULTS.subscribers})
  --rooms <n>           compare: sessions the streams watch (default ${COMPARE_DEFAULTS.rooms})
  --scale               compare: also the scale curve: 1,000 / 10,000 / --subscribers streams (default 50,000 there)
                        and 1 / 2 / 4 service processes, where the open-file limit allows
  --no-quickstart       compare: skip the start-up timings (embedded quick start, compiled production start)
  --runs <n>            startup: starts of each kind, reported as the median (default 5; compare: 3)
  --streams-only        compare: only the subscription figures (open rate, memory, fan-out, channels released)
  --duration <s>        measured run of compare's ingest (default ${COMPARE_DEFAULTS.ingestS}), webhooks and fanout (${WEBHOOK_DEFAULTS.durationS}/${FANOUT_DEFAULTS.durationS})
  --json                print one JSON object instead of tables
  --connections <n>     compare and webhooks: autocannon connections (default ${COMPARE_DEFAULTS.connections}/${WEBHOOK_DEFAULTS.connections})
  --sessions <n>        compare and webhooks: sessions the webhooks cycle through (default ${COMPARE_DEFAULTS.sessions}/${WEBHOOK_DEFAULTS.sessions})
  --pool <n>            webhooks: pre-signed requests (default 1500 per second of run)
  --warmup <s>          webhooks: warm-up before measuring (default ${WEBHOOK_DEFAULTS.warmupS})
  --subscribers <n>     fanout: subscribers on process B (default ${FANOUT_DEFAULTS.subscribers})
  --watched <n>         fanout: sessions they watch (default ${FANOUT_DEFAULTS.sessions})
  --rate <n>            fanout: status webhooks per second to process A (default ${FANOUT_DEFAULTS.rate})
  --subs <n>            memory: subscriptions per cycle (default ${MEMORY_DEFAULTS.subscriptions})
  --cycles <n>          memory: open/close cycles (default ${MEMORY_DEFAULTS.cycles})
  --changes <n>         memory: changes published to the slow consumer's session (default ${MEMORY_DEFAULTS.slowChanges})
  --slow-rate <n>       memory: those changes per second (default ${MEMORY_DEFAULTS.slowRate})
  --log-level <level>   service LOG_LEVEL (default info, as in production)
  --cpu-prof <dir>      write V8 CPU profiles of the service processes and print where the time goes
  --wait-idle <s>       before each benchmark, wait up to this long for the machine to be < 25 % busy (default 0)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      targets: { type: 'string' },
      rooms: { type: 'string' },
      scale: { type: 'boolean', default: false },
      'no-quickstart': { type: 'boolean', default: false },
      'streams-only': { type: 'boolean', default: false },
      duration: { type: 'string' },
      json: { type: 'boolean', default: false },
      connections: { type: 'string' },
      sessions: { type: 'string' },
      pool: { type: 'string' },
      warmup: { type: 'string' },
      subscribers: { type: 'string' },
      watched: { type: 'string' },
      rate: { type: 'string' },
      subs: { type: 'string' },
      cycles: { type: 'string' },
      changes: { type: 'string' },
      'slow-rate': { type: 'string' },
      'log-level': { type: 'string' },
      'cpu-prof': { type: 'string' },
      'wait-idle': { type: 'string' },
      runs: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const num = (name: keyof typeof values, fallback: number, min = 1, max = 1_000_000): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number between ${min} and ${max}`);
    return n;
  };
  // The default: ours and the peer side by side, then the cost of a participant event next to a status event (issue 10).
  const only = (values.only ?? 'compare,live')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const name of only)
    if (!BENCHES.includes(name as BenchName)) throw new Error(`unknown benchmark ${JSON.stringify(name)}; choose from ${BENCHES.join(', ')}`);

  const cpuProfDir = values['cpu-prof'];
  if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
  const service: ServiceOptions = { logLevel: values['log-level'] ?? 'info', cpuProfDir };
  const json = values.json;

  await requireBackends();
  const results: BenchResult[] = [];
  const log = (line: string) => {
    process.stderr.write(`${line}\n`); // progress on stderr: stdout stays one JSON object with --json
  };
  for (const name of only as BenchName[]) {
    const waitIdleS = num('wait-idle', 0, 0, 3600);
    const quiet = waitIdleS > 0 ? await waitForQuietMachine(25, waitIdleS * 1000) : undefined;
    log(`running ${name} ...${quiet ? ` (machine ${quiet.busyPct} % busy after waiting ${quiet.waitedS} s)` : ''}`);
    const started = Date.now();
    let result: BenchResult;
    try {
      if (name === 'compare') {
        const base = { ...COMPARE_DEFAULTS, ...(values.quick ? COMPARE_QUICK : {}) };
        const targets = (values.targets ?? 'ours,peer').split(',').map((t) => t.trim()) as TargetName[];
        for (const t of targets) if (t !== 'ours' && t !== 'peer') throw new Error(`unknown target ${JSON.stringify(t)}; choose from ours, peer`);
        const streams = num('subscribers', base.streams, 1, 1_000_000);
        const opts: CompareOptions = {
          ...base,
          targets,
          ingestS: num('duration', base.ingestS, 1, 600),
          connections: num('connections', base.connections, 1, 1000),
          sessions: num('sessions', base.sessions, 1, 100_000),
          streams: values.scale ? Math.min(streams, base.streams) : streams,
          rooms: num('rooms', base.rooms, 1, 100_000),
          quickStart: base.quickStart && !values['no-quickstart'] && !values['streams-only'],
          startRuns: num('runs', 3, 1, 50),
          streamsOnly: values['streams-only'],
          scaleStreams: !values.scale ? [] : values.quick ? [100, 1_000] : [1_000, 10_000, values.subscribers ? streams : 50_000],
          scaleProcesses: values.scale ? [2, 4] : [],
          cpuProfDir,
          log,
        };
        const load = loadavg();
        const compared = await runCompare(opts);
        const loadAfter = loadavg();
        const noise = `load average (1/5/15 min) before ${load.map((l) => round1(l)).join(' / ')}, after ${loadAfter.map((l) => round1(l)).join(' / ')}; open-file limit ${streamLimit() + 500}`;
        result = {
          name,
          ok: compared.problems.length === 0,
          problems: compared.problems,
          rows: [],
          data: { figures: compared.figures, scale: compared.scale, details: compared.details, options: { ...opts, log: undefined }, noise },
        };
        if (!json) process.stdout.write(`\n${formatCompare(compared)}\n\n${noise}\n`);
      } else if (name === 'live') {
        result = await runLiveEventsBench({ ...LIVE_EVENTS_DEFAULTS, ...(values.quick ? { rooms: 10, perRoom: 20 } : {}), service });
      } else if (name === 'webhooks') {
        result = await runWebhookBench({
          durationS: num('duration', WEBHOOK_DEFAULTS.durationS, 1, 600),
          warmupS: num('warmup', WEBHOOK_DEFAULTS.warmupS, 0, 60),
          connections: num('connections', WEBHOOK_DEFAULTS.connections, 1, 1000),
          sessions: num('sessions', WEBHOOK_DEFAULTS.sessions, 1, 100_000),
          poolSize: num('pool', WEBHOOK_DEFAULTS.poolSize, 0, 2_000_000),
          service,
        });
      } else if (name === 'fanout') {
        result = await runFanoutBench({
          ...FANOUT_DEFAULTS,
          durationS: num('duration', FANOUT_DEFAULTS.durationS, 1, 600),
          subscribers: num('subscribers', FANOUT_DEFAULTS.subscribers, 1, 20_000),
          sessions: num('watched', FANOUT_DEFAULTS.sessions, 1, 10_000),
          rate: num('rate', FANOUT_DEFAULTS.rate, 1, 5_000),
          service,
        });
      } else if (name === 'startup') {
        result = await runStartupBench({ runs: num('runs', 5, 1, 50), production: true, log });
      } else {
        result = await runMemoryBench({
          ...MEMORY_DEFAULTS,
          subscriptions: num('subs', MEMORY_DEFAULTS.subscriptions, 1, 20_000),
          cycles: num('cycles', MEMORY_DEFAULTS.cycles, 1, 20),
          slowChanges: num('changes', MEMORY_DEFAULTS.slowChanges, 1, 100_000),
          slowRate: num('slow-rate', MEMORY_DEFAULTS.slowRate, 1, 100_000),
          service,
        });
      }
    } catch (err) {
      result = { name, ok: false, problems: [`failed: ${(err as Error).stack ?? String(err)}`], rows: [], data: {} };
    }
    result.data.seconds = Math.round((Date.now() - started) / 100) / 10;
    if (quiet) result.data.machineBusyBeforePct = quiet.busyPct;
    results.push(result);
    if (!json) {
      printTable(`${name} (${String(result.data.seconds)} s)`, [...result.rows, ['verdict', result.ok ? 'OK' : 'FAILED: ' + result.problems.join('; ')]]);
    }
  }

  // compare writes each target's profiles into <dir>/ours and <dir>/peer.
  const profileDirs = cpuProfDir ? (only.includes('compare') ? ['ours', 'peer'].map((t) => join(cpuProfDir, t)) : [cpuProfDir]) : [];
  const summaries = profileDirs.map((dir) => ({ dir, ...summarizeCpuProfiles(dir) })).filter((s) => s.data.length > 0);
  const profile = summaries.length > 0 ? { text: summaries.map((s) => `### ${s.dir}\n${s.text}`).join('\n\n'), data: summaries.map((s) => s.data) } : undefined;
  if (profile && !json) process.stdout.write(`\n${profile.text}\n`);
  if (json) {
    const output = {
      date: new Date().toISOString(),
      machine: machine(),
      results: Object.fromEntries(results.map((r) => [r.name, { ok: r.ok, problems: r.problems, ...r.data }])),
      cpuProfile: profile?.data,
    };
    process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
  } else {
    const m = machine();
    process.stdout.write(`\n${m.cpus} cores (${m.cpuModel}), Node ${m.node}, ${new Date().toISOString()}\n`);
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

const round1 = (n: number) => Math.round(n * 100) / 100;

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping services and dropping schemas ...\n`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

main()
  .then(async (code) => {
    await cleanupAll();
    process.exit(code);
  })
  .catch(async (err: unknown) => {
    process.stderr.write(`${(err as Error).message ?? String(err)}\n`);
    await cleanupAll();
    process.exit(2);
  });
