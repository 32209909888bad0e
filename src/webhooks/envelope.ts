import type { IngestAction, IngestResult } from '../sessions/ingest.js';

/** `processed` in the answer: did the event do (or confirm) something, or was it ignored. */
const PROCESSED: Record<IngestAction, boolean> = {
  status_updated: true,
  event_logged: true,
  no_change: true,
  session_not_found: false,
  duplicate: false,
  stale_event: false,
};

/** A webhook's 200 answer (errors use the one error envelope in http/envelope.ts). */
export function successEnvelope(result: IngestResult) {
  return {
    success: true as const,
    results: {
      processed: PROCESSED[result.action],
      action: result.action,
      room_id: result.roomName,
      old_status: result.oldStatus?.toLowerCase() ?? null,
      new_status: result.newStatus?.toLowerCase() ?? null,
      event_type: result.eventType,
    },
  };
}
