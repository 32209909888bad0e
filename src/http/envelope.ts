import { randomBytes } from 'node:crypto';

/** Every error id this service answers with, on every route. */
export type ErrorCode =
  | 'E_WEBHOOK_MISSING_AUTH'
  | 'E_WEBHOOK_INVALID_SIGNATURE'
  | 'E_WEBHOOK_INVALID_JSON'
  | 'E_WEBHOOK_MISSING_EVENT_TYPE'
  | 'E_WEBHOOK_INVALID_PAYLOAD'
  | 'E_PAYLOAD_TOO_LARGE'
  | 'E_REQUEST_TIMEOUT'
  | 'E_UNSUPPORTED_MEDIA_TYPE'
  | 'E_METHOD_NOT_ALLOWED'
  | 'E_NOT_FOUND'
  | 'E_SERVICE_UNAVAILABLE'
  | 'E_INTERNAL';

/** An error answered with the error envelope (`success: false`, `errcode`, `erresid`, `errmesg`). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Fresh per error; it also appears in that request's log line. */
export const newErrorId = (): string => randomBytes(5).toString('hex');

export function errorEnvelope(code: ErrorCode, message: string, erresid: string) {
  return { success: false as const, errcode: code, erresid, errmesg: message };
}
