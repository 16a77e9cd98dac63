/**
 * `aegisbpf health [--json] [--require-enforce]` and `aegisbpf doctor
 * [--json]` (docs/posture.md). Both ask the running daemon when there is one and
 * probe the host directly when not (then the answer is "not healthy": no
 * agent runs).
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { daemonHealth, daemonReport } from "./daemon_or_local.ts";
import { out, outJson } from "../log.ts";
import { printHealth } from "./readiness.ts";
import { evaluateHealth, type HealthVerdict } from "../posture/health.ts";
import type { CapabilitiesReport } from "../posture/report.ts";

// `health` asks the daemon and prints: that is all a readiness probe runs.
// What only `doctor` or a node without an agent needs (probing the host,
// the doctor's advice, the report) is imported when it is needed, so a
// probe that execs `aegisbpf health` does not evaluate the probes, the
// native code or the report builder (docs/benchmarks.md, CLI start).

interface Gathered {
  daemonRunning: boolean;
  health: HealthVerdict;
  report: CapabilitiesReport | null;
  limitation: string | null;
}

async function gather(requireEnforce: boolean, wantReport: boolean): Promise<Gathered> {
  const h = await daemonHealth(requireEnforce);
  if (h !== null) {
    return {
      daemonRunning: true,
      health: h,
      report: wantReport ? await daemonReport() : null,
      limitation: null,
    };
  }
  const { localReport } = await import("../posture/local_report.ts");
  const { hostAgentFacts } = await import("../posture/agent_facts.ts");
  const { aegisPaths } = await import("../contracts.ts");
  const local = await localReport();
  const agent = await hostAgentFacts(aegisPaths().pinRoot);
  return {
    daemonRunning: false,
    health: evaluateHealth(
      { report: local.report, emergencyActive: null, daemonRunning: false, agent },
      requireEnforce,
    ),
    report: local.report,
    limitation: local.limitation,
  };
}

async function mountFacts(): Promise<{ securityfs: boolean | null; tracefs: boolean | null }> {
  const { readMounts } = await import("../posture/mountinfo.ts");
  const { hostFs } = await import("../posture/probe.ts");
  const { fsTypeAt } = await import("../util/mountinfo.ts");
  try {
    const m = await readMounts(hostFs);
    return {
      securityfs: fsTypeAt(m, "/sys/kernel/security") === "securityfs",
      tracefs: m.some((x) => x.fsType === "tracefs"),
    };
  } catch {
    return { securityfs: null, tracefs: null };
  }
}

export function addHealthCommands(program: Command): void {
  program.command("health")
    .description("is the agent running (and, with --require-enforce, really enforcing)?")
    .option("--json", "print the answer as JSON")
    .option(
      "--require-enforce",
      "healthy only when runtime_state is ENFORCE, no blocker applies and emergency disable is off",
    )
    .addHelpText(
      "after",
      `
Exit code 0 when healthy, 1 when not. Asks the running agent; when none runs,
the host is probed directly and the answer is "not healthy" (no agent), with
the blockers that would keep an agent from enforcing.

For readiness checks use --require-enforce: a node that audits, degraded, or
is in emergency disable does not meet enforce guarantees.`,
    )
    .action(async (opts) => {
      const g = await gather(opts.requireEnforce === true, false);
      if (opts.json) outJson(g.health.body);
      else printHealth(g.health);
      if (!g.health.healthy) Deno.exitCode = 1;
    });

  program.command("doctor")
    .description("health with advice: what is wrong and how to fix it")
    .option(
      "--json",
      "print {ok, report, health, advice: [{code, message, remediation}]} as JSON " +
        "(report and health: the health --json body)",
    )
    .addHelpText(
      "after",
      `
Checks the same as "health --require-enforce" and lists advice for every
blocker and other findings (no agent, emergency disable, unmounted securityfs
or tracefs, policy paths that do not exist yet, probes that needed root).
Exit code 0 when the node meets enforce guarantees, 1 otherwise.`,
    )
    .action(async (opts) => {
      const g = await gather(true, true);
      const { aegisPaths } = await import("../contracts.ts");
      const { pinsPresent } = await import("../bpf/pins.ts");
      const { doctorAdvice, doctorBody } = await import("../posture/doctor.ts");
      const root = aegisPaths().pinRoot;
      const advice = doctorAdvice({
        report: g.report!,
        health: g.health,
        daemonRunning: g.daemonRunning,
        mounts: await mountFacts(),
        pinsPresent: pinsPresent(root),
        pinRoot: root,
        probeLimitation: g.limitation,
      });
      if (opts.json) {
        outJson(doctorBody(g.health, advice));
      } else {
        printHealth(g.health, false);
        out();
        if (advice.length === 0) out("no advice: the node meets enforce guarantees");
        for (const a of advice) {
          out(`[${a.code}] ${a.message}`);
          out(`  fix: ${a.remediation}`);
        }
      }
      if (!g.health.healthy) Deno.exitCode = 1;
    });
}
