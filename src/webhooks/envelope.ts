import { randomBytes } from 'node:crypto';
import type { IngestResult } from '../sessions/ingest.js';

export type WebhookErrorCode =
  | 'E_WEBHOOK_MISSING_AUTH'
  | 'E_WEBHOOK_INVALID_SIGNATURE'
  | 'E_WEBHOOK_INVALID_JSON'
  | 'E_WEBHOOK_MISSING_EVENT_TYPE'
  | 'E_WEBHOOK_INVALID_PAYLOAD'
  | 'E_PAYLOAD_TOO_LARGE'
  | 'E_UNSUPPORTED_MEDIA_TYPE'
  | 'E_METHOD_NOT_ALLOWED'
  | 'E_NOT_FOUND'
  | 'E_SERVICE_UNAVAILABLE'
  | 'E_INTERNAL';

/** An error answered with the seed's envelope. */
export class WebhookError extends Error {
  constructor(
    readonly status: number,
    readonly code: WebhookErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'WebhookError';
  }
}

/** Fresh per error; it also appears in that request's log line. */
export const newErrorId = (): string => randomBytes(5).toString('hex');

export function errorEnvelope(code: WebhookErrorCode, message: string, erresid: string) {
  return { success: false as const, errcode: code, erresid, errmesg: message };
}

export function successEnvelope(result: IngestResult) {
  return {
    success: true as const,
    results: {
      processed: result.processed,
      action: result.action,
      room_id: result.roomName,
      old_status: result.oldStatus?.toLowerCase() ?? null,
      new_status: result.newStatus?.toLowerCase() ?? null,
      event_type: result.eventType,
    },
  };
}
