/**
 * A stand-in for LiveKit's RoomService Twirp API (LiveKit itself cannot run here), enough for
 * `RoomServiceClient.listRooms()`: `POST /twirp/livekit.RoomService/ListRooms` with a JSON
 * `ListRoomsRequest`, answered with a protobuf-JSON `ListRoomsResponse` (int64 as strings), and
 * `RoomServiceClient.listParticipants()` (`ListParticipants`) from `participants` by room name.
 * Authorization is checked as livekit-server does: `Bearer <jwt>`, HS256, the secret chosen by the
 * token's `iss` (API key), signature, `exp`/`nbf`, then the `video.roomList` grant; any failure is a
 * Twirp `unauthenticated` error (HTTP 401).
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  ListParticipantsRequest,
  ListParticipantsResponse,
  ListRoomsRequest,
  ListRoomsResponse,
  ParticipantInfo,
  ParticipantInfo_Kind,
} from '@livekit/protocol';
import { jwtVerify } from 'jose';
import { sleep } from './async.js';
import { DEV_CREDENTIALS, protoRoom, type Credentials, type ParticipantSpec, type RoomInstance } from './livekit-emulator.js';

export const LIST_ROOMS_PATH = '/twirp/livekit.RoomService/ListRooms';
export const LIST_PARTICIPANTS_PATH = '/twirp/livekit.RoomService/ListParticipants';

export type RoomServiceStandIn = {
  url: string;
  /** The rooms LiveKit currently has (replace at will). */
  rooms: RoomInstance[];
  /** Who is in each room (by name), as ListParticipants answers; `numParticipants` in ListRooms is its length. */
  participants: Record<string, ParticipantSpec[]>;
  /** Delay before answering ListRooms, to make overlapping calls visible. */
  delayMs: number;
  /** Authorized ListRooms calls answered so far. */
  calls(): number;
  /** Requests refused with 401, with the reason. */
  refusals(): string[];
  /** The most ListRooms calls ever in progress at once. */
  maxConcurrent(): number;
  close(): Promise<void>;
};

export async function startRoomServiceStandIn(opts: { creds?: Credentials; rooms?: RoomInstance[]; delayMs?: number } = {}): Promise<RoomServiceStandIn> {
  const secrets = new Map([[(opts.creds ?? DEV_CREDENTIALS).apiKey, (opts.creds ?? DEV_CREDENTIALS).apiSecret]]);
  let calls = 0;
  let inProgress = 0;
  let maxConcurrent = 0;
  const refusals: string[] = [];

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: Error) => twirpError(res, 500, 'internal', err.message));
  });

  const standIn: RoomServiceStandIn = {
    url: '',
    rooms: opts.rooms ?? [],
    participants: {},
    delayMs: opts.delayMs ?? 0,
    calls: () => calls,
    refusals: () => [...refusals],
    maxConcurrent: () => maxConcurrent,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readAll(req);
    if (req.method !== 'POST' || (req.url !== LIST_ROOMS_PATH && req.url !== LIST_PARTICIPANTS_PATH)) {
      return twirpError(res, 404, 'bad_route', `no handler for ${req.method} ${req.url}`);
    }
    // LiveKit's grants: ListRooms needs roomList; ListParticipants needs roomAdmin for that room.
    const participantsOf =
      req.url === LIST_PARTICIPANTS_PATH
        ? ListParticipantsRequest.fromJson(JSON.parse(body.length > 0 ? body : '{}'), { ignoreUnknownFields: true }).room
        : null;
    const refused = await authorizationProblem(req.headers.authorization, participantsOf);
    if (refused) {
      refusals.push(refused);
      return twirpError(res, 401, 'unauthenticated', refused);
    }
    if (participantsOf !== null) {
      const participants = (standIn.participants[participantsOf] ?? []).map(
        (p) =>
          new ParticipantInfo({
            sid: p.sid,
            identity: p.identity,
            name: p.name ?? p.identity,
            kind: p.kind ?? ParticipantInfo_Kind.STANDARD,
            joinedAtMs: BigInt(p.joinedAtMs ?? 0),
            joinedAt: BigInt(Math.floor((p.joinedAtMs ?? 0) / 1000)),
          }),
      );
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return void res.end(JSON.stringify(new ListParticipantsResponse({ participants }).toJson()));
    }
    const request = ListRoomsRequest.fromJson(JSON.parse(body.length > 0 ? body : '{}'), { ignoreUnknownFields: true });
    inProgress++;
    maxConcurrent = Math.max(maxConcurrent, inProgress);
    try {
      if (standIn.delayMs > 0) await sleep(standIn.delayMs);
      const wanted = request.names.length > 0 ? new Set(request.names) : null;
      const rooms = standIn.rooms.filter((r) => !wanted || wanted.has(r.name)).map((room) => protoRoom(room, standIn.participants[room.name]?.length ?? 0));
      calls++;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(new ListRoomsResponse({ rooms }).toJson()));
    } finally {
      inProgress--;
    }
  }

  async function authorizationProblem(header: string | undefined, adminOfRoom: string | null): Promise<string | null> {
    const token = /^Bearer\s+(.+)$/i.exec(header ?? '')?.[1];
    if (!token) return 'missing bearer token';
    const [encodedClaims] = token.split('.').slice(1, 2);
    let iss: unknown;
    try {
      iss = JSON.parse(Buffer.from(encodedClaims ?? '', 'base64url').toString('utf8')).iss;
    } catch {
      return 'malformed token';
    }
    const secret = typeof iss === 'string' ? secrets.get(iss) : undefined;
    if (!secret) return 'invalid API key';
    try {
      const { payload } = await jwtVerify(token, new TextEncoder().encode(secret), { algorithms: ['HS256'], issuer: iss as string, requiredClaims: ['exp'] });
      const video = (payload as { video?: { roomList?: boolean; roomAdmin?: boolean; room?: string } }).video;
      if (adminOfRoom !== null) return video?.roomAdmin === true && video.room === adminOfRoom ? null : 'permissions denied';
      return video?.roomList === true ? null : 'permissions denied';
    } catch (err) {
      return `invalid token: ${(err as Error).message}`;
    }
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  standIn.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return standIn;
}

function twirpError(res: ServerResponse, status: number, code: string, msg: string): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ code, msg }));
}

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
