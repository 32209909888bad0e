/**
 * Mints a LiveKit access token for the GraphQL API, signed with LIVEKIT_API_KEY/SECRET from the
 * environment or env.local:
 *   npm run token -- --room R            may read and watch room R's session
 *   npm run token -- --list              may read, list and watch every session
 *   npm run token -- --admin             may also create sessions
 * Options: --identity NAME, --ttl 1h
 */
import { parseArgs } from 'node:util';
import { AccessToken, type VideoGrant } from 'livekit-server-sdk';
import { ConfigError, loadConfig } from '../src/config.js';

const { values } = parseArgs({
  options: {
    room: { type: 'string' },
    list: { type: 'boolean', default: false },
    admin: { type: 'boolean', default: false },
    identity: { type: 'string' },
    ttl: { type: 'string', default: '1h' },
  },
});

if (!values.room && !values.list && !values.admin) {
  process.stderr.write('usage: npm run token -- (--room ROOM | --list | --admin) [--identity NAME] [--ttl 1h]\n');
  process.exit(2);
}

try {
  const { livekit } = loadConfig();
  const grant: VideoGrant = values.admin
    ? { roomList: true, roomCreate: true, roomAdmin: true }
    : values.list
      ? { roomList: true }
      : { roomJoin: true, room: values.room };
  const token = new AccessToken(livekit.apiKey, livekit.apiSecret, {
    identity: values.identity ?? (values.room ? `viewer-${values.room}` : 'admin'),
    ttl: values.ttl,
  });
  token.addGrant(grant);
  process.stdout.write(`${await token.toJwt()}\n`);
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
  process.exit(1);
}
