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
 * - jwt.ts token cache `typeof claims.exp === 'number'` → true / `!==` (2 mutants): a verified token always has an
 *   exp (tokens without one are refused: "token has no expiry"), so → true changes nothing, and `!==` only turns
 *   the cache off (every use verifies the signature again: the same answers, more CPU).
 * - jwt.ts checkTimes `claims.nbf > now + tolerance` → false (and its message, no coverage): a cached token passed
 *   its nbf when it was verified, and nbf only recedes into the past.
 * Measured: jwt.ts 86.5 % after the token cache's fix (2026-12-02 05:44, 11.9 min: 64 killed, 8 survived, 2 no
 * coverage, all listed here).
 * - verify.ts `err instanceof Error ? … : 'invalid'` → "": WebhookEvent.fromJson throws only Errors (unreachable).
 * - session-feed.ts handInOrder's `members.filter((m) => version > m.lastVersion + 1)` (no filter, → true, `>=`,
 *   `m.lastVersion - 1`) and `fill(…, version - 1)` → `version + 1`: a member that is not behind gets an empty
 *   read (or the change it is about to get, dropped as a repeat); only an extra query per event.
 * - session-feed.ts sharing (`if (!change)` in sharedSnapshot, `if (!feeds)` and `if (!feed)` in joinSessionFeed
 *   → true), `recheck: false` → true and `if (member.recheck)` → true: one snapshot object, one feed and one broker subscription per session
 *   become one per subscriber, or a joiner re-reads once after its snapshot; subscribers get the same events
 *   (what sharing saves is measured by tools/bench).
 * - session-feed.ts failMember `if (!this.members.has(member)) return` → false: a member is failed only while it
 *   is a member (the chain fails current members; the snapshot read is skipped for one who left) except when it
 *   leaves while its own snapshot read is failing: then only a log line more and a fail() to a subscriber that
 *   already stopped listening.
 * - outbox.ts `if (!bus.isConnected()) return 0` → false (timed out in one run, so counted as detected; survived in
 *   the next): a drain while Redis is down fails its first publish and marks nothing; the guard saves a
 *   transaction per interval.
 * - auth.ts readSession `return !session || canReadRoom(…)` → true, and `if (!isAuthenticated(…))` → false: the
 *   session resolvers check the room again (defence in depth), so the API answers the same.
 *
 * Alive on purpose (not observable without reaching into internals, or only by asserting a limitation):
 * - session-stream.ts the remover stopOnEnd returns (its body → {}): a stop function left in the shutdown's set
 *   is memory only until shutdown, where calling it on an ended stream does nothing (heap per subscription:
 *   tools/bench).
 * - outbox.ts the reconnect drain's bound (`i < RECONNECT_WAIT_STEPS && !stopped` → `||` or true, `i++` → `i--`):
 *   they differ only when the publisher's link stays down more than 5 s after the subscriber's came back (the
 *   code stops waiting and leaves the changes to the timer's drain; the mutants keep waiting). A test could
 *   tell them apart only by asserting the give-up. (`<=` for `<`: one more 250 ms step of waiting.)
 * - outbox.ts stop() `stopped = true` → false: ends that wait early when the service stops; the bus is closed by
 *   then, so the wait ends by itself after 5 s with nothing to observe.
 * - auth.ts isAuthenticated → true / without `'open'`, firstScope `if (scope)` → true, `claims.sub ?? ''`: not
 *   yet analysed (the run before the last grants tests; see README for what was measured).
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
