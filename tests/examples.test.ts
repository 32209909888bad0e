/**
 * The examples a frontend developer copies (issue 9, point 13) work against the real service: the Node
 * script and the browser page each subscribe with graphql-sse and graphql-ws and see READY → LIVE → STOPPED.
 * The page runs in a real Chromium (Debian's, through playwright-core) from another origin than the service.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newRoomInstance, sendEvent } from '../tools/kit/livekit-emulator.js';
import { startTestApp, type TestApp } from './support/app.js';
import { adminToken, createSession, mintToken } from '../tools/kit/graphql.js';
import { ROOT, startNodeScript, waitForOutput } from './support/node-script.js';
import { CHROMIUM, haveChromium, launchChromium } from './support/browser.js';

const required = process.env.REQUIRE_SERVICES === '1';

let server: TestApp;
beforeAll(async () => {
  server = await startTestApp();
});
afterAll(async () => {
  await server?.stop();
});

/** A session for a fresh room, and a token that may watch only that room (what a frontend gets). */
async function watchableRoom(label: string) {
  const room = `${label}-${Math.random().toString(36).slice(2, 10)}`;
  await createSession(server.url, room, await adminToken());
  return { room, token: await mintToken({ roomJoin: true, room }, { identity: 'viewer' }) };
}

describe('examples/node/watch-session.ts', { timeout: 120_000 }, () => {
  it('prints the snapshot and every change over SSE and WebSocket, and exits 0 once the session stops', async () => {
    const { room, token } = await watchableRoom('example-node');
    const run = startNodeScript('examples/node/watch-session.ts', [], { env: { SERVICE_URL: server.url, ROOM: room, TOKEN: token } });
    try {
      const lines = (transport: string) =>
        run
          .output()
          .stdout.split('\n')
          .filter((l) => l.startsWith(`[${transport}] `))
          .map((l) => l.split(' ').slice(1, 4).join(' '));
      const both = (n: number) => () => lines('sse').length >= n && lines('ws').length >= n;
      await waitForOutput(run, both(1), 60_000);
      const instance = newRoomInstance(room);
      expect((await sendEvent(server.url, 'room_started', instance)).status).toBe(200);
      await waitForOutput(run, both(2));
      expect((await sendEvent(server.url, 'room_finished', instance)).status).toBe(200);
      expect(await run.exited).toBe(0);
      const expected = ['READY v1 snapshot', 'LIVE v2 room_started', 'STOPPED v3 room_finished'];
      expect(lines('sse')).toEqual(expected);
      expect(lines('ws')).toEqual(expected);
      expect(run.output().stderr).toBe('');
    } finally {
      run.child.kill();
    }
  });

  it('a token for another room is refused with the service’s error code, exit 1', async () => {
    const { room } = await watchableRoom('example-node-denied');
    const other = await mintToken({ roomJoin: true, room: 'some-other-room' });
    const run = startNodeScript('examples/node/watch-session.ts', [], { env: { SERVICE_URL: server.url, ROOM: room, TOKEN: other } });
    expect(await run.exited).toBe(1);
    expect(run.output().stderr).toMatch(/FORBIDDEN/);
  });
});

describe('examples/browser/index.html', { timeout: 120_000 }, () => {
  it.skipIf(!haveChromium && !required)('in Chromium, from another origin, the page lists READY, LIVE and STOPPED from both clients', async () => {
    if (!haveChromium) throw new Error(`Chromium is required (REQUIRE_SERVICES=1) but ${CHROMIUM} does not exist: apt-get install chromium`);
    const { room, token } = await watchableRoom('example-browser');

    // The page's own origin: a static server on another port than the service, so CORS is exercised.
    const pages: Server = createServer((req, res) => {
      if (req.url?.startsWith('/index.html')) res.writeHead(200, { 'Content-Type': 'text/html' }).end(readFileSync(join(ROOT, 'examples/browser/index.html')));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
    const pageOrigin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;

    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const page = await browser.newPage();
      // The page loads the clients from unpkg; here they come from node_modules, and only at the installed versions.
      await page.route('https://unpkg.com/**', async (route) => {
        const match = /^https:\/\/unpkg\.com\/(graphql-sse|graphql-ws)@([^/]+)\/(umd\/[\w.-]+\.js)$/.exec(route.request().url());
        const installed = match && (JSON.parse(readFileSync(join(ROOT, 'node_modules', match[1]!, 'package.json'), 'utf8')) as { version: string }).version;
        if (!match || installed !== match[2]) return route.fulfill({ status: 404, body: `not the installed version (${installed ?? 'unknown'})` });
        return route.fulfill({
          status: 200,
          contentType: 'application/javascript',
          body: readFileSync(join(ROOT, 'node_modules', match[1]!, match[3]!), 'utf8'),
        });
      });
      const pageErrors: string[] = [];
      page.on('pageerror', (err) => pageErrors.push(err.message));

      const query = new URLSearchParams({ server: server.url, room, token });
      await page.goto(`${pageOrigin}/index.html?${query}`);
      await page.click('button');
      const rows = (transport: string) => page.locator(`#events tr[data-transport="${transport}"]`);
      const rowTexts = async (transport: string) => (await rows(transport).allInnerTexts()).map((t) => t.split(/\s+/).slice(1).join(' '));

      await expect.poll(async () => [await rows('sse').count(), await rows('ws').count()], { timeout: 30_000 }).toEqual([1, 1]);
      const instance = newRoomInstance(room);
      expect((await sendEvent(server.url, 'room_started', instance)).status).toBe(200);
      await expect.poll(async () => [await rows('sse').count(), await rows('ws').count()], { timeout: 30_000 }).toEqual([2, 2]);
      expect((await sendEvent(server.url, 'room_finished', instance)).status).toBe(200);
      await expect.poll(async () => [await rows('sse').count(), await rows('ws').count()], { timeout: 30_000 }).toEqual([3, 3]);

      const expected = ['READY 1 snapshot', 'LIVE 2 room_started', 'STOPPED 3 room_finished'];
      expect(await rowTexts('sse')).toEqual(expected);
      expect(await rowTexts('ws')).toEqual(expected);
      expect(await page.locator('#state').innerText()).toBe(`watching room ${room} on ${server.url}/graphql`);
      expect(pageErrors).toEqual([]);
    } finally {
      await browser?.close();
      await new Promise((r) => pages.close(r));
    }
  });
});
