import type { IncomingMessage } from 'node:http';

export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`Request body exceeds ${limit} bytes`);
  }
}

export class BodyTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`Request body not received within ${timeoutMs / 1000} s`);
  }
}

/** The client went away before sending the whole body: nobody is left to answer. */
export class RequestAbortedError extends Error {
  constructor() {
    super('client disconnected before the body was complete');
  }
}

/**
 * Reads a request body into memory, refusing (without buffering the rest) past `limit` bytes, or when the
 * whole body has not arrived within `timeoutMs` (a slow sender would otherwise hold the request for minutes).
 */
export function readBody(req: IncomingMessage, limit: number, opts: { timeoutMs?: number } = {}): Promise<Buffer> {
  if (declaredTooLarge(req, limit)) {
    discardRest(req);
    return Promise.reject(new BodyTooLargeError(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.off('data', onData);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const refuse = (err: Error) => {
      finish(err);
      discardRest(req);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return refuse(new BodyTooLargeError(limit));
      chunks.push(chunk);
    };
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => refuse(new BodyTimeoutError(opts.timeoutMs!)), opts.timeoutMs);
    req.on('data', onData);
    req.once('end', () => finish(null));
    req.once('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNRESET' || err.message === 'aborted' ? new RequestAbortedError() : err));
    req.once('close', () => finish(req.complete ? null : new RequestAbortedError()));
  });
}

/** True when the request announces (Content-Length) more than `limit` bytes: known from the headers alone. */
export function declaredTooLarge(req: IncomingMessage, limit: number): boolean {
  const declared = Number(req.headers['content-length']);
  return Number.isFinite(declared) && declared > limit;
}

/** How long a refused body is still read (and dropped) before the connection is cut. */
const LINGER_MS = 2_000;

/**
 * Reads and drops the rest of a refused body for a moment, then closes the connection. Closing at once,
 * with the body unread, makes the kernel send a reset that can discard the answer before the sender reads it.
 */
export function discardRest(req: IncomingMessage): void {
  if (req.complete) return;
  req.resume();
  const timer = setTimeout(() => req.socket.destroy(), LINGER_MS);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
}
