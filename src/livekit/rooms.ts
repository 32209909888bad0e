import { ParticipantInfo_Kind } from '@livekit/protocol';
import { RoomServiceClient } from 'livekit-server-sdk';
import type { ListedRoom, ListParticipants } from '../sessions/reconcile.js';

/** Lists LiveKit's current rooms through its RoomService (Twirp) API. */
export function createRoomLister(url: string, apiKey: string, apiSecret: string): () => Promise<ListedRoom[]> {
  const client = new RoomServiceClient(url, apiKey, apiSecret, { requestTimeout: 10 });
  return async () => {
    const rooms = await client.listRooms();
    return rooms.map((room) => ({
      name: room.name,
      sid: room.sid,
      createdMs: Number(room.creationTimeMs) || Number(room.creationTime) * 1000,
      numParticipants: room.numParticipants,
    }));
  };
}

/** Lists one room's participants through RoomService ListParticipants (what reconciliation repairs the count from). */
export function createParticipantLister(url: string, apiKey: string, apiSecret: string): ListParticipants {
  const client = new RoomServiceClient(url, apiKey, apiSecret, { requestTimeout: 10 });
  return async (roomName) => {
    const participants = await client.listParticipants(roomName);
    return participants.map((p) => ({
      sid: p.sid,
      identity: p.identity,
      name: p.name,
      kind: ParticipantInfo_Kind[p.kind] ?? String(p.kind),
      joinedAtMs: Number(p.joinedAtMs) || Number(p.joinedAt) * 1000,
    }));
  };
}
