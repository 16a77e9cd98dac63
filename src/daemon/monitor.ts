/**
 * The daemon's runtime checks, once a second (docs/architecture.md, start
 * order step 8; the transitions: docs/posture.md): ring-buffer drops and denies over a sliding window, the hooks
 * still attached, rule-map pressure (every tenth check), the live rules'
 * TTL sweep, the enforcement proofs' schedule and verdict; the posture
 * transition they call for is handed to the state machine. A check that
 * ran to its end pings the service manager's watchdog.
 *
 * Every input comes through {@link MonitorDeps}, so `check()` is tested
 * with plain functions; the daemon wires the engine, the prover and the
 * state machine in.
 *
 * @module
 */
import type { BpfMap } from "../bpf/map.ts";
import type { Engine } from "../bpf/engine.ts";
import { RULE_MAP_NAMES } from "../policy/generations.ts";
import type { RuntimeState } from "../contracts.ts";
import { runtimeChecks, type WantedTransition } from "../posture/state.ts";

/** How often the checks run, and over how many checks drops and denies are summed. */
export const CHECK_INTERVAL_MS = 1000;
export const WINDOW_CHECKS = 10;
/** Map pressure is read every this many checks (it dumps every rule map). */
export const MAP_CHECK_EVERY = 10;
/** Tamper attempts are counted over this many checks (60 s). */
export const TAMPER_WINDOW_CHECKS = 60;

export interface MonitorDeps {
  /** total ring-buffer drops so far */
  drops(): bigint;
  /**
   * Totals so far, read in one pass over the hook statistics: policy denies
   * (the proof's own left out) and tamper attempts (the self-protection
   * guards' refusals)
   */
  blocks(): { denies: bigint; tamper: bigint };
  /** sections that must stay attached */
  expectedHooks: readonly string[];
  attachedHooks(): string[];
  mapUtilisation(): Record<string, number>;
  /** the state a cleared degradation returns to */
  healthyState: RuntimeState;
  state(): RuntimeState;
  emergencyActive(): boolean;
  /**
   * The enforcement proofs, when they run: `tick` schedules rounds (with
   * emergency disable on: prove again as soon as it ends), `problem` is
   * their verdict (null: they pass).
   */
  proofs: { tick(emergencyOn: boolean): void; problem(emergencyOn: boolean): string | null } | null;
  /** the live rules' TTL sweep and interrupted edits */
  policyTick(): void;
  /** the event ring failed: its own transition was made, the checks judge nothing */
  ringBroken(): boolean;
  denyRateThreshold?: number;
  /**
   * How many tamper attempts within TAMPER_WINDOW_CHECKS degrade the posture;
   * absent or 0: not judged (self-protection off, or the operator's choice)
   */
  tamperThreshold?: number;
  transition(w: WantedTransition): void;
  /** --strict-degrade and a degraded posture: stop the agent */
  shouldExit(): boolean;
  onStrictExit(): void;
  /** the check ran to its end (the watchdog ping) */
  onAlive(): void;
  onError(what: string, e: unknown): void;
}

/** One check per call; see the module comment. */
export class RuntimeMonitor {
  #d: MonitorDeps;
  #drops: bigint[] = [];
  #denies: bigint[] = [];
  #tamper: bigint[] = [];
  #lastDrops: bigint;
  #lastDenies: bigint;
  #lastTamper: bigint;
  #utilisation: Record<string, number> = {};
  #checks = 0;

  constructor(deps: MonitorDeps) {
    this.#d = deps;
    this.#lastDrops = deps.drops();
    const blocks = deps.blocks();
    this.#lastDenies = blocks.denies;
    this.#lastTamper = blocks.tamper;
  }

  check(): void {
    const d = this.#d;
    try {
      this.#lastDrops = slide(this.#drops, d.drops(), this.#lastDrops);
      const blocks = d.blocks();
      this.#lastDenies = slide(this.#denies, blocks.denies, this.#lastDenies);
      this.#lastTamper = slide(this.#tamper, blocks.tamper, this.#lastTamper, TAMPER_WINDOW_CHECKS);
      const emergencyOn = d.emergencyActive();
      d.proofs?.tick(emergencyOn);
      if (this.#checks++ % MAP_CHECK_EVERY === 0) this.#utilisation = d.mapUtilisation();
      try {
        d.policyTick();
      } catch (e) {
        // a failed sweep must not skip the posture checks below
        d.onError("live rule sweep", e);
      }
      const want = d.ringBroken() ? null : runtimeChecks({
        current: d.state(),
        healthyState: d.healthyState,
        expectedHooks: d.expectedHooks,
        attachedHooks: d.attachedHooks(),
        priorityDropDelta: Number(sum(this.#drops)),
        mapUtilisation: this.#utilisation,
        denyRate: d.denyRateThreshold === undefined ? undefined : {
          perSecond: Number(sum(this.#denies)) / WINDOW_CHECKS,
          threshold: d.denyRateThreshold,
        },
        tamper: d.tamperThreshold
          ? {
            attempts: Number(sum(this.#tamper)),
            windowSeconds: TAMPER_WINDOW_CHECKS * CHECK_INTERVAL_MS / 1000,
            threshold: d.tamperThreshold,
          }
          : undefined,
        proofProblem: d.proofs ? d.proofs.problem(emergencyOn) : undefined,
      });
      if (want) d.transition(want);
      if (d.shouldExit()) d.onStrictExit();
      else d.onAlive();
    } catch (e) {
      d.onError("runtime check", e);
    }
  }

  /** Check every `intervalMs` until the returned function is called. */
  start(intervalMs = CHECK_INTERVAL_MS): () => void {
    const timer = setInterval(() => this.check(), intervalMs);
    return () => clearInterval(timer);
  }
}

/** Push the delta since `last` into a window of `size` checks; returns the new last. */
function slide(window: bigint[], now: bigint, last: bigint, size = WINDOW_CHECKS): bigint {
  window.push(now - last);
  if (window.length > size) window.shift();
  return now;
}

function sum(v: bigint[]): bigint {
  return v.reduce((a, b) => a + b, 0n);
}

/**
 * Sections still attached. Pinned links are checked through their pins (a
 * removed pin is a lost hook: the link dies with this process); an
 * unpinned engine holds its links itself, so they are what it attached.
 */
export function attachedNow(engine: Engine): string[] {
  if (!engine.pinRoot) return engine.attachedSections();
  return engine.attach.filter((a) => {
    if (a.status !== "attached") return false;
    try {
      Deno.lstatSync(`${engine.pinRoot}/links/${a.program}`);
      return true;
    } catch {
      return false;
    }
  }).map((a) => a.section);
}

/** entries / max_entries of every rule map (two generations share a map during an apply). */
export function mapUtilisation(engine: Engine): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of RULE_MAP_NAMES) {
    const m: BpfMap = engine.obj.map(name);
    out[name] = m.maxEntries > 0 ? m.count() / m.maxEntries : 0;
  }
  return out;
}
