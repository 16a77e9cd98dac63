/**
 * `aegisbpf doctor`: health plus advice. Every blocker becomes advice with
 * its remedy, and so do the other findings an operator should act on.
 * Pure: the CLI gathers the facts.
 *
 * @module
 */
import { z } from "zod";
import { HealthBody, type HealthVerdict } from "./health.ts";
import type { CapabilitiesReport } from "./report.ts";

export const Advice = z.object({
  code: z.string().describe("a blocker code or one of the doctor's finding codes"),
  message: z.string(),
  remediation: z.string(),
}).strict();
export type Advice = z.infer<typeof Advice>;

/**
 * `doctor --json`: the C++ agent's {ok, report, advice} (report = the health
 * body) and, as before, the same body under `health`.
 */
export const DoctorBody = z.object({
  ok: z.boolean().describe("the node meets enforce guarantees (health --require-enforce)"),
  report: HealthBody,
  health: HealthBody.describe("the same as report"),
  advice: z.array(Advice),
}).strict();
export type DoctorBody = z.infer<typeof DoctorBody>;

export function doctorBody(health: HealthVerdict, advice: Advice[]): DoctorBody {
  return { ok: health.healthy, report: health.body, health: health.body, advice };
}

export interface DoctorFacts {
  report: CapabilitiesReport;
  /** health with require_enforce */
  health: HealthVerdict;
  daemonRunning: boolean;
  /** file systems mounted where expected; null = could not read the mount table */
  mounts: { securityfs: boolean | null; tracefs: boolean | null };
  /** pins of an agent exist under the pin root */
  pinsPresent: boolean | null;
  pinRoot: string;
  /** why some probes could not run (e.g. not root), or null */
  probeLimitation: string | null;
}

export function doctorAdvice(f: DoctorFacts): Advice[] {
  const r = f.report;
  const out: Advice[] = r.enforce_blocker_details.map((b) => ({
    code: b.code,
    message: b.message,
    remediation: b.remedy,
  }));
  if (f.mounts.securityfs === false) {
    out.push({
      code: "SECURITYFS_UNMOUNTED",
      message: "securityfs is not mounted at /sys/kernel/security: the active LSM list and IMA " +
        "cannot be read",
      remediation: "mount -t securityfs none /sys/kernel/security (persist it in /etc/fstab)",
    });
  }
  if (f.mounts.tracefs === false) {
    out.push({
      code: "TRACEFS_UNMOUNTED",
      message: "tracefs is not mounted: audit mode and the signal fallback cannot attach " +
        "syscall tracepoints",
      remediation: "mount -t tracefs tracefs /sys/kernel/tracing",
    });
  }
  if (!f.daemonRunning) {
    out.push({
      code: "NO_DAEMON",
      message: f.pinsPresent
        ? `no aegisbpf agent is running, but pins exist under ${f.pinRoot}: the pinned programs ` +
          "keep enforcing with nobody reading their events or watching their health"
        : "no aegisbpf agent is running: nothing is enforced or audited",
      remediation: f.pinsPresent
        ? 'start the agent ("aegisbpf run", it re-adopts the pins) or remove them ("aegisbpf uninstall")'
        : 'start the agent: "aegisbpf run" (systemd: systemctl start aegisbpf)',
    });
  } else if (r.runtime_state !== null && r.runtime_state !== "ENFORCE") {
    out.push({
      code: "NOT_ENFORCING",
      message: `the agent runs in ${r.runtime_state}: the node does not meet enforce guarantees`,
      remediation: r.enforce_blockers.length > 0
        ? "fix the blockers listed above, then restart the agent in enforce mode"
        : 'see the state_change events ("GET /state") for the reason; restart the agent in ' +
          "enforce mode once it is fixed",
    });
  }
  if (f.daemonRunning) out.push(...proofAdvice(r));
  if (f.daemonRunning && r.runtime_state === "ENFORCE" && r.self_protection.armed === false) {
    out.push({
      code: "SELF_PROTECTION_OFF",
      message: "self-protection is not armed" +
        (r.self_protection.requested ? ` (${r.self_protection.detail})` : "") +
        ": root can remove the pins, edit the pinned maps or stop the agent without a trace",
      remediation: 'run the agent with --self-protect (docs/security.md, "Self-protection")',
    });
  }
  if (f.daemonRunning && r.self_protection.no_new_privs === false) {
    out.push({
      code: "NO_NEW_PRIVS_OFF",
      message:
        "the agent runs without no_new_privs: a process it starts could gain privileges through a setuid or file-capability binary",
      remediation: 'see the agent\'s start log ("no_new_privs: …") for why the kernel refused it',
    });
  }
  const sc = r.self_protection.seccomp;
  if (f.daemonRunning && (sc.installed === false || (sc.installed && sc.mode === "log"))) {
    out.push({
      code: "SECCOMP_OFF",
      message: (sc.installed
        ? "the agent's seccomp filter only logs (run --seccomp log)"
        : `the agent runs without its seccomp filter (${sc.detail})`) +
        ": the daemon can make any system call, a foothold in it reaches the whole kernel interface",
      remediation: sc.mode === "off" || sc.mode === "log"
        ? 'restart the agent without --seccomp (the default is enforce; docs/security.md, "Seccomp")'
        : 'see the agent\'s start log ("seccomp: not installed: …") for why the kernel refused it',
    });
  }
  const caps = r.self_protection.capabilities;
  if (f.daemonRunning && caps.limited === false) {
    out.push({
      code: "CAPABILITIES_NOT_LIMITED",
      message: `the agent keeps capabilities it does not need (${caps.detail}): a foothold in ` +
        "the daemon could use them (CAP_SETUID, CAP_SYS_RAWIO, CAP_SYS_BOOT …)",
      remediation: caps.detail === "run --no-drop-caps"
        ? 'restart the agent without --no-drop-caps (docs/security.md, "Capabilities")'
        : 'see the agent\'s start log ("capabilities: …") for why the drop failed',
    });
  }
  if (r.exec_identity.required && r.exec_identity.source === "scan") {
    out.push({
      code: "EXEC_IDENTITY_SCAN_ONLY",
      message: "the kernel does not hash executed files: [deny_binary_hash] is enforced only on " +
        "the files the daemon's content scan finds in /usr/bin, /usr/sbin, /usr/local/bin, " +
        "/usr/local/sbin, /bin, /sbin and [scan_paths]; a copy anywhere else runs",
      remediation: "use a kernel >= 5.18 with CONFIG_BPF_LSM and CONFIG_IMA (bpf_ima_file_hash) " +
        'for every copy; until then add the directories that matter to [scan_paths] (docs/engine.md, "The content scan")',
    });
  }
  if (f.health.body.emergency_disable_active === true) {
    out.push({
      code: "EMERGENCY_DISABLE_ACTIVE",
      message: "emergency disable is active: every hook reports but denies nothing",
      remediation: 'when the incident is over: aegisbpf emergency-enable --reason "..."',
    });
  }
  if (r.policy.unresolved_count > 0) {
    out.push({
      code: "POLICY_UNRESOLVED",
      message: `${r.policy.unresolved_count} path rule(s) name files that do not exist yet ` +
        `(${r.policy.unresolved.slice(0, 5).join(", ")}${
          r.policy.unresolved_count > 5 ? ", …" : ""
        }); ` +
        "they are enforced once the files appear",
      remediation: "check the paths for typos; nothing to do if the files are expected later",
    });
  }
  if (f.probeLimitation) {
    out.push({
      code: "PROBE_INCOMPLETE",
      message: `some probes could not run: ${f.probeLimitation}`,
      remediation: "run the command as root",
    });
  }
  return out;
}

/**
 * A failed, stale or switched-off enforcement proof (docs/guarantees.md):
 * what the probe saw, and what to check.
 */
function proofAdvice(r: CapabilitiesReport): Advice[] {
  const out: Advice[] = [];
  if (r.enforcement_proof_interval_seconds === 0 && r.runtime_state === "ENFORCE") {
    out.push({
      code: "ENFORCEMENT_PROOF_OFF",
      message: "enforcement proofs are off (run --proof-interval 0): nothing shows that the " +
        "kernel denies, and /health?require_enforce=1 fails",
      remediation: "restart the agent without --proof-interval 0 (default: every 30 s)",
    });
  }
  for (const [surface, p] of Object.entries(r.enforcement_proof)) {
    if (!p || p.ok) continue;
    out.push({
      code: "ENFORCEMENT_PROOF_FAILED",
      message: `the ${surface} proof failed at ${new Date(p.last_unix * 1000).toISOString()}: ` +
        `${p.detail}. The programs are attached, but the kernel did not deny the canary ` +
        "operation: rules of this surface are probably not enforced on this node",
      remediation: /did not deny/.test(p.detail)
        ? 'check that "bpf" is in the active LSM list (cat /sys/kernel/security/lsm; add ' +
          "lsm=...,bpf to the kernel command line and reboot), and that emergency disable or " +
          'break-glass is not active ("aegisbpf emergency-status")'
        : /cgroup/.test(p.detail)
        ? "the probe needs a writable cgroup v2 hierarchy: check that /sys/fs/cgroup is a " +
          "cgroup2 mount the agent (root) can create aegisbpf.canary in"
        : "check the agent's log for the proof's error; the sentinel lives under the runtime " +
          "directory (/run/aegisbpf/proof) and the probe runs /bin/sh",
    });
  }
  for (const u of r.unenforced_rules) {
    out.push({
      code: "RULE_UNENFORCED",
      message: `rule ${u.rule_id} (${u.surface}) on ${JSON.stringify(u.target)} is not ` +
        `enforced: ${u.reason}`,
      remediation: /replaced or created again/.test(u.reason)
        ? "apply the policy again (aegisbpf policy apply FILE) or add the path again " +
          "(aegisbpf block add PATH): rules follow the file a path named when they were applied"
        : 'see docs/engine.md, "File identity per file system": move the file to a supported ' +
          "file system, or rule it where the hooks can identify it",
    });
  }
  return out;
}
