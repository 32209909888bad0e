// Preloaded into the service by `npm run bench -- --cpu-prof <dir>` (NODE_OPTIONS=--import; Node 20
// refuses --cpu-prof there). SIGWINCH (harmless for a process without a terminal) starts a fresh
// profile, dropping anything recorded before, so the profile covers the measured run, not start-up;
// <dir>/service-<pid>.cpuprofile is written when the process exits. It changes nothing else.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.BENCH_CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  let running = false;
  process.on('SIGWINCH', () => {
    if (running) session.post('Profiler.stop');
    session.post('Profiler.start');
    running = true;
  });
  // Same-thread inspector sessions answer synchronously, so this works inside the 'exit' handler.
  process.on('exit', () => {
    if (!running) return;
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(join(dir, `service-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
