/**
 * Ends every open stream at once (server shutdown). Streams register a stop function in a Set: an
 * AbortSignal shared by 10,000 streams would scan its listener list on every add and remove.
 */
export class EndAll {
  private readonly stops = new Set<() => void>();
  private ended = false;

  /** Calls `stop` when `end()` is called (at once if it was); returns how to stop listening. */
  add(stop: () => void): () => void {
    if (this.ended) {
      stop();
      return () => {};
    }
    this.stops.add(stop);
    return () => void this.stops.delete(stop);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  end(): void {
    this.ended = true;
    const stops = [...this.stops];
    this.stops.clear();
    for (const stop of stops) stop();
  }
}
