/**
 * Where a daemon start spends its time: milliseconds per start phase,
 * logged with "agent started" (docs/operations.md). The first phase, `load`,
 * runs from the process start (performance.now()'s origin) to the daemon's
 * first line: the runtime, module evaluation and the command line.
 *
 * @module
 */
export class StartClock {
  #last = 0;
  readonly #phases: [string, number][] = [];

  /** End the phase named `phase` now. */
  mark(phase: string): void {
    const now = performance.now();
    this.#phases.push([phase, Math.round(now - this.#last)]);
    this.#last = now;
  }

  /** Milliseconds per phase, in start order. */
  phases(): Record<string, number> {
    return Object.fromEntries(this.#phases);
  }

  /** Milliseconds from the process start to the last mark. */
  total(): number {
    return Math.round(this.#last);
  }
}
