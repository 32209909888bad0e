import type { VideoGrant } from 'livekit-server-sdk';

/** The grant of an administrator's token: list, create and administer every room (the dev token, `npm run token -- --admin`). */
export const ADMIN_GRANT: Readonly<VideoGrant> = Object.freeze({ roomList: true, roomCreate: true, roomAdmin: true });
