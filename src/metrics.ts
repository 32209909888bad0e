import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Metrics = ReturnType<typeof createMetrics>;

/** Prometheus metrics, served at /metrics. One registry per app so tests can run several apps in a process. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    webhooks: new Counter({
      name: 'lkss_webhook_requests_total',
      help: 'LiveKit webhook requests by outcome (action or error code)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    webhookSeconds: new Histogram({
      name: 'lkss_webhook_duration_seconds',
      help: 'Time to verify, store and answer a webhook',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    webhookWriteBatch: new Histogram({
      name: 'lkss_webhook_write_batch_size',
      help: 'Webhook session writes per statement (group commit: more than one only while Postgres is behind)',
      buckets: [1, 2, 4, 8, 16, 32],
      registers: [registry],
    }),
    webhookWriteConflicts: new Counter({
      name: 'lkss_webhook_write_conflicts_total',
      help: 'Webhook session writes that found the row changed since it was read or cached (another replica wrote it, or events of one room came together) and were planned again',
      registers: [registry],
    }),
    published: new Counter({ name: 'lkss_changes_published_total', help: 'Session changes published to subscribers', registers: [registry] }),
    subscriptions: new Gauge({ name: 'lkss_subscriptions_active', help: 'Open GraphQL subscriptions', registers: [registry] }),
    reconcileRepairs: new Counter({ name: 'lkss_reconcile_repairs_total', help: 'Status repairs made by reconciliation', registers: [registry] }),
  };
}
