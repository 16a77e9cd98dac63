/**
 * `aegisbpf capabilities [--json]`: the capability report, from the running
 * daemon when there is one, else built from direct probes (runtime_state
 * null: no agent running).
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { daemonReport } from "./daemon_or_local.ts";
import { out, outJson } from "../log.ts";
import { localReport } from "../posture/local_report.ts";
import type { CapabilitiesReport } from "../posture/report.ts";

export function addCapabilitiesCommand(program: Command): void {
  program.command("capabilities")
    .description("print the capability report (what this node can enforce, and why not)")
    .option("--json", "print the report as JSON (the capabilities.json format)")
    .addHelpText(
      "after",
      `
Asks the running agent when there is one; otherwise probes this host directly
and reports runtime_state null (no agent running). The JSON format is
capabilities.json (schemas/capabilities.schema.json). Exit code 0 when a
report was produced, whatever it says; use "aegisbpf health --require-enforce"
for a pass/fail answer.`,
    )
    .action(async (opts) => {
      const report = (await daemonReport()) ?? (await localReport()).report;
      if (opts.json) {
        outJson(report);
        return;
      }
      printReport(report);
    });
}

/** A short human summary of a report. */
export function printReport(r: CapabilitiesReport): void {
  out(`kernel:          ${r.kernel_version}`);
  out(`capability:      ${r.capability}`);
  out(`enforce_capable: ${r.enforce_capable}`);
  out(`runtime_state:   ${r.runtime_state ?? "none (no agent running)"}`);
  out(
    `policy:          ${
      r.policy.applied
        ? `version ${r.policy.version}, sha256 ${r.policy.sha256 ?? "?"}`
        : "none applied"
    }`,
  );
  if (r.policy.unresolved_count > 0) out(`unresolved:      ${r.policy.unresolved.join(", ")}`);
  out(
    `transitions:     ${r.state_transitions.total} (${r.state_transitions.degradation_total} degradations)`,
  );
  if (r.enforce_blocker_details.length === 0) out("blockers:        none");
  for (const b of r.enforce_blocker_details) {
    out(`blocker ${b.code}: ${b.message}`);
    out(`  remedy: ${b.remedy}`);
  }
}
