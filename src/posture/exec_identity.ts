/**
 * Which source gives the agent the content identity (SHA-256) of an
 * executed file, for [deny_binary_hash] (docs/engine.md, "Exec identity by
 * content"):
 *  - "ima": the sleepable exec-hash program (bpf/exec_hash.bpf.c,
 *    lsm.s/bprm_check_security) runs and asks IMA with bpf_ima_file_hash:
 *    every executed or mapped file is hashed, wherever it lives;
 *  - "scan": that program cannot run, but the inode rules can (lsm/file_open
 *    or lsm/inode_permission, and lsm/bprm_check_security): the daemon hashes the files of the
 *    scanned directories at each apply and denies the inodes that carry a
 *    denied content (policy/content_scan.ts). Only [deny_binary_hash]; the
 *    allow and trusted lists need "ima";
 *  - "none": neither.
 *
 * With a running daemon the answer is the attach result (and IMA present:
 * without CONFIG_IMA the program attaches but the helper gives nothing);
 * without one (a CLI probe, the enforce gate before the engine starts) it is
 * predicted from the probes.
 *
 * @module
 */
import { bpfLsmUsable } from "./blockers.ts";
import type { ProbeReport } from "./probes/mod.ts";
import { HOOK_SYMBOLS } from "./probes/hooks.ts";

/** The helper the exec-hash programs call (bpf/exec_hash.bpf.c). */
const IMA_HELPER = HOOK_SYMBOLS.lsm_bprm_ima_check;

/** The section of the exec-hash program. */
export const EXEC_HASH_SECTION = "lsm.s/bprm_check_security";
/**
 * The sections of the mapping program ([protect_runtime_deps] applies the
 * lists there) and of the mprotect program (bpf/exec_hash.bpf.c).
 */
export const MMAP_HASH_SECTION = "lsm.s/mmap_file";
export const MPROTECT_HASH_SECTION = "lsm/file_mprotect";

export type ExecIdentitySource = "ima" | "scan" | "none";

/**
 * The scan source needs inode rules on exec and on open (either file hook,
 * `run --lsm-hook`).
 */
function scanHooksAttached(sections: readonly string[]): boolean {
  return sections.includes("lsm/bprm_check_security") &&
    (sections.includes("lsm/file_open") || sections.includes("lsm/inode_permission"));
}

export interface ExecIdentity {
  source: ExecIdentitySource;
  /** why the source is not "ima" (null when it is) */
  reason: string | null;
}

const SCAN_NOTE = "the daemon hashes the files directly inside /usr/bin, /usr/sbin, " +
  "/usr/local/bin, /usr/local/sbin, /bin, /sbin and [scan_paths] at each apply and denies the " +
  "inodes with a [deny_binary_hash] content; a copy elsewhere is not covered " +
  '(docs/engine.md, "The content scan")';

/** Pure: the probes, and the daemon's attached sections (null: no daemon). */
export function execIdentity(
  p: ProbeReport,
  attachedSections: readonly string[] | null,
): ExecIdentity {
  const imaMissing = p.ima.status === "unsupported" ? `IMA: ${p.ima.reason}` : null;
  if (attachedSections !== null) {
    const why = attachedSections.includes(EXEC_HASH_SECTION)
      ? imaMissing
      : p.hooks.lsm_bprm_ima_check.kernel_supported === false
      ? `the kernel BTF has no ${IMA_HELPER} (kernel >= 5.18 with CONFIG_IMA): the exec-hash ` +
        "programs are not loaded"
      : `the exec-hash program (${EXEC_HASH_SECTION}) is not attached ` +
        "(the start log says why the kernel refused it, or BPF LSM is not enforcing)";
    if (why === null) return { source: "ima", reason: null };
    return scanHooksAttached(attachedSections)
      ? { source: "scan", reason: `${why}; ${SCAN_NOTE}` }
      : { source: "none", reason: why };
  }
  const why: string[] = [];
  if (!bpfLsmUsable(p)) why.push("BPF LSM is not usable");
  if (p.hooks.lsm_bprm_ima_check.kernel_supported !== true) {
    why.push(`the kernel BTF has no ${IMA_HELPER} (kernel >= 5.18 with CONFIG_IMA)`);
  }
  if (p.hooks.lsm_bprm_check_security.kernel_supported !== true) {
    why.push("the kernel BTF has no bpf_lsm_bprm_check_security");
  }
  if (imaMissing !== null) why.push(imaMissing);
  if (why.length === 0) return { source: "ima", reason: null };
  const scan = bpfLsmUsable(p) && p.hooks.lsm_bprm_check_security.kernel_supported === true &&
    (p.hooks.lsm_file_open.kernel_supported === true ||
      p.hooks.lsm_inode_permission.kernel_supported === true);
  return scan
    ? { source: "scan", reason: `${why.join("; ")}; ${SCAN_NOTE}` }
    : { source: "none", reason: why.join("; ") };
}
