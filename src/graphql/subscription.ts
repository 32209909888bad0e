import type { SessionChange } from '../sessions/change.js';
import { findById, findByRoomName } from '../sessions/repo.js';
import { statusChangesOnly, watchAllSessions, watchSession } from '../realtime/session-stream.js';
import { assertAuthenticated, assertCanList, assertCanReadRoom } from './auth.js';
import { builder } from './builder.js';
import { userError } from './errors.js';
import { parseSessionId, SessionRef, SessionStatusEnum, validateRoomName } from './session.js';

const SessionStatusChangeRef = builder.objectRef<SessionChange>('SessionStatusChange').implement({
  description: 'A session status as of one version.',
  fields: (t) => ({
    session: t.field({ type: SessionRef, resolve: (c) => c.session }),
    status: t.field({ type: SessionStatusEnum, resolve: (c) => c.session.status }),
    previousStatus: t.field({ type: SessionStatusEnum, nullable: true, resolve: (c) => c.previousStatus }),
    version: t.int({ resolve: (c) => c.session.version }),
    eventType: t.string({
      description: '"snapshot" for the first event of a subscription, else what caused the change (room_started, room_finished, reconcile)',
      resolve: (c) => c.eventType,
    }),
    changedAt: t.field({ type: 'DateTime', resolve: (c) => c.changedAt }),
  }),
});

builder.subscriptionField('sessionStatusChanged', (t) =>
  t.field({
    type: SessionStatusChangeRef,
    description:
      'One session (by id or roomName): its current state first, then every status change in version order (a client more than 64 changes behind skips the oldest). Neither: every session. Versions increase but may skip the numbers of participant, track, egress and ingress changes (see sessionUpdated).',
    args: { id: t.arg.id(), roomName: t.arg.string() },
    // Permission is checked once, here, when the subscription starts.
    subscribe: async (_root, args, ctx) => {
      if (args.id == null && args.roomName == null) {
        assertCanList(ctx.viewer);
        return watchAllSessions(ctx, [ctx.signal, ctx.shutdown], statusChangesOnly);
      }
      assertAuthenticated(ctx.viewer);
      let session;
      if (args.roomName != null) {
        const roomName = validateRoomName(args.roomName);
        assertCanReadRoom(ctx.viewer, roomName);
        session = await findByRoomName(ctx.db, roomName);
        if (session && args.id != null && session.id !== parseSessionId(args.id)) {
          throw userError('BAD_USER_INPUT', 'id and roomName name different sessions');
        }
      } else {
        session = await findById(ctx.db, parseSessionId(args.id!));
        if (session) assertCanReadRoom(ctx.viewer, session.room_name);
      }
      if (!session) throw userError('NOT_FOUND', 'No session for that ' + (args.roomName != null ? 'room' : 'id'));
      return watchSession(ctx, session, [ctx.signal, ctx.shutdown], statusChangesOnly);
    },
    resolve: (change) => change,
  }),
);
