import { MAX_ID_LENGTH } from './limits.js';

/* What else a webhook event may carry into the database (names: see limits.ts). */

/** Why an id (event id, room sid, event type) cannot be stored, or null when it can. */
export function idProblem(id: string): string | null {
  if (id.length > MAX_ID_LENGTH) return `must be at most ${MAX_ID_LENGTH} characters`;
  if (id.includes('\u0000')) return 'must not contain NUL';
  return null;
}

/** Times a webhook may carry: anything outside is not LiveKit's clock (and may not fit the database). */
export const MIN_EVENT_TIME_MS = Date.UTC(2000, 0, 1);
export const MAX_EVENT_TIME_MS = Date.UTC(2100, 0, 1);

/** Why a time in milliseconds cannot be stored, or null when it can (0 means "not sent"). */
export function timeProblem(ms: number): string | null {
  if (ms === 0) return null;
  if (!Number.isFinite(ms) || ms < MIN_EVENT_TIME_MS || ms >= MAX_EVENT_TIME_MS) return 'must be a time between 2000 and 2100';
  return null;
}
