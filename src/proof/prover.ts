/**
 * The enforcement-proof scheduler (docs/guarantees.md, "Enforcement
 * proof"): runs every surface's proof at start and then every
 * `intervalSeconds`, keeps the last result per surface, and judges whether
 * the proofs are passing and fresh. Pure apart from the injected proof
 * functions and clock, so it is unit-tested with fakes (prover_test.ts).
 *
 * @module
 */

/** Surfaces a proof can cover (only those the daemon registers are run). */
/** A proof probe in flight on one hook (MetricsSources.selfTest.pending in render.ts). */
export interface PendingProbe {
  hook: string;
  /** the hook's visible count when the probe started */
  floor: bigint;
  /** at most this many denies the probe can cause (default 1) */
  count?: number;
}

export const PROOF_SURFACES = ["file", "exec", "exec_hash", "network", "kernel"] as const;
export type ProofSurface = (typeof PROOF_SURFACES)[number];

/** The last proof of one surface, as capabilities.json reports it. */
export interface SurfaceProof {
  ok: boolean;
  /** unix seconds of the attempt */
  last_unix: number;
  detail: string;
}

export type ProofResults = Partial<Record<ProofSurface, SurfaceProof>>;

/** A proof is stale once its last attempt is older than this many periods. */
export const STALE_PERIODS = 3;

/** Default period (`run --proof-interval`). */
export const DEFAULT_PROOF_INTERVAL_SECONDS = 30;

/**
 * One surface's proof: resolves with the outcome, or null when the result
 * does not count (e.g. emergency disable was switched on meanwhile: the
 * surface keeps its previous result), or "inactive" when there is nothing
 * to prove now (e.g. the kernel surface with none of its switches on: the
 * surface drops out of the results and of `surfaces` until it is active
 * again); may throw (a failed proof).
 */
export type SurfaceProofFn = () => Promise<
  { denied: boolean; detail: string } | null | "inactive"
>;

export interface ProverOptions {
  /** the proof of each enabled surface, run in this order */
  surfaces: Partial<Record<ProofSurface, SurfaceProofFn>>;
  /** seconds between rounds; 0 = off */
  intervalSeconds: number;
  /** unix seconds (tests) */
  now?: () => number;
  /**
   * After the surfaces of every round, while the round is still in flight:
   * the verification of the operator's own rules (src/proof/verify.ts).
   * It judges and reports its own outcome; a throw is swallowed here.
   */
  afterSurfaces?: () => Promise<void>;
  /** after every round (report rewrite, log lines) */
  onRound?: (results: ProofResults) => void;
}

export class EnforcementProver {
  readonly intervalSeconds: number;
  #surfaces: [ProofSurface, SurfaceProofFn][];
  #now: () => number;
  #onRound?: (r: ProofResults) => void;
  #after?: () => Promise<void>;
  #results: ProofResults = {};
  #inactive = new Set<ProofSurface>();
  #lastRound = -Infinity;
  #running: Promise<ProofResults> | null = null;
  #rounds = 0;

  constructor(opts: ProverOptions) {
    if (!Number.isSafeInteger(opts.intervalSeconds) || opts.intervalSeconds < 0) {
      throw new RangeError(`proof interval ${opts.intervalSeconds}: must be a whole number >= 0`);
    }
    this.intervalSeconds = opts.intervalSeconds;
    this.#surfaces = PROOF_SURFACES.filter((s) => opts.surfaces[s]).map((s) => [
      s,
      opts.surfaces[s]!,
    ]);
    this.#now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    this.#onRound = opts.onRound;
    this.#after = opts.afterSurfaces;
  }

  /** Surfaces this prover covers (without those inactive in the last round). */
  get surfaces(): ProofSurface[] {
    return this.#surfaces.map(([s]) => s).filter((s) => !this.#inactive.has(s));
  }

  /** The last result of every surface that ran (a copy). */
  get results(): ProofResults {
    return structuredClone(this.#results);
  }

  /** Rounds completed. */
  get rounds(): number {
    return this.#rounds;
  }

  /** Is a round in flight? */
  get running(): boolean {
    return this.#running !== null;
  }

  /**
   * Run one round now (every surface, one after the other) unless one is
   * in flight: then that round's promise. A throwing proof is a failed one.
   */
  round(): Promise<ProofResults> {
    if (this.#running) return this.#running;
    this.#lastRound = this.#now();
    this.#running = (async () => {
      try {
        for (const [s, fn] of this.#surfaces) {
          let r: { denied: boolean; detail: string } | null | "inactive";
          try {
            r = await fn();
            if (r === null) continue;
            if (r === "inactive") {
              this.#inactive.add(s);
              delete this.#results[s];
              continue;
            }
            this.#inactive.delete(s);
          } catch (e) {
            this.#inactive.delete(s);
            r = {
              denied: false,
              detail: `the proof could not run: ${e instanceof Error ? e.message : e}`,
            };
          }
          this.#results[s] = { ok: r.denied, last_unix: this.#now(), detail: r.detail };
        }
        await this.#after?.().catch(() => {});
        this.#rounds++;
        const out = this.results;
        this.#onRound?.(out);
        return out;
      } finally {
        this.#running = null;
      }
    })();
    return this.#running;
  }

  /**
   * Only the `afterSurfaces` step (the rule verification), now: after any
   * round in flight, and no round starts while it runs. For a reply that
   * waits on the verification of new rules, without the canaries' cost.
   */
  async afterSurfacesOnly(): Promise<void> {
    while (this.#running) await this.#running.catch(() => {});
    const p = (async () => {
      await this.#after?.().catch(() => {});
      return this.results;
    })();
    this.#running = p;
    try {
      await p;
    } finally {
      if (this.#running === p) this.#running = null;
    }
  }

  /** Resolves once no round is in flight (its probes are native calls: await before closing). */
  async settled(): Promise<void> {
    while (this.#running) await this.#running.catch(() => {});
  }

  /** Is a periodic round due (interval on, none in flight, period elapsed)? */
  due(): boolean {
    return this.intervalSeconds > 0 && this.#running === null &&
      this.#now() - this.#lastRound >= this.intervalSeconds;
  }

  /** Start a round when one is due (for the daemon's 1 s tick); null when none started. */
  tick(): Promise<ProofResults> | null {
    return this.due() ? this.round() : null;
  }

  /** The next tick runs a round (e.g. emergency disable has just ended). */
  expedite(): void {
    this.#lastRound = -Infinity;
  }
}

/**
 * Why the proofs do not show enforcement now, or null when every surface
 * passed within STALE_PERIODS periods. Off (interval 0) is not judged here
 * (the caller warns; /health?require_enforce=1 refuses it, see health.ts).
 */
export function proofProblem(
  surfaces: readonly ProofSurface[],
  results: ProofResults,
  now: number,
  intervalSeconds: number,
): string | null {
  if (intervalSeconds <= 0) return null;
  const bad: string[] = [];
  for (const s of surfaces) {
    const r = results[s];
    if (!r) bad.push(`${s}: no proof has run yet`);
    else if (!r.ok) bad.push(`${s}: ${r.detail}`);
    else if (now - r.last_unix > STALE_PERIODS * intervalSeconds) {
      bad.push(
        `${s}: the last passing proof is ${now - r.last_unix} s old (more than ` +
          `${STALE_PERIODS} periods of ${intervalSeconds} s)`,
      );
    }
  }
  return bad.length === 0 ? null : `enforcement proof failed: ${bad.join("; ")}`;
}

/**
 * Denies of the canary rules, by hook name, counted from their block
 * records; subtracted from the user-visible block metrics (render.ts).
 */
export class SelfTestCounter {
  #byHook: Record<string, number> = {};
  /**
   * A probe in flight (see MetricsSources.selfTest.pending in render.ts):
   * its hook, the visible count before it, and at most how many denies it
   * can cause (1 when absent).
   */
  pending: PendingProbe[] = [];
  observe(hook: string): void {
    this.#byHook[hook] = (this.#byHook[hook] ?? 0) + 1;
  }
  get byHook(): Readonly<Record<string, number>> {
    return this.#byHook;
  }
  get total(): number {
    return Object.values(this.#byHook).reduce((a, b) => a + b, 0);
  }
}
