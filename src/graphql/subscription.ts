import type { SessionChange } from '../sessions/change.js';
import { MAX_ROOM_NAME_LENGTH } from '../sessions/limits.js';
import { findSessionOfRoom } from '../sessions/batched-reads.js';
import { findById } from '../sessions/repo.js';
import type { SessionRow } from '../sessions/tables.js';
import { statusChangesOnly, watchAllSessions, watchSession } from '../realtime/session-stream.js';
import { builder } from './builder.js';
import type { GraphQLContext } from './context.js';
import { userError } from './errors.js';
import { roomNameInput, sessionIdInput } from './inputs.js';
import { SessionRef, SessionStatusEnum } from './session.js';

const SessionStatusChangeRef = builder.objectRef<SessionChange>('SessionStatusChange').implement({
  description: 'A session status as of one version.',
  fields: (t) => ({
    session: t.field({ type: SessionRef, description: 'The session as of this version', resolve: (c) => c.session }),
    status: t.field({ type: SessionStatusEnum, description: 'The status as of this version', resolve: (c) => c.session.status }),
    previousStatus: t.field({
      type: SessionStatusEnum,
      nullable: true,
      description: 'The status before this change (null on a snapshot)',
      resolve: (c) => c.previousStatus,
    }),
    version: t.int({ description: 'The session version this event brings it to', resolve: (c) => c.session.version }),
    eventType: t.string({
      description: '"snapshot" for the first event of a subscription, else what caused the change (room_started, room_finished, reconcile)',
      resolve: (c) => c.eventType,
    }),
    changedAt: t.field({ type: 'DateTime', description: 'When the change was recorded', resolve: (c) => c.changedAt }),
  }),
});

builder.subscriptionField('sessionStatusChanged', (t) =>
  t.field({
    type: SessionStatusChangeRef,
    description:
      'One session (by id or roomName): its current state first, then every status change in version order (a client more than 64 changes behind skips the oldest; versions may skip the numbers of participant, track, egress and ingress changes, see sessionUpdated). ' +
      'Needs roomList, or roomJoin/roomAdmin for its room. Neither argument: every session (needs roomList). Grants are checked when the subscription starts.',
    args: {
      id: t.arg.id({ description: 'A Session global id or its raw uuid', validate: sessionIdInput }),
      roomName: t.arg.string({ description: `A LiveKit room name (1..${MAX_ROOM_NAME_LENGTH} characters)`, validate: roomNameInput }),
    },
    // Checked once, when the subscription starts (authorizeOnSubscribe).
    authScopes: (_root, args) => oneSessionScopes(args, { list: true }),
    subscribe: async (_root, args, ctx) => {
      if (args.id == null && args.roomName == null) return watchAllSessions(ctx, [ctx.shutdown], undefined, statusChangesOnly);
      return watchSession(ctx, await findWatchedSession(ctx, args), [ctx.shutdown], statusChangesOnly);
    },
    resolve: (change) => change,
  }),
);

type OneSessionArgs = { id?: string | null; roomName?: string | null };

/** The grant a one-session subscription needs: its room's, its id's, or (neither given) `whenNeither`. */
export function oneSessionScopes(args: OneSessionArgs, whenNeither: { list: true } | { authenticated: true }) {
  if (args.roomName != null) return { readRoom: args.roomName };
  if (args.id != null) return { readSession: args.id };
  return whenNeither;
}

/**
 * The session a one-session subscription names (by roomName, or by id; both given must agree), or NOT_FOUND.
 * Only its identity counts (the stream reads the session's state itself once it is subscribed): by room it
 * may come from an earlier read.
 */
export async function findWatchedSession(ctx: GraphQLContext, args: OneSessionArgs): Promise<SessionRow> {
  // By room: remembered, or read together with other subscribers' lookups (tabs open many at once).
  const session = args.roomName != null ? await findSessionOfRoom(ctx.db, args.roomName) : args.id != null ? await findById(ctx.db, args.id) : undefined;
  if (session && args.roomName != null && args.id != null && session.id !== args.id)
    throw userError('BAD_USER_INPUT', 'id and roomName name different sessions');
  if (!session) throw userError('NOT_FOUND', 'No session for that ' + (args.roomName != null ? 'room' : 'id'));
  return session;
}
