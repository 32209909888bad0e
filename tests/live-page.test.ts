/**
 * Issue 10, the live sessions page: served at GET / and /sessions without a build step, in a real browser (Debian's
 * chromium driven by playwright-core). A webhook sent while the page is open changes it without a reload; the
 * screenshot is kept under reports/screenshots/ (git-ignored). Also: the development token only in development on
 * loopback, a token asked for otherwise, DASHBOARD=off.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { ParticipantInfo_Kind, TrackSource, TrackType } from '@livekit/protocol';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, createSession } from '../tools/kit/graphql.js';
import { newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';
import { haveChromium, launchChromium } from './support/browser.js';

const SCREENSHOTS = 'reports/screenshots';
const unique = (label: string) => `${label}-${Math.random().toString(36).slice(2, 8)}`;

let t: TestApp;
let browser: Browser | undefined;

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});

describe('GET / and /sessions', () => {
  it('serves one HTML page with a strict CSP, asking for a token outside development', async () => {
    for (const path of ['/', '/sessions', '/sessions/abc']) {
      const res = await fetch(`${t.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('content-security-policy')).toMatch(/script-src 'nonce-[^']+'/);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const html = await res.text();
      expect(html).toContain('"token":null');
    }
    expect((await fetch(`${t.url}/`, { method: 'POST' })).status).toBe(405);
  });

  it('embeds the development admin token in development on loopback only; DASHBOARD=off answers 404', async () => {
    const dev = await startTestApp({ NODE_ENV: 'development' });
    const off = await startTestApp({ DASHBOARD: 'off' });
    try {
      const html = await (await fetch(`${dev.url}/`)).text();
      expect(html).toMatch(/"token":"eyJ[\w-]+\.[\w-]+\.[\w-]+"/);
      expect((await fetch(`${off.url}/`)).status).toBe(404);
      expect((await fetch(`${off.url}/sessions`)).status).toBe(404);
    } finally {
      await dev.stop();
      await off.stop();
    }
  });
});

describe.skipIf(!haveChromium)('the page in chromium', () => {
  it('lists sessions and follows a webhook live, without a reload; the filter and the timeline work', async () => {
    const token = await adminToken();
    const name = unique('page');
    await createSession(t.url, name, token, 'Town hall');
    const room = newRoomInstance(name);
    await sendEvent(t.url, 'room_started', room);

    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1100, height: 420 } });
    const consoleErrors: string[] = [];
    page.on('console', (m) => void (m.type() === 'error' && consoleErrors.push(m.text())));
    await page.goto(`${t.url}/`);
    // Outside development the page asks for a token (kept in the tab).
    await page.fill('#token', token);
    await page.click('#login button');
    const row = page.locator(`tr[data-room="${name}"]`);
    await row.waitFor({ timeout: 10_000 });
    await page.locator('#conn', { hasText: 'live' }).waitFor({ timeout: 10_000 });
    expect(await row.locator('[data-field=count]').textContent()).toBe('0');
    expect(await row.locator('.status').textContent()).toBe('LIVE');

    // A marker that a reload would wipe.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await sendEvent(t.url, 'participant_joined', room, { participant: { sid: 'PA_host', identity: 'host' } });
    await sendEvent(t.url, 'track_published', room, {
      participant: { sid: 'PA_host', identity: 'host' },
      track: { sid: 'TR_cam', type: TrackType.VIDEO, source: TrackSource.CAMERA },
    });
    await sendEvent(t.url, 'participant_joined', room, { participant: { sid: 'PA_guest', identity: 'guest' } });
    await sendEvent(t.url, 'participant_joined', room, { participant: { sid: 'PA_rec', identity: 'recorder', kind: ParticipantInfo_Kind.EGRESS } });
    await sendEvent(t.url, 'egress_started', room, { egress: { egressId: 'EG_page' } });
    await page.waitForFunction(
      (room) => {
        const tr = document.querySelector(`tr[data-room="${room}"]`);
        return tr?.querySelector('[data-field=count]')?.textContent === '2' && tr.querySelector('.rec') !== null;
      },
      name,
      { timeout: 10_000 },
    );
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    expect(await row.textContent()).toContain('host (camera)');

    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: `${SCREENSHOTS}/live-page.png` });
    if (process.env.UPDATE_DOCS_SCREENSHOT === '1') copyFileSync(`${SCREENSHOTS}/live-page.png`, 'docs/live-page.png');

    // The filter: STOPPED hides the LIVE session; a room_finished then brings it in, still without a reload.
    await page.selectOption('#status', 'STOPPED');
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    await sendEvent(t.url, 'room_finished', room);
    await page.locator(`tr[data-room="${name}"] .status`, { hasText: 'STOPPED' }).waitFor({ timeout: 10_000 });
    expect(page.url()).toContain('status=STOPPED');

    // The link to its timeline: the recorded events, newest first.
    await page.click(`tr[data-room="${name}"] a`);
    await page.locator('h2', { hasText: name }).waitFor({ timeout: 10_000 });
    const events = await page.locator('tbody tr td:nth-child(2)').allTextContents();
    expect(events).toEqual([
      'room_finished',
      'egress_started',
      'participant_joined',
      'participant_joined',
      'track_published',
      'participant_joined',
      'room_started',
    ]);
    expect(await page.evaluate(() => sessionStorage.getItem('lkss.token'))).toBe(token);
    expect(consoleErrors).toEqual([]);
  });
});
