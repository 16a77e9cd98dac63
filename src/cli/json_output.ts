/**
 * The JSON the CLI prints with `--json` for the commands whose output is
 * defined here (docs/cli.md, "JSON output"): one object per invocation on
 * stdout, snake_case fields, `ok` first. A failure is {@link JsonFailure}
 * whatever the command. The tests parse real output with these schemas
 * (strict: a field added here is a field documented here).
 *
 * @module
 */
import { z } from "zod";
import { PolicyIssue } from "../policy/model.ts";

/** Any command given `--json` that fails: exit code 1, 2, 3 as without --json. */
export const JsonFailure = z.object({
  ok: z.literal(false),
  error: z.object({
    /** stable machine-readable code, e.g. USAGE, POLICY_INVALID, NOT_RUNNING */
    code: z.string(),
    message: z.string(),
    /** structured details when the error has them (policy errors: the issues) */
    details: z.unknown().optional(),
  }).strict(),
}).strict();
export type JsonFailure = z.infer<typeof JsonFailure>;

/** `details` of a POLICY_INVALID failure: every error and warning, with file and line. */
export const PolicyIssuesDetails = z.object({
  errors: z.array(PolicyIssue),
  warnings: z.array(PolicyIssue),
}).strict();

/** What `policy validate` and `policy lint` both report of the file they read. */
const PolicyFileJson = z.object({
  ok: z.literal(true),
  file: z.string(),
  /** the policy's `version=` */
  version: z.number().int(),
  warnings: z.array(PolicyIssue),
});

/** `policy validate --json` */
export const PolicyValidateJson = PolicyFileJson.extend({
  /** with --verbose: the policy in canonical form */
  canonical: z.string().optional(),
}).strict();

/** `policy lint --json` */
export const PolicyLintJson = PolicyFileJson.extend({
  /** with --fix: where the canonical form was written; else null */
  wrote: z.string().nullable(),
}).strict();

/** `policy export --json` */
export const PolicyExportJson = z.object({
  ok: z.literal(true),
  /** the state-directory snapshot read (policy.applied) */
  file: z.string(),
  version: z.number().int(),
  /** the applied policy in canonical form */
  policy: z.string(),
}).strict();

/** `policy verify --json` */
export const PolicyVerifyJson = z.object({
  ok: z.literal(true),
  file: z.string(),
  /** fingerprint of the trusted key that signed it */
  signer: z.string(),
  /** the bundle's anti-rollback counter */
  policy_version: z.number().int(),
  /** the policy's `version=` */
  version: z.number().int(),
  /** bundle warnings (e.g. the anti-rollback counter could not be read) */
  bundle_warnings: z.array(z.string()),
  warnings: z.array(PolicyIssue),
}).strict();

/** `policy sign --json` */
export const PolicySignJson = z.object({
  ok: z.literal(true),
  file: z.string(),
  /** where the bundle was written */
  out: z.string(),
  policy_version: z.number().int(),
  /** unix seconds */
  timestamp: z.number().int(),
  /** unix seconds */
  expires: z.number().int(),
  expires_in_s: z.number().int(),
  /** the signer's public key (hex), as in the bundle header */
  signer_key: z.string(),
  policy_sha256: z.string(),
}).strict();

/** `keys keygen --json` */
export const KeygenJson = z.object({
  ok: z.literal(true),
  /** the secret key (mode 0600): keep it off the agent hosts */
  key_path: z.string(),
  pub_path: z.string(),
  fingerprint: z.string(),
}).strict();

/** `keys add --json` */
export const KeyAddJson = z.object({
  ok: z.literal(true),
  path: z.string(),
  fingerprint: z.string(),
  /** false: the same key was installed already */
  added: z.boolean(),
}).strict();

/** `break-glass token --json` */
export const BreakGlassTokenJson = z.object({
  ok: z.literal(true),
  node: z.string(),
  out: z.string(),
  /** unix seconds */
  not_before: z.number().int(),
  expires_at: z.number().int(),
}).strict();

/** A rule as explain and simulate name it: a policy line or a live rule. */
const RuleRefJson = z.object({
  origin: z.enum(["policy", "live"]),
  /** the rule id block events carry (policy line, live rule id; 0 for a kernel switch) */
  id: z.number().int(),
  /** policy section, or live group (block, network, allow) */
  section: z.string(),
  text: z.string(),
  file: z.string().nullable(),
  line: z.number().int().nullable(),
  /** live rules: unix ms when it expires, null: until deleted */
  expires: z.number().nullable().optional(),
}).strict();

const OutcomeJson = z.enum(["block", "allow", "no_match", "undetermined"]);

/** One replayed decision (src/policy/decide.ts). */
const DecisionJson = z.object({
  surface: z.enum(["file", "exec", "net", "kernel"]),
  hook: z.string(),
  outcome: OutcomeJson,
  rule: RuleRefJson.nullable(),
  rule_type: z.string().nullable(),
  /** what waived a matched rule: survival, agent, allow_cgroup */
  exempt_by: z.string().nullable(),
  /** the match chain in decision order */
  chain: z.array(
    z.object({
      step: z.string(),
      result: z.enum(["match", "no_match", "exempt", "not_exempt", "skipped", "unknown"]),
      detail: z.string(),
      rule: RuleRefJson.optional(),
    }).strict(),
  ),
  /** facts the kernel knew that the event does not carry, when they change the outcome */
  unknown: z.array(z.object({ fact: z.string(), reason: z.string() }).strict()),
  branches: z.array(
    z.object({
      assume: z.record(z.string(), z.boolean()),
      outcome: z.enum(["block", "allow", "no_match"]),
      rule: RuleRefJson.nullable(),
    }).strict(),
  ),
  enforce: z.string(),
  audit: z.string(),
}).strict();

/** What explain and simulate decided against. */
const RulesSourceJson = z.object({
  policy: z.string().nullable(),
  live_rules: z.number().int(),
  /** path rules that do not resolve on this host (matched by path only) */
  unresolved: z.array(
    z.object({
      line: z.number().int().nullable(),
      section: z.string(),
      what: z.string(),
      reason: z.string(),
    }).strict(),
  ),
}).strict();

const HappenedJson = z.enum(["blocked", "audited", "allowed"]);

/** `explain --json` */
export const ExplainJson = z.object({
  ok: z.literal(true),
  event: z.object({
    line: z.number().int(),
    type: z.string(),
    surface: z.enum(["file", "exec", "net", "kernel"]),
    hook: z.string(),
    action: z.string().nullable(),
    happened: HappenedJson,
    rule_id: z.number().int().nullable(),
    summary: z.string(),
  }).strict(),
  /** the rule the event names, and whether it still exists */
  recorded_rule: z.object({
    id: z.number().int().nullable(),
    kind: z.enum(["policy", "live", "flag", "none"]),
    exists: z.boolean(),
    rules: z.array(RuleRefJson),
    message: z.string(),
  }).strict(),
  /** what the rules decide now */
  decision: DecisionJson,
  /** the rules now block it by the rule the event names */
  agrees: z.boolean(),
  notes: z.array(z.string()),
  rules: RulesSourceJson,
}).strict();

const CountsJson = z.object({
  would_block: z.number().int(),
  would_allow: z.number().int(),
  no_match: z.number().int(),
  undetermined: z.number().int(),
}).strict();

const ExampleJson = z.object({
  line: z.number().int(),
  type: z.string(),
  summary: z.string(),
  happened: HappenedJson,
  recorded_rule_id: z.number().int().nullable(),
  outcome: OutcomeJson,
  rule: RuleRefJson.nullable(),
}).strict();

const LineMessageJson = z.object({ line: z.number().int(), message: z.string() }).strict();

/** `simulate --json` (with --per-event: the last of the JSON lines) */
export const SimulateJson = z.object({
  ok: z.literal(true),
  file: z.string(),
  candidate: z.string(),
  gzip: z.boolean(),
  /** the input could not be read to its end (exit 1); the counts cover what was read */
  input_error: z.string().nullable(),
  rules: RulesSourceJson,
  /** lines read (blank lines not counted) */
  events: z.number().int(),
  decided: z.number().int(),
  by_surface: z.object({
    file: CountsJson,
    exec: CountsJson,
    net: CountsJson,
    kernel: CountsJson,
  }).strict(),
  top_rules: z.array(
    z.object({
      rule: RuleRefJson,
      would_block: z.number().int(),
      would_allow: z.number().int(),
    }).strict(),
  ),
  rules_hit: z.number().int(),
  happened: z.object({
    blocked: z.number().int(),
    audited: z.number().int(),
    allowed: z.number().int(),
  }).strict(),
  newly_blocked: z.object({ count: z.number().int(), examples: z.array(ExampleJson) }).strict(),
  newly_allowed: z.object({ count: z.number().int(), examples: z.array(ExampleJson) }).strict(),
  undetermined: z.object({
    count: z.number().int(),
    by_fact: z.record(z.string(), z.number().int()),
  }).strict(),
  parse_errors: z.object({ count: z.number().int(), first: z.array(LineMessageJson) }).strict(),
  skipped: z.object({
    count: z.number().int(),
    by_type: z.record(z.string(), z.number().int()),
  }).strict(),
  unknown_types: z.object({
    count: z.number().int(),
    by_type: z.record(z.string(), z.number().int()),
    first: z.array(LineMessageJson),
  }).strict(),
}).strict();

/** Each output above by its command, for the shipped JSON Schema (build/gen_cli_schemas.ts). */
export const CLI_JSON_OUTPUTS = {
  "failure": JsonFailure,
  "policy validate": PolicyValidateJson,
  "policy lint": PolicyLintJson,
  "policy export": PolicyExportJson,
  "policy verify": PolicyVerifyJson,
  "policy sign": PolicySignJson,
  "keys keygen": KeygenJson,
  "keys add": KeyAddJson,
  "break-glass token": BreakGlassTokenJson,
  "explain": ExplainJson,
  "simulate": SimulateJson,
} as const;
