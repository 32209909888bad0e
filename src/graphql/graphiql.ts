import type { IncomingMessage } from 'node:http';
import type { GraphiQLOptions } from 'graphql-yoga';

/** What the GraphiQL page needs to decide whether this browser gets the development admin token. */
export type GraphiQLDevToken = {
  token: string;
  /** Hours it is valid, from `mintedAt`. */
  ttlHours: number;
  mintedAt: Date;
  /** GRAPHIQL_DEV_TOKEN=on, or not the dev key: see `devTokenAllowed`. */
  forEveryone: boolean;
  devKey: boolean;
};

export const isLoopback = (address: string | undefined): boolean => address !== undefined && (address === '::1' || /^(::ffff:)?127\./.test(address));

/**
 * The admin token is handed only to a browser on this machine talking to a server on the dev key:
 * a deployment that forgot NODE_ENV=production (real keys, or reached over the network) gets none,
 * unless GRAPHIQL_DEV_TOKEN=on says so.
 */
export function devTokenAllowed(dev: GraphiQLDevToken, req: IncomingMessage | undefined): boolean {
  return dev.forEveryone || (dev.devKey && isLoopback(req?.socket.remoteAddress));
}

export function graphiqlOptions(dev: GraphiQLDevToken | undefined, req: IncomingMessage | undefined): GraphiQLOptions {
  const options: GraphiQLOptions = { title: 'livekit-session-state', defaultQuery: DEFAULT_QUERY };
  // Sent with every request but kept out of the tabs: a token in a saved tab outlives a restart (and a new one
  // in the headers makes GraphiQL open a duplicate tab on each reload). A tab's own Authorization header wins.
  if (dev && devTokenAllowed(dev, req)) options.additionalHeaders = { Authorization: `Bearer ${dev.token}` };
  return options;
}

/** Yoga's page plus a line that says what the page sends, and a tidy-up of what earlier versions saved. */
export function withPageNote(html: string, options: GraphiQLOptions, dev: GraphiQLDevToken | undefined): string {
  const sendsToken = options.additionalHeaders?.Authorization !== undefined && dev !== undefined;
  const note = sendsToken
    ? `Every request from this page carries the <b>development admin token</b> (roomList + roomCreate + roomAdmin, valid ${dev.ttlHours} h, ` +
      `minted when the server started at ${dev.mintedAt.toISOString()}; a restart mints a new one and this page uses it after a reload). ` +
      'To try a narrower grant, set <code>{"Authorization": "Bearer &lt;token&gt;"}</code> in a tab\'s Headers (<code>npm run token -- --room R</code>).'
    : 'Send a LiveKit access token in the Headers tab: <code>{"Authorization": "Bearer &lt;token&gt;"}</code> (<code>npm run token -- --help</code>).';
  const banner = `<div id="lkss-note" style="font:13px/1.4 system-ui,sans-serif;padding:6px 12px;background:#fff8db;border-bottom:1px solid #e8d68a">${note}</div>`;
  return html.replace('<div id="root"></div>', `${banner}<div id="root" style="height:calc(100vh - 34px)"></div><script>${FORGET_OLD_TOKENS}</script>`);
}

/**
 * Runs before GraphiQL reads its saved tabs: removes the development admin token that earlier versions put into
 * every tab's headers (it expired or changed with each restart), and points the URL at the saved active tab so
 * GraphiQL finds it instead of adding another default tab.
 */
export const FORGET_OLD_TOKENS = `(() => {
  try {
    const raw = localStorage.getItem('graphiql:tabState');
    if (!raw) return;
    const state = JSON.parse(raw);
    const isDevAdmin = (value) => {
      const jwt = String(value).replace(/^Bearer\\s+/i, '').split('.')[1];
      if (!jwt) return false;
      try { return JSON.parse(atob(jwt.replace(/-/g, '+').replace(/_/g, '/'))).sub === 'dev-admin'; } catch { return false; }
    };
    for (const tab of state.tabs || []) {
      if (!tab.headers) continue;
      try {
        const headers = JSON.parse(tab.headers);
        for (const name of Object.keys(headers)) if (name.toLowerCase() === 'authorization' && isDevAdmin(headers[name])) delete headers[name];
        tab.headers = Object.keys(headers).length ? JSON.stringify(headers, null, 2) : null;
      } catch {}
    }
    localStorage.setItem('graphiql:tabState', JSON.stringify(state));
    const active = (state.tabs || [])[state.activeTabIndex];
    const url = new URL(location.href);
    if (active && active.query && !url.searchParams.get('query')) {
      url.searchParams.set('query', active.query);
      history.replaceState({}, '', url);
    }
  } catch {}
})();`;

const DEFAULT_QUERY = `# Sessions follow their LiveKit rooms. Try:
query Sessions {
  sessions(first: 10) {
    edges { node { id roomName title status version startedAt stoppedAt } }
    pageInfo { hasNextPage endCursor }
  }
}

# mutation Create { createSession(input: { roomName: "demo", title: "Demo" }) { session { id status } } }
# subscription Watch { sessionStatusChanged(roomName: "demo") { status previousStatus version eventType changedAt } }
`;
