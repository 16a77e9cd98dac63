/**
 * capabilities.json (docs/posture.md): the one zod schema (the shipped JSON Schema
 * in schemas/ is generated from it by build/gen_schemas.ts), the pure
 * builder from probe results, and the atomic writer.
 *
 * Nullable booleans mean "could not be determined" (e.g. no root for BTF
 * queries); consumers must treat null as "not available".
 *
 * @module
 */
import { z } from "zod";
import { type Blocker, BLOCKER_CODES, RUNTIME_STATES, type RuntimeState } from "../contracts.ts";
import { AegisError } from "../errors.ts";
import { writeFileAtomic } from "../policy/atomic.ts";
import { CAPABILITY_TIERS, capabilityTier, coreSupported, enforceBlockers } from "./blockers.ts";
import type { PolicyNeeds } from "./needs.ts";
import { probeBool } from "./probe.ts";
import { HOOK_NAMES, HOOK_SYMBOLS, type HookName } from "./probes/hooks.ts";
import type { ProbeReport } from "./probes/mod.ts";
import type { ProofResults } from "../proof/prover.ts";

export const SCHEMA_VERSION = 1;
export const SCHEMA_SEMVER = "1.12.0";

const maybe = z.boolean().nullable();

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
  enforce_blockers: z.array(BlockerSchema),
  runtime_state: z.enum(RUNTIME_STATES).nullable().describe("null = no agent running"),
  lsm_enabled: maybe.describe("bpf is in the active LSM list"),
  core_supported: maybe.describe("bpf syscall, BTF, cgroup v2 and ring buffers all present"),
  future_lsm: z.object({
    active_lsms: z.array(z.string()),
    landlock: maybe,
    landlock_abi: z.number().int().positive().nullable(),
    ipe: maybe,
    fs_verity: maybe,
    bpf_token: maybe,
  }).strict(),
  next_gen_bpf: z.object({
    arena: maybe,
    user_ringbuf: maybe,
    sched_ext: maybe,
    open_coded_iterators: maybe,
    xattr_kfuncs: maybe,
    bpf_send_signal_task: maybe,
    binary_auth: maybe,
  }).strict(),
  features: z.object({
    bpf_syscall: maybe,
    btf: maybe,
    bpffs: maybe,
    cgroup_v2: maybe,
    ringbuf: maybe,
    tracepoints: maybe,
    bpf_lsm: maybe.describe("bpf in the active LSM list"),
    bpf_lsm_attach: maybe.describe("a trial LSM program loads and attaches"),
    landlock: maybe,
    ima: maybe,
    ima_appraisal: maybe,
    fs_verity: maybe,
  }).strict(),
  feature_notes: z.record(z.string(), z.string())
    .describe("why a feature is false or null, keyed like features"),
  hooks: z.object(
    Object.fromEntries(HOOK_NAMES.map((h) => [h, HookEntry])) as Record<HookName, typeof HookEntry>,
  ).strict(),
  policy: z.object({
    applied: z.boolean(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
    version: z.number().int().nullable(),
    unresolved_count: z.number().int().nonnegative(),
    unresolved: z.array(z.string()).describe("path rules whose file does not exist yet"),
  }).strict(),
  requirements: Needs.extend({
    required_hooks: z.array(z.enum(HOOK_NAMES)),
  }).strict(),
  requirements_met: Needs,
  exec_identity: z.object({
    required: z.boolean(),
    hooks_available: maybe,
    ima_appraisal_available: maybe,
  }).strict(),
  state_transitions: z.object({
    total: z.number().int().nonnegative(),
    degradation_total: z.number().int().nonnegative(),
    strict_mode: z.boolean(),
    enforce_requested: z.boolean(),
  }).strict(),
  emergency: z.object({ active: maybe.describe("null = unknown (no daemon, no pins)") }).strict(),
  enforcement_proof: z.object({
    file: SurfaceProof.optional(),
    exec: SurfaceProof.optional(),
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
}).strict();
export type CapabilitiesReport = z.infer<typeof CapabilitiesReport>;

export interface PolicyStatus {
  applied: boolean;
  sha256: string | null;
  version: number | null;
  unresolved: string[];
}

export const NO_POLICY: PolicyStatus = {
  applied: false,
  sha256: null,
  version: null,
  unresolved: [],
};

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
  /** the daemon's enforcement proofs (absent: none, interval null) */
  proof?: {
    intervalSeconds: number;
    results: ProofResults;
    unenforced?: z.infer<typeof UnenforcedRule>[];
  };
}

/** The section a hook row corresponds to (lsm/<hook>); null for the IMA helper. */
export function hookSection(h: HookName): string | null {
  const s = HOOK_SYMBOLS[h];
  return s.startsWith("bpf_lsm_") ? `lsm/${s.slice("bpf_lsm_".length)}` : null;
}

function note(notes: Record<string, string>, key: string, r: ProbeReport[keyof ProbeReport]) {
  if (typeof r === "object" && r !== null && "status" in r) {
    if (r.status === "unsupported") notes[key] = r.reason;
    if (r.status === "unknown") notes[key] = r.error;
  }
}

/** Build the report. Pure (the clock is an input). */
export function buildReport(i: ReportInput): CapabilitiesReport {
  const p = i.probe;
  const blockers = [...enforceBlockers(p, i.needs)];
  for (const b of i.extraBlockers ?? []) {
    if (!blockers.some((x) => x.code === b.code)) blockers.push(b);
  }
  const tier = capabilityTier(p);
  const hooks = {} as CapabilitiesReport["hooks"];
  for (const h of HOOK_NAMES) {
    const sec = hookSection(h);
    hooks[h] = {
      ...p.hooks[h],
      attached: i.attachedSections === null
        ? null
        : sec !== null && i.attachedSections.includes(sec),
    };
  }
  const ng = p.next_gen_bpf.status === "supported" ? p.next_gen_bpf.value : null;
  const imaAppraisal = p.ima.status === "supported"
    ? p.ima.value.appraisal
    : p.ima.status === "unsupported"
    ? false
    : null;
  const notes: Record<string, string> = {};
  const featureProbes = {
    bpf_syscall: p.bpf_syscall,
    btf: p.btf,
    bpffs: p.bpffs,
    cgroup_v2: p.cgroup_v2,
    ringbuf: p.ringbuf,
    tracepoints: p.tracepoints,
    bpf_lsm: p.bpf_lsm_active,
    bpf_lsm_attach: p.bpf_lsm_attach,
    landlock: p.landlock,
    ima: p.ima,
    fs_verity: p.fs_verity,
  } as const;
  for (const [k, r] of Object.entries(featureProbes)) note(notes, k, r);
  if (p.ima.status === "supported" && !p.ima.value.appraisal) {
    notes.ima_appraisal = "the IMA policy has no appraise rule";
  }
  const codes = new Set(blockers.map((b) => b.code));
  const required = HOOK_NAMES.filter((h) => p.hooks[h].required);
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
    enforce_blockers: blockers,
    runtime_state: i.runtimeState,
    lsm_enabled: probeBool(p.bpf_lsm_active),
    core_supported: coreSupported(p),
    future_lsm: p.future_lsm,
    next_gen_bpf: {
      arena: ng?.arena ?? null,
      user_ringbuf: ng?.user_ringbuf ?? null,
      sched_ext: ng?.sched_ext ?? null,
      open_coded_iterators: ng?.open_coded_iterators ?? null,
      xattr_kfuncs: ng?.xattr_kfuncs ?? null,
      bpf_send_signal_task: ng?.bpf_send_signal_task ?? null,
      binary_auth: ng?.binary_auth ?? null,
    },
    features: {
      bpf_syscall: probeBool(p.bpf_syscall),
      btf: probeBool(p.btf),
      bpffs: probeBool(p.bpffs),
      cgroup_v2: probeBool(p.cgroup_v2),
      ringbuf: probeBool(p.ringbuf),
      tracepoints: probeBool(p.tracepoints),
      bpf_lsm: probeBool(p.bpf_lsm_active),
      bpf_lsm_attach: probeBool(p.bpf_lsm_attach),
      landlock: probeBool(p.landlock),
      ima: probeBool(p.ima),
      ima_appraisal: imaAppraisal,
      fs_verity: probeBool(p.fs_verity),
    },
    feature_notes: notes,
    hooks,
    policy: {
      applied: i.policy.applied,
      sha256: i.policy.sha256,
      version: i.policy.version,
      unresolved_count: i.policy.unresolved.length,
      unresolved: [...i.policy.unresolved],
    },
    requirements: { ...i.needs, required_hooks: required },
    requirements_met: {
      network: !codes.has("NETWORK_HOOK_UNAVAILABLE"),
      exec_identity: !codes.has("EXEC_IDENTITY_UNAVAILABLE"),
      exec_runtime_deps: !codes.has("EXEC_RUNTIME_DEPS_HOOK_UNAVAILABLE"),
      ima_appraisal: !codes.has("IMA_APPRAISAL_UNAVAILABLE"),
    },
    exec_identity: {
      required: i.needs.exec_identity,
      hooks_available: p.exec_identity_hooks,
      ima_appraisal_available: imaAppraisal,
    },
    state_transitions: { ...i.transitions },
    emergency: { active: i.emergencyActive },
    enforcement_proof: structuredClone(i.proof?.results ?? {}),
    enforcement_proof_interval_seconds: i.proof?.intervalSeconds ?? null,
    unenforced_rules: [...(i.proof?.unenforced ?? [])],
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
