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
import { LiveRule } from "../policy/live.ts";
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

/** Who answered: the running daemon, or this process from the pinned maps. */
const ViaJson = z.enum(["daemon", "local"]);

/** `block|allow|network deny|cgroup deny clear --json`: the live rules deleted. */
export const RulesClearJson = z.object({
  ok: z.literal(true),
  group: z.enum(["block", "allow", "network", "cgroup_deny"]),
  via: ViaJson,
  /** the live rules deleted (the policy's rules stay) */
  deleted: z.array(LiveRule),
  /** TTL rules the sweep before the clear removed */
  expired: z.array(LiveRule),
}).strict();
export type RulesClearJson = z.infer<typeof RulesClearJson>;

/** One hook's kernel counters (summed over CPUs; the proof's own denies taken out). */
export const HookCountsJson = z.object({
  hook: z.string(),
  invocations: z.number().int(),
  /** denied or signalled */
  blocks: z.number().int(),
  /** a rule matched, only reported (audit mode, emergency disable, break-glass) */
  audits: z.number().int(),
}).strict();

/** Blocks of one rule or cgroup, counted from the block events by the running daemon. */
const TallyRowJson = z.object({ blocks: z.number().int(), audits: z.number().int() });

/** The daemon's count of block events by rule and by cgroup (`stats --detailed`). */
export const BlockTallyJson = z.object({
  /** when the daemon started counting (unix seconds) */
  since_unix: z.number().int(),
  /** block records counted */
  records: z.number().int(),
  by_rule: z.array(
    TallyRowJson.extend({
      rule_id: z.number().int(),
      /** the rule in words (policy line or live rule); null when it no longer exists */
      rule: z.string().nullable(),
    }).strict(),
  ),
  by_cgroup: z.array(
    TallyRowJson.extend({ cgid: z.string(), cgroup_path: z.string().nullable() }).strict(),
  ),
  /** records of rules and of cgroups beyond the tally's bound (4096 each; never dropped) */
  other: z.object({ rules: TallyRowJson.strict(), cgroups: TallyRowJson.strict() }).strict(),
}).strict();
export type BlockTallyJson = z.infer<typeof BlockTallyJson>;

/** `stats --json` */
export const StatsJson = z.object({
  ok: z.literal(true),
  via: ViaJson,
  /** denied or signalled, all hooks */
  blocks: z.number().int(),
  /** only reported, all hooks */
  audits: z.number().int(),
  /** event records lost to a full ring buffer (decisions are unaffected) */
  ringbuf_drops: z.number().int(),
  /** event records the kernel submitted */
  events: z.number().int(),
  hooks: z.array(HookCountsJson),
  /** with --detailed, else null */
  detailed: z.object({
    ringbuf_drops_per_cpu: z.array(z.number().int()),
    /** deny rules that matched a survival-allowlisted inode and were let through */
    survival_allows: z.number().int(),
    signals_sent: z.number().int(),
    /** null without a daemon (it counts them from the events it reads) */
    tally: BlockTallyJson.nullable(),
  }).strict().nullable(),
}).strict();
export type StatsJson = z.infer<typeof StatsJson>;

/** `network stats --json` */
export const NetworkStatsJson = z.object({
  ok: z.literal(true),
  via: ViaJson,
  blocks: z.number().int(),
  audits: z.number().int(),
  /** the network hooks (connect, bind, sendmsg; the tracepoint fallback's connect) */
  hooks: z.array(HookCountsJson),
  /** by rule type and action, counted from events by the daemon; null without one */
  by_type: z.object({
    block: z.record(z.string(), z.number().int()),
    audit: z.record(z.string(), z.number().int()),
  }).strict().nullable(),
}).strict();
export type NetworkStatsJson = z.infer<typeof NetworkStatsJson>;

/** One survival allowlist entry. */
export const SurvivalEntryJson = z.object({
  /** kernel dev encoding (major << 20 | minor) */
  dev: z.number().int(),
  /** "major:minor" */
  device: z.string(),
  ino: z.string(),
  /** a running process's executable with this inode, else null */
  exe: z.string().nullable(),
}).strict();

/** `survival list --json` */
export const SurvivalListJson = z.object({
  ok: z.literal(true),
  via: ViaJson,
  capacity: z.number().int(),
  entries: z.array(SurvivalEntryJson),
}).strict();
export type SurvivalListJson = z.infer<typeof SurvivalListJson>;

/** A running process that the survival allowlist should hold. */
export const SurvivorJson = z.object({
  pid: z.number().int(),
  exe: z.string(),
  dev: z.number().int(),
  ino: z.string(),
}).strict();

/**
 * `survival verify --json` when every survivor running now is on the
 * allowlist (else a SURVIVAL_INCOMPLETE failure whose details are this
 * object without `ok`).
 */
export const SurvivalVerifyJson = z.object({
  ok: z.literal(true),
  via: ViaJson,
  entries: z.number().int(),
  /** survivors running now (pid 1, init, ssh, shells, …: docs/operations.md) */
  survivors: z.array(SurvivorJson),
  /** running survivors whose executable's inode is not on the list */
  missing: z.array(SurvivorJson),
  /** entries no running survivor has (an exited shell, an upgraded binary): harmless */
  stale: z.array(SurvivalEntryJson),
}).strict();
export type SurvivalVerifyJson = z.infer<typeof SurvivalVerifyJson>;

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
  "rules clear": RulesClearJson,
  "stats": StatsJson,
  "network stats": NetworkStatsJson,
  "survival list": SurvivalListJson,
  "survival verify": SurvivalVerifyJson,
} as const;
