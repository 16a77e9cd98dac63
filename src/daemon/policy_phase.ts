/**
 * The start's policy phase (docs/architecture.md, step 5b), after the
 * engine and before any claim of enforcement: the stored policy and live
 * rules into the maps — written into fresh maps, or compared with re-adopted
 * pins and repaired (DaemonPolicy.restore) — then the file given with
 * `run --policy`, unless it is the applied one. What went wrong comes back
 * as blockers; the daemon lets the gate decide what they mean
 * (afterPolicyProblem in gate.ts).
 *
 * @module
 */
import type { Blocker } from "../contracts.ts";
import { type AppliedParse, PolicyRejectedError } from "../policy/store.ts";
import { literal, log } from "../log.ts";
import { policyBlocker } from "./gate.ts";
import type { DaemonPolicy } from "./live.ts";

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
