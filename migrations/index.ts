import type { Migration } from 'kysely';
import * as m0001 from './0001_init.js';
import * as m0002 from './0002_live_state.js';
import * as m0003 from './0003_drop_unused_event_index.js';

/** Static registry: bundler-proof and importable under vitest (no directory scanning). */
export const migrations: Record<string, Migration> = {
  '0001_init': m0001,
  '0002_live_state': m0002,
  '0003_drop_unused_event_index': m0003,
};
