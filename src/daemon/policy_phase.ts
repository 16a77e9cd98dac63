/**
 * The start's policy phase (docs/architecture.md, step 5b), after the
 * engine and before any claim of enforcement: the stored policy and live
 * rules into the maps — written into fresh maps, or compared with re-adopted
 * pins and repaired (DaemonPolicy.restore) — then the file given with
 * `run --policy`, unless it is the applied one. What went wrong comes back
 * from bringPolicy as blockers; restoreAtStart lets the gate decide what
 * they mean (afterPolicyProblem in gate.ts). runPolicyReapply is what
 * SIGHUP does with `run --policy` afterwards.
 *
 * @module
 */
import { AEGIS_CFG_AUDIT_ONLY } from "../bpf/abi_gen.ts";
import { type Engine, uninstallPins } from "../bpf/engine.ts";
import type { BpfMap } from "../bpf/map.ts";
import { AegisError } from "../errors.ts";
import type { Blocker } from "../contracts.ts";
import { type AppliedParse, PolicyRejectedError } from "../policy/store.ts";
import { literal, log } from "../log.ts";
import { afterPolicyProblem, policyBlocker, refusalMessage } from "./gate.ts";
import type { DaemonPolicy } from "./live.ts";
import type { DaemonOptions } from "./options.ts";
import type { StartDecision } from "./probe_gate.ts";
import type { StartParse } from "./stored.ts";
import type { AgentStatus } from "./status.ts";

export interface PolicyPhaseOptions {
  /** the engine took over pins of an earlier agent */
  readopted: boolean;
  /** run --require-signature */
  requireSignature: boolean;
  /** run --policy FILE */
  runPolicy?: string;
  /** policy.applied as parsed at start (parseAppliedPolicy): the restore's, when still those bytes */
  parsed?: AppliedParse | null;
}

/** The phase: [] when the maps hold the policy the start was given. */
export async function bringPolicy(policy: DaemonPolicy, o: PolicyPhaseOptions): Promise<Blocker[]> {
  const problems: Blocker[] = [];
  try {
    await policy.restore(o.requireSignature, o.readopted, o.parsed ?? null);
  } catch (e) {
    problems.push(policyBlocker(
      "POLICY_RESTORE_FAILED",
      `the applied policy could not be restored into the kernel: ${
        e instanceof Error ? e.message : e
      }`,
    ));
  }
  if (o.runPolicy) {
    // after a failed restore the maps do not hold what the state files say:
    // apply the file even when it is "the applied one"
    const restoreFailed = problems.length > 0;
    const failed = await applyRunPolicy(policy, o.runPolicy, o.requireSignature, restoreFailed);
    if (failed) problems.push(policyBlocker("RUN_POLICY_FAILED", failed));
    else if (restoreFailed) {
      // the policy the start was given is in force: the stored one no longer matters
      log("run").warn(
        literal(`${problems[0].message}; --policy ${o.runPolicy} is applied in its place`),
      );
      problems.length = 0;
    }
  }
  return problems;
}

/**
 * `run --policy FILE` (at start and on SIGHUP): apply it unless it is the
 * applied policy; what went wrong, or null.
 */
export async function applyRunPolicy(
  policy: DaemonPolicy,
  file: string,
  requireSignature: boolean,
  force = false,
): Promise<string | null> {
  try {
    const r = await policy.applyFile(file, requireSignature, force);
    if (!r) log("run").info(literal(`--policy ${file} is the applied policy already`));
    return null;
  } catch (e) {
    const issues = e instanceof PolicyRejectedError && e.issues.length > 0
      ? ` (${e.issues.slice(0, 3).join("; ")}${e.issues.length > 3 ? "; …" : ""})`
      : "";
    return `--policy ${file} could not be applied: ${e instanceof Error ? e.message : e}${issues}`;
  }
}

export interface RestoreInputs {
  opts: Pick<DaemonOptions, "enforceGateMode" | "requireSignature" | "policy">;
  policy: DaemonPolicy;
  engine: Engine;
  /** the engine's switches: audit-only when the start cannot have its policy */
  cfg: BpfMap;
  /** policy.applied as parsed at start (taken here, then forgotten) */
  parse: StartParse;
  decision: StartDecision;
  /** the gate's blockers (a refusal lists them all) */
  blockers: Blocker[];
}

/**
 * The phase as the start runs it: the policy bound to the engine, then
 * bringPolicy; each problem is logged and reported, and the gate decides:
 * a refusal removes the pins this start made, an enforcing start that may
 * go on reports only (AUDIT_FALLBACK). Returns the decision to start with.
 */
export async function restoreAtStart(
  i: RestoreInputs,
  status: AgentStatus,
): Promise<StartDecision> {
  const { policy, engine } = i;
  policy.attach(engine); // the restore below watches the policy's missing paths
  const problems = await bringPolicy(policy, {
    readopted: engine.readopted,
    requireSignature: i.opts.requireSignature === true,
    runPolicy: i.opts.policy,
    parsed: i.parse.take(),
  });
  let decision = i.decision;
  for (const b of problems) {
    log("run").error(literal(b.message));
    status.addBlocker(b);
    if (b.code === "POLICY_RESTORE_FAILED") status.restoreFailed();
    const next = afterPolicyProblem(decision, i.opts.enforceGateMode, b.message);
    if (next.refuse) {
      // nothing this start attached may stay behind a refusal; pins it took
      // over keep enforcing what they held (the previous policy)
      if (engine.pinRoot && !engine.readopted) uninstallPins(engine.pinRoot);
      status.rebuild();
      throw new AegisError("ENFORCE_GATE", refusalMessage([...i.blockers, b]));
    }
    if (decision.enforcing && !next.decision.enforcing) {
      i.cfg.setU64(AEGIS_CFG_AUDIT_ONLY, 1n); // the programs stay attached and only report
    }
    decision = next.decision;
  }
  return decision;
}

/** What SIGHUP does once the start applied `run --policy FILE` (sighup.ts). */
export function runPolicyReapply(
  policy: DaemonPolicy,
  opts: Pick<DaemonOptions, "requireSignature" | "policy">,
  status: AgentStatus,
): () => Promise<void> {
  return async () => {
    if (!opts.policy) return;
    const failed = await applyRunPolicy(policy, opts.policy, opts.requireSignature === true);
    if (failed) log("run").error(literal(`SIGHUP: ${failed}; the current policy keeps enforcing`));
    else status.clearBlocker("RUN_POLICY_FAILED", `--policy ${opts.policy} is applied`);
    status.rebuild();
  };
}
