// Preloaded into the service by the memory benchmark only (NODE_OPTIONS=--import): on SIGUSR2 the
// process runs a full garbage collection, so heap readings from /metrics compare live objects,
// not whatever garbage happens to be waiting. It changes nothing else.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
process.on('SIGUSR2', () => {
  gc();
  gc();
});
