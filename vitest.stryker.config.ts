import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/** The suite, narrowed to the test files that exercise the modules stryker.config.mjs mutates (replaces `include`). */
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['tests/status-rule.test.ts', 'tests/webhook.test.ts', 'tests/grants.test.ts', 'tests/streams.test.ts', 'tests/tokens.test.ts'],
  },
});
