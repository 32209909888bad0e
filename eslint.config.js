// ESLint flat config: typescript-eslint's type-aware recommended rules over the whole tree, formatting left to Prettier.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', '.data/', 'coverage/', 'dist/', 'schema/'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // `_`-prefixed names are deliberately unused (a parameter an interface requires, a skipped tuple element).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Template literals with numbers are how log lines and errors are written here; objects still must not be stringified.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // `void promise` is the explicit way to start work whose errors are handled inside it (timers, fire-and-forget publish).
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
      // Event handlers and Node callbacks may be async; what they return is ignored on purpose.
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
    },
  },
  {
    // Tests and the test/bench kit read loosely typed results (GraphQL JSON, parsed logs) on purpose; assertions check their shape.
    files: ['tests/**/*.ts', 'tools/kit/**/*.ts', 'tools/bench/**/*.ts', '.ci/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // WebSocket frames (ws RawData) are Buffers here; String(data) is their text.
      '@typescript-eslint/no-base-to-string': 'off',
      // Stand-ins for async interfaces (a fake RoomService, a stub resolver) need no await.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Migrations are frozen in time: they must not depend on today's table types, hence Kysely<any> (Kysely's own advice).
    files: ['migrations/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Plain JavaScript (this file, the bench hooks) has no types to check against.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
  prettier,
);
