import { AuthScopeFailureType, type AuthFailure } from '@pothos/plugin-scope-auth';
import type { LiveKitTokenVerifier, VerifiedClaims } from '../livekit/jwt.js';
import { TokenRejected } from '../livekit/jwt.js';
import { bearerToken } from '../http/authorization.js';
import { findById } from '../sessions/repo.js';
import type { GraphQLContext, Viewer } from './context.js';
import { userError } from './errors.js';

/** The viewer of a request or WebSocket, from its Authorization value (bare JWT or "Bearer <jwt>"). */
export async function viewerFromAuthorization(value: unknown, verify: LiveKitTokenVerifier | null): Promise<Viewer> {
  if (verify === null) return { kind: 'open' };
  const token = bearerToken(value);
  if (token === null) return { kind: 'anonymous' };
  let claims: VerifiedClaims;
  try {
    claims = await verify(token);
  } catch (err) {
    if (err instanceof TokenRejected) return { kind: 'rejected', reason: err.reason };
    throw err;
  }
  const video = claims.video ?? {};
  return {
    kind: 'token',
    identity: claims.sub ?? '',
    room: video.room || null,
    join: video.roomJoin === true,
    list: video.roomList === true,
    create: video.roomCreate === true,
    admin: video.roomAdmin === true,
    expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : null,
  };
}

export function canReadRoom(viewer: Viewer, roomName: string): boolean {
  if (viewer.kind === 'open') return true;
  if (viewer.kind !== 'token') return false;
  return viewer.list || ((viewer.join || viewer.admin) && viewer.room === roomName);
}

const canList = (viewer: Viewer) => viewer.kind === 'open' || (viewer.kind === 'token' && viewer.list);
const canCreate = (viewer: Viewer, roomName: string) =>
  viewer.kind === 'open' || (viewer.kind === 'token' && (viewer.create || (viewer.admin && viewer.room === roomName)));
export const isAuthenticated = (viewer: Viewer) => viewer.kind === 'open' || viewer.kind === 'token';

/** The scopes fields declare (`authScopes`); each maps to a grant of the table above. */
export type AuthScopes = {
  /** Any valid token (what a field needs before it can say which session it is about). */
  authenticated: boolean;
  /** roomList. */
  list: boolean;
  /** roomList, or roomJoin/roomAdmin for that room. */
  readRoom: string;
  /** The same, for the room of the session with this uuid (a missing session passes: the field says NOT_FOUND). */
  readSession: string;
  /** roomCreate, or roomAdmin for that room. */
  createRoom: string;
};

export const authScopes = (ctx: GraphQLContext) => ({
  authenticated: isAuthenticated(ctx.viewer),
  list: canList(ctx.viewer),
  readRoom: (roomName: string) => canReadRoom(ctx.viewer, roomName),
  readSession: async (id: string) => {
    if (!isAuthenticated(ctx.viewer)) return false;
    const session = await findById(ctx.db, id);
    return !session || canReadRoom(ctx.viewer, session.room_name);
  },
  createRoom: (roomName: string) => canCreate(ctx.viewer, roomName),
});

const FORBIDDEN_WHAT: Record<keyof AuthScopes, string> = {
  authenticated: 'this',
  list: 'listing or watching every session (roomList is needed)',
  readRoom: 'reading this session',
  readSession: 'reading this session',
  createRoom: 'creating sessions (roomCreate or roomAdmin is needed)',
};

function firstScope(failure: AuthFailure): string | undefined {
  if (failure.kind === AuthScopeFailureType.AuthScope) return failure.scope;
  if (failure.kind === AuthScopeFailureType.AnyAuthScopes || failure.kind === AuthScopeFailureType.AllAuthScopes) {
    for (const child of failure.failures) {
      const scope = firstScope(child);
      if (scope) return scope;
    }
  }
  return undefined;
}

/** The one place a refused grant becomes an error: no or bad token → UNAUTHENTICATED, else FORBIDDEN naming the grant. */
export function unauthorizedError(viewer: Viewer, failure: AuthFailure): Error {
  if (viewer.kind === 'anonymous')
    return userError('UNAUTHENTICATED', 'Authentication required: send a LiveKit access token as "Authorization: Bearer <token>"');
  if (viewer.kind === 'rejected') return userError('UNAUTHENTICATED', `Invalid access token: ${viewer.reason}`);
  if ('error' in failure && failure.error) return failure.error;
  const scope = firstScope(failure) as keyof AuthScopes | undefined;
  return userError('FORBIDDEN', `This token's grant does not allow ${FORBIDDEN_WHAT[scope ?? 'authenticated']}`);
}
