import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  createSourceEventStream,
  execute,
  getOperationAST,
  GraphQLError,
  OperationTypeNode,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import { maskError, type YogaServerInstance } from 'graphql-yoga';
import { LRUCache } from 'lru-cache';
import type { Db } from '../db/connect.js';
import type { LiveKitTokenVerifier } from '../livekit/jwt.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { ChangeBus } from '../realtime/bus.js';
import type { EndAll } from '../realtime/end-all.js';
import { joinSessionFeed } from '../realtime/session-feed.js';
import { BUFFER_SIZE, SessionWatch } from '../realtime/session-stream.js';
import { viewerFromAuthorization } from './auth.js';
import type { GraphQLContext } from './context.js';

/**
 * Keep-alive: a comment frame on a stream that sent nothing for PING_MS or more (yoga pings every 12 s, and
 * once at once: some browsers wait for a first byte). Checked in slices every PING_SLICE_MS, each looking at
 * its share of the streams: 10,000 writes at once would hold the event loop for a second on a slow VM.
 */
const PING_MS = 12_000;
const PING_SLICE_MS = 250;
const PING = ':\n\n';
/** How long a stream's response head may wait for its snapshot, to go out in the same write. */
const HEAD_WAIT_MS = 100;
const COMPLETE = 'event: complete\ndata:\n\n';
/** Documents (and their variables) remembered after parsing and validation. */
const PREPARED_MAX = 500;
const SELECTIONS_MAX = 5_000;
/** Subscriptions never create sessions: one empty set for all of them (read by the Session grant check). */
const NOTHING_CREATED: Set<string> = new Set();

/** A parsed and validated subscription document, through yoga's own parse and validate (same limits as any request). */
type Prepared = { schema: GraphQLSchema; document: DocumentNode; operationName: string | undefined };
/** A document with its variables: what one event is encoded for. Shared by every stream that sent the same. */
type Selection = { key: string; prepared: Prepared; variables: Record<string, unknown> | undefined };

type Params = { query: string; variables: Record<string, unknown> | undefined; operationName: string | undefined };

export type SseSubscriptions = {
  /**
   * Serves a POSTed subscription as an event stream and returns true, or returns false (without touching
   * `res`) for anything else: yoga then answers it as before (queries, errors, CORS, unusual requests).
   */
  handle(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<boolean>;
  /** Open streams served here. */
  readonly open: number;
};

/**
 * GraphQL subscriptions over SSE (yoga's and graphql-sse's "distinct connections" wire format), written
 * straight to the socket instead of through yoga's fetch Request/Response/ReadableStream per stream.
 *
 * The subscription itself runs as everywhere else (the schema's subscribe resolver with its grant and input
 * checks, via `createSourceEventStream`); a refused or failing one is left to yoga, which answers it with the
 * usual errors. One session's subscribers join its feed directly (session-feed.ts): no iterator, buffer or
 * abort listener per stream. Each event is executed and serialized once per document and variables (not once
 * per subscriber): every subscriber of a session passed the same room grant, so the result is the same.
 * One shared timer pings idle streams, a slice at a time; a stalled client keeps at most the newest BUFFER_SIZE events.
 */
export function createSseSubscriptions(deps: {
  yoga: YogaServerInstance<Record<string, unknown>, GraphQLContext>;
  verifyToken: LiveKitTokenVerifier | null;
  db: Db;
  bus: ChangeBus;
  logger: Logger;
  metrics: Metrics;
  shutdown: EndAll;
  /** With CORS configured, requests that carry an Origin are left to yoga (which adds the CORS headers). */
  cors: boolean;
}): SseSubscriptions {
  const { yoga, verifyToken, db, bus, logger, metrics, shutdown } = deps;
  const prepared = new LRUCache<string, Prepared | false>({ max: PREPARED_MAX });
  const selections = new LRUCache<string, Selection>({ max: SELECTIONS_MAX });
  const streams = new Set<SseStream>();
  let pinger: NodeJS.Timeout | undefined;

  const prepare = (params: Params, req: IncomingMessage): Prepared | false => {
    const key = `${params.operationName ?? ''}\n${params.query}`;
    let found = prepared.get(key);
    if (found !== undefined) return found;
    found = false;
    try {
      const enveloped = yoga.getEnveloped({ req, params, request: new Request('http://localhost/graphql', { method: 'POST' }) });
      const document = enveloped.parse(params.query) as DocumentNode;
      const errors = enveloped.validate(enveloped.schema, document) as readonly GraphQLError[];
      const operation = errors.length === 0 ? getOperationAST(document, params.operationName) : null;
      if (operation?.operation === OperationTypeNode.SUBSCRIPTION) {
        found = { schema: enveloped.schema as GraphQLSchema, document, operationName: params.operationName };
      }
    } catch {
      // Not parseable or over a limit: yoga reports it.
    }
    prepared.set(key, found);
    return found;
  };

  const selectionOf = (p: Prepared, params: Params): Selection => {
    const key = `${params.operationName ?? ''}\n${params.query}\n${JSON.stringify(params.variables ?? null)}`;
    let selection = selections.get(key);
    // The same text was prepared again since: a new key keeps old and new events apart.
    if (!selection || selection.prepared !== p) selections.set(key, (selection = { key, prepared: p, variables: params.variables }));
    return selection;
  };

  let pingCursor: Iterator<SseStream> | undefined;
  const pingSlice = () => {
    const due = performance.now() - PING_MS;
    let budget = Math.ceil((streams.size * PING_SLICE_MS) / (PING_MS / 2));
    while (budget-- > 0) {
      let next = (pingCursor ??= streams.values()).next();
      if (next.done) next = (pingCursor = streams.values()).next();
      if (next.done) return;
      next.value.pingIfIdleSince(due);
    }
  };
  const unsentHeads = new Set<SseStream>();
  let headTimer: NodeJS.Timeout | undefined;
  const sendHeads = () => {
    headTimer = undefined;
    const due = performance.now() - HEAD_WAIT_MS;
    // Oldest first (a Set keeps insertion order): stop at the first one still within its wait.
    for (const stream of unsentHeads) {
      if (stream.openedAt > due) {
        headTimer = setTimeout(sendHeads, stream.openedAt - due).unref();
        return;
      }
      stream.sendHead();
    }
  };

  class SseStream {
    private backlog: string[] | null = null;
    headPending = false;
    readonly openedAt = performance.now();
    private lastWriteAt = this.openedAt;
    private tail: Promise<void> | null = null;
    private queued = 0;
    private ended = false;
    leave: () => void = () => {};
    private offShutdown: () => void = () => {};

    constructor(
      private readonly res: ServerResponse,
      private readonly selection: Selection,
      private readonly context: GraphQLContext,
    ) {}

    start(): void {
      this.res.writeHead(200, { 'Content-Type': 'text/event-stream', Connection: 'keep-alive', 'Cache-Control': 'no-cache', 'Content-Encoding': 'none' });
      // The head and the first ping go out with the snapshot, in one write (or after HEAD_WAIT_MS without it).
      this.headPending = true;
      unsentHeads.add(this);
      headTimer ??= setTimeout(sendHeads, HEAD_WAIT_MS).unref();
      this.res.on('close', () => this.end());
      this.offShutdown = shutdown.add(() => this.complete());
      streams.add(this);
      metrics.subscriptions.inc();
      pinger ??= setInterval(pingSlice, PING_SLICE_MS).unref();
    }

    /** Hands one event over, in order (an event whose encoding is still being computed holds up the later ones). */
    deliver(event: unknown): void {
      if (this.ended) return;
      const frame = frameOf(event, this.selection, this.context);
      if (this.tail === null && typeof frame === 'string') return this.write(frame);
      this.queued++;
      this.tail = (this.tail ?? Promise.resolve())
        .then(() => frame)
        .then(
          (f) => this.write(f),
          (err: unknown) => this.fail(err),
        )
        .finally(() => {
          if (--this.queued === 0) this.tail = null;
        });
    }

    pingIfIdleSince(due: number): void {
      if (this.lastWriteAt > due || this.ended || this.headPending || this.backlog !== null || this.res.writableNeedDrain) return;
      this.lastWriteAt = performance.now();
      this.res.write(PING);
    }

    /** The server ends the stream (shutdown, or the source ended). */
    complete(): void {
      if (this.ended) return;
      this.write(COMPLETE);
      this.end();
      this.res.end();
    }

    fail(err: unknown): void {
      if (this.ended) return;
      logger.warn({ err }, 'sse subscription failed');
      this.end();
      this.res.destroy();
    }

    /** Sends the head and a first ping now, if nothing did yet. */
    sendHead(): void {
      if (this.headPending) this.write('');
    }

    private write(frame: string): void {
      if (this.ended) return;
      if (this.headPending) {
        this.headPending = false;
        unsentHeads.delete(this);
        frame = PING + frame;
      }
      if (this.backlog !== null) {
        this.backlog.push(frame);
        // Past the buffer the oldest go (the latest state always arrives).
        if (this.backlog.length > BUFFER_SIZE) this.backlog.shift();
        return;
      }
      this.lastWriteAt = performance.now();
      if (!this.res.write(frame)) {
        this.backlog = [];
        this.res.once('drain', () => this.drain());
      }
    }

    private drain(): void {
      const frames = this.backlog ?? [];
      this.backlog = null;
      for (const [i, frame] of frames.entries()) {
        if (this.ended) return;
        if (!this.res.write(frame)) {
          this.backlog = frames.slice(i + 1);
          this.res.once('drain', () => this.drain());
          return;
        }
      }
    }

    private end(): void {
      if (this.ended) return;
      this.ended = true;
      this.backlog = null;
      unsentHeads.delete(this);
      this.leave();
      this.offShutdown();
      streams.delete(this);
      metrics.subscriptions.dec();
      if (streams.size === 0 && pinger) {
        clearInterval(pinger);
        pinger = undefined;
        pingCursor = undefined;
      }
    }
  }

  return {
    get open() {
      return streams.size;
    },
    async handle(req, res, body) {
      if (req.method !== 'POST' || !wantsEventStream(req.headers.accept) || !isJson(req.headers['content-type'])) return false;
      if (deps.cors && req.headers.origin !== undefined) return false;
      if (shutdown.isEnded) return false;
      const params = paramsOf(body);
      if (!params) return false;
      const p = prepare(params, req);
      if (!p) return false;

      const context: GraphQLContext = {
        viewer: await viewerFromAuthorization(req.headers.authorization, verifyToken),
        db,
        bus,
        logger,
        shutdown,
        created: NOTHING_CREATED,
      };
      const source = await createSourceEventStream({
        schema: p.schema,
        document: p.document,
        contextValue: context,
        variableValues: params.variables,
        operationName: params.operationName,
      });
      // Refused, not found, bad input: yoga answers with its usual errors (the checks are repeated there).
      if (!isAsyncIterable(source)) return false;
      if (res.destroyed || req.socket.destroyed) {
        if (!(source instanceof SessionWatch)) void source[Symbol.asyncIterator]().return?.();
        return true;
      }

      // The body was only needed to get here; the request lives as long as the stream.
      (req as IncomingMessage & { body?: unknown }).body = undefined;
      const stream = new SseStream(res, selectionOf(p, params), context);
      stream.start();
      if (source instanceof SessionWatch) {
        stream.leave = joinSessionFeed(source.deps, source.session, { deliver: (c) => stream.deliver(c), fail: (err) => stream.fail(err) }, source.only);
      } else {
        const iterator = source[Symbol.asyncIterator]();
        stream.leave = () => void iterator.return?.()?.catch(() => {});
        void (async () => {
          for (;;) {
            const next = await iterator.next();
            if (next.done) return stream.complete();
            stream.deliver(next.value);
          }
        })().catch((err: unknown) => stream.fail(err));
      }
      return true;
    },
  };
}

/** Encoded events: per event object (one per change per process), per selection, the SSE frame. */
const frames = new WeakMap<object, Map<string, string | Promise<string>>>();

function frameOf(event: unknown, selection: Selection, context: GraphQLContext): string | Promise<string> {
  const key = event !== null && typeof event === 'object' ? event : undefined;
  let bySelection = key && frames.get(key);
  if (key && !bySelection) frames.set(key, (bySelection = new Map<string, string | Promise<string>>()));
  const known = bySelection?.get(selection.key);
  if (known !== undefined) return known;
  const { prepared } = selection;
  // What graphql's subscribe does per event (mapSourceToResponse): the operation executed with the event as root.
  const result = execute({
    schema: prepared.schema,
    document: prepared.document,
    rootValue: event,
    contextValue: context,
    variableValues: selection.variables,
    operationName: prepared.operationName,
  });
  if (!isPromiseLike(result)) {
    const frame = toFrame(result);
    bySelection?.set(selection.key, frame);
    return frame;
  }
  const pending = Promise.resolve(result).then(toFrame);
  bySelection?.set(selection.key, pending);
  pending.then(
    (frame) => bySelection?.set(selection.key, frame),
    () => bySelection?.delete(selection.key),
  );
  return pending;
}

function toFrame(result: ExecutionResult): string {
  return `event: next\ndata: ${JSON.stringify(result.errors?.length ? { ...result, errors: result.errors.map(publicError) } : result)}\n\n`;
}

/** As yoga sends an error: masked unless it is one of ours, without its internal extensions (http, unexpected). */
function publicError(error: GraphQLError): unknown {
  const json = (maskError(error, 'Unexpected error.', false) as GraphQLError).toJSON();
  if (json.extensions) {
    const { http: _http, unexpected: _unexpected, ...extensions } = json.extensions;
    return { ...json, extensions: Object.keys(extensions).length > 0 ? extensions : undefined };
  }
  return json;
}

/** Only a plain event-stream request (graphql-sse and EventSource-like clients); anything mixed goes to yoga. */
function wantsEventStream(accept: string | undefined): boolean {
  return accept !== undefined && /^\s*text\/event-stream\s*(;|$)/i.test(accept);
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && /^\s*application\/(graphql-response\+)?json\s*(;|$)/i.test(contentType);
}

function paramsOf(body: Buffer): Params | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const { query, variables, operationName } = raw as Record<string, unknown>;
  if (typeof query !== 'string') return undefined;
  if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return undefined;
  if (operationName != null && typeof operationName !== 'string') return undefined;
  return { query, variables: (variables ?? undefined) as Record<string, unknown> | undefined, operationName: operationName ?? undefined };
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value !== null && typeof value === 'object' && Symbol.asyncIterator in value;
}
