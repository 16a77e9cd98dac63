/**
 * `aegisbpf probe [--json]`: every capability probe and the per-hook table.
 * Read-only, except that (as root) one trivial LSM program is loaded,
 * attached and detached to learn whether BPF LSM really works.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { aegisPaths } from "../contracts.ts";
import { out, outJson } from "../log.ts";
import { capabilityTier, enforceBlockers } from "../posture/blockers.ts";
import { NO_NEEDS } from "../posture/needs.ts";
import { readAppliedPolicy } from "../posture/policy_status.ts";
import { probeDetail, type ProbeResult } from "../posture/probe.ts";
import { openHostProbeDeps } from "../posture/probes/host.ts";
import { HOOK_NAMES, probeAll, type ProbeReport } from "../posture/probes/mod.ts";

const PROBE_ROWS: (keyof ProbeReport)[] = [
  "kernel_version",
  "bpf_syscall",
  "btf",
  "bpffs",
  "cgroup_v2",
  "ringbuf",
  "tracepoints",
  "active_lsms",
  "bpf_lsm_active",
  "bpf_lsm_attach",
  "landlock",
  "ima",
  "fs_verity",
  "ipe",
  "sched_ext",
  "next_gen_bpf",
  "binary_auth",
];

export function addProbeCommand(program: Command): void {
  program.command("probe")
    .description("probe what this kernel offers (BPF, BTF, LSMs, hooks) and print it")
    .option("--json", "print one JSON object")
    .addHelpText(
      "after",
      `
Each probe answers supported, unsupported (with the reason) or unknown (with
what kept it from knowing). The hook table shows, for each BPF LSM hook,
whether the kernel has it (kernel_supported), whether the agent needs it for
the applied policy (required) and the BTF function that proves it.

Run as root for the full answer: BTF symbol checks and the BPF LSM trial (load,
attach and detach one program that denies nothing) need root. Nothing else is
changed on the host. Exit code 0 whenever the probes ran.`,
    )
    .action(async (opts) => {
      let needs = NO_NEEDS;
      try {
        needs = readAppliedPolicy(aegisPaths().stateDir).needs;
      } catch { /* reported by doctor; probe shows the kernel's facts */ }
      using deps = await openHostProbeDeps();
      const p = await probeAll({ ...deps, needs });
      const capability = capabilityTier(p);
      const blockers = enforceBlockers(p, needs);
      if (opts.json) {
        outJson({
          ...p,
          capability,
          enforce_blockers: blockers.map((b) => b.code),
          enforce_blocker_details: blockers,
          limitation: deps.limitation,
        });
        return;
      }
      printProbe(p, capability, blockers, deps.limitation);
    });
}

function statusWord(r: ProbeResult<unknown>): string {
  return r.status === "supported" ? "yes" : r.status === "unsupported" ? "NO" : "unknown";
}

function printProbe(
  p: ProbeReport,
  capability: string,
  blockers: { code: string; message: string; remedy: string }[],
  limitation: string | null,
): void {
  for (const k of PROBE_ROWS) {
    const r = p[k] as ProbeResult<unknown>;
    out(`${k.padEnd(16)} ${statusWord(r).padEnd(8)} ${probeDetail(r)}`);
  }
  out();
  out(`${"hook".padEnd(26)} ${"kernel".padEnd(8)} ${"required".padEnd(9)} btf_symbol`);
  for (const h of HOOK_NAMES) {
    const row = p.hooks[h];
    const k = row.kernel_supported === null ? "unknown" : row.kernel_supported ? "yes" : "NO";
    out(
      `${h.padEnd(26)} ${k.padEnd(8)} ${(row.required ? "yes" : "no").padEnd(9)} ${row.btf_symbol}`,
    );
  }
  out();
  out(`capability: ${capability}`);
  if (blockers.length === 0) out("enforce blockers: none");
  for (const b of blockers) {
    out(`blocker ${b.code}: ${b.message}`);
    out(`  remedy: ${b.remedy}`);
  }
  if (limitation) out(`note: ${limitation}`);
}
