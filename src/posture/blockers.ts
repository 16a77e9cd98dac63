/**
 * The enforce gate's facts: the capability tier (docs/posture.md) and the
 * blockers that keep a node from enforcing, each with a concrete remedy.
 * Pure functions of a probe report and the policy's needs.
 *
 * @module
 */
import type { Blocker } from "../contracts.ts";
import type { PolicyNeeds } from "./needs.ts";
import { probeDetail, type ProbeResult } from "./probe.ts";
import type { HookName } from "./probes/hooks.ts";
import type { ProbeReport } from "./probes/mod.ts";
import { execIdentity, MMAP_HASH_SECTION } from "./exec_identity.ts";

export const CAPABILITY_TIERS = ["Full", "AuditOnly", "Disabled", "Unknown"] as const;
export type CapabilityTier = (typeof CAPABILITY_TIERS)[number];

/** The probes the agent cannot run without at all. */
function coreProbes(p: ProbeReport): [string, ProbeResult<unknown>][] {
  return [
    ["bpf syscall", p.bpf_syscall],
    ["kernel BTF", p.btf],
    ["cgroup v2", p.cgroup_v2],
    ["BPF ring buffer", p.ringbuf],
  ];
}

/** Are bpf(), BTF, cgroup v2 and ring buffers all present? null = unknown. */
export function coreSupported(p: ProbeReport): boolean | null {
  const c = coreProbes(p).map(([, r]) => r.status);
  if (c.includes("unsupported")) return false;
  if (c.includes("unknown")) return null;
  return true;
}

/** BPF LSM enforces: bpf is an active LSM AND a trial program attaches. */
export function bpfLsmUsable(p: ProbeReport): boolean {
  return p.bpf_lsm_active.status === "supported" && p.bpf_lsm_attach.status === "supported";
}

/**
 * docs/posture.md tier: Disabled (no bpf syscall, BTF, cgroup v2 or ring buffer:
 * the daemon refuses to run), Full (BPF LSM active and a program really
 * attaches), AuditOnly (tracepoints), else Unknown.
 */
export function capabilityTier(p: ProbeReport): CapabilityTier {
  const core = coreSupported(p);
  if (core === false) return "Disabled";
  if (core === true && bpfLsmUsable(p)) return "Full";
  if (core === true && p.tracepoints.status === "supported") return "AuditOnly";
  return "Unknown";
}

const missing = (p: ProbeReport, hooks: HookName[]) =>
  hooks.filter((h) => p.hooks[h].kernel_supported !== true);

function lsmBootList(p: ProbeReport): string {
  const l = p.active_lsms.status === "supported" ? p.active_lsms.value : [];
  return (l.includes("bpf") ? l : [...l, "bpf"]).join(",") || "…,bpf";
}

/**
 * Every reason the node cannot enforce `needs`, in a stable order. Empty
 * exactly when enforcement can be trusted. Unknown facts block too: the
 * agent never assumes a capability it could not confirm.
 */
export function enforceBlockers(
  p: ProbeReport,
  needs: PolicyNeeds,
  attachedSections: readonly string[] | null = null,
): Blocker[] {
  const out: Blocker[] = [];
  const tier = capabilityTier(p);
  const core = coreProbes(p).filter(([, r]) => r.status !== "supported");
  if (core.length > 0) {
    out.push({
      code: "CORE_UNSUPPORTED",
      message: core.map(([n, r]) => `${n}: ${probeDetail(r)}`).join("; "),
      remedy: "run a kernel >= 5.8 with CONFIG_BPF_SYSCALL, CONFIG_DEBUG_INFO_BTF " +
        "(/sys/kernel/btf/vmlinux) and the unified cgroup v2 hierarchy mounted",
    });
  }
  if (p.bpffs.status !== "supported") {
    out.push({
      code: "BPFFS_UNMOUNTED",
      message: probeDetail(p.bpffs),
      remedy: "mount -t bpf bpf /sys/fs/bpf (persist it in /etc/fstab)",
    });
  }
  if (!bpfLsmUsable(p)) {
    const why = [
      p.bpf_lsm_active.status !== "supported" ? probeDetail(p.bpf_lsm_active) : null,
      p.bpf_lsm_attach.status !== "supported" ? probeDetail(p.bpf_lsm_attach) : null,
    ].filter((s) => s !== null).join("; ");
    out.push({
      code: "BPF_LSM_DISABLED",
      message: `BPF LSM enforcement is not confirmed here: ${why}`,
      remedy: p.bpf_lsm_active.status === "unsupported"
        ? `boot with lsm=${lsmBootList(p)} (kernel built with CONFIG_BPF_LSM=y)`
        : p.bpf_lsm_attach.status === "unknown"
        ? 'run "aegisbpf probe" as root so the agent can try to attach an LSM program; ' +
          `BPF LSM also needs lsm=${lsmBootList(p)} on the kernel command line`
        : `make sure the kernel is booted with lsm=${lsmBootList(p)}, is built with ` +
          `CONFIG_BPF_LSM=y, is not in lockdown "confidentiality" mode, and that no ` +
          "hypervisor, container or seccomp policy forbids loading BPF LSM programs",
    });
  }
  if (tier === "AuditOnly") {
    out.push({
      code: "CAPABILITY_AUDIT_ONLY",
      message: "the kernel offers only tracepoint-based auditing (capability AuditOnly)",
      remedy: "fix BPF_LSM_DISABLED; until then run with --audit or " +
        "--enforce-gate-mode=audit-fallback and treat the node as not enforcing",
    });
  }
  if (needs.network) {
    const m = missing(p, ["lsm_socket_connect", "lsm_socket_bind", "lsm_socket_sendmsg"]);
    if (m.length > 0) {
      out.push({
        code: "NETWORK_HOOK_UNAVAILABLE",
        message: `the policy has network rules but these hooks are missing or unknown: ${
          m.map((h) => `${h} (${p.hooks[h].btf_symbol})`).join(", ")
        }`,
        remedy: "use a kernel whose BTF has the BPF LSM socket hooks (5.7 or later with " +
          "CONFIG_BPF_LSM), or remove the network sections from the policy",
      });
    }
  }
  // verified-exec hooks (protect rules) and the content identity (deny/allow_binary_hash)
  const identity: string[] = [];
  const remedies: string[] = [];
  if (needs.exec_identity && p.exec_identity_hooks !== true) {
    identity.push(
      `the policy has protect rules, which need verified-exec tracking, but the exec ` +
        `hooks (bprm_creds_for_exec, bprm_check_security, bprm_committed_creds, task_alloc) are ${
          p.exec_identity_hooks === false ? "missing" : "unknown (no BTF query)"
        }`,
    );
    remedies.push(
      "use a kernel >= 5.8 with CONFIG_BPF_LSM, or remove protect_path/protect_connect " +
        "from the policy",
    );
  }
  const content = needs.exec_content ? execIdentity(p, attachedSections) : null;
  // the scan serves [deny_binary_hash] only: a list of what may run needs every exec hashed
  if (content?.source === "scan" && (needs.exec_allowlist || needs.exec_trusted)) {
    identity.push(
      `the policy has ${
        needs.exec_allowlist ? "an [allow_binary_hash] allowlist" : "a [trusted_exec_hash] list"
      } (not enforced: only listed contents should exec), but the kernel does not hash ` +
        `executed files and the daemon's content scan serves [deny_binary_hash] only: ` +
        content.reason,
    );
    remedies.push(
      "use a kernel >= 5.18 with CONFIG_BPF_LSM and CONFIG_IMA (bpf_ima_file_hash from a " +
        "sleepable LSM program), or remove [allow_binary_hash] and [trusted_exec_hash]",
    );
  }
  if (content?.source === "none") {
    const sections = needs.exec_allowlist
      ? "an [allow_binary_hash] allowlist (not enforced: only listed contents should exec)"
      : needs.exec_trusted
      ? "a [trusted_exec_hash] list (not enforced: only trusted contents should exec)"
      : "[deny_binary_hash] rules";
    identity.push(
      `the policy has ${sections}, but no source gives the content (SHA-256) ` +
        `of executed files: ${content.reason}`,
    );
    remedies.push(
      "use a kernel >= 5.18 with CONFIG_BPF_LSM and CONFIG_IMA (bpf_ima_file_hash from a " +
        "sleepable LSM program), or remove [deny_binary_hash], [allow_binary_hash] and " +
        "[trusted_exec_hash] from the policy",
    );
  }
  if (identity.length > 0) {
    out.push({
      code: "EXEC_IDENTITY_UNAVAILABLE",
      message: identity.join("; "),
      remedy: remedies.join("; "),
    });
  }
  const mmapMissing = attachedSections
    ? !attachedSections.includes(MMAP_HASH_SECTION)
    : missing(p, ["lsm_file_mmap"]).length > 0;
  if (needs.exec_runtime_deps && mmapMissing) {
    out.push({
      code: "EXEC_RUNTIME_DEPS_HOOK_UNAVAILABLE",
      message: "the policy checks what executables map ([protect_runtime_deps]), but " +
        (attachedSections
          ? `the mapping program (${MMAP_HASH_SECTION}) is not attached`
          : "the mmap_file hook (bpf_lsm_mmap_file) is missing or unknown"),
      remedy: "use a kernel with CONFIG_BPF_LSM whose BTF has bpf_lsm_mmap_file, or remove " +
        "the runtime dependency rules",
    });
  }
  if (needs.ima_appraisal) {
    const ima = p.ima.status === "supported" && p.ima.value.appraisal;
    const hook = p.hooks.lsm_bprm_ima_check.kernel_supported === true;
    if (!ima || !hook) {
      out.push({
        code: "IMA_APPRAISAL_UNAVAILABLE",
        message: [
          ima
            ? null
            : `IMA appraisal: ${
              p.ima.status === "supported"
                ? "the IMA policy has no appraise rule"
                : probeDetail(p.ima)
            }`,
          hook ? null : "the kernel BTF has no bpf_ima_file_hash (or it is unknown)",
        ].filter((s) => s !== null).join("; "),
        remedy: "boot with ima_appraise=enforce and an IMA policy with appraise rules " +
          "(ima_policy=appraise_tcb), on a kernel >= 5.18 with CONFIG_IMA, or remove the IMA rules",
      });
    }
  }
  return out;
}
