import { existsSync, readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';

export const DEV_API_KEY = 'devkey';
export const DEV_API_SECRET = 'secret';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const FLAG_WORDS = ['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'] as const;
const flagWord = z.enum(FLAG_WORDS).optional();
const isOn = (v: string) => ['true', '1', 'yes', 'on'].includes(v);
const flag = (fallback: boolean) => flagWord.transform((v) => (v === undefined ? fallback : isOn(v)));

const int = (fallback: number, min: number, max: number) =>
  z.coerce
    .number()
    .int()
    .min(min)
    .max(max)
    .optional()
    .transform((v) => v ?? fallback);

const list = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  // Unset: loopback in development (the dev admin token must not reach the network), every interface in production.
  HOST: optionalString,
  PORT: int(3000, 0, 65535),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),

  LIVEKIT_URL: optionalString.pipe(z.url({ protocol: /^(wss?|https?)$/ }).optional()),
  LIVEKIT_API_KEY: z.string().min(1).default(DEV_API_KEY),
  LIVEKIT_API_SECRET: z.string().min(1).default(DEV_API_SECRET),
  LIVEKIT_WEBHOOK_KEYS: list,
  WEBHOOK_CLOCK_TOLERANCE_SECONDS: int(60, 0, 600),
  WEBHOOK_MAX_BODY_BYTES: int(1024 * 1024, 1024, 16 * 1024 * 1024),
  WEBHOOK_BODY_TIMEOUT_SECONDS: int(10, 1, 300),
  SESSION_AUTO_CREATE: flag(false),
  DASHBOARD: flag(true),

  DATABASE_URL: optionalString,
  DATABASE_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'lowercase SQL identifier')
    .default('public'),
  DATABASE_POOL_MAX: int(10, 1, 200),
  DATABASE_CONNECT_TIMEOUT_SECONDS: int(30, 0, 3600),
  PGLITE_DATA_DIR: z.string().min(1).default('.data/pglite'),

  REDIS_URL: optionalString,
  REDIS_CLUSTER_NODES: list,
  REDIS_SENTINELS: list,
  REDIS_SENTINEL_NAME: optionalString,
  REDIS_PREFIX: z.string().default('lkss:'),

  RECONCILE_INTERVAL_SECONDS: int(60, 0, 86_400),
  RETENTION_DAYS: int(30, 0, 3650),
  OUTBOX_INTERVAL_MS: int(1000, 50, 60_000),
  SHUTDOWN_TIMEOUT_SECONDS: int(10, 1, 300),

  AUTH_MODE: z.enum(['token', 'off']).default('token'),
  // Their defaults depend on NODE_ENV, so they are resolved below.
  GRAPHIQL: flagWord,
  INTROSPECTION: flagWord,
  GRAPHIQL_DEV_TOKEN: flagWord,
  GRAPHQL_TOKEN_KEYS: list,
  CORS_ORIGINS: list,
  GRAPHQL_MAX_DEPTH: int(12, 2, 100),
  GRAPHQL_MAX_ALIASES: int(20, 1, 1000),
  GRAPHQL_MAX_TOKENS: int(2000, 50, 100_000),
  GRAPHQL_MAX_COST: int(5000, 100, 1_000_000),
  GRAPHQL_MAX_BODY_BYTES: int(100_000, 1024, 10 * 1024 * 1024),
  GRAPHQL_MAX_SUBSCRIPTIONS_PER_CONNECTION: int(100, 1, 10_000),
});

export type RedisNode = Readonly<{ host: string; port: number }>;
export type RedisTarget =
  | Readonly<{ kind: 'single'; url: string }>
  | Readonly<{ kind: 'cluster'; nodes: readonly RedisNode[] }>
  | Readonly<{ kind: 'sentinel'; sentinels: readonly RedisNode[]; name: string }>;

export type Config = Readonly<{
  env: 'development' | 'test' | 'production';
  host: string;
  port: number;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  /** Unset: human-readable in development on a terminal, JSON lines otherwise. */
  logFormat: 'json' | 'pretty' | undefined;
  livekit: Readonly<{
    url: string | undefined;
    apiKey: string;
    apiSecret: string;
    /** Every key LiveKit may sign webhooks with: the main key first, then rotated-in ones. */
    webhookKeys: ReadonlyMap<string, string>;
    clockToleranceSeconds: number;
    maxBodyBytes: number;
    /** The whole webhook body must arrive within this, or 408. */
    bodyTimeoutSeconds: number;
  }>;
  sessionAutoCreate: boolean;
  /** The live sessions page at GET / and /sessions (DASHBOARD=off: 404). */
  dashboard: boolean;
  database: Readonly<
    /** connectTimeoutSeconds: how long start-up waits for Postgres to answer (replicas may start first). */
    { kind: 'postgres'; url: string; schema: string; poolMax: number; connectTimeoutSeconds: number } | { kind: 'pglite'; dataDir: string; schema: string }
  >;
  redis: Readonly<{
    /** REDIS_URL when that is how Redis is configured. */
    url: string | undefined;
    /** Where pub/sub goes: one server, a Cluster, or the master named by Sentinels (undefined: in-process). */
    target: RedisTarget | undefined;
    prefix: string;
  }>;
  reconcileIntervalSeconds: number;
  /** Webhook records and published change history older than this are deleted (0: kept forever). */
  retentionDays: number;
  outboxIntervalMs: number;
  shutdownTimeoutSeconds: number;
  graphql: Readonly<{
    authMode: 'token' | 'off';
    /** The keys client tokens may be signed with: LIVEKIT_API_KEY first, then GRAPHQL_TOKEN_KEYS (never the webhook-only keys). */
    tokenKeys: ReadonlyMap<string, string>;
    graphiql: boolean;
    /** GRAPHIQL_DEV_TOKEN=on: GraphiQL pre-fills the development admin token for any client and key (default: loopback and the dev key only). */
    graphiqlDevTokenForAll: boolean;
    introspection: boolean;
    corsOrigins: readonly string[];
    maxDepth: number;
    maxAliases: number;
    maxTokens: number;
    maxCost: number;
    maxBodyBytes: number;
    maxSubscriptionsPerConnection: number;
  }>;
}>;

/** Reads `env.local` (if present) under the process environment: real variables win. */
export function readEnv(env: NodeJS.ProcessEnv = process.env, envFile = 'env.local'): Record<string, string | undefined> {
  const fromFile = existsSync(envFile) ? parseDotenv(readFileSync(envFile)) : {};
  return { ...fromFile, ...env };
}

/** Parses and validates the configuration once; every problem is reported at once. */
export function loadConfig(raw: Record<string, string | undefined> = readEnv()): Config {
  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || 'environment'}: ${i.message}`));
  }
  const e = parsed.data;
  const problems: string[] = [];

  const keyPairs = (variable: string, pairs: string[]) => {
    const keys = new Map<string, string>([[e.LIVEKIT_API_KEY, e.LIVEKIT_API_SECRET]]);
    for (const pair of pairs) {
      const at = pair.indexOf(':');
      if (at <= 0 || at === pair.length - 1) {
        problems.push(`${variable}: each entry must be "key:secret"`);
        continue;
      }
      keys.set(pair.slice(0, at), pair.slice(at + 1));
    }
    return keys;
  };
  const webhookKeys = keyPairs('LIVEKIT_WEBHOOK_KEYS', e.LIVEKIT_WEBHOOK_KEYS);
  const tokenKeys = keyPairs('GRAPHQL_TOKEN_KEYS', e.GRAPHQL_TOKEN_KEYS);

  const production = e.NODE_ENV === 'production';
  if (production) {
    if (!raw.LIVEKIT_API_KEY) problems.push('LIVEKIT_API_KEY: required in production');
    else if (e.LIVEKIT_API_KEY === DEV_API_KEY) problems.push('LIVEKIT_API_KEY: the development key "devkey" is refused in production');
    if (!raw.LIVEKIT_API_SECRET) problems.push('LIVEKIT_API_SECRET: required in production');
    else if (e.LIVEKIT_API_SECRET === DEV_API_SECRET) problems.push('LIVEKIT_API_SECRET: the development secret is refused in production');
    if ([...webhookKeys].slice(1).some(([key, secret]) => key === DEV_API_KEY || secret === DEV_API_SECRET)) {
      problems.push('LIVEKIT_WEBHOOK_KEYS: development keys are refused in production');
    }
    if ([...tokenKeys].slice(1).some(([key, secret]) => key === DEV_API_KEY || secret === DEV_API_SECRET)) {
      problems.push('GRAPHQL_TOKEN_KEYS: development keys are refused in production');
    }
    if (!e.DATABASE_URL) problems.push('DATABASE_URL: required in production (the embedded database is for development)');
    if (e.AUTH_MODE === 'off') problems.push('AUTH_MODE: "off" is refused in production');
  }
  if (e.DATABASE_URL && !/^postgres(ql)?:\/\//.test(e.DATABASE_URL)) {
    problems.push('DATABASE_URL: must start with postgres:// or postgresql://');
  }
  if (e.REDIS_URL && !/^rediss?:\/\//.test(e.REDIS_URL)) problems.push('REDIS_URL: must start with redis:// or rediss://');
  const redisTarget = redisTargetOf(e, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  const corsDefault = production ? [] : ['*'];
  return Object.freeze({
    env: e.NODE_ENV,
    host: e.HOST ?? (production ? '0.0.0.0' : '127.0.0.1'),
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    livekit: Object.freeze({
      url: e.LIVEKIT_URL,
      apiKey: e.LIVEKIT_API_KEY,
      apiSecret: e.LIVEKIT_API_SECRET,
      webhookKeys,
      clockToleranceSeconds: e.WEBHOOK_CLOCK_TOLERANCE_SECONDS,
      maxBodyBytes: e.WEBHOOK_MAX_BODY_BYTES,
      bodyTimeoutSeconds: e.WEBHOOK_BODY_TIMEOUT_SECONDS,
    }),
    sessionAutoCreate: e.SESSION_AUTO_CREATE,
    dashboard: e.DASHBOARD,
    database: Object.freeze(
      e.DATABASE_URL
        ? {
            kind: 'postgres' as const,
            url: e.DATABASE_URL,
            schema: e.DATABASE_SCHEMA,
            poolMax: e.DATABASE_POOL_MAX,
            connectTimeoutSeconds: e.DATABASE_CONNECT_TIMEOUT_SECONDS,
          }
        : { kind: 'pglite' as const, dataDir: e.PGLITE_DATA_DIR, schema: e.DATABASE_SCHEMA },
    ),
    redis: Object.freeze({ url: e.REDIS_URL, target: redisTarget, prefix: e.REDIS_PREFIX }),
    reconcileIntervalSeconds: e.RECONCILE_INTERVAL_SECONDS,
    retentionDays: e.RETENTION_DAYS,
    outboxIntervalMs: e.OUTBOX_INTERVAL_MS,
    shutdownTimeoutSeconds: e.SHUTDOWN_TIMEOUT_SECONDS,
    graphql: Object.freeze({
      authMode: e.AUTH_MODE,
      tokenKeys,
      graphiql: e.GRAPHIQL === undefined ? !production : isOn(e.GRAPHIQL),
      graphiqlDevTokenForAll: e.GRAPHIQL_DEV_TOKEN !== undefined && isOn(e.GRAPHIQL_DEV_TOKEN),
      introspection: e.INTROSPECTION === undefined ? !production : isOn(e.INTROSPECTION),
      corsOrigins: Object.freeze(e.CORS_ORIGINS.length > 0 ? e.CORS_ORIGINS : corsDefault),
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
      maxCost: e.GRAPHQL_MAX_COST,
      maxBodyBytes: e.GRAPHQL_MAX_BODY_BYTES,
      maxSubscriptionsPerConnection: e.GRAPHQL_MAX_SUBSCRIPTIONS_PER_CONNECTION,
    }),
  });
}

/** `host:port` or `[ipv6]:port`; undefined when malformed. */
function parseHostPort(entry: string): RedisNode | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(entry);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) return undefined;
  return Object.freeze({ host: (match[1] ?? match[2])!, port });
}

/** At most one way to reach Redis: a URL, Cluster nodes, or Sentinels with a master name. */
function redisTargetOf(
  e: { REDIS_URL?: string | undefined; REDIS_CLUSTER_NODES: string[]; REDIS_SENTINELS: string[]; REDIS_SENTINEL_NAME?: string | undefined },
  problems: string[],
): RedisTarget | undefined {
  const given = [
    e.REDIS_URL && 'REDIS_URL',
    e.REDIS_CLUSTER_NODES.length > 0 && 'REDIS_CLUSTER_NODES',
    e.REDIS_SENTINELS.length > 0 && 'REDIS_SENTINELS',
  ].filter(Boolean);
  if (given.length > 1) {
    problems.push(`${given.join(', ')}: set only one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS`);
    return undefined;
  }
  if (e.REDIS_SENTINEL_NAME && e.REDIS_SENTINELS.length === 0) problems.push('REDIS_SENTINEL_NAME: only meaningful with REDIS_SENTINELS');
  const nodes = (variable: string, entries: string[]) => {
    const parsed = entries.map(parseHostPort);
    const bad = entries.filter((_, i) => !parsed[i]);
    if (bad.length > 0) problems.push(`${variable}: each entry must be "host:port" (got ${bad.map((b) => JSON.stringify(b)).join(', ')})`);
    return Object.freeze(parsed.filter((n): n is RedisNode => n !== undefined));
  };
  if (e.REDIS_URL) return Object.freeze({ kind: 'single', url: e.REDIS_URL });
  if (e.REDIS_CLUSTER_NODES.length > 0) return Object.freeze({ kind: 'cluster', nodes: nodes('REDIS_CLUSTER_NODES', e.REDIS_CLUSTER_NODES) });
  if (e.REDIS_SENTINELS.length > 0) {
    if (!e.REDIS_SENTINEL_NAME) problems.push('REDIS_SENTINEL_NAME: required with REDIS_SENTINELS (the master name the Sentinels monitor)');
    return Object.freeze({ kind: 'sentinel', sentinels: nodes('REDIS_SENTINELS', e.REDIS_SENTINELS), name: e.REDIS_SENTINEL_NAME ?? '' });
  }
  return undefined;
}
