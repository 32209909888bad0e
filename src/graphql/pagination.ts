import { userError } from './errors.js';

/** Keyset pagination over `sessions.seq`: one page is 1..PAGE_MAX rows, a cursor is an opaque `seq:<n>`. */
export const PAGE_MAX = 100;
export const PAGE_DEFAULT = 20;
/** `sessions.seq` is a Postgres `integer`: a larger value would fail in SQL (22003) instead of saying what is wrong. */
const SEQ_MAX = 2_147_483_647;

export const pageSizeProblem = (name: 'first' | 'last', value: number): string | null =>
  value < 1 || value > PAGE_MAX ? `${name} must be between 1 and ${PAGE_MAX}` : null;

export function assertPageSize(args: { first?: number | null; last?: number | null }): void {
  for (const name of ['first', 'last'] as const) {
    const value = args[name];
    const problem = value == null ? null : pageSizeProblem(name, value);
    if (problem) throw userError('BAD_USER_INPUT', problem);
  }
}

export const encodeCursor = (seq: number): string => Buffer.from(`seq:${seq}`).toString('base64url');

/** The seq a cursor points at; anything we did not issue (bad base64, other text, out of range) is BAD_USER_INPUT. */
export function decodeCursor(cursor: string): number {
  const match = /^seq:(0|[1-9]\d{0,9})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  const seq = match ? Number(match[1]) : NaN;
  if (!(seq <= SEQ_MAX) || encodeCursor(seq) !== cursor) throw userError('BAD_USER_INPUT', 'Malformed cursor');
  return seq;
}
