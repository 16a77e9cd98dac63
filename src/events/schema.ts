/**
 * The zod schema of an event line in the default format (`--event-format
 * json`, and every /events message): the one definition behind
 * schemas/events.schema.json (build/gen_schemas.ts) and the tests that parse
 * real events. docs/telemetry.md describes the fields.
 *
 * Kernel events and state_change are described field by field; the agent's
 * other events (control_change, policy_restored, policy_path_resolved,
 * policy_canary) by their common fields, the rest of each is documented in
 * docs/control.md, docs/engine.md and docs/telemetry.md. Every event may carry fields added later (objects are
 * open), so a consumer never breaks on a new field.
 *
 * @module
 */
import { z } from "zod";

/** A u64 kernel value: a JSON integer with its exact digits (past 2^53 too). */
const U64 = z.number().min(0).refine(Number.isInteger, "an integer").meta({
  type: "integer",
  description: "u64: a JSON integer written with its exact digits (may exceed 2^53)",
});
const U32 = z.int().min(0).max(0xffff_ffff);

/** The fields every event has, first on its line (src/events/envelope.ts). */
export const EventEnvelopeFields = z.object({
  timestamp: z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/).describe(
    "wall-clock time of the event, RFC 3339 UTC with nine fraction digits",
  ),
  type: z.string().min(1),
  event_id: z.string().regex(/^[0-9a-f]{1,32}-[1-9][0-9]*$/).describe(
    "<random prefix per agent start>-<counter>: unique",
  ),
  host: z.string(),
  agent_version: z.string().min(1),
});

const ProcFields = EventEnvelopeFields.extend({
  ktime_ns: U64.describe("kernel CLOCK_MONOTONIC time of the event, ns since boot"),
  pid: U32,
  tid: U32,
  ppid: U32,
  uid: U32,
  start_time: U64,
  exec_id: z.string().regex(/^\d+-\d+$/),
  parent_start_time: U64,
  parent_exec_id: z.string().regex(/^\d+-\d+$/),
  cgid: U64,
  cgroup_path: z.string().describe('"" when not known'),
  comm: z.string().max(16),
});

const Action = z.enum(["AUDIT", "BLOCK", "TERM", "KILL", "INT"]);
const BlockFields = ProcFields.extend({
  action: Action,
  hook: z.string(),
  rule_id: U32,
});

/** What the volume controls add to a block event line (docs/telemetry.md, "Event volume controls"). */
const VolumeFields = {
  sample_rate: z.int().min(2).max(1_000_000).optional().describe(
    "--event-sample-rate N: this line is 1 of N events of its rule (absent when every event is written)",
  ),
  folded: z.int().min(1).optional().describe(
    "--event-dedup-window: events of the same key folded into this line, not written themselves",
  ),
  folded_since: z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/).optional()
    .describe("the time of the first folded event (with folded)"),
};

export const ExecEvent = ProcFields.extend({ type: z.literal("exec") }).loose();
export const ExecArgvEvent = ProcFields.extend({
  type: z.literal("exec_argv"),
  argc: z.int().min(0),
  argv: z.array(z.string()),
  argv_truncated: z.boolean(),
  argv_bytes: U32,
}).loose();
export const OpenEvent = ProcFields.extend({
  type: z.literal("open"),
  path: z.string(),
  flags: z.int(),
  dfd: z.int(),
}).loose();
const FileBlockFields = BlockFields.extend({
  ino: U64,
  dev: U32,
  path: z.string().optional().describe("absent when neither the kernel nor the rule gives one"),
  path_source: z.enum(["kernel", "rule", "none"]),
  rule_type: z.enum(["hash", "hash_allowlist", "hash_trusted", "hash_unverified"]).optional()
    .describe(
      "hash: denied by content (deny_binary_hash, rule_id its line); hash_allowlist: the " +
        "content is not on [allow_binary_hash], or has no SHA-256 (rule_id 0); hash_trusted: " +
        "the content is not on [trusted_exec_hash], or has no SHA-256 under [ima_fail_closed] " +
        "(rule_id 0); hash_unverified: a file mapping made executable with mprotect while the " +
        "mapping checks are live, whose content was not verified by an executable mapping of " +
        "the same unchanged file (rule_id 0, sha256 all zero; fail closed)",
    ),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional()
    .describe(
      "the executed file's SHA-256 (IMA's measurement): the deny_binary_hash entry that " +
        "matched, or the content not on the allowlist or trusted list; all zero when the " +
        "file had none",
    ),
  identity_source: z.enum(["ima", "scan", "none"]).optional()
    .describe(
      "where the content identity came from (with sha256): ima, the kernel's IMA measurement " +
        "(bpf_ima_file_hash); scan, the daemon's content scan found the file with a " +
        "deny_binary_hash content and denied its inode (kernels without IMA hashing; the " +
        "hook is file_open or bprm_check_security); none, the file had no SHA-256 (IMA gave " +
        "none, or a mprotect check, which cannot hash)",
    ),
});
export const FileBlockEvent = FileBlockFields.extend({
  type: z.literal("block"),
  ...VolumeFields,
}).loose();
export const SelfTestEvent = BlockFields.extend({
  type: z.literal("self_test"),
  self_test: z.literal(true),
}).loose();
export const NetBlockEvent = BlockFields.extend({
  type: z.enum(["net_connect_block", "net_bind_block", "net_sendmsg_block"]),
  family: z.enum(["ipv4", "ipv6"]),
  addr: z.string(),
  port: z.int().min(0).max(65535),
  protocol: z.string().regex(/^(tcp|udp|[0-9]+)$/),
  direction: z.enum(["egress", "bind", "send"]),
  remote_ip: z.string().optional(),
  remote_port: z.int().min(0).max(65535).optional(),
  local_port: z.int().min(0).max(65535).optional(),
  rule_type: z.string(),
  ...VolumeFields,
}).loose();
export const KernelBlockEvent = BlockFields.extend({
  type: z.enum(["kernel_ptrace_block", "kernel_module_block", "kernel_bpf_block", "kernel_block"]),
  target_pid: U32,
  detail: U32,
  rule_type: z.string(),
  ...VolumeFields,
}).loose();
/** run --self-protect: a refused tamper attempt; the process fields are the actor's. */
export const TamperBlockEvent = ProcFields.extend({
  type: z.literal("tamper_block"),
  action: z.enum(["AUDIT", "BLOCK"]).describe(
    "BLOCK: EPERM returned; AUDIT: only reported (emergency disable, break-glass)",
  ),
  hook: z.string(),
  op: z.enum([
    "unlink",
    "rmdir",
    "rename",
    "create",
    "write",
    "truncate",
    "map_write",
    "link_fd",
    "signal",
    "ptrace",
    "umount",
  ]),
  guard: z.enum([
    "pin_dir",
    "state_dir",
    "config_dir",
    "cgroup_dir",
    "exe",
    "link_pin",
    "pin_fs",
    "map",
    "link",
    "agent",
    "run_dir",
  ]).describe("what was protected: the guarded directory or object that matched"),
  name: z.string().optional().describe("file operations: the directory entry's name"),
  ino: U64.describe("file operations: the guarded inode that matched, else 0"),
  dev: U32,
  target: U32.describe("map or link id; signal, ptrace: the target's pid"),
  target_cgid: U64.describe("signal, ptrace: the target's cgroup id, else 0"),
  detail: U32.describe("signal number, fmode, ptrace mode, bpf command or open flags"),
}).loose();
export const StateChangeEvent = EventEnvelopeFields.extend({
  type: z.literal("state_change"),
  event_version: z.literal(1),
  state: z.enum(["ENFORCE", "ENFORCE_SIGNAL", "AUDIT_FALLBACK", "DEGRADED"]),
  from: z.enum(["ENFORCE", "ENFORCE_SIGNAL", "AUDIT_FALLBACK", "DEGRADED"]).nullable(),
  to: z.enum(["ENFORCE", "ENFORCE_SIGNAL", "AUDIT_FALLBACK", "DEGRADED"]),
  reason_code: z.string().min(1),
  detail: z.string(),
  strict_mode: z.boolean(),
  transition_id: z.int().min(1),
  degradation_count: z.int().min(0),
  enforce_requested: z.boolean(),
  at_unix: z.int().min(0),
}).loose();
export const ControlChangeEvent = EventEnvelopeFields.extend({
  type: z.literal("control_change"),
  event_version: z.literal(1),
  control: z.enum(["emergency_disable", "live_rule", "policy"]),
  action: z.string(),
}).loose();
export const PolicyEvent = EventEnvelopeFields.extend({
  type: z.enum(["policy_restored", "policy_path_resolved", "policy_canary"]),
}).loose();

/** Every event line of `--event-format json` and /events. */
export const EventLine = z.discriminatedUnion("type", [
  ExecEvent,
  ExecArgvEvent,
  OpenEvent,
  FileBlockEvent,
  SelfTestEvent,
  NetBlockEvent,
  KernelBlockEvent,
  TamperBlockEvent,
  StateChangeEvent,
  ControlChangeEvent,
  PolicyEvent,
]);
export type EventLine = z.infer<typeof EventLine>;
