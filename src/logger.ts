import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { PrettyOptions } from 'pino-pretty';

export type { Logger };

export type LogFormat = 'json' | 'pretty';

/** JSON lines unless asked otherwise, or a person is watching a development server in a terminal. */
export function chooseLogFormat(setting: LogFormat | undefined, env: string, isTTY: boolean): LogFormat {
  return setting ?? (env === 'development' && isTTY ? 'pretty' : 'json');
}

/** The one logger. Credentials never reach a log line, whatever object is logged. */
export function createLogger(level: string, options: { format?: LogFormat } = {}): Logger {
  const pretty = options.format === 'pretty' ? prettyStream() : undefined;
  const settings: LoggerOptions = {
    level,
    base: { service: 'livekit-session-state' },
    redact: {
      paths: [
        'authorization',
        'token',
        'secret',
        'apiSecret',
        'headers.authorization',
        'req.headers.authorization',
        '*.authorization',
        '*.token',
        '*.secret',
        '*.apiSecret',
        'connectionParams',
      ],
      censor: '[redacted]',
    },
  };
  const logger = pino(settings, pretty ?? stdoutLines());
  if (options.format === 'pretty' && !pretty) logger.info('pino-pretty is not installed (npm ci --omit=dev?): logging JSON lines');
  return logger;
}

/** Buffered JSON lines are written at least this often. */
const LOG_FLUSH_MS = 100;
let stdout: DestinationStream | undefined;

/**
 * stdout in writes of 4 KiB or every `LOG_FLUSH_MS` (a busy webhook route logs a line per request: one write
 * each cost ~4 % of its CPU). pino flushes what is buffered when the process exits, also on an uncaught
 * error; only a SIGKILL can lose the last 100 ms of lines. One stream for every logger of the process.
 */
function stdoutLines(): DestinationStream {
  if (stdout) return stdout;
  const stream = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => {
    try {
      stream.flush();
    } catch {
      // Closed (stdout gone): nothing to write to.
    }
  }, LOG_FLUSH_MS).unref();
  return (stdout = stream);
}

/**
 * pino-pretty in this thread, writing synchronously (no worker, nothing lost at exit). Required lazily so an
 * install without it (a trimmed production image) still starts, with JSON lines.
 */
function prettyStream(): DestinationStream | undefined {
  try {
    const pretty = createRequire(import.meta.url)('pino-pretty') as (options: PrettyOptions) => DestinationStream;
    return pretty({ sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' });
  } catch {
    return undefined;
  }
}
