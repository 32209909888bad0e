import { resolveCursorConnection } from '@pothos/plugin-relay';
import type { SessionRow } from '../db/types.js';
import { MAX_ROOM_NAME_LENGTH } from '../sessions/limits.js';
import { createSession, findById, findByRoomName, listSessions } from '../sessions/repo.js';
import { builder } from './builder.js';
import { userError } from './errors.js';
import { newRoomNameInput, roomNameInput, sessionIdInput, sessionUuid, titleInput } from './inputs.js';
import { assertPageSize, decodeCursor, encodeCursor, PAGE_DEFAULT, PAGE_MAX } from './pagination.js';

export const SessionStatusEnum = builder.enumType('SessionStatus', {
  description: 'READY until its room starts, LIVE while the room runs, STOPPED once it finished.',
  values: {
    READY: { description: 'Created; its room has not started (or a new session waits for it)' },
    LIVE: { description: 'Its LiveKit room is running' },
    STOPPED: { description: 'Its LiveKit room finished' },
  } as const,
});

export const SessionRef = builder.objectRef<SessionRow>('Session');

builder.node(SessionRef, {
  description:
    'A session whose status follows its LiveKit room. Readable with roomList, or roomJoin/roomAdmin for its room (checked wherever a Session is returned).',
  id: { resolve: (s) => s.id },
  isTypeOf: (value) => typeof value === 'object' && value !== null && 'room_name' in value,
  // Checked once per Session returned, on every path (node, session, sessionByRoom, sessions, payloads, subscriptions).
  runScopesOnType: true,
  // Whoever just created it (createSession's payload) may read it; otherwise the room's read grant.
  authScopes: (session, ctx) => ctx.created.has(session.id) || { readRoom: session.room_name },
  loadOne: async (id, ctx) => {
    const uuid = sessionUuid(id);
    return uuid === null ? null : ((await findById(ctx.db, uuid)) ?? null);
  },
  fields: (t) => ({
    roomName: t.exposeString('room_name', { description: 'The LiveKit room name this session follows (unique)' }),
    title: t.exposeString('title', { nullable: true, description: 'Free text given at creation (auto-created sessions have none)' }),
    status: t.field({ type: SessionStatusEnum, description: 'The current status', resolve: (s) => s.status }),
    version: t.exposeInt('version', {
      description: '+1 on every change clients can see: status, participants, tracks, egresses, ingresses',
    }),
    roomSid: t.exposeString('room_sid', { nullable: true, description: 'The LiveKit room instance (sid) the status belongs to' }),
    startedAt: t.expose('started_at', { type: 'DateTime', nullable: true, description: 'When its room last started' }),
    stoppedAt: t.expose('stopped_at', { type: 'DateTime', nullable: true, description: 'When its room last finished (null while READY or LIVE)' }),
    createdAt: t.expose('created_at', { type: 'DateTime', description: 'When the session was created' }),
    updatedAt: t.expose('updated_at', { type: 'DateTime', description: 'When the session last changed' }),
  }),
});

builder.queryField('session', (t) =>
  t.field({
    type: SessionRef,
    nullable: true,
    description: 'One session by id; null when there is none. Needs roomList, or roomJoin/roomAdmin for its room.',
    args: {
      id: t.arg.id({ required: true, description: 'A Session global id (what Session.id returns) or its raw uuid', validate: sessionIdInput }),
    },
    authScopes: { authenticated: true },
    resolve: async (_root, args, ctx) => (await findById(ctx.db, args.id)) ?? null,
  }),
);

builder.queryField('sessionByRoom', (t) =>
  t.field({
    type: SessionRef,
    nullable: true,
    description: 'The session of a LiveKit room; null when there is none. Needs roomList, or roomJoin/roomAdmin for that room.',
    args: {
      roomName: t.arg.string({
        required: true,
        description: `The LiveKit room name (1..${MAX_ROOM_NAME_LENGTH} characters, as stored from webhooks)`,
        validate: roomNameInput,
      }),
    },
    authScopes: (_root, args) => ({ readRoom: args.roomName }),
    resolve: async (_root, args, ctx) => (await findByRoomName(ctx.db, args.roomName)) ?? null,
  }),
);

builder.queryField('sessions', (t) =>
  t.connection(
    {
      type: SessionRef,
      description: `Sessions, newest first, in pages of 1..${PAGE_MAX} (default ${PAGE_DEFAULT}). Needs roomList.`,
      args: { status: t.arg({ type: SessionStatusEnum, required: false, description: 'Only sessions with this status' }) },
      authScopes: { list: true },
      resolve: async (_root, args, ctx) => {
        assertPageSize(args);
        return resolveCursorConnection<Promise<SessionRow[]>>(
          { args, toCursor: (s: SessionRow) => encodeCursor(s.seq), defaultSize: PAGE_DEFAULT, maxSize: PAGE_MAX },
          ({ before, after, limit, inverted }): Promise<SessionRow[]> =>
            listSessions(ctx.db, {
              status: args.status ?? null,
              olderThan: after ? decodeCursor(after) : null,
              newerThan: before ? decodeCursor(before) : null,
              limit,
              oldestFirst: inverted,
            }),
        );
      },
    },
    { name: 'SessionConnection', description: 'A page of sessions' },
    { name: 'SessionEdge', description: 'One session in a page, with its cursor' },
  ),
);

builder.relayMutationField(
  'createSession',
  {
    description: 'What createSession needs',
    inputFields: (t) => ({
      roomName: t.string({
        required: true,
        description: `The LiveKit room name this session follows (unique; 1..${MAX_ROOM_NAME_LENGTH} characters, no control characters)`,
        validate: newRoomNameInput,
      }),
      title: t.string({ required: false, description: 'Free text, at most 256 characters', validate: titleInput }),
    }),
  },
  {
    description: 'Creates a READY session for a room. Needs roomCreate, or roomAdmin for that room.',
    authScopes: (_root, args) => ({ createRoom: args.input.roomName }),
    resolve: async (_root, { input }, ctx) => {
      const session = await createSession(ctx.db, { roomName: input.roomName, title: input.title ?? null });
      if (!session) throw userError('ALREADY_EXISTS', `A session for room ${JSON.stringify(input.roomName)} already exists`);
      ctx.created.add(session.id);
      ctx.logger.info({ sessionId: session.id, roomName: input.roomName }, 'session created');
      return { session };
    },
  },
  {
    description: 'What createSession returns',
    outputFields: (t) => ({
      session: t.field({ type: SessionRef, description: 'The new session (READY)', resolve: (payload) => payload.session }),
    }),
  },
);
