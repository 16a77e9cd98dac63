/**
 * Start order steps 6 and 7 (docs/architecture.md, "The daemon"): the
 * state machine, the first enforcement proof where the kernel is meant to
 * deny (./proofs.ts), the first state_change, events flowing, the start
 * announced; --strict-degrade exits here when the start is not what was
 * asked; then the service manager hears READY.
 *
 * @module
 */
import type { StartClock } from "./start_clock.ts";
import type { Engine } from "../bpf/engine.ts";
import { AegisError } from "../errors.ts";
import { literal, log } from "../log.ts";
import type { Shim } from "../native/mod.ts";
import { proofProblem, type SelfTestCounter } from "../proof/prover.ts";
import { PostureStateMachine, stateChangeEvent } from "../posture/state.ts";
import type { AegisPaths, Blocker, EventBus } from "../contracts.ts";
import type { EventRing } from "./event_ring.ts";
import type { DaemonPolicy } from "./live.ts";
import type { ServiceNotifier } from "./notify.ts";
import type { DaemonOptions } from "./options.ts";
import type { StartDecision } from "./probe_gate.ts";
import { type Proofs, wireProofs } from "./proofs.ts";
import type { Cleanups } from "./shutdown.ts";
import type { AgentStatus } from "./status.ts";

/**
 * The state machine: every transition is a state_change event, a log line,
 * the service manager's status and a rewritten report.
 */
export function createMachine(
  bus: EventBus,
  notifier: ServiceNotifier | null,
  status: AgentStatus,
): PostureStateMachine {
  const lg = log("run");
  const machine = new PostureStateMachine({
    enforceRequested: status.init.enforceRequested,
    strictMode: status.init.strictMode,
    onTransition: (t) => {
      bus.emit(stateChangeEvent(t));
      const line = `runtime_state ${
        t.from ?? "(start)"
      } -> ${t.to} (${t.reason_code}): ${t.detail}`;
      if (t.to === "ENFORCE") lg.info(literal(line), { ...t });
      else lg.warn(literal(line), { ...t });
      notifier?.status(`${t.to} (${t.reason_code})`);
      status.rebuild();
    },
  });
  status.attach({ machine });
  return machine;
}

export interface ProofInputs {
  opts: Pick<DaemonOptions, "lsmHook">;
  paths: Pick<AegisPaths, "runtimeDir" | "stateDir">;
  engine: Engine;
  shim: Shim;
  /** where the canary cgroup goes (SelfCgroup.parent) */
  canaryParent: string;
  selfTest: SelfTestCounter;
  policy: DaemonPolicy;
}

/**
 * In ENFORCE only (where the kernel is meant to deny): wire the proofs and
 * run their first round; what failed, or null.
 */
export async function firstProof(
  i: ProofInputs,
  status: AgentStatus,
  cleanups: Cleanups,
): Promise<{ proofs: Proofs; problem: string | null }> {
  const proofs = wireProofs({
    engine: i.engine,
    shim: i.shim,
    runtimeDir: i.paths.runtimeDir,
    stateDir: i.paths.stateDir,
    canaryParent: i.canaryParent,
    lsmHook: i.opts.lsmHook,
    intervalSeconds: status.init.proofInterval,
    selfTest: i.selfTest,
    emergencyActive: () => status.emergencyActive(),
    targets: () => i.policy.fileRuleTargets(),
    onRound: () => status.rebuild(),
  });
  status.attach({ proofs });
  cleanups.push(async () => {
    proofs.close();
    // a round's probes are native calls in flight: they must return before the
    // engine and the shim close (a SIGTERM right after an apply lands in one)
    await proofs.prover.settled();
  });
  const res = await proofs.prover.round();
  // just ran: only a failure counts (its age is no question here)
  const problem = proofProblem(proofs.prover.surfaces, res, 0, Number.MAX_SAFE_INTEGER) ??
    proofs.verifier.problem();
  return { proofs, problem };
}

/** The first transition: the decision, unless the proof failed; a broken ring degrades. */
export function firstPosture(
  machine: PostureStateMachine,
  decision: StartDecision,
  proofFailure: string | null,
  ring: EventRing,
): void {
  if (proofFailure) {
    machine.transition("DEGRADED", "ENFORCEMENT_PROOF_FAILED", proofFailure);
  } else {
    machine.transition(decision.state, decision.reason, decision.detail);
  }
  if (ring.problem && decision.state !== "AUDIT_FALLBACK") {
    machine.transition("DEGRADED", ring.problem.reason, ring.problem.detail);
  }
}

/**
 * The start's log line; --strict-degrade refuses a start that is not
 * what was asked; otherwise the service manager hears READY (and STOPPING
 * at shutdown). Returns the hooks the runtime checks expect attached.
 */
export function announceStart(
  machine: PostureStateMachine,
  engine: Engine,
  decision: StartDecision,
  blockers: Blocker[],
  notifier: ServiceNotifier | null,
  cleanups: Cleanups,
  clock: StartClock,
): string[] {
  const hooks = engine.attachedSections();
  clock.mark("started");
  log("run").info(
    literal(
      `agent started, ${machine.state}: ${hooks.join(", ")}; ` +
        (engine.pinRoot ? `pins under ${engine.pinRoot}` : "not pinned") +
        (engine.readopted ? " (re-adopted)" : "") +
        (blockers.length > 0 ? `; blockers: ${blockers.map((b) => b.code).join(", ")}` : "") +
        (machine.state === "ENFORCE_SIGNAL"
          ? "; offenders are killed after the fact (SIGKILL), enforce_capable stays false"
          : "") +
        `; started in ${(clock.total() / 1000).toFixed(1)} s`,
    ),
    {
      state: machine.state,
      hooks,
      pins: engine.pinRoot,
      readopted: engine.readopted,
      start_ms: clock.phases(),
    },
  );
  if (machine.shouldExit()) {
    throw new AegisError(
      "STRICT_DEGRADE",
      `--strict-degrade: enforce was requested but the agent is in ${machine.state} ` +
        `(${decision.reason}): exiting`,
    );
  }
  // the policy is restored and the posture decided: the service is up
  notifier?.ready(`${machine.state}: ${hooks.length} hooks`);
  cleanups.push(() => notifier?.stopping("stopping"));
  return hooks;
}
