/**
 * Which source gives the agent the content identity (SHA-256) of an
 * executed file, for [deny_binary_hash] (docs/engine.md, "Exec identity by
 * content"): "ima" when the sleepable exec-hash program
 * (bpf/exec_hash.bpf.c, lsm.s/bprm_check_security) runs and asks IMA with
 * bpf_ima_file_hash; "none" otherwise. There is no user-space hash cache in
 * this version.
 *
 * With a running daemon the answer is the attach result; without one (a CLI
 * probe, the enforce gate before the engine starts) it is predicted from
 * the probes: BPF LSM usable, the kernel BTF has bpf_ima_file_hash and the
 * exec hook, and the kernel has IMA.
 *
 * @module
 */
import { bpfLsmUsable } from "./blockers.ts";
import type { ProbeReport } from "./probes/mod.ts";

/** The section of the exec-hash program. */
export const EXEC_HASH_SECTION = "lsm.s/bprm_check_security";
/**
 * The sections of the mapping program ([protect_runtime_deps] applies the
 * lists there) and of the mprotect program (bpf/exec_hash.bpf.c).
 */
export const MMAP_HASH_SECTION = "lsm.s/mmap_file";
export const MPROTECT_HASH_SECTION = "lsm/file_mprotect";

export type ExecIdentitySource = "ima" | "none";

export interface ExecIdentity {
  source: ExecIdentitySource;
  /** why the source is "none" (null when it is "ima") */
  reason: string | null;
}

/** Pure: the probes, and the daemon's attached sections (null: no daemon). */
export function execIdentity(
  p: ProbeReport,
  attachedSections: readonly string[] | null,
): ExecIdentity {
  if (attachedSections !== null) {
    return attachedSections.includes(EXEC_HASH_SECTION) ? { source: "ima", reason: null } : {
      source: "none",
      reason: `the exec-hash program (${EXEC_HASH_SECTION}) is not attached ` +
        "(the start log says why the kernel refused it, or BPF LSM is not enforcing)",
    };
  }
  const why: string[] = [];
  if (!bpfLsmUsable(p)) why.push("BPF LSM is not usable");
  if (p.hooks.lsm_bprm_ima_check.kernel_supported !== true) {
    why.push("the kernel BTF has no bpf_ima_file_hash (kernel >= 5.18 with CONFIG_IMA)");
  }
  if (p.hooks.lsm_bprm_check_security.kernel_supported !== true) {
    why.push("the kernel BTF has no bpf_lsm_bprm_check_security");
  }
  if (p.ima.status === "unsupported") why.push(`IMA: ${p.ima.reason}`);
  return why.length === 0 ? { source: "ima", reason: null } : {
    source: "none",
    reason: why.join("; "),
  };
}
