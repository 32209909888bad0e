import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.js';

/** The suite, narrowed to the test files that exercise the modules stryker.config.mjs mutates. */
export default mergeConfig(
  base,
  defineConfig({
    test: {
      include: ['tests/status-rule.test.ts', 'tests/webhook.test.ts', 'tests/grants.test.ts', 'tests/streams.test.ts', 'tests/tokens.test.ts'],
    },
  }),
);
