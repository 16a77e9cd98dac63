/**
 * The applied policy as the capability report shows it: whether one is
 * applied, its SHA-256 and version, its needs, and the path rules whose
 * files do not exist yet. Read from the state directory's snapshots
 * (policy.applied, policy.sha256); read-only.
 *
 * @module
 */
import { AegisError } from "../errors.ts";
import type { Policy } from "../policy/model.ts";
import { parsePolicy } from "../policy/parse.ts";
import { BUNDLE_MAGIC } from "../policy/bundle.ts";
import { readRecordedSha } from "../policy/store.ts";
import { NO_NEEDS, type PolicyNeeds, policyNeeds, policyRuleFacts } from "./needs.ts";
import { NO_POLICY, type PolicyStatus } from "./report.ts";

/** Path rules whose file does not exist (stat follows symlinks). */
export function unresolvedPaths(p: Policy, exists: (path: string) => boolean): string[] {
  const paths = [...p.denyPath, ...p.protectPath].map((e) => e.path);
  return [...new Set(paths)].filter((path) => !exists(path)).sort();
}

function fileExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The body of a policy file or of a signed bundle (after its `---` line). */
export function policyBody(text: string): string {
  if (!text.startsWith(BUNDLE_MAGIC)) return text;
  const i = text.indexOf("\n---\n");
  return i < 0 ? "" : text.slice(i + 5);
}

/** The applied-policy snapshot of a state directory. */
export function appliedSnapshotPath(stateDir: string): string {
  return `${stateDir}/policy.applied`;
}

/**
 * The status to report when the snapshot exists but cannot be read or
 * parsed: a policy is applied (the report must not claim none), nothing
 * else is known.
 */
export function unreadablePolicy(stateDir: string): PolicyStatus {
  return {
    applied: true,
    sha256: null,
    version: null,
    unresolved: [],
    snapshot: { path: appliedSnapshotPath(stateDir), present: true, parse_ok: false },
  };
}

/**
 * Status and needs of the applied policy in `stateDir`. No policy applied
 * (no snapshot) is NO_POLICY with no needs; an unreadable or corrupt
 * snapshot is an AegisError (the report must not claim no policy).
 */
export function readAppliedPolicy(
  stateDir: string,
  exists: (path: string) => boolean = fileExists,
): { status: PolicyStatus; needs: PolicyNeeds } {
  const file = appliedSnapshotPath(stateDir);
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return {
        status: { ...NO_POLICY, snapshot: { path: file, present: false, parse_ok: false } },
        needs: NO_NEEDS,
      };
    }
    throw new AegisError(
      "POLICY_STATE_UNREADABLE",
      `Cannot read ${file}: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  const parsed = parsePolicy(policyBody(text), file);
  if (!parsed.policy) {
    throw new AegisError(
      "POLICY_STATE_CORRUPT",
      `${file} no longer parses (${parsed.errors[0]?.message ?? "unknown error"}); ` +
        `apply the policy again with "aegisbpf policy apply"`,
    );
  }
  // shown only when it is what an apply writes (64 lower-case hex); none kept
  // (older state) or anything else is no hash
  const recorded = readRecordedSha(stateDir);
  const sha = recorded !== null && /^[0-9a-f]{64}$/.test(recorded) ? recorded : null;
  return {
    status: {
      applied: true,
      sha256: sha,
      version: parsed.policy.version,
      unresolved: unresolvedPaths(parsed.policy, exists),
      snapshot: { path: file, present: true, parse_ok: true },
      rules: policyRuleFacts(parsed.policy),
    },
    needs: policyNeeds(parsed.policy),
  };
}
