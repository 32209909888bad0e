/** What a stored name or id may be: LiveKit's own limits (config `limit.max_room_name_length` etc. default 256), never NUL. */
export const MAX_ROOM_NAME_LENGTH = 256;
export const MAX_ID_LENGTH = 256;

/** Why a room name cannot be stored or looked up, or null when it can. One rule for the webhook path and GraphQL. */
export function roomNameProblem(name: string): string | null {
  if (name.trim().length === 0) return 'must not be empty';
  if (name.length > MAX_ROOM_NAME_LENGTH) return `must be at most ${MAX_ROOM_NAME_LENGTH} characters`;
  if (name.includes('\u0000')) return 'must not contain NUL';
  return null;
}
