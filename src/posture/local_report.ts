/**
 * The capability report a CLI command builds itself when no daemon runs:
 * host probes (with the shim when root), the applied policy's needs, and
 * runtime_state null ("no agent running").
 *
 * @module
 */
import { type AegisPaths, aegisPaths } from "../contracts.ts";
import { literal, log } from "../log.ts";
import { NO_NEEDS, type PolicyNeeds } from "./needs.ts";
import { readAppliedPolicy } from "./policy_status.ts";
import { openHostProbeDeps } from "./probes/host.ts";
import { probeAll, type ProbeReport } from "./probes/mod.ts";
import { buildReport, type CapabilitiesReport, NO_POLICY, type PolicyStatus } from "./report.ts";

export interface LocalReport {
  report: CapabilitiesReport;
  probe: ProbeReport;
  /** why some probes are unknown (not root…), or null */
  limitation: string | null;
}

/** Probe this host and build a report with runtime_state null. */
export async function localReport(paths: AegisPaths = aegisPaths()): Promise<LocalReport> {
  let policy: PolicyStatus = NO_POLICY;
  let needs: PolicyNeeds = NO_NEEDS;
  let policyNote: string | null = null;
  try {
    ({ status: policy, needs } = readAppliedPolicy(paths.stateDir));
  } catch (e) {
    policyNote = `the applied policy could not be read (${(e as Error).message}); ` +
      "policy-derived requirements are not checked";
    log("posture").warn(literal(policyNote));
  }
  using deps = await openHostProbeDeps();
  const probe = await probeAll({ ...deps, needs });
  const report = buildReport({
    probe,
    needs,
    runtimeState: null,
    transitions: { total: 0, degradation_total: 0, strict_mode: false, enforce_requested: false },
    policy,
    emergencyActive: null,
    attachedSections: null,
    generatedBy: "cli",
    now: Date.now() / 1000,
  });
  const limitation = [deps.limitation, policyNote].filter((s) => s !== null).join("; ") || null;
  return { report, probe, limitation };
}
