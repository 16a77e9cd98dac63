/**
 * capabilities.json (docs/posture.md): the one zod schema (the shipped JSON Schema
 * in schemas/ is generated from it by build/gen_schemas.ts), the pure
 * builder from probe results, and the atomic writer.
 *
 * Fields the C++ agent's contract defines have its types (docs/posture.md,
 * "Compatibility with the C++ agent"): where such a boolean could not be
 * determined it is false ("not detected") and its path is listed in
 * `undetermined_fields`. Fields of our own keep null for "could not be
 * determined".
 *
 * @module
 */
import { z } from "zod";
import { type Blocker, BLOCKER_CODES, RUNTIME_STATES, type RuntimeState } from "../contracts.ts";
import { AegisError } from "../errors.ts";
import { writeFileAtomic } from "../policy/atomic.ts";
import { CAPABILITY_TIERS, capabilityTier, coreSupported, enforceBlockers } from "./blockers.ts";
import type { PolicyNeeds } from "./needs.ts";
import { probeBool, type ProbeResult } from "./probe.ts";
import {
  EXEC_HASH_SECTION,
  execIdentity,
  MMAP_HASH_SECTION,
  MPROTECT_HASH_SECTION,
} from "./exec_identity.ts";
import { EXEC_IDENTITY_SYMBOLS, HOOK_NAMES, HOOK_SYMBOLS, type HookName } from "./probes/hooks.ts";
import type { ProbeReport } from "./probes/mod.ts";
import { NEXT_GEN_SYMBOLS, type NextGenBpf as NextGenProbe } from "./probes/next_gen.ts";
import type { ProofResults } from "../proof/prover.ts";

export const SCHEMA_VERSION = 1;
export const SCHEMA_SEMVER = "2.0.0";

const maybe = z.boolean().nullable();
const count = z.number().int().nonnegative();

const HookEntry = z.object({
  kernel_supported: maybe.describe("the kernel BTF has btf_symbol; null = unknown"),
  required: z.boolean().describe("the agent needs this hook for its mode and policy"),
  btf_symbol: z.string(),
  attached: maybe.describe("attached by the running daemon; null = no daemon"),
}).strict();

const Needs = z.object({
  network: z.boolean(),
  exec_identity: z.boolean(),
  exec_runtime_deps: z.boolean(),
  ima_appraisal: z.boolean(),
}).strict();

export const BlockerSchema = z.object({
  code: z.enum(BLOCKER_CODES).describe("machine-readable blocker code"),
  message: z.string(),
  remedy: z.string(),
}).strict();

const SurfaceProof = z.object({
  ok: z.boolean().describe("the kernel denied the canary operation with EPERM"),
  last_unix: z.number().int().nonnegative().describe("unix seconds of the last attempt"),
  detail: z.string(),
}).strict();

export const UnenforcedRule = z.object({
  rule_id: z.number().int().nonnegative(),
  surface: z.enum(["file", "exec", "network"]),
  target: z.string().describe("the rule's path, address or name"),
  reason: z.string(),
}).strict();

const notDetected = "true = detected; false = not detected (absent, or listed in " +
  "undetermined_fields when it could not be determined)";

/** The kernel features the C++ contract lists in `features` (health carries them too). */
export const KERNEL_FEATURE_KEYS = [
  "bpf_lsm",
  "cgroup_v2",
  "btf",
  "bpf_syscall",
  "ringbuf",
  "tracepoints",
  "bpffs",
  "ima",
  "ima_appraisal",
  "bpf_ima_helpers",
  "landlock",
  "ipe",
  "fs_verity",
  "bpf_token",
  "bpf_arena",
  "user_ringbuf",
  "sched_ext",
  "open_coded_iterators",
  "bpf_xattr_kfuncs",
  "bpf_send_signal_task",
  "binary_auth",
] as const;
export type KernelFeatureKey = (typeof KERNEL_FEATURE_KEYS)[number];

/** Facts of this agent build the C++ contract also lists in `features`. */
export const AGENT_FEATURE_KEYS = [
  "overlay_copy_up_propagation",
  "deep_process_lineage",
  "enhanced_rule_engine",
  "cgroup_scoped_deny",
  "policy_generation",
  "deadman_fail_static",
] as const;

const flags = <K extends string>(keys: readonly K[]) =>
  Object.fromEntries(keys.map((k) => [k, z.boolean()])) as Record<K, z.ZodBoolean>;

export const KernelFeatures = z.object(flags(KERNEL_FEATURE_KEYS)).describe(notDetected);

export const FutureLsm = z.object({
  active_lsms: z.string().describe(
    'the active LSM list as the kernel prints it ("a,b,c"); "" = could not be read',
  ),
  landlock: z.boolean(),
  landlock_abi: z.number().int().min(-1).describe("-1 = not available or not determined"),
  ipe: z.boolean(),
  fs_verity: z.boolean(),
  bpf_token: z.boolean(),
}).strict().describe(notDetected);

export const NextGenBpf = z.object(flags([
  "arena",
  "user_ringbuf",
  "sched_ext",
  "open_coded_iterators",
  "xattr_kfuncs",
  "bpf_send_signal_task",
  "binary_auth",
])).strict().describe(notDetected);

/** The modes of `run --seccomp` (docs/security.md, "Seccomp"). */
export const SECCOMP_MODES = ["enforce", "log", "off"] as const;
export type SeccompMode = typeof SECCOMP_MODES[number];

/** `run --seccomp`: the daemon's system-call allow list. */
export const SeccompReport = z.object({
  mode: z.enum(SECCOMP_MODES).nullable().describe("as asked (run --seccomp); null = unknown"),
  installed: maybe.describe(
    "the kernel holds the filter on every thread of the daemon; null = unknown (no daemon)",
  ),
  syscalls: count.describe("system calls the filter allows (0 when not installed)"),
  detail: z.string().describe("what a refused call gets, or why there is no filter"),
}).strict();
export type SeccompReport = z.infer<typeof SeccompReport>;

/** `run --drop-caps`: the capabilities the running daemon keeps. */
export const CapabilitiesDrop = z.object({
  limited: maybe.describe(
    "every thread of the daemon holds only the kept capabilities, as read back from the " +
      "kernel; null = unknown (no daemon)",
  ),
  kept: z.array(z.string()).describe("capability names kept (empty when not limited on purpose)"),
  dropped: z.array(z.string()).describe("capability names the daemon held and dropped"),
  threads: count.describe("threads that changed their own sets"),
  detail: z.string().describe("what was done, or why not"),
}).strict();
export type CapabilitiesDrop = z.infer<typeof CapabilitiesDrop>;

/** `run --self-protect` (docs/security.md, "Self-protection"). */
export const SelfProtectionReport = z.object({
  requested: z.boolean().describe("run --self-protect was given"),
  armed: maybe.describe(
    "the kernel guards are armed (AEGIS_CFG_SELF_PROTECT); null = unknown (no daemon)",
  ),
  detail: z.string().describe("why not armed, or who is trusted"),
  guarded_inodes: count.describe("directories, pinned links, the executable, the bpffs"),
  guarded_maps: count,
  guarded_links: count,
  missing_hooks: z.array(z.string()).describe("guard sections the kernel has no hook for"),
  no_new_privs: maybe.describe(
    "the daemon's main thread (which starts every process it runs) has no_new_privs, as the " +
      "kernel reports it; set at every start, with or without --self-protect; null = unknown",
  ),
  seccomp: SeccompReport,
  capabilities: CapabilitiesDrop,
}).strict();
export type SelfProtectionReport = z.infer<typeof SelfProtectionReport>;

/** What a report without a daemon says. */
export const SELF_PROTECTION_UNKNOWN: SelfProtectionReport = {
  requested: false,
  armed: null,
  detail: "no daemon running",
  guarded_inodes: 0,
  guarded_maps: 0,
  guarded_links: 0,
  missing_hooks: [],
  no_new_privs: null,
  seccomp: { mode: null, installed: null, syscalls: 0, detail: "no daemon running" },
  capabilities: { limited: null, kept: [], dropped: [], threads: 0, detail: "no daemon running" },
};

export const CapabilitiesReport = z.object({
  schema_version: z.literal(SCHEMA_VERSION),
  schema_semver: z.literal(SCHEMA_SEMVER),
  generated_at_unix: z.number().int().nonnegative(),
  generated_by: z.enum(["daemon", "cli"]).describe(
    "the running daemon, or a CLI probe (no daemon)",
  ),
  kernel_version: z.string().describe('osrelease, or "unknown"'),
  capability: z.enum(CAPABILITY_TIERS),
  audit_only: z.boolean().describe("capability is AuditOnly"),
  enforce_capable: z.boolean().describe("capability Full and no blocker"),
  enforce_blockers: z.array(z.enum(BLOCKER_CODES)).describe("the blocker codes, in order"),
  enforce_blocker_details: z.array(BlockerSchema).describe(
    "the same blockers, in the same order, with what was found and the remedy",
  ),
  runtime_state: z.enum(RUNTIME_STATES).nullable().describe(
    "null = no agent running (a CLI report), or an agent that refused to start",
  ),
  lsm_enabled: z.boolean().describe("bpf is in the active LSM list"),
  core_supported: z.boolean().describe("bpf syscall, BTF, cgroup v2 and ring buffers all present"),
  future_lsm: FutureLsm,
  next_gen_bpf: NextGenBpf,
  features: KernelFeatures.extend({
    ...flags(AGENT_FEATURE_KEYS),
    bpf_lsm_attach: maybe.describe("a trial LSM program loads and attaches; null = unknown"),
  }).strict(),
  feature_notes: z.record(z.string(), z.string())
    .describe("why a feature is false or undetermined, keyed like features"),
  undetermined_fields: z.array(z.string()).describe(
    "dotted paths of contract booleans (and landlock_abi) reported false (-1) because they " +
      "could not be determined",
  ),
  hooks: z.object(flags(HOOK_NAMES)).strict().describe(
    "attached by the running agent (false without one: then listed in undetermined_fields)",
  ),
  hook_details: z.object(
    Object.fromEntries(HOOK_NAMES.map((h) => [h, HookEntry])) as Record<HookName, typeof HookEntry>,
  ).strict(),
  policy: z.object({
    applied: z.boolean(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
    version: z.number().int().nullable(),
    unresolved_count: count,
    unresolved: z.array(z.string()).describe("path rules whose file does not exist yet"),
    applied_path: z.string().describe('the applied-policy snapshot file; "" = none known'),
    snapshot_present: z.boolean(),
    parse_ok: z.boolean().describe("the snapshot parsed (false when there is none)"),
    network_rule_count: count.describe("deny_ip + deny_cidr + deny_port + deny_ip_port lines"),
    protect_path_count: count,
    protect_connect: z.boolean(),
    protect_runtime_deps: z.boolean().describe(
      "[protect_runtime_deps]: executable file mappings follow the allowlist and trusted list",
    ),
    require_ima_appraisal: z.boolean().describe(
      "[require_ima_appraisal]: enforce needs an IMA appraisal policy on the node",
    ),
    allow_binary_hash_count: count.describe(
      "[allow_binary_hash] lines: more than 0 = allowlist mode (only listed contents may exec)",
    ),
    trusted_exec_hash_count: count.describe(
      "[trusted_exec_hash] lines: more than 0 = trusted mode (only trusted contents may exec)",
    ),
    ima_fail_closed: z.boolean().describe(
      "[ima_fail_closed]: in trusted mode a file with no SHA-256 is denied (else allowed)",
    ),
    cgroup_deny_inode_count: count,
    cgroup_deny_ip_count: count,
    cgroup_deny_port_count: count,
  }).strict(),
  requirements: Needs.extend({
    required_hooks: z.array(z.enum(HOOK_NAMES)),
    network_enforcement_required: z.boolean(),
    network_connect_required: z.boolean(),
    network_bind_required: z.boolean(),
    exec_identity_required: z.boolean(),
    exec_allowlist_required: z.boolean().describe(
      "the policy has a non-empty [allow_binary_hash] (exec allowlist by content)",
    ),
    verified_exec_required: z.boolean(),
    verified_exec_runtime_deps_required: z.boolean(),
    ima_appraisal_required: z.boolean(),
  }).strict(),
  requirements_met: Needs,
  exec_identity: z.object({
    required: z.boolean(),
    hooks_available: maybe,
    ima_appraisal_available: maybe,
    kernel_enabled: z.boolean().describe(
      "the exec-identity programs (bprm_creds_for_exec, bprm_check_security, " +
        "bprm_committed_creds, task_alloc) are attached by the running agent",
    ),
    kernel_allow_exec_inode_entries: count.describe(
      "always 0: verification is by owner, mode and location, not a per-inode allowlist",
    ),
    runtime_deps_hook_attached: z.boolean().describe(
      "the mapping program (lsm.s/mmap_file) is attached by the running agent",
    ),
    mprotect: maybe.describe(
      "the mprotect(PROT_EXEC) route is closed: the lsm/file_mprotect program is attached " +
        "beside lsm.s/mmap_file, so with the mapping checks live a file mapping made " +
        "executable is allowed only for a content the mapping program verified " +
        "(docs/engine.md); null without a running daemon",
    ),
    source: z.enum(["ima", "scan", "none"]).describe(
      "what gives the content (SHA-256) of an executed file for [deny_binary_hash] and " +
        "[allow_binary_hash]: ima = " +
        "bpf_ima_file_hash from the sleepable lsm.s/bprm_check_security program (attached by " +
        "the running daemon; predicted from the probes without one); scan = the daemon hashes " +
        "the files in the scanned directories at each apply and denies the inodes with a " +
        "[deny_binary_hash] content ([deny_binary_hash] only, copies elsewhere not covered); " +
        "none = no source",
    ),
    source_detail: z.string().nullable().describe('why the source is not "ima"; null for "ima"'),
    content_scan: z.object({
      at: z.number().describe("unix seconds when it ended"),
      dirs: z.array(z.string()),
      files_hashed: count,
      bytes: count,
      matches: count.describe("files found with a [deny_binary_hash] content: inode rules"),
      skipped: count.describe("files or directories not scanned (the apply warnings say why)"),
      duration_ms: count,
    }).strict().nullable().describe(
      'the daemon\'s last content scan (source "scan", a policy with [deny_binary_hash]); ' +
        "null when none ran",
    ),
    userspace_fallback_allowlist_entries: count.describe("always 0: no userspace allowlist"),
  }).strict(),
  state_transitions: z.object({
    total: count,
    degradation_total: count,
    strict_mode: z.boolean(),
    enforce_requested: z.boolean(),
  }).strict(),
  emergency: z.object({ active: maybe.describe("null = unknown (no daemon, no pins)") }).strict(),
  enforcement_proof: z.object({
    file: SurfaceProof.optional(),
    exec: SurfaceProof.optional(),
    exec_hash: SurfaceProof.optional().describe(
      "exec identity by content: an exec of the agent's own canary content, denied by its " +
        "SHA-256; absent while the live policy has no deny, allow or trusted content list",
    ),
    network: SurfaceProof.optional(),
    kernel: SurfaceProof.optional().describe(
      "the kernel switches the live policy turns on (deny_ptrace, deny_module_load, deny_bpf); " +
        "absent when none is on",
    ),
  }).strict().describe(
    "the last live proof of each surface the daemon proves (docs/guarantees.md); " +
      "empty without a daemon, in audit, or before the first proof",
  ),
  enforcement_proof_interval_seconds: z.number().int().nonnegative().nullable().describe(
    "seconds between proofs; 0 = proofs off; null = no daemon",
  ),
  unenforced_rules: z.array(UnenforcedRule).describe(
    "rules a proof found not denied by the kernel",
  ),
  self_protection: SelfProtectionReport,
}).strict();
export type CapabilitiesReport = z.infer<typeof CapabilitiesReport>;

/** What the applied policy holds, as counted from its snapshot (docs/posture.md). */
export interface PolicyRuleFacts {
  network_rule_count: number;
  protect_path_count: number;
  protect_connect: boolean;
  cgroup_deny_inode_count: number;
  cgroup_deny_ip_count: number;
  cgroup_deny_port_count: number;
  /** [allow_binary_hash] lines (allowlist mode when > 0) */
  allow_binary_hash_count: number;
  /** [trusted_exec_hash] lines (trusted mode when > 0) */
  trusted_exec_hash_count: number;
  protect_runtime_deps: boolean;
  require_ima_appraisal: boolean;
  ima_fail_closed: boolean;
  /** rules the connect (and sendmsg) hooks enforce */
  network_connect: boolean;
  /** rules the bind hook enforces */
  network_bind: boolean;
}

export interface PolicyStatus {
  applied: boolean;
  sha256: string | null;
  version: number | null;
  unresolved: string[];
  /** the snapshot file; absent: none known (no state directory read) */
  snapshot?: { path: string; present: boolean; parse_ok: boolean };
  /** counted from the snapshot; absent when it did not parse */
  rules?: PolicyRuleFacts;
}

export const NO_POLICY: PolicyStatus = {
  applied: false,
  sha256: null,
  version: null,
  unresolved: [],
};

/** Facts of this build for the agent part of `features` (docs/posture.md). */
export const AGENT_FEATURES: Record<
  Exclude<(typeof AGENT_FEATURE_KEYS)[number], "overlay_copy_up_propagation">,
  { value: boolean; note: string }
> = {
  deep_process_lineage: {
    value: false,
    note: "events carry the process and its parent (pid, ppid), not an ancestry chain",
  },
  enhanced_rule_engine: {
    value: false,
    note: "not a defined feature of this agent (the C++ agent always reports true)",
  },
  cgroup_scoped_deny: {
    value: true,
    note: "cgroup_deny_inode, cgroup_deny_ip and cgroup_deny_port sections (docs/policy.md)",
  },
  policy_generation: {
    value: true,
    note: "rules are written into the inactive generation and switched in at once " +
      "(docs/engine.md)",
  },
  deadman_fail_static: {
    value: false,
    note: "no deadman timer; pinned programs keep enforcing after the agent exits " +
      "(docs/engine.md)",
  },
};

/** A content scan, as the report shows it (policy/content_scan.ts). */
export interface ContentScanSummary {
  at: number;
  dirs: string[];
  files_hashed: number;
  bytes: number;
  matches: number;
  skipped: number;
  duration_ms: number;
}

export interface ReportInput {
  probe: ProbeReport;
  needs: PolicyNeeds;
  /** null: no agent is running (a CLI probe) */
  runtimeState: RuntimeState | null;
  transitions: CapabilitiesReport["state_transitions"];
  policy: PolicyStatus;
  emergencyActive: boolean | null;
  /** sections the daemon attached (e.g. "lsm/file_open"); null without a daemon */
  attachedSections: readonly string[] | null;
  generatedBy: "daemon" | "cli";
  /** unix seconds */
  now: number;
  /** blockers found outside the probes (e.g. a failed attach at start) */
  extraBlockers?: Blocker[];
  /** run --self-protect (absent: SELF_PROTECTION_UNKNOWN) */
  selfProtection?: SelfProtectionReport;
  /** the daemon's last content scan (source "scan"; absent or null: none ran) */
  contentScan?: ContentScanSummary | null;
  /** the daemon's enforcement proofs (absent: none, interval null) */
  proof?: {
    intervalSeconds: number;
    results: ProofResults;
    unenforced?: z.infer<typeof UnenforcedRule>[];
  };
}

/** The section a hook row corresponds to (lsm/<hook>); null for the IMA helper. */
export function hookSection(h: HookName): string | null {
  // bpf_ima_file_hash is called by the sleepable exec-hash program
  if (h === "lsm_bprm_ima_check") return EXEC_HASH_SECTION;
  const s = HOOK_SYMBOLS[h];
  return s.startsWith("bpf_lsm_") ? `lsm/${s.slice("bpf_lsm_".length)}` : null;
}

const lsmSection = (symbol: string) => `lsm/${symbol.slice("bpf_lsm_".length)}`;

/**
 * Contract booleans from tri-state facts: true / false, and the path of
 * every one that could not be determined (reported false), with why.
 */
class Facts {
  readonly undetermined: string[] = [];
  readonly notes: Record<string, string> = {};

  /** A boolean at `path`; null counts as false and is listed. */
  bool(path: string, v: boolean | null): boolean {
    if (v === null) this.undetermined.push(path);
    return v ?? false;
  }

  /** A probe at `path` (note under `noteKey`: features are explained in feature_notes). */
  probe(path: string, r: ProbeResult<unknown>, noteKey?: string): boolean {
    if (noteKey !== undefined) {
      if (r.status === "unsupported") this.notes[noteKey] = r.reason;
      if (r.status === "unknown") this.notes[noteKey] = r.error;
    }
    return this.bool(path, probeBool(r));
  }
}

/** Build the report. Pure (the clock is an input). */
export function buildReport(i: ReportInput): CapabilitiesReport {
  const p = i.probe;
  const blockers = [...enforceBlockers(p, i.needs, i.attachedSections)];
  for (const b of i.extraBlockers ?? []) {
    if (!blockers.some((x) => x.code === b.code)) blockers.push(b);
  }
  const tier = capabilityTier(p);
  const f = new Facts();
  // a hook counts as attached by a sleepable program on it too (lsm.s/mmap_file)
  const attached = (sec: string | null): boolean | null =>
    i.attachedSections === null ? null : sec !== null &&
      (i.attachedSections.includes(sec) ||
        i.attachedSections.includes(sec.replace(/^lsm\//, "lsm.s/")));
  const hookDetails = {} as CapabilitiesReport["hook_details"];
  const hooks = {} as CapabilitiesReport["hooks"];
  for (const h of HOOK_NAMES) {
    hookDetails[h] = { ...p.hooks[h], attached: attached(hookSection(h)) };
    hooks[h] = f.bool(`hooks.${h}`, hookDetails[h].attached);
  }
  const ng = p.next_gen_bpf;
  const ngNote = ng.status === "unknown" ? ng.error : null;
  const ngFlag = (path: string, noteKey: string, key: keyof NextGenProbe) => {
    if (ng.status !== "supported") {
      if (ngNote !== null) f.notes[noteKey] = ngNote;
      return f.bool(path, null);
    }
    const v = ng.value[key];
    if (!v) f.notes[noteKey] = `the kernel BTF has no ${NEXT_GEN_SYMBOLS[key].join(" or ")}`;
    return v;
  };
  const imaAppraisal = p.ima.status === "supported"
    ? p.ima.value.appraisal
    : p.ima.status === "unsupported"
    ? false
    : null;
  if (p.ima.status === "supported" && !p.ima.value.appraisal) {
    f.notes.ima_appraisal = "the IMA policy has no appraise rule";
  } else if (p.ima.status !== "supported") {
    f.notes.ima_appraisal = p.ima.status === "unknown" ? p.ima.error : p.ima.reason;
  }
  const features: CapabilitiesReport["features"] = {
    bpf_lsm: f.probe("features.bpf_lsm", p.bpf_lsm_active, "bpf_lsm"),
    cgroup_v2: f.probe("features.cgroup_v2", p.cgroup_v2, "cgroup_v2"),
    btf: f.probe("features.btf", p.btf, "btf"),
    bpf_syscall: f.probe("features.bpf_syscall", p.bpf_syscall, "bpf_syscall"),
    ringbuf: f.probe("features.ringbuf", p.ringbuf, "ringbuf"),
    tracepoints: f.probe("features.tracepoints", p.tracepoints, "tracepoints"),
    bpffs: f.probe("features.bpffs", p.bpffs, "bpffs"),
    ima: f.probe("features.ima", p.ima, "ima"),
    ima_appraisal: f.bool("features.ima_appraisal", imaAppraisal),
    bpf_ima_helpers: ngFlag("features.bpf_ima_helpers", "bpf_ima_helpers", "bpf_ima_helpers"),
    landlock: f.probe("features.landlock", p.landlock, "landlock"),
    ipe: f.probe("features.ipe", p.ipe, "ipe"),
    fs_verity: f.probe("features.fs_verity", p.fs_verity, "fs_verity"),
    bpf_token: ngFlag("features.bpf_token", "bpf_token", "bpf_token"),
    bpf_arena: ngFlag("features.bpf_arena", "bpf_arena", "arena"),
    user_ringbuf: ngFlag("features.user_ringbuf", "user_ringbuf", "user_ringbuf"),
    sched_ext: f.probe("features.sched_ext", p.sched_ext, "sched_ext"),
    open_coded_iterators: ngFlag(
      "features.open_coded_iterators",
      "open_coded_iterators",
      "open_coded_iterators",
    ),
    bpf_xattr_kfuncs: ngFlag("features.bpf_xattr_kfuncs", "bpf_xattr_kfuncs", "xattr_kfuncs"),
    bpf_send_signal_task: ngFlag(
      "features.bpf_send_signal_task",
      "bpf_send_signal_task",
      "bpf_send_signal_task",
    ),
    binary_auth: f.probe("features.binary_auth", p.binary_auth, "binary_auth"),
    // the copy-up hook keeps a ruled overlayfs file covered (bpf/file.bpf.c)
    overlay_copy_up_propagation: f.bool(
      "features.overlay_copy_up_propagation",
      attached("lsm/inode_copy_up"),
    ),
    deep_process_lineage: AGENT_FEATURES.deep_process_lineage.value,
    enhanced_rule_engine: AGENT_FEATURES.enhanced_rule_engine.value,
    cgroup_scoped_deny: AGENT_FEATURES.cgroup_scoped_deny.value,
    policy_generation: AGENT_FEATURES.policy_generation.value,
    deadman_fail_static: AGENT_FEATURES.deadman_fail_static.value,
    bpf_lsm_attach: probeBool(p.bpf_lsm_attach),
  };
  if (p.bpf_lsm_attach.status !== "supported") {
    f.notes.bpf_lsm_attach = p.bpf_lsm_attach.status === "unknown"
      ? p.bpf_lsm_attach.error
      : p.bpf_lsm_attach.reason;
  }
  for (const [k, a] of Object.entries(AGENT_FEATURES)) if (!a.value) f.notes[k] = a.note;
  if (i.attachedSections === null) {
    f.notes.overlay_copy_up_propagation = "no agent running: nothing is attached";
  }
  const ll = p.landlock;
  const landlockAbi = ll.status === "supported" ? ll.value.abi : null;
  if (ll.status === "supported" && landlockAbi === null) {
    f.undetermined.push("future_lsm.landlock_abi");
    if (ll.value.abi_note) f.notes.landlock_abi = ll.value.abi_note;
  }
  const lsms = p.active_lsms;
  if (lsms.status !== "supported") f.undetermined.push("future_lsm.active_lsms");
  // the same fact again under future_lsm and next_gen_bpf (listed there too when undetermined)
  const same = (key: KernelFeatureKey, path: string): boolean => {
    if (f.undetermined.includes(`features.${key}`)) f.undetermined.push(path);
    return features[key];
  };
  const future_lsm: CapabilitiesReport["future_lsm"] = {
    active_lsms: lsms.status === "supported" ? lsms.value.join(",") : "",
    landlock: same("landlock", "future_lsm.landlock"),
    landlock_abi: landlockAbi ?? -1,
    ipe: same("ipe", "future_lsm.ipe"),
    fs_verity: same("fs_verity", "future_lsm.fs_verity"),
    bpf_token: same("bpf_token", "future_lsm.bpf_token"),
  };
  const next_gen_bpf: CapabilitiesReport["next_gen_bpf"] = {
    arena: same("bpf_arena", "next_gen_bpf.arena"),
    user_ringbuf: same("user_ringbuf", "next_gen_bpf.user_ringbuf"),
    sched_ext: same("sched_ext", "next_gen_bpf.sched_ext"),
    open_coded_iterators: same("open_coded_iterators", "next_gen_bpf.open_coded_iterators"),
    xattr_kfuncs: same("bpf_xattr_kfuncs", "next_gen_bpf.xattr_kfuncs"),
    bpf_send_signal_task: same("bpf_send_signal_task", "next_gen_bpf.bpf_send_signal_task"),
    binary_auth: same("binary_auth", "next_gen_bpf.binary_auth"),
  };
  const codes = new Set(blockers.map((b) => b.code));
  const required = HOOK_NAMES.filter((h) => p.hooks[h].required);
  const rules = i.policy.rules;
  const execSections = EXEC_IDENTITY_SYMBOLS.map(lsmSection);
  const identity = execIdentity(p, i.attachedSections);
  const report: CapabilitiesReport = {
    schema_version: SCHEMA_VERSION,
    schema_semver: SCHEMA_SEMVER,
    generated_at_unix: Math.floor(i.now),
    generated_by: i.generatedBy,
    kernel_version: p.kernel_version.status === "supported"
      ? p.kernel_version.value.release
      : "unknown",
    capability: tier,
    audit_only: tier === "AuditOnly",
    enforce_capable: tier === "Full" && blockers.length === 0,
    enforce_blockers: blockers.map((b) => b.code),
    enforce_blocker_details: blockers,
    runtime_state: i.runtimeState,
    lsm_enabled: f.bool("lsm_enabled", probeBool(p.bpf_lsm_active)),
    core_supported: f.bool("core_supported", coreSupported(p)),
    future_lsm,
    next_gen_bpf,
    features,
    feature_notes: f.notes,
    undetermined_fields: f.undetermined,
    hooks,
    hook_details: hookDetails,
    policy: {
      applied: i.policy.applied,
      sha256: i.policy.sha256,
      version: i.policy.version,
      unresolved_count: i.policy.unresolved.length,
      unresolved: [...i.policy.unresolved],
      applied_path: i.policy.snapshot?.path ?? "",
      snapshot_present: i.policy.snapshot?.present ?? false,
      parse_ok: i.policy.snapshot?.parse_ok ?? false,
      network_rule_count: rules?.network_rule_count ?? 0,
      protect_path_count: rules?.protect_path_count ?? 0,
      protect_connect: rules?.protect_connect ?? false,
      protect_runtime_deps: rules?.protect_runtime_deps ?? false,
      require_ima_appraisal: rules?.require_ima_appraisal ?? false,
      allow_binary_hash_count: rules?.allow_binary_hash_count ?? 0,
      trusted_exec_hash_count: rules?.trusted_exec_hash_count ?? 0,
      ima_fail_closed: rules?.ima_fail_closed ?? false,
      cgroup_deny_inode_count: rules?.cgroup_deny_inode_count ?? 0,
      cgroup_deny_ip_count: rules?.cgroup_deny_ip_count ?? 0,
      cgroup_deny_port_count: rules?.cgroup_deny_port_count ?? 0,
    },
    requirements: {
      network: i.needs.network,
      exec_identity: i.needs.exec_identity || i.needs.exec_content,
      exec_runtime_deps: i.needs.exec_runtime_deps,
      ima_appraisal: i.needs.ima_appraisal,
      required_hooks: required,
      network_enforcement_required: i.needs.network,
      network_connect_required: i.needs.network && (rules?.network_connect ?? false),
      network_bind_required: i.needs.network && (rules?.network_bind ?? false),
      exec_identity_required: i.needs.exec_identity || i.needs.exec_content,
      exec_allowlist_required: i.needs.exec_allowlist,
      verified_exec_required: i.needs.exec_identity,
      verified_exec_runtime_deps_required: i.needs.exec_runtime_deps,
      ima_appraisal_required: i.needs.ima_appraisal,
    },
    requirements_met: {
      network: !codes.has("NETWORK_HOOK_UNAVAILABLE"),
      exec_identity: !codes.has("EXEC_IDENTITY_UNAVAILABLE"),
      exec_runtime_deps: !codes.has("EXEC_RUNTIME_DEPS_HOOK_UNAVAILABLE"),
      // in audit mode (started with --audit) the appraisal counts as met, as the C++ agent
      ima_appraisal: !codes.has("IMA_APPRAISAL_UNAVAILABLE") ||
        (i.runtimeState === "AUDIT_FALLBACK" && !i.transitions.enforce_requested),
    },
    exec_identity: {
      required: i.needs.exec_identity || i.needs.exec_content,
      hooks_available: p.exec_identity_hooks,
      ima_appraisal_available: imaAppraisal,
      kernel_enabled: f.bool(
        "exec_identity.kernel_enabled",
        i.attachedSections === null
          ? null
          : execSections.every((s) => i.attachedSections!.includes(s)),
      ),
      kernel_allow_exec_inode_entries: 0,
      runtime_deps_hook_attached: i.attachedSections?.includes(MMAP_HASH_SECTION) ?? false,
      mprotect: i.attachedSections === null
        ? null
        : [MMAP_HASH_SECTION, MPROTECT_HASH_SECTION].every((s) => i.attachedSections!.includes(s)),
      userspace_fallback_allowlist_entries: 0,
      source: identity.source,
      content_scan: i.contentScan ?? null,
      source_detail: identity.reason,
    },
    state_transitions: { ...i.transitions },
    emergency: { active: i.emergencyActive },
    enforcement_proof: structuredClone(i.proof?.results ?? {}),
    enforcement_proof_interval_seconds: i.proof?.intervalSeconds ?? null,
    unenforced_rules: [...(i.proof?.unenforced ?? [])],
    self_protection: structuredClone(i.selfProtection ?? SELF_PROTECTION_UNKNOWN),
  };
  return report;
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? (i === 0 ? "/" : ".") : path.slice(0, i);
}

/**
 * Validate and write the report atomically (temp + fsync + rename), mode
 * 0644 (monitoring reads it); the directory is created 0755 if missing.
 */
export function writeReport(path: string, report: CapabilitiesReport): void {
  const checked = CapabilitiesReport.safeParse(report);
  if (!checked.success) {
    throw new AegisError(
      "REPORT_INVALID",
      `Refusing to write ${path}: the capability report does not match its schema ` +
        `(${checked.error.issues.map((x) => `${x.path.join(".")}: ${x.message}`).join("; ")})`,
    );
  }
  const dir = dirOf(path);
  try {
    let missing = false;
    try {
      Deno.statSync(dir);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      missing = true;
    }
    if (missing) {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
      Deno.chmodSync(dir, 0o755); // exactly 0755, whatever the umask
    }
  } catch (e) {
    throw new AegisError(
      "REPORT_WRITE_FAILED",
      `Cannot create the directory "${dir}" for ${path}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  writeFileAtomic(
    path,
    new TextEncoder().encode(JSON.stringify(checked.data, null, 2) + "\n"),
    0o644,
  );
}

/** Parse a report (from a file or the daemon); an AegisError names what is wrong. */
export function parseReport(value: unknown, where: string): CapabilitiesReport {
  const r = CapabilitiesReport.safeParse(value);
  if (!r.success) {
    throw new AegisError(
      "REPORT_INVALID",
      `${where} is not a valid capability report: ${
        r.error.issues.slice(0, 5).map((x) => `${x.path.join(".") || "(root)"}: ${x.message}`).join(
          "; ",
        )
      }`,
    );
  }
  return r.data;
}
