import type { LiveKitTokenVerifier } from '../livekit/jwt.js';
import { TokenRejected } from '../livekit/jwt.js';
import { userError } from './errors.js';

/**
 * Who is asking, from a LiveKit access token's video grant:
 * roomJoin (or roomAdmin) + room R → that room's session; roomList → every session;
 * roomCreate → create any session; roomAdmin + room R → create R's session.
 */
export type Viewer =
  | { kind: 'anonymous' }
  | { kind: 'rejected'; reason: string }
  | { kind: 'open' }
  | { kind: 'token'; identity: string; room: string | null; join: boolean; list: boolean; create: boolean; admin: boolean };

export async function viewerFromAuthorization(value: unknown, verify: LiveKitTokenVerifier | null): Promise<Viewer> {
  if (verify === null) return { kind: 'open' };
  if (typeof value !== 'string' || value.trim() === '') return { kind: 'anonymous' };
  const token = value.trim().replace(/^Bearer\s+/i, '');
  try {
    const claims = await verify(token);
    const video = claims.video ?? {};
    return {
      kind: 'token',
      identity: claims.sub ?? '',
      room: video.room || null,
      join: video.roomJoin === true,
      list: video.roomList === true,
      create: video.roomCreate === true,
      admin: video.roomAdmin === true,
    };
  } catch (err) {
    if (err instanceof TokenRejected) return { kind: 'rejected', reason: err.reason };
    throw err;
  }
}

function denied(viewer: Viewer, what: string): never {
  if (viewer.kind === 'anonymous')
    throw userError('UNAUTHENTICATED', 'Authentication required: send a LiveKit access token as "Authorization: Bearer <token>"');
  if (viewer.kind === 'rejected') throw userError('UNAUTHENTICATED', `Invalid access token: ${viewer.reason}`);
  throw userError('FORBIDDEN', `This token's grant does not allow ${what}`);
}

export function canReadRoom(viewer: Viewer, roomName: string): boolean {
  if (viewer.kind === 'open') return true;
  if (viewer.kind !== 'token') return false;
  return viewer.list || ((viewer.join || viewer.admin) && viewer.room === roomName);
}

export function assertCanReadRoom(viewer: Viewer, roomName: string): void {
  if (!canReadRoom(viewer, roomName)) denied(viewer, 'reading this session');
}

export function assertCanList(viewer: Viewer): void {
  if (viewer.kind === 'open' || (viewer.kind === 'token' && viewer.list)) return;
  denied(viewer, 'listing or watching every session (roomList is needed)');
}

export function assertCanCreate(viewer: Viewer, roomName: string): void {
  if (viewer.kind === 'open') return;
  if (viewer.kind === 'token' && (viewer.create || (viewer.admin && viewer.room === roomName))) return;
  denied(viewer, 'creating sessions (roomCreate or roomAdmin is needed)');
}

/** For requests that cannot name a room yet: refuses a missing or bad token early. */
export function assertAuthenticated(viewer: Viewer): void {
  if (viewer.kind === 'anonymous' || viewer.kind === 'rejected') denied(viewer, '');
}
