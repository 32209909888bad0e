import { createHash, timingSafeEqual } from 'node:crypto';
import { WebhookEvent } from '@livekit/protocol';
import { createLiveKitTokenVerifier, TokenRejected, type VerifiedClaims } from '../livekit/jwt.js';
import type { IncomingEvent } from '../sessions/ingest.js';
import { idProblem, timeProblem } from '../sessions/event-limits.js';
import { roomNameProblem } from '../sessions/limits.js';
import { bearerToken } from '../http/authorization.js';
import { HttpError } from '../http/envelope.js';

/** LiveKit signs webhooks with 5-minute tokens; anything much longer-lived is not LiveKit's. */
const MAX_TOKEN_LIFETIME_SECONDS = 600;

const invalid = (cause: string) => new HttpError(401, 'E_WEBHOOK_INVALID_SIGNATURE', `Webhook verification failed: ${cause}`);

/** Checks a body against the verified token it came with, and reads the event from it. */
export type WebhookBodyCheck = (rawBody: Buffer) => IncomingEvent;

/**
 * Verifies a webhook's Authorization before its body is read (signature, issuer, algorithm, times, a
 * `sha256` claim), so junk is refused at once; resolves to the check of the body against that claim.
 */
export type WebhookVerifier = (authorization: string | undefined) => Promise<WebhookBodyCheck>;

/**
 * Verifies a LiveKit webhook as `WebhookReceiver.receive()` does (token, then the body's SHA-256
 * against its `sha256` claim), plus: HS256 only, the secret chosen by `iss` among the configured
 * keys (rotation), a LiveKit-like token lifetime, and a constant-time hash comparison over the
 * exact body bytes.
 */
export function createWebhookVerifier(keys: ReadonlyMap<string, string>, clockToleranceSeconds: number): WebhookVerifier {
  const verifyToken = createLiveKitTokenVerifier(keys, clockToleranceSeconds);

  return async (authorization) => {
    const token = bearerToken(authorization);
    if (token === null) throw new HttpError(401, 'E_WEBHOOK_MISSING_AUTH', 'Missing Authorization header');

    let claims: VerifiedClaims;
    try {
      claims = await verifyToken(token, { maxLifetimeSeconds: MAX_TOKEN_LIFETIME_SECONDS });
    } catch (err) {
      if (err instanceof TokenRejected) throw invalid(err.reason);
      throw err;
    }
    if (typeof claims.sha256 !== 'string' || claims.sha256 === '') throw invalid('token has no sha256 claim');
    const expected = Buffer.from(claims.sha256, 'base64');

    return (rawBody) => {
      const actual = createHash('sha256').update(rawBody).digest();
      if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) throw invalid('hash mismatch');
      return parseEvent(rawBody, actual);
    };
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The verified body must be a LiveKit WebhookEvent in protobuf JSON. */
function parseEvent(rawBody: Buffer, bodyHash: Buffer): IncomingEvent {
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(rawBody));
  } catch {
    throw new HttpError(400, 'E_WEBHOOK_INVALID_JSON', 'Webhook body is not valid UTF-8 JSON');
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new HttpError(400, 'E_WEBHOOK_INVALID_JSON', 'Webhook body is not a JSON object');
  }
  let event: WebhookEvent;
  try {
    event = WebhookEvent.fromJson(json as never, { ignoreUnknownFields: true });
  } catch (err) {
    const detail = err instanceof Error ? err.message.slice(0, 200) : 'invalid';
    throw new HttpError(400, 'E_WEBHOOK_INVALID_JSON', `Webhook body is not a LiveKit event: ${detail}`);
  }
  if (!event.event) throw new HttpError(400, 'E_WEBHOOK_MISSING_EVENT_TYPE', 'Webhook event has no "event" type');

  const createdAtMs = Number(event.createdAt) * 1000;
  const room = event.room;
  const roomCreatedMs = Number(room?.creationTimeMs) || Number(room?.creationTime) * 1000;
  // Everything stored must fit its column: a signed event that cannot be stored is refused (400, final), not retried as a 500.
  const problems = [
    field('id', event.id, idProblem),
    field('event', event.event, idProblem),
    field('createdAt', createdAtMs, timeProblem),
    room?.name ? field('room.name', room.name, roomNameProblem) : null,
    room?.name ? field('room.sid', room.sid, idProblem) : null,
    room?.name ? field('room.creationTime', roomCreatedMs, timeProblem) : null,
  ].filter((p) => p !== null);
  if (problems.length > 0) throw new HttpError(400, 'E_WEBHOOK_INVALID_PAYLOAD', `Webhook event cannot be stored: ${problems.join('; ')}`);

  return {
    // LiveKit always sends an id; without one, retries of the same body still dedupe by its hash.
    id: event.id || `sha256:${bodyHash.toString('hex')}`,
    type: event.event,
    roomName: room?.name || null,
    room: room?.name ? { sid: room.sid, createdMs: roomCreatedMs || createdAtMs || 0 } : null,
    createdAt: createdAtMs > 0 ? new Date(createdAtMs) : null,
  };
}

function field<T>(name: string, value: T, problem: (v: T) => string | null): string | null {
  const p = problem(value);
  return p === null ? null : `${name} ${p}`;
}
