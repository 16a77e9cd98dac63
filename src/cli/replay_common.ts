/**
 * What `explain` and `simulate` share: the rule set from a policy file or
 * from the state directory (applied policy and live rules), the injectable
 * environment and output, and the text helpers.
 *
 * @module
 */
import { AegisError } from "../errors.ts";
import { writeStderr, writeStdout } from "../log.ts";
import type { CompileEnv } from "../policy/compile.ts";
import { hostCompileEnv } from "../policy/host_env.ts";
import { LiveRules } from "../policy/live.ts";
import type { PolicyIssue } from "../policy/model.ts";
import { MAX_FILE_BYTES, parsePolicy } from "../policy/parse.ts";
import type { RuleRef, UnresolvedRule } from "../policy/ruleset.ts";
import { type RuleSet, ruleSetFromPolicy, withLiveRules } from "../policy/ruleset.ts";
import { FileReadError, readFileCapped } from "../util/read_file.ts";

/**
 * Text for a terminal: control characters (an event's path, comm or cgroup
 * may hold an escape sequence; a parse error quotes the input) become \xNN.
 * JSON output needs no such care (JSON.stringify escapes them).
 */
export function printable(s: string): string {
  return s.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** A policy with errors (code POLICY_INVALID, every issue in `details`). */
export class PolicyInvalidError extends AegisError {
  readonly details: { errors: PolicyIssue[]; warnings: PolicyIssue[] };
  constructor(file: string, errors: PolicyIssue[], warnings: PolicyIssue[]) {
    super("POLICY_INVALID", `${file}: ${errors.length} error(s) in the policy`);
    this.details = { errors, warnings };
  }
}

/** What the rules were loaded from, for the output. */
export interface RulesSource {
  policy: string | null;
  live_rules: number;
  unresolved: { line: number | null; section: string; what: string; reason: string }[];
}

/** Where explain and simulate get their environment (tests replace it). */
export interface ReplayDeps {
  env?: CompileEnv;
  stateDir?: string;
  now?: number;
  /** stdout (default writeStdout) */
  write?: (text: string) => void;
  /** who must own live_rules.json (default 0, root) */
  ownerUid?: number;
  /** what "-" reads (default Deno.stdin.readable) */
  stdin?: () => ReadableStream<Uint8Array>;
}

/** Parse a policy file (bounded read) into a rule set. */
export function loadPolicyRules(
  file: string,
  env: CompileEnv,
  json: boolean,
): { rules: RuleSet; unresolved: UnresolvedRule[] } {
  const bytes = readFileCapped(file, {
    maxBytes: MAX_FILE_BYTES,
    what: "policy file",
    code: "USAGE",
    tooLargeCode: "POLICY_INVALID",
  });
  const r = parsePolicy(bytes, file);
  if (r.errors.length > 0 || !r.policy) {
    if (!json) {
      for (const i of r.errors) writeStderr(`${i.file}:${i.line}: error: ${i.message}\n`);
    }
    throw new PolicyInvalidError(file, r.errors, r.warnings);
  }
  return ruleSetFromPolicy(r.policy, file, env);
}

/** The applied policy and the live rules of the state directory. */
export function loadAppliedRules(
  stateDir: string,
  env: CompileEnv,
  json: boolean,
  ownerUid = 0,
): { rules: RuleSet; unresolved: UnresolvedRule[] } {
  const file = `${stateDir}/policy.applied`;
  let built;
  try {
    built = loadPolicyRules(file, env, json);
  } catch (e) {
    if (e instanceof FileReadError && e.cause instanceof Deno.errors.NotFound) {
      throw new AegisError(
        "NO_APPLIED_POLICY",
        `no applied policy at ${file} (nothing was applied on this host, or AEGIS_STATE_DIR ` +
          "points elsewhere): give the policy to explain against with --policy FILE",
      );
    }
    throw e;
  }
  const live = new LiveRules({
    maps: () => {
      throw new Error("explain reads the live-rule store only");
    },
    storePath: `${stateDir}/live_rules.json`,
    resolveCgroup: env.resolveCgroup,
    ownerUid,
  });
  withLiveRules(built.rules, live.rules());
  return built;
}

export function sourceOf(rs: RuleSet, unresolved: UnresolvedRule[]): RulesSource {
  return {
    policy: rs.source.policy,
    live_rules: rs.source.live,
    unresolved: unresolved.map((u) => ({
      line: u.ref.line,
      section: u.ref.section,
      what: u.ref.text,
      reason: u.reason,
    })),
  };
}

export function ruleText(r: RuleRef | null): string {
  if (!r) return "(unknown rule)";
  if (r.origin === "live") {
    const ttl = r.expires === undefined || r.expires === null ? "" : ` (TTL)`;
    return `live rule ${r.id}: ${r.section} ${r.text}${ttl}`;
  }
  return `${r.file}:${r.line} [${r.section}] ${r.text}`;
}

/** The environment, output and stdin of a command (tests inject them). */
export function commandIo(deps: ReplayDeps): {
  env: () => CompileEnv;
  write: (s: string) => void;
  stdin: () => ReadableStream<Uint8Array>;
  json: (v: unknown) => void;
} {
  const write = deps.write ?? writeStdout;
  return {
    env: () => deps.env ?? hostCompileEnv(),
    write,
    stdin: deps.stdin ?? (() => Deno.stdin.readable),
    json: (v) => write(JSON.stringify(v, null, 2) + "\n"),
  };
}
