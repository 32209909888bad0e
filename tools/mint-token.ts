/**
 * Mints a LiveKit access token for the GraphQL API, signed with LIVEKIT_API_KEY/SECRET from the
 * environment or env.local (`npm run token -- --help`).
 */
import { AccessToken, type VideoGrant } from 'livekit-server-sdk';
import { ConfigError, loadConfig } from '../src/config.js';
import { fail, parseToolArgs, usageError } from './cli.js';
import { ADMIN_GRANT } from '../src/livekit/grants.js';

const cli = {
  name: 'token',
  usage: `usage: npm run token -- (--room ROOM | --list | --admin) [--identity NAME] [--ttl 1h]

Mints a LiveKit access token for the GraphQL API, signed with LIVEKIT_API_KEY / LIVEKIT_API_SECRET
(environment or env.local; development default devkey / secret). Prints the token on stdout.

  --room ROOM       may read and watch room ROOM's session (grant roomJoin + room)
  --list            may read, list and watch every session (grant roomList)
  --admin           may also create sessions (grants roomList, roomCreate, roomAdmin)
  --identity NAME   the token's identity (default: viewer-ROOM, or admin)
  --ttl DURATION    lifetime: a number and s, m, h or d (default 1h)
  -h, --help        this text

Send it as "Authorization: Bearer TOKEN" (HTTP, SSE) or connectionParams.authorization (graphql-ws).`,
};

const values = parseToolArgs(cli, {
  room: { type: 'string' },
  list: { type: 'boolean', default: false },
  admin: { type: 'boolean', default: false },
  identity: { type: 'string' },
  ttl: { type: 'string', default: '1h' },
});

const kinds = [values.room !== undefined, values.list, values.admin].filter(Boolean).length;
if (kinds !== 1) usageError(cli, kinds === 0 ? 'say what the token may do: --room ROOM, --list or --admin' : 'use only one of --room, --list and --admin');
if (values.room !== undefined && values.room.trim() === '') usageError(cli, '--room needs a room name');
if (!/^\d+[smhd]$/.test(values.ttl)) usageError(cli, `--ttl "${values.ttl}" is not a duration like 30m, 12h or 7d`);

try {
  const { livekit } = loadConfig();
  const grant: VideoGrant = values.admin ? { ...ADMIN_GRANT } : values.list ? { roomList: true } : { roomJoin: true, room: values.room };
  const token = new AccessToken(livekit.apiKey, livekit.apiSecret, {
    identity: values.identity ?? (values.room ? `viewer-${values.room}` : 'admin'),
    ttl: values.ttl,
  });
  token.addGrant(grant);
  process.stdout.write(`${await token.toJwt()}\n`);
} catch (err) {
  fail(cli, err instanceof ConfigError ? err.message : (err as Error).message);
}
