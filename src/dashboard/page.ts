import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { devTokenAllowed, type GraphiQLDevToken } from '../graphql/graphiql.js';
import { GRAPHQL_PATH } from '../graphql/server.js';

/** The paths the live sessions page answers: the list, and one session's timeline. */
export const isLivePagePath = (path: string): boolean => path === '/' || path === '/sessions' || /^\/sessions\/[^/]+$/.test(path);

/**
 * GET / and /sessions: every session with its status, participant count, who publishes and a recording badge, kept
 * live by `sessionsUpdated` over SSE; /sessions/<id>: one session's timeline (its recorded events), live through
 * `sessionUpdated`. One HTML file, no build step. The development admin token is embedded only where GraphiQL would
 * send it (a loopback browser on the dev key); otherwise the page asks for a token and keeps it in the tab
 * (sessionStorage). Data is written with textContent, never as HTML.
 */
export function serveLivePage(req: IncomingMessage, res: ServerResponse, opts: { devToken?: GraphiQLDevToken; authOff: boolean }): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
    return void res.end('Method not allowed\n');
  }
  const nonce = randomBytes(16).toString('base64');
  const token = opts.devToken && devTokenAllowed(opts.devToken, req) ? opts.devToken.token : null;
  // "<" escaped so nothing in the JSON can close the script element.
  const boot = JSON.stringify({ graphql: GRAPHQL_PATH, token, authOff: opts.authOff }).replace(/</g, '\\u003c');
  const html = PAGE.replace('__NONCE__', nonce).replace('__NONCE__', nonce).replace('__BOOT__', boot);
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Security-Policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    // The page may carry the development token: never cached, never framed, never sent on as a referrer.
    'Cache-Control': 'no-store',
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
  });
  res.end(req.method === 'HEAD' ? undefined : html);
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Live sessions · livekit-session-state</title>
<link rel="icon" href="data:,">
<style nonce="__NONCE__">
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
  header { display: flex; gap: 16px; align-items: center; padding: 10px 20px; background: #1d2330; color: #fff; }
  header h1 { font-size: 16px; margin: 0; font-weight: 600; }
  header a { color: #9cc3ff; }
  #conn { margin-left: auto; font-size: 12px; }
  main { padding: 16px 20px; }
  table { border-collapse: collapse; width: 100%; background: #fff; box-shadow: 0 1px 2px #0001; }
  th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid #e6e8ec; vertical-align: top; }
  th { font-size: 12px; text-transform: uppercase; color: #5b6475; }
  .status { font-weight: 600; font-size: 12px; padding: 1px 6px; border-radius: 3px; }
  .LIVE { background: #dff5e3; color: #17692a; } .READY { background: #e8eefc; color: #2b4c9b; } .STOPPED { background: #eee; color: #555; }
  .rec { background: #d62828; color: #fff; font-size: 11px; font-weight: 700; padding: 1px 6px; border-radius: 3px; }
  .flash { animation: flash 1s ease-out; } @keyframes flash { from { background: #fff3b0; } to { background: transparent; } }
  form#login { background: #fff; padding: 16px; max-width: 640px; box-shadow: 0 1px 2px #0001; }
  form#login input { width: 100%; font: 13px monospace; padding: 6px; box-sizing: border-box; }
  .muted { color: #7a8293; } .err { color: #b00020; }
</style>
</head>
<body>
<header><h1>Live sessions</h1><a href="/sessions">all sessions</a>
  <label>status <select id="status"><option value="">any</option><option>READY</option><option>LIVE</option><option>STOPPED</option></select></label>
  <span id="conn" class="muted">connecting…</span></header>
<main>
  <form id="login" hidden>
    <p>This page reads sessions through GraphQL: paste a LiveKit access token with the <b>roomList</b> grant
    (<code>npm run token -- --list</code>). It is kept in this tab only.</p>
    <input id="token" autocomplete="off" placeholder="eyJhbGciOi…"> <p><button>Use token</button> <span id="loginError" class="err"></span></p>
  </form>
  <div id="view"></div>
</main>
<script nonce="__NONCE__">
'use strict';
const BOOT = __BOOT__;
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const c of children) node.append(c);
  return node;
};
const tokenKey = 'lkss.token';
const token = () => BOOT.token || sessionStorage.getItem(tokenKey) || '';
const headers = (accept) => {
  const h = { 'Content-Type': 'application/json', Accept: accept };
  if (token()) h.Authorization = 'Bearer ' + token();
  return h;
};
async function query(q, variables) {
  const res = await fetch(BOOT.graphql, { method: 'POST', headers: headers('application/graphql-response+json, application/json'), body: JSON.stringify({ query: q, variables }) });
  const body = await res.json();
  if (body.errors) throw Object.assign(new Error(body.errors.map((e) => e.message).join('; ')), { codes: body.errors.map((e) => e.extensions && e.extensions.code) });
  return body.data;
}
/** One subscription over SSE (graphql-sse's distinct connections mode), read frame by frame from fetch: it can send the token header. */
async function subscribe(q, variables, onNext, signal) {
  const res = await fetch(BOOT.graphql, { method: 'POST', headers: headers('text/event-stream'), body: JSON.stringify({ query: q, variables }), signal });
  if (!res.ok || !res.body) throw new Error('subscription refused: HTTP ' + res.status);
  $('conn').textContent = 'live';
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\\n\\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const lines = frame.split('\\n');
      const event = (lines.find((l) => l.startsWith('event:')) || '').slice(6).trim();
      const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\\n');
      if (event === 'next' && data) {
        const payload = JSON.parse(data);
        if (payload.errors) throw new Error(payload.errors.map((e) => e.message).join('; '));
        onNext(payload.data);
      }
      if (event === 'complete') return;
    }
  }
}
const FIELDS = 'id roomName title status version participantCount recording updatedAt participants { identity tracks { type source } }';
const sessions = new Map();
let stream;

function row(s) {
  const publishing = s.participants.filter((p) => p.tracks.length > 0).map((p) => p.identity + ' (' + p.tracks.map((t) => t.source.toLowerCase()).join(', ') + ')');
  const link = el('a', { href: '/sessions/' + encodeURIComponent(s.id), textContent: s.roomName });
  const tr = el('tr', {},
    el('td', {}, link, s.title ? el('div', { className: 'muted', textContent: s.title }) : ''),
    el('td', {}, el('span', { className: 'status ' + s.status, textContent: s.status })),
    el('td', { textContent: String(s.participantCount) }),
    el('td', { textContent: publishing.join('; ') || '—' }),
    el('td', {}, s.recording ? el('span', { className: 'rec', textContent: 'REC' }) : ''),
    el('td', { className: 'muted', textContent: 'v' + s.version + ' · ' + new Date(s.updatedAt).toLocaleTimeString() }));
  tr.dataset.room = s.roomName;
  tr.children[2].dataset.field = 'count';
  tr.children[4].dataset.field = 'recording';
  return tr;
}
function renderList() {
  const status = $('status').value;
  const list = [...sessions.values()].filter((s) => !status || s.status === status).sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1));
  const body = el('tbody', {}, ...list.map(row));
  $('view').replaceChildren(el('table', {}, el('thead', {}, el('tr', {}, ...['Room', 'Status', 'People', 'Publishing', 'Recording', 'Version'].map((h) => el('th', { textContent: h })))), body));
  if (list.length === 0) $('view').append(el('p', { className: 'muted', textContent: 'No sessions' + (status ? ' with status ' + status : '') + ' yet.' }));
}
async function showList() {
  stream?.abort();
  stream = new AbortController();
  const live = subscribe('subscription($s: SessionStatus) { sessionsUpdated(status: $s) { version session { ' + FIELDS + ' } } }', { s: null }, (data) => {
    const s = data.sessionsUpdated.session;
    const known = sessions.get(s.id);
    if (known && known.version >= s.version) return;
    sessions.set(s.id, s);
    renderList();
    document.querySelector('tr[data-room="' + CSS.escape(s.roomName) + '"]')?.classList.add('flash');
  }, stream.signal);
  // Subscribed first, then the list: an update between the two is not lost (versions keep the newest).
  // Every status: the filter is applied here, so a session moving into it shows at once.
  const data = await query('query { sessions(first: 50) { edges { node { ' + FIELDS + ' } } } }', {});
  for (const { node } of data.sessions.edges) {
    const known = sessions.get(node.id);
    if (!known || known.version < node.version) sessions.set(node.id, node);
  }
  renderList();
  await live;
}
async function showTimeline(id) {
  $('status').disabled = true;
  const load = async () => {
    const data = await query('query($id: ID!) { session(id: $id) { ' + FIELDS + ' egresses { egressId status } events(first: 50) { edges { node { id eventType createdAt receivedAt outcome participantIdentity trackSid egressId } } } } }', { id });
    const s = data.session;
    if (!s) return void $('view').replaceChildren(el('p', { textContent: 'No such session.' }));
    const events = s.events.edges.map(({ node: e }) => el('tr', {},
      el('td', { className: 'muted', textContent: new Date(e.receivedAt).toLocaleTimeString() }),
      el('td', { textContent: e.eventType }), el('td', { textContent: e.outcome }),
      el('td', { textContent: [e.participantIdentity, e.trackSid, e.egressId].filter(Boolean).join(' ') })));
    $('view').replaceChildren(
      el('h2', { textContent: s.roomName + ' ' }, el('span', { className: 'status ' + s.status, textContent: s.status }), ' ', s.recording ? el('span', { className: 'rec', textContent: 'REC' }) : ''),
      el('p', { textContent: s.participantCount + ' in the room: ' + (s.participants.map((p) => p.identity).join(', ') || 'nobody') + ' · version ' + s.version }),
      el('table', {}, el('thead', {}, el('tr', {}, ...['Received', 'Event', 'Outcome', 'About'].map((h) => el('th', { textContent: h })))), el('tbody', {}, ...events)));
  };
  await subscribe('subscription($id: ID) { sessionUpdated(id: $id) { version } }', { id }, () => void load().catch(fail));
}
function fail(err) {
  $('conn').textContent = 'disconnected';
  if (err && err.name === 'AbortError') return;
  if (!BOOT.authOff && !BOOT.token && /UNAUTHENTICATED|FORBIDDEN|401|403/.test(String(err && (err.codes || err.message)))) {
    sessionStorage.removeItem(tokenKey);
    $('login').hidden = false;
    $('loginError').textContent = String(err.message || err);
    return;
  }
  $('view').prepend(el('p', { className: 'err', textContent: String(err && err.message || err) }));
}
function start() {
  $('login').hidden = true;
  const m = /^\\/sessions\\/([^/]+)$/.exec(location.pathname);
  (m ? showTimeline(decodeURIComponent(m[1])) : showList()).catch(fail);
}
$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(tokenKey, $('token').value.trim());
  start();
});
$('status').value = new URLSearchParams(location.search).get('status') || '';
$('status').addEventListener('change', () => {
  const url = new URL(location.href);
  if ($('status').value) url.searchParams.set('status', $('status').value); else url.searchParams.delete('status');
  history.replaceState(null, '', url);
  renderList();
});
if (BOOT.authOff || token()) start(); else { $('login').hidden = false; $('conn').textContent = 'needs a token'; }
</script>
</body>
</html>
`;
