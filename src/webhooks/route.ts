import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Db } from '../db/connect.js';
import { isDatabaseUnavailable } from '../db/connect.js';
import { BodyTimeoutError, BodyTooLargeError, declaredTooLarge, discardRest, readBody, RequestAbortedError } from '../http/body.js';
import { errorEnvelope, HttpError, newErrorId } from '../http/envelope.js';
import { sendJson } from '../http/respond.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { ChangePublisher } from '../realtime/outbox.js';
import { applyWebhookEvent } from '../sessions/ingest.js';
import type { FastPath } from '../sessions/fast-path.js';
import { successEnvelope } from './envelope.js';
import type { WebhookVerifier } from './verify.js';

/** Where LiveKit sends webhooks (the one spelling of it). */
export const WEBHOOK_PATH = '/api/v1/webhooks/livekit';
const ACCEPTED_TYPES = new Set(['application/webhook+json', 'application/json']);
const RETRY_AFTER_SECONDS = '5';

export type WebhookDeps = {
  db: Db;
  verify: WebhookVerifier;
  publisher: ChangePublisher;
  logger: Logger;
  metrics: Metrics;
  maxBodyBytes: number;
  /** The whole body must arrive within this (408 past it). */
  bodyTimeoutMs: number;
  autoCreate: boolean;
  /** This process's session row cache, group commit and room turns (a webhook then costs one statement). */
  fastPath: FastPath;
};

/** POST /api/v1/webhooks/livekit: verify the token, read and check the body, apply in one transaction, answer, then publish. */
export async function handleWebhook(req: IncomingMessage, res: ServerResponse, deps: WebhookDeps, log: Logger): Promise<void> {
  const started = performance.now();
  try {
    if (req.method !== 'POST') {
      throw new HttpError(405, 'E_METHOD_NOT_ALLOWED', `Method ${req.method} is not allowed; use POST`, { Allow: 'POST' });
    }
    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!ACCEPTED_TYPES.has(mediaType)) {
      throw new HttpError(415, 'E_UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/webhook+json or application/json');
    }
    // What the headers alone show is refused before the body is read: a declared size over the limit,
    // then the token (everything but the body hash), so junk is refused at once.
    if (declaredTooLarge(req, deps.maxBodyBytes)) throw new HttpError(413, 'E_PAYLOAD_TOO_LARGE', new BodyTooLargeError(deps.maxBodyBytes).message);
    const checkBody = await deps.verify(req.headers.authorization);
    const event = checkBody(await readWebhookBody(req, deps));
    const result = await applyWebhookEvent(deps.db, event, { autoCreate: deps.autoCreate, fastPath: deps.fastPath });
    if (result.committed) deps.publisher.publishCommitted(result.committed.change, result.committed.changeId);

    sendJson(res, 200, successEnvelope(result));
    deps.metrics.webhooks.inc({ outcome: result.action });
    log.info(
      {
        eventId: event.id,
        eventType: event.type,
        room: event.roomName,
        action: result.action,
        oldStatus: result.oldStatus,
        newStatus: result.newStatus,
        ms: elapsed(started),
      },
      'webhook processed',
    );
  } catch (err) {
    if (err instanceof RequestAbortedError) {
      // The sender is gone (LiveKit retries on its own): nothing to answer, nothing went wrong here.
      deps.metrics.webhooks.inc({ outcome: 'aborted' });
      log.info({ ms: elapsed(started) }, `webhook not read: ${err.message}`);
      return;
    }
    const error = toHttpError(err);
    const erresid = newErrorId();
    deps.metrics.webhooks.inc({ outcome: error.code });
    const fields = { erresid, errcode: error.code, status: error.status, ms: elapsed(started) };
    if (error.status >= 500) log.error({ ...fields, err }, 'webhook failed');
    else log.warn({ ...fields, errmesg: error.message }, 'webhook refused');
    // Refused before its body was read: drop the rest for a moment, then close (no reset over the answer).
    discardRest(req);
    if (!res.headersSent) sendJson(res, error.status, errorEnvelope(error.code, error.message, erresid), error.headers);
  } finally {
    deps.metrics.webhookSeconds.observe((performance.now() - started) / 1000);
  }
}

async function readWebhookBody(req: IncomingMessage, deps: WebhookDeps): Promise<Buffer> {
  try {
    return await readBody(req, deps.maxBodyBytes, { timeoutMs: deps.bodyTimeoutMs });
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw new HttpError(413, 'E_PAYLOAD_TOO_LARGE', err.message);
    if (err instanceof BodyTimeoutError) throw new HttpError(408, 'E_REQUEST_TIMEOUT', err.message);
    throw err;
  }
}

function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (isDatabaseUnavailable(err)) {
    return new HttpError(503, 'E_SERVICE_UNAVAILABLE', 'Database unavailable; retry later', { 'Retry-After': RETRY_AFTER_SECONDS });
  }
  return new HttpError(500, 'E_INTERNAL', 'Internal error');
}

const elapsed = (started: number) => Math.round((performance.now() - started) * 100) / 100;
