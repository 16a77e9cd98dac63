/**
 * Start order step 8 (docs/architecture.md, "The daemon"): the runtime
 * checks every second (./monitor.ts over the readers wired here: the
 * engine's counters and hooks, the proofs, the live rules' sweep, the
 * event ring), until shutdown. --strict-degrade stops the agent through
 * `stop`.
 *
 * @module
 */
import { AEGIS_CNT_RINGBUF_DROPS } from "../bpf/abi_gen.ts";
import { type Engine, MAP_HOOK_STATS } from "../bpf/engine.ts";
import type { BpfMap } from "../bpf/map.ts";
import type { Liveness } from "../http/probe.ts";
import { literal, log } from "../log.ts";
import { blockTotals } from "../metrics/render.ts";
import { proofProblem, type SelfTestCounter } from "../proof/prover.ts";
import type { PostureStateMachine } from "../posture/state.ts";
import type { RuntimeState } from "../contracts.ts";
import type { EventRing } from "./event_ring.ts";
import type { DaemonPolicy } from "./live.ts";
import {
  attachedNow,
  CHECK_INTERVAL_MS,
  mapUtilisation,
  type MonitorDeps,
  RuntimeMonitor,
} from "./monitor.ts";
import type { ServiceNotifier } from "./notify.ts";
import type { Proofs } from "./proofs.ts";
import type { Cleanups } from "./shutdown.ts";
import type { AgentStatus } from "./status.ts";

export interface CheckInputs {
  engine: Engine;
  /** the engine's per-CPU counters (aegis_counters) */
  counters: BpfMap;
  /** the sections attached at start: they must stay attached */
  hooks: string[];
  /** the state a cleared degradation returns to */
  healthyState: RuntimeState;
  machine: PostureStateMachine;
  /** null: the agent does not enforce, nothing to prove */
  proofs: Proofs | null;
  policy: DaemonPolicy;
  ring: EventRing;
  selfTest: SelfTestCounter;
  liveness: Liveness;
  notifier: ServiceNotifier | null;
  denyRateThreshold?: number;
  /** tamper attempts within 60 s that degrade the posture; absent: not judged */
  tamperThreshold?: number;
  /** aborted with "STRICT_DEGRADE" when --strict-degrade and the posture degraded */
  stop: AbortController;
}

/** Sum of a per-CPU counter, or 0 when the map is missing. */
export function counter(map: BpfMap | null, index: number): bigint {
  return map ? map.sumU64(index) : 0n;
}

/** Start the checks; they stop at shutdown. */
export function startChecks(i: CheckInputs, status: AgentStatus, cleanups: Cleanups): void {
  const hookStats = i.engine.obj.map(MAP_HOOK_STATS);
  const { engine, machine, selfTest } = i;
  const monitor = new RuntimeMonitor({
    drops: () => counter(i.counters, AEGIS_CNT_RINGBUF_DROPS),
    blocks: () => {
      const t = blockTotals(hookStats);
      return { denies: t.policy - BigInt(selfTest.total), tamper: t.tamper };
    },
    expectedHooks: [...i.hooks],
    attachedHooks: () => attachedNow(engine),
    mapUtilisation: () => mapUtilisation(engine),
    healthyState: i.healthyState,
    state: () => machine.state!,
    emergencyActive: () => status.emergencyActive(),
    proofs: i.proofs && proofChecks(i.proofs, status.init.proofInterval),
    policyTick: () => i.policy.tick(),
    ringBroken: () => i.ring.broken,
    denyRateThreshold: i.denyRateThreshold,
    tamperThreshold: i.tamperThreshold,
    transition: (w) => machine.transition(w.state, w.reason, w.detail),
    shouldExit: () => machine.shouldExit(),
    onStrictExit: () => i.stop.abort("STRICT_DEGRADE"),
    onAlive: () => {
      i.liveness.beat();
      i.notifier?.watchdog();
    },
    onError: (what, e) =>
      (what === "live rule sweep" ? log("policy") : log("run")).error(
        literal(`${what} failed: ${e instanceof Error ? e.message : e}`),
      ),
  });
  cleanups.push(monitor.start(CHECK_INTERVAL_MS));
}

/** The proofs as the checks see them: their schedule and their verdict. */
function proofChecks(proofs: Proofs, proofInterval: number): MonitorDeps["proofs"] {
  return {
    tick: (emergencyOn) => emergencyOn ? proofs.prover.expedite() : proofs.prover.tick(),
    // a failed proof always counts; staleness only while proofs run
    // (not off, not during emergency disable, no round in flight)
    problem: (emergencyOn) =>
      proofProblem(
        proofs.prover.surfaces,
        proofs.prover.results,
        Math.floor(Date.now() / 1000),
        proofInterval > 0 && !emergencyOn && !proofs.prover.running
          ? proofInterval
          : Number.MAX_SAFE_INTEGER,
      ) ?? proofs.verifier.problem(),
  };
}
