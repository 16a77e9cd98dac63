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
 * @module
 */
import { z } from "zod";
import { RUNTIME_STATES } from "../contracts.ts";
import { PROOF_SURFACES, proofProblem } from "../proof/prover.ts";
import { BlockerSchema, type CapabilitiesReport } from "./report.ts";

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
});
export type HealthBody = z.infer<typeof HealthBody>;

export interface HealthInput {
  report: CapabilitiesReport;
  /** null = unknown */
  emergencyActive: boolean | null;
  daemonRunning: boolean;
}

export interface HealthVerdict {
  healthy: boolean;
  status: 200 | 503;
  body: HealthBody;
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
    for (const b of r.enforce_blockers) reasons.push(`blocker ${b.code}: ${b.message}`);
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
      blockers: r.enforce_blockers,
      emergency_disable_active: i.emergencyActive,
      reasons,
    },
  };
}
