import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // graphql 16 is otherwise loaded twice under vitest ("another module or realm").
    alias: { graphql: require.resolve('graphql/index.js') },
  },
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Suites share one Postgres server and one Redis; each uses its own database schema and key space.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
  },
});
