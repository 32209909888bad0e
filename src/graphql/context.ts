import type { Db } from '../db/connect.js';
import type { Logger } from '../logger.js';
import type { ChangeBus } from '../realtime/bus.js';
import type { EndAll } from '../realtime/end-all.js';

/**
 * Who is asking, from a LiveKit access token's video grant:
 * roomJoin (or roomAdmin) + room R → that room's session; roomList → every session;
 * roomCreate → create any session; roomAdmin + room R → create R's session.
 */
export type Viewer =
  | { kind: 'anonymous' }
  | { kind: 'rejected'; reason: string }
  | { kind: 'open' }
  | { kind: 'token'; identity: string; room: string | null; join: boolean; list: boolean; create: boolean; admin: boolean; expiresAt: number | null };

/** What every resolver receives: built per operation by server.ts (HTTP, SSE) and ws.ts (WebSocket). */
export type GraphQLContext = {
  viewer: Viewer;
  db: Db;
  bus: ChangeBus;
  logger: Logger;
  /** Ended when the server stops: open subscriptions end. */
  shutdown: EndAll;
  /** Sessions this operation created: their creator may read them in the mutation's payload. */
  created: Set<string>;
};
