import { pino, type Logger } from 'pino';

export type { Logger };

/** The one logger. Credentials never reach a log line, whatever object is logged. */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { service: 'livekit-session-state', ...base },
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
  });
}
