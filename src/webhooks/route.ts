import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Db } from '../db/connect.js';
import { isDatabaseUnavailable } from '../db/connect.js';
import { BodyTooLargeError, readBody } from '../http/body.js';
import { sendJson } from '../http/respond.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { ChangePublisher } from '../realtime/outbox.js';
import { applyWebhookEvent } from '../sessions/ingest.js';
import { errorEnvelope, newErrorId, successEnvelope, WebhookError } from './envelope.js';
import type { WebhookVerifier } from './verify.js';

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
  autoCreate: boolean;
};

/** POST /api/v1/webhooks/livekit: verify, apply in one transaction, answer, then publish. */
export async function handleWebhook(req: IncomingMessage, res: ServerResponse, deps: WebhookDeps, log: Logger): Promise<void> {
  const started = performance.now();
  try {
    if (req.method !== 'POST') {
      throw new WebhookError(405, 'E_METHOD_NOT_ALLOWED', `Method ${req.method} is not allowed; use POST`, { Allow: 'POST' });
    }
    const mediaType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!ACCEPTED_TYPES.has(mediaType)) {
      throw new WebhookError(415, 'E_UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/webhook+json or application/json');
    }
    if (!req.headers.authorization?.trim()) throw new WebhookError(401, 'E_WEBHOOK_MISSING_AUTH', 'Missing Authorization header');

    let body: Buffer;
    try {
      body = await readBody(req, deps.maxBodyBytes);
    } catch (err) {
      // No "Connection: close": readBody drops the rest of the body for a moment first (see discardRest).
      if (err instanceof BodyTooLargeError) throw new WebhookError(413, 'E_PAYLOAD_TOO_LARGE', err.message);
      throw err;
    }
    const event = await deps.verify(body, req.headers.authorization);
    const result = await applyWebhookEvent(deps.db, event, { autoCreate: deps.autoCreate });
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
    const error = toWebhookError(err);
    const erresid = newErrorId();
    deps.metrics.webhooks.inc({ outcome: error.code });
    const fields = { erresid, errcode: error.code, status: error.status, ms: elapsed(started) };
    if (error.status >= 500) log.error({ ...fields, err }, 'webhook failed');
    else log.warn({ ...fields, errmesg: error.message }, 'webhook refused');
    if (!res.headersSent) sendJson(res, error.status, errorEnvelope(error.code, error.message, erresid), error.headers);
  } finally {
    deps.metrics.webhookSeconds.observe((performance.now() - started) / 1000);
  }
}

function toWebhookError(err: unknown): WebhookError {
  if (err instanceof WebhookError) return err;
  if (isDatabaseUnavailable(err)) {
    return new WebhookError(503, 'E_SERVICE_UNAVAILABLE', 'Database unavailable; retry later', { 'Retry-After': RETRY_AFTER_SECONDS });
  }
  return new WebhookError(500, 'E_INTERNAL', 'Internal error');
}

const elapsed = (started: number) => Math.round((performance.now() - started) * 100) / 100;
