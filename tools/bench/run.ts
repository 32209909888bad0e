/**
 * Speed and memory benchmarks (targets live here, not in timed tests).
 *
 *   npm run bench                                  # all three, ~2-3 minutes
 *   npm run bench -- --only webhooks --duration 15
 *   npm run bench -- --only fanout,memory --json   # machine-readable result on stdout
 *
 * Needs the real Postgres and Redis (TEST_DATABASE_URL, TEST_REDIS_URL). Each benchmark starts the
 * service as its own process(es) in production mode, with its own schema and channel prefix, and
 * stops them and drops the schema at the end (also on Ctrl-C).
 */
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cleanupAll, machine, printTable, requireBackends, waitForQuietMachine, type BenchResult, type ServiceOptions } from './common.js';
import { summarizeCpuProfiles } from './cpuprofile.js';
import { FANOUT_DEFAULTS, runFanoutBench } from './fanout.js';
import { MEMORY_DEFAULTS, runMemoryBench } from './memory.js';
import { runWebhookBench, WEBHOOK_DEFAULTS } from './webhooks.js';

const BENCHES = ['webhooks', 'fanout', 'memory'] as const;
type BenchName = (typeof BENCHES)[number];

const USAGE = `Usage: npm run bench -- [options]
  --only <list>         webhooks,fanout,memory (default: all)
  --duration <s>        measured run of webhooks and fanout (default ${WEBHOOK_DEFAULTS.durationS}/${FANOUT_DEFAULTS.durationS})
  --json                print one JSON object instead of tables
  --connections <n>     webhooks: autocannon connections (default ${WEBHOOK_DEFAULTS.connections})
  --sessions <n>        webhooks: sessions (default ${WEBHOOK_DEFAULTS.sessions})
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
  const only = (values.only ?? BENCHES.join(','))
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
    if (!json) process.stderr.write(`${line}\n`);
  };
  for (const name of only as BenchName[]) {
    const waitIdleS = num('wait-idle', 0, 0, 3600);
    const quiet = waitIdleS > 0 ? await waitForQuietMachine(25, waitIdleS * 1000) : undefined;
    log(`running ${name} ...${quiet ? ` (machine ${quiet.busyPct} % busy after waiting ${quiet.waitedS} s)` : ''}`);
    const started = Date.now();
    let result: BenchResult;
    try {
      if (name === 'webhooks') {
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
      printTable(`${name} (${result.data.seconds} s)`, [...result.rows, ['verdict', result.ok ? 'OK' : `FAILED: ${result.problems.join('; ')}`]]);
    }
  }

  const profile = cpuProfDir ? summarizeCpuProfiles(cpuProfDir) : undefined;
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
