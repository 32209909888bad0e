import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * The suite, narrowed to the test files that exercise the modules stryker.config.mjs mutates (replaces
 * `include`). STRYKER_TESTS (comma-separated) narrows it further for a partial run.
 * streams.test.ts and stream-delivery.test.ts are what the session stream and the outbox answer to, and
 * subscription-feed.test.ts what the per-session feed answers to (two replicas, proxies, deliberate waits: a
 * run of those three takes about a minute, and Stryker runs only the tests that cover each mutant).
 */
const files = process.env.STRYKER_TESTS?.split(',') ?? [
  'tests/status-rule.test.ts',
  'tests/tokens.test.ts',
  'tests/token-cache.test.ts',
  'tests/webhook.test.ts',
  'tests/hardening-webhook.test.ts',
  'tests/grants.test.ts',
  'tests/streams.test.ts',
  'tests/stream-delivery.test.ts',
  'tests/subscription-feed.test.ts',
];

export default defineConfig({ ...base, test: { ...base.test, include: files } });
