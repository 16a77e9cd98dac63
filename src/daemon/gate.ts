/**
 * The enforce gate, pure: from what the probes found and what the operator
 * asked for, the posture to start in — or a refusal (fail-closed). Tested
 * on fixtures (gate_test.ts); the daemon applies it.
 *
 * @module
 */
import { AegisError, NativeCallError, VerifierError } from "../errors.ts";
import type { Blocker, ReasonCode, RuntimeState } from "../contracts.ts";

export const GATE_MODES = ["fail-closed", "audit-fallback"] as const;
export type GateMode = (typeof GATE_MODES)[number];

/** The reason code for an engine that failed to start. */
export function engineFailure(e: unknown): { reason: ReasonCode; blocker: Blocker } {
  if (e instanceof NativeCallError && e.call === "aegis_obj_load" && e.errno === 1) {
    return {
      reason: "BPF_LOAD_FAILED",
      blocker: {
        code: "BPF_LSM_DISABLED",
        message: `the kernel refuses to load LSM programs (EPERM: ${e.message})`,
        remedy: "boot with bpf in lsm= (e.g. lsm=lockdown,capability,landlock,yama,apparmor,bpf) " +
          "and check kernel lockdown and any hypervisor or container restriction",
      },
    };
  }
  if (e instanceof VerifierError) {
    return {
      reason: "BPF_VERIFIER_REJECT",
      blocker: {
        code: "CAPABILITY_AUDIT_ONLY",
        message: e.message,
        remedy: "report the verifier log (aegisbpf probe --json and the agent's log) upstream; " +
          "this kernel is not supported for enforcement",
      },
    };
  }
  if (e instanceof AegisError && e.code === "ATTACH_CONTRACT_MISMATCH") {
    return {
      reason: "ATTACH_CONTRACT_MISMATCH",
      blocker: {
        code: "CAPABILITY_AUDIT_ONLY",
        message: e.message,
        remedy: "a required hook did not attach: check aegisbpf probe for the hook table",
      },
    };
  }
  return {
    reason: "BPF_LOAD_FAILED",
    blocker: {
      code: "CAPABILITY_AUDIT_ONLY",
      message: e instanceof Error ? e.message : String(e),
      remedy: "see the agent's log and aegisbpf doctor",
    },
  };
}

/** The posture decision before anything is attached (pure; tested on fixtures). */
export interface GateDecision {
  /** null: refuse to start (fail-closed) */
  state: RuntimeState | null;
  reason: ReasonCode;
  engine: "lsm" | "fallback";
  /** programs deny (LSM enforce) or kill (signal fallback) */
  enforcing: boolean;
  detail: string;
}

/**
 * Decide the posture from the request and what is known before the engine
 * starts. `lsmUsable` is the probe's verdict on BPF LSM (listed, loads,
 * attaches); `blockers` are every enforce blocker found.
 */
export function decideGate(input: {
  audit: boolean;
  breakGlass: boolean;
  gateMode: GateMode;
  signalFallback: boolean;
  lsmUsable: boolean;
  tracepoints: boolean;
  blockers: Blocker[];
}): GateDecision {
  const engine = input.lsmUsable ? "lsm" : "fallback";
  const list = input.blockers.map((b) => b.code).join(", ");
  if (input.breakGlass) {
    return {
      state: "AUDIT_FALLBACK",
      reason: "BREAK_GLASS_ACTIVE",
      engine,
      enforcing: false,
      detail: "break-glass is active: forced audit",
    };
  }
  if (input.audit) {
    return {
      state: "AUDIT_FALLBACK",
      reason: "STARTUP_AUDIT_MODE",
      engine,
      enforcing: false,
      detail: "started with --audit: observing only",
    };
  }
  if (input.blockers.length === 0 && input.lsmUsable) {
    return {
      state: "ENFORCE",
      reason: "STARTUP_ENFORCE_READY",
      engine: "lsm",
      enforcing: true,
      detail: "BPF LSM active, every required hook present",
    };
  }
  // signals stand in for BPF LSM only: any other blocker still refuses
  const lsmOnly = input.blockers.every((b) =>
    b.code === "BPF_LSM_DISABLED" || b.code === "CAPABILITY_AUDIT_ONLY"
  );
  if (input.signalFallback && !input.lsmUsable && input.tracepoints && lsmOnly) {
    return {
      state: "ENFORCE_SIGNAL",
      reason: "ENFORCE_SIGNAL_FALLBACK",
      engine: "fallback",
      enforcing: true,
      detail: `no BPF LSM (${list}): offenders are killed after the fact (SIGKILL)`,
    };
  }
  const reason: ReasonCode = input.blockers.some((b) => b.code === "NETWORK_HOOK_UNAVAILABLE")
    ? "NETWORK_HOOK_UNAVAILABLE"
    : input.blockers.some((b) => b.code === "EXEC_IDENTITY_UNAVAILABLE")
    ? "EXEC_IDENTITY_UNAVAILABLE"
    : "CAPABILITY_AUDIT_ONLY";
  if (input.gateMode === "fail-closed") {
    return { state: null, reason, engine, enforcing: false, detail: `enforce blockers: ${list}` };
  }
  return {
    state: "AUDIT_FALLBACK",
    reason,
    engine,
    enforcing: false,
    detail: `enforce blockers: ${list}; continuing in audit (gate audit-fallback)`,
  };
}

/** The refusal an operator reads: every blocker with its remedy. */
export function refusalMessage(blockers: Blocker[]): string {
  return "Refusing to start in enforce mode (gate fail-closed). Blockers:\n" +
    blockers.map((b) => `  - ${b.code}: ${b.message}\n    remedy: ${b.remedy}`).join("\n") +
    "\nUse --audit to observe only, --enforce-gate-mode=audit-fallback to accept a " +
    "reduced-security posture, or --enforce-fallback=signal to kill offenders instead.";
}

/** A start that cannot have the policy it was given: the blocker that says so, with its remedy. */
export function policyBlocker(
  code: "POLICY_RESTORE_FAILED" | "RUN_POLICY_FAILED",
  detail: string,
): Blocker {
  return {
    code,
    message: detail,
    remedy: code === "POLICY_RESTORE_FAILED"
      ? "apply a good policy (aegisbpf policy apply FILE), then restart the agent: an agent " +
        "that started without its policy reports only until it starts again"
      : "fix the file given with --policy (aegisbpf policy lint FILE), then restart the agent " +
        "(or send SIGHUP to apply it; the agent reports only until it restarts)",
  };
}

/**
 * What a policy blocker found after the engine started does to an
 * enforcing start: fail-closed refuses; audit-fallback continues in
 * AUDIT_FALLBACK (reason POLICY_APPLY_FAILED); a start that does not
 * enforce anyway goes on as decided.
 */
export function afterPolicyProblem<D extends GateDecision>(
  decision: D,
  mode: GateMode,
  detail: string,
): { refuse: true } | { refuse: false; decision: D } {
  if (!decision.enforcing) return { refuse: false, decision };
  if (mode === "fail-closed") return { refuse: true };
  return {
    refuse: false,
    decision: {
      ...decision,
      state: "AUDIT_FALLBACK",
      reason: "POLICY_APPLY_FAILED",
      enforcing: false,
      detail,
    },
  };
}
