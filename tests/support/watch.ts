import type { Client as SseClient } from 'graphql-sse';
import type { Client as WsClient } from 'graphql-ws';

export type Result = { data?: any; errors?: Array<{ message: string; extensions?: { code?: string } }> };

/** One subscription through an official client (graphql-sse or graphql-ws), keeping every result with its arrival time. */
export class Watch {
  readonly received: Array<{ at: number; result: Result }> = [];
  readonly errors: unknown[] = [];
  completed = false;
  private readonly unsubscribe: () => void;

  constructor(client: SseClient | WsClient, query: string, variables: Record<string, unknown> = {}) {
    this.unsubscribe = client.subscribe(
      { query, variables },
      {
        next: (result) => void this.received.push({ at: performance.now(), result: result as Result }),
        error: (err) => void this.errors.push(err),
        complete: () => void (this.completed = true),
      },
    );
  }

  /** The `data[field]` of each result (errors as { errors: codes }). */
  values(field: string): any[] {
    return this.received.map(({ result }) => (result.errors ? { errors: result.errors.map((e) => e.extensions?.code ?? e.message) } : result.data?.[field]));
  }

  /** Waits (bounded) until `check` holds over what arrived; throws with what arrived otherwise. */
  async until(check: (w: Watch) => boolean, timeoutMs = 10_000, label = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check(this)) {
      if (this.errors.length > 0) throw new Error(`subscription failed: ${JSON.stringify(this.errors[0])}`);
      if (Date.now() > deadline) throw new Error(`${label} not reached within ${timeoutMs} ms; received ${JSON.stringify(this.received.map((r) => r.result))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  dispose() {
    this.unsubscribe();
  }
}
