import { decodeGlobalID, resolveCursorConnection } from '@pothos/plugin-relay';
import type { SessionRow } from '../db/types.js';
import { createSession, findById, findByRoomName, listSessions } from '../sessions/repo.js';
import { assertAuthenticated, assertCanCreate, assertCanList, assertCanReadRoom } from './auth.js';
import { builder } from './builder.js';
import { userError } from './errors.js';

export const SessionStatusEnum = builder.enumType('SessionStatus', {
  description: 'READY until its room starts, LIVE while the room runs, STOPPED once it finished.',
  values: ['READY', 'LIVE', 'STOPPED'] as const,
});

export const SessionRef = builder.objectRef<SessionRow>('Session');

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_ROOM_NAME = 128;
const MAX_TITLE = 256;
// C0/C1 controls, DEL, and line/paragraph separators.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** Accepts a Session global id (what `Session.id` returns) or the raw uuid. */
export function parseSessionId(id: string | number): string {
  const value = String(id);
  if (UUID.test(value)) return value.toLowerCase();
  let decoded: { typename: string; id: string } | undefined;
  try {
    decoded = decodeGlobalID(value);
  } catch {
    decoded = undefined;
  }
  if (!decoded || decoded.typename !== 'Session' || !UUID.test(decoded.id)) {
    throw userError('BAD_USER_INPUT', `Malformed session id: ${JSON.stringify(value.slice(0, 64))}`);
  }
  return decoded.id.toLowerCase();
}

export function validateRoomName(roomName: string): string {
  if (roomName.length === 0 || roomName.trim().length === 0) throw userError('BAD_USER_INPUT', 'roomName must not be empty');
  if (roomName.length > MAX_ROOM_NAME) throw userError('BAD_USER_INPUT', `roomName must be at most ${MAX_ROOM_NAME} characters`);
  if (CONTROL_CHARS.test(roomName)) throw userError('BAD_USER_INPUT', 'roomName must not contain control characters');
  return roomName;
}

function validateTitle(title: string | null | undefined): string | null {
  if (title == null) return null;
  if (title.length > MAX_TITLE) throw userError('BAD_USER_INPUT', `title must be at most ${MAX_TITLE} characters`);
  if (CONTROL_CHARS.test(title.replace(/[\t\n]/g, ''))) throw userError('BAD_USER_INPUT', 'title must not contain control characters');
  return title;
}

builder.node(SessionRef, {
  description: 'A session whose status follows its LiveKit room.',
  id: { resolve: (s) => s.id },
  isTypeOf: (value) => typeof value === 'object' && value !== null && 'room_name' in value,
  // Every way to reach a Session by id (node, and below) passes through this check.
  loadOne: async (id, ctx) => {
    assertAuthenticated(ctx.viewer);
    if (!UUID.test(id)) return null;
    const session = await findById(ctx.db, id);
    if (session) assertCanReadRoom(ctx.viewer, session.room_name);
    return session ?? null;
  },
  fields: (t) => ({
    roomName: t.exposeString('room_name'),
    title: t.exposeString('title', { nullable: true }),
    status: t.field({ type: SessionStatusEnum, resolve: (s) => s.status }),
    version: t.exposeInt('version', { description: '+1 on every status change' }),
    roomSid: t.exposeString('room_sid', { nullable: true, description: 'The LiveKit room instance (sid) the status belongs to' }),
    startedAt: t.expose('started_at', { type: 'DateTime', nullable: true }),
    stoppedAt: t.expose('stopped_at', { type: 'DateTime', nullable: true }),
    createdAt: t.expose('created_at', { type: 'DateTime' }),
    updatedAt: t.expose('updated_at', { type: 'DateTime' }),
  }),
});

builder.queryField('session', (t) =>
  t.field({
    type: SessionRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      assertAuthenticated(ctx.viewer);
      const session = await findById(ctx.db, parseSessionId(args.id));
      if (session) assertCanReadRoom(ctx.viewer, session.room_name);
      return session ?? null;
    },
  }),
);

builder.queryField('sessionByRoom', (t) =>
  t.field({
    type: SessionRef,
    nullable: true,
    args: { roomName: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const roomName = validateRoomName(args.roomName);
      assertCanReadRoom(ctx.viewer, roomName);
      return (await findByRoomName(ctx.db, roomName)) ?? null;
    },
  }),
);

const PAGE_MAX = 100;
const encodeCursor = (seq: number) => Buffer.from(`seq:${seq}`).toString('base64url');
function decodeCursor(cursor: string): number {
  const match = /^seq:(\d{1,10})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw userError('BAD_USER_INPUT', 'Malformed cursor');
  return Number(match[1]);
}

builder.queryField('sessions', (t) =>
  t.connection(
    {
      type: SessionRef,
      description: 'Sessions, newest first.',
      args: { status: t.arg({ type: SessionStatusEnum, required: false }) },
      resolve: async (_root, args, ctx) => {
        assertCanList(ctx.viewer);
        for (const [name, value] of [
          ['first', args.first],
          ['last', args.last],
        ] as const) {
          if (value != null && (value < 1 || value > PAGE_MAX)) throw userError('BAD_USER_INPUT', `${name} must be between 1 and ${PAGE_MAX}`);
        }
        return resolveCursorConnection<Promise<SessionRow[]>>(
          { args, toCursor: (s: SessionRow) => encodeCursor(s.seq), defaultSize: 20, maxSize: PAGE_MAX },
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
    { name: 'SessionConnection' },
    { name: 'SessionEdge' },
  ),
);

builder.relayMutationField(
  'createSession',
  {
    inputFields: (t) => ({
      roomName: t.string({ required: true, description: 'The LiveKit room name this session follows (unique)' }),
      title: t.string({ required: false }),
    }),
  },
  {
    description: 'Creates a READY session for a room.',
    resolve: async (_root, { input }, ctx) => {
      const roomName = validateRoomName(input.roomName);
      assertCanCreate(ctx.viewer, roomName);
      const session = await createSession(ctx.db, { roomName, title: validateTitle(input.title) });
      if (!session) throw userError('ALREADY_EXISTS', `A session for room ${JSON.stringify(roomName)} already exists`);
      ctx.logger.info({ sessionId: session.id, roomName }, 'session created');
      return { session };
    },
  },
  {
    outputFields: (t) => ({
      session: t.field({ type: SessionRef, resolve: (payload) => payload.session }),
    }),
  },
);
