/**
 * The start's look at the state directory (docs/architecture.md, "The
 * daemon"), before the native library: an apply a crash interrupted is
 * finished or undone, policy.applied is parsed once (for the map sizes
 * here and for the restore, policy_phase.ts), and the applied policy's
 * needs, status and map sizes are read.
 *
 * @module
 */
import { btrfsBtfPresent } from "../bpf/engine.ts";
import { setBtrfsIdentity } from "../bpf/path_rule.ts";
import { literal, log } from "../log.ts";
import { type CompileEnv, compilePolicy } from "../policy/compile.ts";
import { hostCompileEnv } from "../policy/host_env.ts";
import { mapSizesFor, readMapSizeRequests } from "../policy/sizing.ts";
import { type AppliedParse, parseAppliedPolicy, repairInterruptedApply } from "../policy/store.ts";
import { NO_NEEDS, type PolicyNeeds } from "../posture/needs.ts";
import { readAppliedPolicy, unreadablePolicy } from "../posture/policy_status.ts";
import { NO_POLICY, type PolicyStatus } from "../posture/report.ts";

/** The applied policy snapshot as the start sizes and reports it. */
export interface AppliedSnapshot {
  needs: PolicyNeeds;
  status: PolicyStatus;
  mapSizes: Record<string, number>;
  warning: string | null;
}

/**
 * policy.applied as parsed at start, handed to the restore once: a large
 * policy's parse is megabytes, not kept for the agent's life.
 */
export class StartParse {
  #parse: AppliedParse | null;
  constructor(parse: AppliedParse | null) {
    this.#parse = parse;
  }
  take(): AppliedParse | null {
    const p = this.#parse;
    this.#parse = null;
    return p;
  }
}

/** Make the state directory, repair an interrupted apply, read the applied policy. */
export async function readStoredPolicy(
  stateDir: string,
): Promise<{ parse: StartParse; applied: AppliedSnapshot }> {
  const lg = log("run");
  Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const repaired = await repairInterruptedApply(stateDir);
  if (repaired) lg.warn(literal(repaired));
  const parse = await parseAppliedPolicy(stateDir);
  const applied = appliedPolicy(stateDir, parse);
  if (applied.warning) lg.warn(literal(applied.warning));
  return { parse: new StartParse(parse), applied };
}

/**
 * The applied policy snapshot: what it needs, its status, the map sizes it
 * asks for (from `parse`, policy.applied as parsed at start).
 */
export function appliedPolicy(stateDir: string, parse: AppliedParse | null): AppliedSnapshot {
  // the programs about to load key btrfs by subvolume when the module's BTF is there
  setBtrfsIdentity(btrfsBtfPresent());
  const env = hostCompileEnv();
  let needs = NO_NEEDS;
  let status = NO_POLICY;
  let warning: string | null = null;
  try {
    ({ needs, status } = readAppliedPolicy(stateDir));
  } catch (e) {
    // the report must not claim "no policy"; the pinned rules keep enforcing
    status = unreadablePolicy(stateDir);
    warning = `${e instanceof Error ? e.message : e}; the policy's needs are unknown until it ` +
      `is applied again`;
  }
  // sized without touching its files: every path counts as an inode of its own
  // (an upper bound). The restore resolves them for real, once: a 65k-path
  // policy compiled twice at start cost a second of stat() calls
  let ino = 0;
  const sizing: CompileEnv = {
    ...env,
    resolvePath: (path) => ({ status: "resolved", path, canonical: path, dev: 0, ino: ++ino }),
  };
  const policy = parse?.result.policy;
  const compiled = policy ? compilePolicy(policy, sizing).compiled : null;
  return {
    needs,
    status,
    mapSizes: mapSizesFor(compiled, [], readMapSizeRequests(stateDir)),
    warning,
  };
}

/**
 * The snapshot, rule counts and needs of the policy an apply just wrote (the
 * report's `policy` counts, and what its blockers are computed from); no
 * counts and the start's needs (null) when it cannot be read back.
 */
export function appliedFacts(
  stateDir: string,
): Pick<PolicyStatus, "snapshot" | "rules"> & { needs: PolicyNeeds | null } {
  try {
    // no stat() of its paths: the live policy tracks what is unresolved
    const { status, needs } = readAppliedPolicy(stateDir, () => true);
    return { snapshot: status.snapshot, rules: status.rules, needs };
  } catch {
    return { ...unreadablePolicy(stateDir), needs: null };
  }
}
