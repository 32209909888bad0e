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
  'src/realtime/outbox.ts', // publish after commit, drain
];

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
