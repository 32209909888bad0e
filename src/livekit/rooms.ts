import { RoomServiceClient } from 'livekit-server-sdk';
import type { ListedRoom } from '../sessions/reconcile.js';

/** Lists LiveKit's current rooms through its RoomService (Twirp) API. */
export function createRoomLister(url: string, apiKey: string, apiSecret: string): () => Promise<ListedRoom[]> {
  const client = new RoomServiceClient(url, apiKey, apiSecret, { requestTimeout: 10 });
  return async () => {
    const rooms = await client.listRooms();
    return rooms.map((room) => ({
      name: room.name,
      sid: room.sid,
      createdMs: Number(room.creationTimeMs) || Number(room.creationTime) * 1000,
    }));
  };
}
