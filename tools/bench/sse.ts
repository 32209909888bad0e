/**
 * A lean SSE subscriber for many thousands of streams in one process: one plain HTTP/1.1 connection per
 * stream (as a browser tab's EventSource or graphql-sse's "distinct connections" mode), a GraphQL
 * subscription POSTed with `Accept: text/event-stream`, frames parsed as they arrive. graphql-sse's
 * client costs far more per stream in the load generator, which would then measure itself.
 */
import { request, type ClientRequest } from 'node:http';

export type SseEvent = { at: number; data: unknown };

export type SseStream = {
  events: SseEvent[];
  /** Resolves with the first event (the snapshot), rejects on an HTTP error or a closed stream. */
  first: Promise<SseEvent>;
  errors: string[];
  ended: boolean;
  /** Destroys the connection at once (a closed tab). */
  close(): void;
};

export function openSse(url: string, body: string, authorization: string, onEvent?: (e: SseEvent) => void): SseStream {
  let resolveFirst!: (e: SseEvent) => void;
  let rejectFirst!: (err: Error) => void;
  const first = new Promise<SseEvent>((res, rej) => {
    resolveFirst = res;
    rejectFirst = rej;
  });
  first.catch(() => {});
  const stream: SseStream = { events: [], first, errors: [], ended: false, close: () => req.destroy() };
  const fail = (message: string) => {
    stream.errors.push(message);
    rejectFirst(new Error(message));
  };
  const req: ClientRequest = request(url, {
    method: 'POST',
    agent: false,
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', Authorization: authorization, 'Content-Length': Buffer.byteLength(body) },
  });
  req.on('error', (err) => {
    if (!stream.ended) fail(err.message);
  });
  req.on('response', (res) => {
    if (res.statusCode !== 200) {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => fail(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
      return;
    }
    res.setEncoding('utf8');
    let buffer = '';
    res.on('data', (chunk: string) => {
      const at = performance.now();
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        let data = '';
        for (const line of frame.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (event === 'complete') {
          stream.ended = true;
          continue;
        }
        if (data === '') continue; // a keep-alive comment
        let parsed: unknown;
        try {
          parsed = JSON.parse(data);
        } catch {
          stream.errors.push(`unparsable frame ${data.slice(0, 100)}`);
          continue;
        }
        if ((parsed as { errors?: unknown }).errors) {
          // A GraphQL error instead of data: the subscription failed (it is not an event).
          fail(JSON.stringify(parsed).slice(0, 200));
          continue;
        }
        const e = { at, data: parsed };
        stream.events.push(e);
        if (stream.events.length === 1) resolveFirst(e);
        onEvent?.(e);
      }
    });
    res.on('end', () => {
      stream.ended = true;
      if (stream.events.length === 0) fail('stream ended before its first event');
    });
  });
  req.end(body);
  return stream;
}
