/**
 * Issue 10 "Done when" (two processes): two service processes share Postgres and Redis. A sessionUpdated subscriber
 * on B sees participants joining through A: snapshot first, versions strictly increasing, the last update the latest
 * state; a sessionStatusChanged subscriber of the same session is not woken by the participant churn. The delay from
 * A's 200 to B's update is measured and printed (asserted only loosely: timing belongs in tools/bench).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableBackends, dropSchema, uniqueName } from '../tools/kit/backends.js';
import { sseClient, wsClient } from '../tools/kit/clients.js';
import { adminToken, createSession } from '../tools/kit/graphql.js';
import { buildEvent, encodeEvent, newRoomInstance, postWebhook, signBody } from '../tools/kit/livekit-emulator.js';
import { startServiceProcess, type ServiceProcess } from '../tools/kit/service-process.js';
import { Watch } from './support/watch.js';

const backends = await availableBackends();

describe.skipIf(!(backends.postgres && backends.redis))('live state across two service processes', () => {
  const schema = uniqueName('live2');
  const prefix = `${schema}:`;
  let a: ServiceProcess | undefined;
  let b: ServiceProcess | undefined;
  const disposers: Array<() => unknown> = [];

  beforeAll(async () => {
    a = await startServiceProcess({ schema, prefix });
    b = await startServiceProcess({ schema, prefix });
  }, 90_000);
  afterAll(async () => {
    for (const d of disposers) await d();
    const codes = await Promise.all([a?.stop(), b?.stop()]);
    await dropSchema(schema).catch(() => {});
    expect(codes).toEqual([0, 0]);
  }, 60_000);

  it('a join through A reaches a sessionUpdated subscriber on B; the status subscriber is not woken', async () => {
    const token = await adminToken();
    const roomName = `live2-${Math.random().toString(36).slice(2, 10)}`;
    await createSession(a!.url, roomName, token);
    const room = newRoomInstance(roomName);
    const post = async (type: string, opts: Parameters<typeof buildEvent>[2] = {}) => {
      const body = encodeEvent(buildEvent(type, room, opts));
      const authorization = await signBody(body);
      const sent = performance.now();
      const res = await postWebhook(a!.url, body, authorization);
      expect(res.status, res.text).toBe(200);
      return { sent, answered: performance.now() };
    };
    await post('room_started');

    const sse = sseClient(b!.url, token);
    const ws = wsClient(b!.url, token);
    disposers.push(
      () => sse.dispose(),
      () => ws.dispose(),
    );
    const updated = new Watch(
      sse,
      'subscription($r: String) { sessionUpdated(roomName: $r) { version eventType session { participantCount participants { identity } } } }',
      {
        r: roomName,
      },
    );
    const status = new Watch(ws, 'subscription($r: String) { sessionStatusChanged(roomName: $r) { version eventType status } }', { r: roomName });
    disposers.push(
      () => updated.dispose(),
      () => status.dispose(),
    );
    await updated.until((w) => w.received.length === 1, 10_000, 'snapshot');
    await status.until((w) => w.received.length === 1, 10_000, 'status snapshot');
    expect(updated.values('sessionUpdated')[0]).toEqual({ version: 2, eventType: 'snapshot', session: { participantCount: 0, participants: [] } });

    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { answered } = await post('participant_joined', { participant: { sid: `PA_two${i}`, identity: `p${i}` } });
      await updated.until((w) => w.values('sessionUpdated').at(-1)?.session.participantCount === i + 1, 10_000, `join ${i}`);
      latencies.push(+(updated.received.at(-1)!.at - answered).toFixed(1));
    }
    // Churn faster than one-at-a-time: leaves and joins back to back, without waiting.
    await Promise.all([0, 1, 2].map((i) => post('participant_left', { participant: { sid: `PA_two${i}`, identity: `p${i}` } })));
    await post('participant_joined', { participant: { sid: 'PA_late', identity: 'late' } });
    await updated.until((w) => w.values('sessionUpdated').at(-1)?.version === 11, 10_000, 'the latest version');

    const seen = updated.values('sessionUpdated');
    expect(seen[0].eventType, 'snapshot first').toBe('snapshot');
    const versions = seen.map((u) => u.version);
    expect(versions, 'strictly increasing').toEqual([...new Set(versions)].sort((x, y) => x - y));
    // (Participants are ordered by join time, then sid: these joined within the same second.)
    expect(seen.at(-1).session.participantCount, 'ends on the latest state').toBe(3);
    expect(
      seen
        .at(-1)
        .session.participants.map((p: { identity: string }) => p.identity)
        .sort(),
    ).toEqual(['late', 'p3', 'p4']);
    // Nothing but the snapshot reached the status subscriber.
    await new Promise((r) => setTimeout(r, 500));
    expect(status.values('sessionStatusChanged')).toEqual([{ version: 2, eventType: 'snapshot', status: 'LIVE' }]);
    await post('room_finished');
    await status.until((w) => w.received.length === 2, 10_000, 'room_finished on the status stream');
    expect(status.values('sessionStatusChanged')[1]).toEqual({ version: 12, eventType: 'room_finished', status: 'STOPPED' });

    console.info(`join through A -> sessionUpdated on B, ms after A's 200: ${JSON.stringify(latencies)}`);
    for (const ms of latencies) expect(ms).toBeLessThan(10_000);
  });
});
