/**
 * The token in an Authorization value: LiveKit sends the bare JWT, clients send "Bearer <jwt>"; both are
 * accepted everywhere. Null when there is none.
 */
export function bearerToken(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const token = value.trim().replace(/^Bearer\s+/i, '');
  return token === '' ? null : token;
}
