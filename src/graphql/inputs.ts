import { decodeGlobalID } from '@pothos/plugin-relay';
import { z } from 'zod';
import { roomNameProblem } from '../sessions/limits.js';

/** Input checks, declared on the arguments (Pothos validation plugin); a failure is BAD_USER_INPUT (see builder.ts). */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// C0/C1 controls, DEL, and line/paragraph separators.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const MAX_TITLE = 256;

/** A room name as the webhook path stores it: every stored room can be looked up and watched (same rule, sessions/limits.ts). */
export const roomNameInput = z.string().superRefine((name, ctx) => {
  const problem = roomNameProblem(name);
  if (problem) ctx.addIssue({ code: 'custom', message: `roomName ${problem}` });
});

/** A room name a person types into createSession: the stored-name rule, and no control characters either. */
export const newRoomNameInput = roomNameInput.superRefine((name, ctx) => {
  if (CONTROL_CHARS.test(name)) ctx.addIssue({ code: 'custom', message: 'roomName must not contain control characters' });
});

export const titleInput = z
  .string()
  .nullish()
  .superRefine((title, ctx) => {
    if (title == null) return;
    if (title.length > MAX_TITLE) ctx.addIssue({ code: 'custom', message: `title must be at most ${MAX_TITLE} characters` });
    else if (CONTROL_CHARS.test(title.replace(/[\t\n]/g, ''))) ctx.addIssue({ code: 'custom', message: 'title must not contain control characters' });
  });

/** A Session global id (what `Session.id` returns) or the raw uuid, as the lower-case uuid. */
export function sessionUuid(id: string | number): string | null {
  const value = String(id);
  if (UUID.test(value)) return value.toLowerCase();
  try {
    const decoded = decodeGlobalID(value);
    return decoded.typename === 'Session' && UUID.test(decoded.id) ? decoded.id.toLowerCase() : null;
  } catch {
    return null;
  }
}

export const sessionIdInput = z.union([z.string(), z.number()]).transform((id, ctx) => {
  const uuid = sessionUuid(id);
  if (uuid === null) {
    ctx.addIssue({ code: 'custom', message: `Malformed session id: ${JSON.stringify(String(id).slice(0, 64))}` });
    return z.NEVER;
  }
  return uuid;
});
