/**
 * The runtime posture state machine (docs/posture.md). It records transitions and
 * turns them into `state_change` events; the daemon decides when to move
 * (startup result, runtime checks) and what else to do on each transition
 * (log line, capabilities.json rewrite) through `onTransition`.
 *
 * `runtimeChecks` is the pure decision the daemon's periodic check makes:
 * attach health, priority ring-buffer drops, map pressure, deny rate, and
 * the enforcement proof (src/proof/prover.ts).
 *
 * @module
 */
import type { AegisEvent, ReasonCode, RuntimeState } from "../contracts.ts";

/** One transition; the fields of a state_change event. */
export interface StateTransition {
  /** 1, 2, 3… for the life of the daemon */
  transition_id: number;
  /** null for the first (startup) transition */
  from: RuntimeState | null;
  to: RuntimeState;
  reason_code: ReasonCode;
  detail: string;
  /** degradations so far, this one included */
  degradation_count: number;
  strict_mode: boolean;
  enforce_requested: boolean;
  at_unix: number;
}

export interface StateMachineOptions {
  /** `run` without --audit */
  enforceRequested: boolean;
  /** --strict-degrade */
  strictMode: boolean;
  /** called after every transition (log, event, report rewrite); must not throw */
  onTransition?: (t: StateTransition) => void;
  /** transitions kept in history (default 64; older ones are dropped, counts stay) */
  historyLimit?: number;
  /** clock in seconds (tests) */
  now?: () => number;
}

const DEGRADED_STATES: readonly RuntimeState[] = ["AUDIT_FALLBACK", "DEGRADED"];

export class PostureStateMachine {
  readonly enforceRequested: boolean;
  readonly strictMode: boolean;
  #state: RuntimeState | null = null;
  #total = 0;
  #degradations = 0;
  #history: StateTransition[] = [];
  #limit: number;
  #now: () => number;
  #onTransition?: (t: StateTransition) => void;

  constructor(opts: StateMachineOptions) {
    this.enforceRequested = opts.enforceRequested;
    this.strictMode = opts.strictMode;
    this.#onTransition = opts.onTransition;
    this.#limit = Math.max(1, opts.historyLimit ?? 64);
    this.#now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /** The current state; null before the startup transition. */
  get state(): RuntimeState | null {
    return this.#state;
  }

  /** Transitions so far. */
  get total(): number {
    return this.#total;
  }

  /** Transitions into AUDIT_FALLBACK or DEGRADED while enforce was requested. */
  get degradationCount(): number {
    return this.#degradations;
  }

  /** The most recent transitions, oldest first. */
  get history(): readonly StateTransition[] {
    return this.#history;
  }

  /** Record a transition (every call is one, even to the same state with a new reason). */
  transition(to: RuntimeState, reason: ReasonCode, detail: string): StateTransition {
    if (this.enforceRequested && DEGRADED_STATES.includes(to)) this.#degradations++;
    const t: StateTransition = {
      transition_id: ++this.#total,
      from: this.#state,
      to,
      reason_code: reason,
      detail,
      degradation_count: this.#degradations,
      strict_mode: this.strictMode,
      enforce_requested: this.enforceRequested,
      at_unix: this.#now(),
    };
    this.#state = to;
    this.#history.push(t);
    if (this.#history.length > this.#limit) {
      this.#history.splice(0, this.#history.length - this.#limit);
    }
    this.#onTransition?.(t);
    return t;
  }

  /** --strict-degrade: enforce was requested and the node no longer enforces. */
  shouldExit(): boolean {
    return this.strictMode && this.enforceRequested && this.#state !== null &&
      DEGRADED_STATES.includes(this.#state);
  }

  /** The state_transitions object of capabilities.json. */
  summary(): {
    total: number;
    degradation_total: number;
    strict_mode: boolean;
    enforce_requested: boolean;
  } {
    return {
      total: this.#total,
      degradation_total: this.#degradations,
      strict_mode: this.strictMode,
      enforce_requested: this.enforceRequested,
    };
  }
}

/** The state_change event of a transition (docs/posture.md, docs/telemetry.md). */
export function stateChangeEvent(t: StateTransition): AegisEvent {
  // event_version: the C++ agent's field (this shape is its version 1)
  return { type: "state_change", event_version: 1, state: t.to, ...t };
}

/** What the daemon's periodic check saw. */
export interface RuntimeCheckInput {
  current: RuntimeState;
  /** the state to return to when a degradation clears (the startup state) */
  healthyState: RuntimeState;
  /** sections that must be attached */
  expectedHooks: readonly string[];
  /** sections attached now */
  attachedHooks: readonly string[];
  /** priority ring-buffer drops since the last check */
  priorityDropDelta: number;
  /** map name → entries / max_entries (0..1) */
  mapUtilisation: Readonly<Record<string, number>>;
  /** utilisation at or above which a map counts as full (default 0.9) */
  mapThreshold?: number;
  /** denies per second since the last check, and the alarm threshold (off when absent) */
  denyRate?: { perSecond: number; threshold: number };
  /**
   * Tamper attempts the self-protection guards refused in the last
   * `windowSeconds`, and how many make an attack in progress (off when absent)
   */
  tamper?: { attempts: number; windowSeconds: number; threshold: number };
  /**
   * Why the enforcement proofs do not show enforcement (proofProblem), or
   * null when they pass; absent when proofs are not judged (off, or
   * emergency disable active).
   */
  proofProblem?: string | null;
}

export interface WantedTransition {
  state: RuntimeState;
  reason: ReasonCode;
  detail: string;
}

/**
 * The transition the checks call for, or null for none. Problems degrade
 * an enforcing state (ENFORCE, ENFORCE_SIGNAL) to DEGRADED; once they
 * clear, DEGRADED returns to `healthyState` with RECOVERED. AUDIT_FALLBACK
 * is never changed here (it already does not enforce; only a restart leaves it).
 */
export function runtimeChecks(i: RuntimeCheckInput): WantedTransition | null {
  if (i.current === "AUDIT_FALLBACK") return null;
  const problem = findProblem(i);
  if (problem) return i.current === "DEGRADED" ? null : { state: "DEGRADED", ...problem };
  if (i.current === "DEGRADED" && i.healthyState !== "DEGRADED") {
    return {
      state: i.healthyState,
      reason: "RECOVERED",
      detail: "attach health, the enforcement proofs, tamper attempts, ring-buffer drops and " +
        "map pressure are back within limits",
    };
  }
  return null;
}

function findProblem(i: RuntimeCheckInput): { reason: ReasonCode; detail: string } | null {
  const attached = new Set(i.attachedHooks);
  const lost = i.expectedHooks.filter((h) => !attached.has(h));
  if (lost.length > 0) {
    return { reason: "ATTACH_CONTRACT_MISMATCH", detail: `no longer attached: ${lost.join(", ")}` };
  }
  if (i.proofProblem) return { reason: "ENFORCEMENT_PROOF_FAILED", detail: i.proofProblem };
  // the guards held (nothing was changed), but someone with root keeps trying
  if (i.tamper && i.tamper.attempts >= i.tamper.threshold) {
    return {
      reason: "TAMPER_ATTEMPTS",
      detail: `${i.tamper.attempts} tamper attempts on the agent refused in the last ` +
        `${i.tamper.windowSeconds} s (threshold ${i.tamper.threshold}); the guards held: ` +
        "see the tamper_block events for who tried what",
    };
  }
  if (i.priorityDropDelta > 0) {
    return {
      reason: "PRIORITY_RINGBUF_DROPS",
      detail:
        `${i.priorityDropDelta} events dropped on the priority ring buffer since the last check`,
    };
  }
  const threshold = i.mapThreshold ?? 0.9;
  const full = Object.entries(i.mapUtilisation).filter(([, u]) => u >= threshold)
    .sort(([a], [b]) => a.localeCompare(b));
  if (full.length > 0) {
    return {
      reason: "MAP_CAPACITY_EXCEEDED",
      detail: `maps at or above ${Math.round(threshold * 100)}% of capacity: ${
        full.map(([m, u]) => `${m} ${Math.round(u * 100)}%`).join(", ")
      }`,
    };
  }
  if (i.denyRate && i.denyRate.perSecond > i.denyRate.threshold) {
    return {
      reason: "DENY_RATE_THRESHOLD_EXCEEDED",
      detail: `${i.denyRate.perSecond.toFixed(1)} denies/s exceeds ${i.denyRate.threshold}/s`,
    };
  }
  return null;
}
