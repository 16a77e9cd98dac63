/**
 * Health (docs/posture.md), as a pure function the CLI and the HTTP server share.
 *
 * - plain health: healthy when the agent is running and has a runtime
 *   state (liveness; a reduced posture is reported, not failed).
 * - require_enforce: healthy only when the agent runs, runtime_state is
 *   ENFORCE, there is no blocker, and emergency disable is not active
 *   (an unknown emergency state counts as active), and the last
 *   enforcement proof of every proven surface (src/proof/prover.ts)
 *   passed — a stale proof is the agent's DEGRADED (ENFORCEMENT_PROOF_FAILED),
 *   so runtime_state covers freshness; proofs switched off
 *   (`run --proof-interval 0`) fail it too: nothing shows the kernel denies.
 *
 * The body also carries every field of the C++ agent's `health --json`
 * (capability, mode, engine_mode, features, checks, the BPF object's
 * verification…), derived from the report and the agent facts; the mapping
 * is docs/posture.md, "Compatibility with the C++ agent: health and doctor".
 *
 * @module
 */
import { z } from "zod";
import { RUNTIME_STATES } from "../contracts.ts";
import { PROOF_SURFACES, proofProblem } from "../proof/prover.ts";
import type { AgentFacts } from "./agent_facts.ts";
import { CAPABILITY_TIERS, type CapabilityTier } from "./blockers.ts";
import {
  BlockerSchema,
  type CapabilitiesReport,
  CapabilitiesReport as ReportSchema,
  FutureLsm,
  NextGenBpf,
} from "./report.ts";

export const HEALTH_MODES = ["enforce", "audit-only", "disabled"] as const;
export const ENGINE_MODES = [
  "bpf_lsm",
  "tracepoint_audit",
  "tracepoint_signal",
  "unavailable",
] as const;

const HealthChecks = z.object({
  prereqs: z.boolean().describe("core, bpffs, and capability Full or AuditOnly"),
  bpf_load: z.boolean().describe("the running agent loaded the object (false without one)"),
  required_maps: z.boolean().describe("the verified object defines the required maps"),
  layout_version: z.boolean().describe(
    "the pinned maps have this build's layout (the agent refuses others at start)",
  ),
  required_pins: z.boolean().describe("the required maps are pinned"),
  network_pins: z.boolean().describe("the network rule maps are pinned"),
  bpf_object: z.boolean().describe("the embedded object is there"),
  bpf_hash_verified: z.boolean().describe("its SHA-256 is the one the build recorded"),
}).strict();

export const HealthBody = z.object({
  ok: z.boolean(),
  require_enforce: z.boolean(),
  daemon_running: z.boolean(),
  runtime_state: z.enum(RUNTIME_STATES).nullable(),
  enforce_capable: z.boolean(),
  blockers: z.array(BlockerSchema),
  emergency_disable_active: z.boolean().nullable(),
  /** why not healthy (empty when ok) */
  reasons: z.array(z.string()),
  capability: z.enum(CAPABILITY_TIERS),
  capability_tier: z.enum(CAPABILITY_TIERS).describe("the same as capability (the C++ name)"),
  mode: z.enum(HEALTH_MODES).describe(
    "what the kernel allows: Full enforce, AuditOnly audit-only, else disabled",
  ),
  engine_mode: z.enum(ENGINE_MODES).describe(
    "the running agent's programs; without one, what an agent would use",
  ),
  kernel_version: z.string(),
  features: ReportSchema.shape.features,
  future_lsm: FutureLsm,
  next_gen_bpf: NextGenBpf,
  checks: HealthChecks,
  bpf_object_path: z.string().describe('"embedded:aegis.bpf.o": the object is embedded'),
  bpf_object_found: z.boolean(),
  bpf_hash_found: z.boolean().describe("the build recorded the object's SHA-256"),
  bpf_hash_verified: z.boolean(),
  allow_unsigned_bpf: z.literal(false).describe("the hash is always checked before use"),
  network_maps_present: z.boolean(),
  undetermined_fields: z.array(z.string()).describe(
    "dotted paths of booleans reported false because they could not be determined",
  ),
}).strict();
export type HealthBody = z.infer<typeof HealthBody>;

export interface HealthInput {
  report: CapabilitiesReport;
  /** null = unknown */
  emergencyActive: boolean | null;
  daemonRunning: boolean;
  /** the embedded object and the pins (src/posture/agent_facts.ts) */
  agent: AgentFacts;
}

export interface HealthVerdict {
  healthy: boolean;
  status: 200 | 503;
  body: HealthBody;
}

/** The C++ `mode`: what the capability allows. */
export function healthMode(c: CapabilityTier): (typeof HEALTH_MODES)[number] {
  return c === "Full" ? "enforce" : c === "AuditOnly" ? "audit-only" : "disabled";
}

/** The programs the agent runs: LSM hooks attached, else its tracepoints (audit or signal). */
export function engineMode(
  r: CapabilitiesReport,
  daemonRunning: boolean,
): (typeof ENGINE_MODES)[number] {
  if (!daemonRunning) {
    return r.capability === "Full"
      ? "bpf_lsm"
      : r.capability === "AuditOnly"
      ? "tracepoint_audit"
      : "unavailable";
  }
  if (Object.values(r.hook_details).some((h) => h.attached === true)) return "bpf_lsm";
  return r.runtime_state === "ENFORCE_SIGNAL" ? "tracepoint_signal" : "tracepoint_audit";
}

const CONTRACT_PREFIXES = ["features.", "future_lsm.", "next_gen_bpf."];

/** The C++ health fields of the body, from the report and the agent facts. */
function contractFields(i: HealthInput) {
  const r = i.report;
  const a = i.agent;
  const undetermined = r.undetermined_fields.filter((u) =>
    CONTRACT_PREFIXES.some((p) => u.startsWith(p))
  );
  const fact = (path: string, v: boolean | null) => {
    if (v === null) undetermined.push(path);
    return v ?? false;
  };
  const checks: z.infer<typeof HealthChecks> = {
    prereqs: r.core_supported && r.features.bpffs &&
      (r.capability === "Full" || r.capability === "AuditOnly"),
    bpf_load: fact("checks.bpf_load", i.daemonRunning ? true : null),
    required_maps: a.object.required_maps,
    // pins of another layout are refused at start; no pins, nothing to mismatch
    layout_version: fact(
      "checks.layout_version",
      i.daemonRunning || a.pins.present === false ? true : null,
    ),
    required_pins: fact("checks.required_pins", a.pins.required),
    network_pins: fact("checks.network_pins", a.pins.network),
    bpf_object: a.object.found,
    bpf_hash_verified: a.object.hash_verified,
  };
  return {
    capability: r.capability,
    capability_tier: r.capability,
    mode: healthMode(r.capability),
    engine_mode: engineMode(r, i.daemonRunning),
    kernel_version: r.kernel_version,
    features: structuredClone(r.features),
    future_lsm: { ...r.future_lsm },
    next_gen_bpf: { ...r.next_gen_bpf },
    checks,
    bpf_object_path: a.object.path,
    bpf_object_found: a.object.found,
    bpf_hash_found: a.object.hash_found,
    bpf_hash_verified: a.object.hash_verified,
    allow_unsigned_bpf: false as const,
    network_maps_present: a.object.network_maps,
    undetermined_fields: undetermined,
  };
}

function proofReasons(i: HealthInput): string[] {
  const r = i.report;
  const interval = r.enforcement_proof_interval_seconds;
  if (interval === null) return ["the agent reports no enforcement proof"];
  if (interval === 0) {
    return ["enforcement proofs are off (run --proof-interval 0): nothing shows the kernel denies"];
  }
  const surfaces = PROOF_SURFACES.filter((s) => r.enforcement_proof[s] !== undefined);
  if (surfaces.length === 0) return ["no enforcement proof has run yet"];
  // freshness is the agent's call: a proof older than 3 periods is a transition to DEGRADED
  // (runtime_state above), except while emergency disable is or has just been active, when
  // no proof can run; judging the age here again would fail readiness in that gap
  const p = proofProblem(surfaces, r.enforcement_proof, 0, Number.MAX_SAFE_INTEGER);
  return p ? [p] : [];
}

/** The rules the agent's verification found not denied, in one reason (any state). */
function unenforcedReasons(r: CapabilitiesReport): string[] {
  const u = r.unenforced_rules;
  if (u.length === 0) return [];
  return [
    `${u.length} rule(s) not denied by the kernel (unenforced_rules): ` +
    u.slice(0, 3).map((x) => `rule ${x.rule_id} ${JSON.stringify(x.target)}`).join(", ") +
    (u.length > 3 ? ", …" : ""),
  ];
}

export function evaluateHealth(i: HealthInput, requireEnforce: boolean): HealthVerdict {
  const r = i.report;
  const reasons: string[] = [];
  if (!i.daemonRunning) reasons.push("no aegisbpf agent is running");
  else if (r.runtime_state === null) reasons.push("the agent has not reached a runtime state yet");
  if (requireEnforce) {
    if (r.runtime_state !== null && r.runtime_state !== "ENFORCE") {
      reasons.push(`runtime_state is ${r.runtime_state}, not ENFORCE`);
    }
    for (const b of r.enforce_blocker_details) reasons.push(`blocker ${b.code}: ${b.message}`);
    if (i.emergencyActive === true) {
      reasons.push("emergency disable is active: hooks report but do not deny");
    } else if (i.emergencyActive === null && i.daemonRunning) {
      reasons.push("the emergency-disable state is unknown");
    }
    if (i.daemonRunning && r.runtime_state === "ENFORCE") reasons.push(...proofReasons(i));
    if (i.daemonRunning) reasons.push(...unenforcedReasons(r));
  }
  const healthy = reasons.length === 0;
  return {
    healthy,
    status: healthy ? 200 : 503,
    body: {
      ok: healthy,
      require_enforce: requireEnforce,
      daemon_running: i.daemonRunning,
      runtime_state: r.runtime_state,
      enforce_capable: r.enforce_capable,
      blockers: r.enforce_blocker_details,
      emergency_disable_active: i.emergencyActive,
      reasons,
      ...contractFields(i),
    },
  };
}
