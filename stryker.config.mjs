// @ts-check
/**
 * Mutation testing (`npm run test:mutation`): StrykerJS breaks the modules below one small change at a
 * time and runs the tests that cover each change; a change no test notices ("survived") is a promise
 * nothing checks. Report: reports/mutation/mutation.html and .json (git-ignored).
 */

/** The code where a silent break costs the most. Paths move with refactors: this list is the one place to fix them. */
const MUTATE = [
  'src/sessions/status.ts', // the status rule
  'src/webhooks/verify.ts', // webhook verification
  'src/livekit/jwt.ts', // the token verifier (webhooks and GraphQL)
  'src/graphql/auth.ts', // the grants
  'src/realtime/session-stream.ts', // snapshot-then-live streams
  'src/realtime/session-feed.ts', // one feed per session: subscribe, snapshot, gap filling, reconnect re-read
  'src/realtime/outbox.ts', // publish after commit, drain
];

/*
 * Survivors that are equivalent (no test can tell them from the code: same behaviour for every input the
 * service can give them) or that we knowingly leave alive. Measured 2026-12-02; see README "Testing".
 *
 * Equivalent:
 * - status.ts compareInstances `a.createdMs < b.createdMs` → `<=`: only reached when the two times differ.
 * - status.ts decide `compareInstances(event.room, current) > 0` → `>= 0`: 0 means the same sid, which the
 *   branch above already took.
 * - jwt.ts `this.name = 'TokenRejected'` → "": the name is never shown; callers test `instanceof` and use `reason`.
 * - jwt.ts `if (err.claim === 'iss') return 'unknown API key'` (3 mutants): unreachable, the verifier is chosen by
 *   `iss`, so the SDK's issuer check cannot fail.
 * - jwt.ts decodePart `value !== null` → true and its `catch { return undefined }` → {}: a null part is refused by
 *   `header && claims` anyway, and an empty catch also returns undefined.
 * - verify.ts `err instanceof Error ? … : 'invalid'` → "": WebhookEvent.fromJson throws only Errors (unreachable).
 * - session-stream.ts watchSession `change.eventType !== 'snapshot'` → true / → `!== ""`: the only filter passed to
 *   watchSession (statusChangesOnly) lets every snapshot through (previousStatus null ≠ status).
 * - session-stream.ts `if (version > lastVersion + 1) catchUp(version - 1)` → `true` / `>=` / `lastVersion - 1`:
 *   with no gap the range read is empty; only an extra query per event.
 * - session-stream.ts `addEventListener('abort', onAbort, { once: true })` → `{}` / `{ once: false }`: an
 *   AbortSignal fires 'abort' once.
 * - outbox.ts `if (!bus.isConnected()) return 0` → false: a drain while Redis is down fails its first publish and
 *   marks nothing. `intervalMs * 2` → `/ 2` (minimum age of a change the drain takes): at worst a change is
 *   published twice, and subscribers drop repeated versions. The publish-failure handler → `() => undefined`:
 *   it only logs.
 * - auth.ts readSession `return !session || canReadRoom(…)` → true, and `if (!isAuthenticated(…))` → false: the
 *   session resolvers check the room again (defence in depth), so the API answers the same.
 *
 * Alive on purpose (not observable without reaching into internals):
 * - session-stream.ts the returned remover (`removeEventListener`, 2 mutants): a leftover listener on the
 *   server's shutdown signal is memory only (heap per subscription: tools/bench).
 * - session-stream.ts `if (signal?.aborted) stop()` → false: a subscription starting after shutdown began.
 * - session-stream.ts all-sessions `SlidingBuffer(BUFFER_SIZE * 4)` → `/ 4`: needs a consumer stalled while
 *   more than 16 changes arrive in one tick.
 * - session-stream.ts the stream's `.catch` (stop on a failed catch-up read): no test fails the database
 *   between a gap and its read.
 * - auth.ts isAuthenticated → true / without `'open'`, firstScope `if (scope)` → true, `claims.sub ?? ''`: not
 *   yet analysed (the run before the last grants tests; see README for what was measured).
 * - outbox.ts marking on stop (`if (markTimer)`, 3 mutants, and the emptied `stop()`), `catch { break; }` (a
 *   publish failing mid-drain): need a stop or a Redis failure at an exact moment.
 * - outbox.ts the drain on reconnect (`bus.onReconnect(() => void drain())`): the interval drain delivers the
 *   same changes (OUTBOX_INTERVAL_MS, 1 s). With the interval at 60 s, a change committed during an outage
 *   was not published within 20 s of the link returning: the reconnect drain seems not to run (reported).
 */

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
const config = {
  mutate: MUTATE,
  testRunner: 'vitest',
  // Mutants inside logger calls are ignored (not scored): see stryker.ignore-logs.mjs.
  plugins: ['@stryker-mutator/*', './stryker.ignore-logs.mjs'],
  ignorers: ['logger-calls'],
  // Only the test files that exercise these modules (vitest.stryker.config.ts lists them): CPU is scarce.
  vitest: { configFile: 'vitest.stryker.config.ts', related: false },
  coverageAnalysis: 'perTest',
  // Module-level mutants would run every test for each one; the functions they set up are what is tested.
  ignoreStatic: true,
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  concurrency: 2,
  timeoutMS: 20_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 85, break: null },
  ignorePatterns: ['reports', '.data', 'coverage', '.scratch', 'tools/bench', '.stryker-tmp*'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};

export default config;
