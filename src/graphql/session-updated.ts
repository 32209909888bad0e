import { watchAllSessions, watchSession } from '../realtime/session-stream.js';
import type { SessionChange } from '../sessions/change.js';
import { MAX_ROOM_NAME_LENGTH } from '../sessions/limits.js';
import { builder } from './builder.js';
import { userError } from './errors.js';
import { roomNameInput, sessionIdInput } from './inputs.js';
import { SessionRef, SessionStatusEnum } from './session.js';
import { findWatchedSession, oneSessionScopes } from './subscription.js';

const SessionUpdateRef = builder.objectRef<SessionChange>('SessionUpdate').implement({
  description: "A session's full state as of one version: any change of status, participants, tracks, egresses or ingresses.",
  fields: (t) => ({
    session: t.field({ type: SessionRef, description: 'The whole session as of this version', resolve: (c) => c.session }),
    version: t.int({ description: 'Strictly increasing per session', resolve: (c) => c.session.version }),
    eventType: t.string({
      description:
        '"snapshot" for the first event of a subscription, else what caused it: a LiveKit event type (participant_joined, egress_updated, ...) or reconcile',
      resolve: (c) => c.eventType,
    }),
    changedAt: t.field({ type: 'DateTime', description: 'When the change was recorded', resolve: (c) => c.changedAt }),
  }),
});

builder.subscriptionField('sessionUpdated', (t) =>
  t.field({
    type: SessionUpdateRef,
    description:
      'One session (by id or roomName): its current state first, then each change of status, participants, tracks, egresses or ingresses, each with the full state. ' +
      'Versions strictly increase; a client more than 64 changes behind skips to the newest (never back), and the last update is always the latest state. ' +
      'Needs roomList, or roomJoin/roomAdmin for its room; checked when the subscription starts.',
    args: {
      id: t.arg.id({ description: 'A Session global id or its raw uuid', validate: sessionIdInput }),
      roomName: t.arg.string({ description: `A LiveKit room name (1..${MAX_ROOM_NAME_LENGTH} characters)`, validate: roomNameInput }),
    },
    authScopes: (_root, args) => oneSessionScopes(args, { authenticated: true }),
    subscribe: async (_root, args, ctx) => {
      if (args.id == null && args.roomName == null) throw userError('BAD_USER_INPUT', 'Give id or roomName (every session: sessionsUpdated)');
      return watchSession(ctx, await findWatchedSession(ctx, args), [ctx.shutdown]);
    },
    resolve: (change) => change,
  }),
);

builder.subscriptionField('sessionsUpdated', (t) =>
  t.field({
    type: SessionUpdateRef,
    description:
      "Every session's updates as they happen (no snapshot: read `sessions` first), newest version per session; for dashboards. " +
      'With status: only updates of sessions that have that status after the change. Needs roomList.',
    args: { status: t.arg({ type: SessionStatusEnum, required: false, description: 'Only sessions with this status (after the change)' }) },
    authScopes: { list: true },
    subscribe: (_root, args, ctx) =>
      watchAllSessions(ctx, [ctx.shutdown], undefined, args.status ? (change) => change.session.status === args.status : undefined),
    resolve: (change) => change,
  }),
);
