/**
 * Probe: per-hook kernel support. A BPF LSM hook exists when the kernel
 * BTF has the function bpf_lsm_<hook> (what libbpf attaches to). The 12
 * hooks of docs/posture.md, each with whether the agent requires it for the given
 * policy needs.
 *
 * @module
 */
import type { PolicyNeeds } from "../needs.ts";
import type { BtfFuncQuery } from "../probe.ts";

export const HOOK_NAMES = [
  "lsm_file_open",
  "lsm_inode_permission",
  "lsm_bprm_check_security",
  "lsm_file_mmap",
  "lsm_socket_connect",
  "lsm_socket_bind",
  "lsm_socket_listen",
  "lsm_socket_accept",
  "lsm_socket_sendmsg",
  "lsm_socket_recvmsg",
  "lsm_inode_copy_up",
  "lsm_bprm_ima_check",
] as const;
export type HookName = (typeof HOOK_NAMES)[number];

/** The BTF function that proves each hook (the LSM hook of file_mmap is mmap_file;
 * the IMA check of an exec uses the bpf_ima_file_hash helper). */
export const HOOK_SYMBOLS: Record<HookName, string> = {
  lsm_file_open: "bpf_lsm_file_open",
  lsm_inode_permission: "bpf_lsm_inode_permission",
  lsm_bprm_check_security: "bpf_lsm_bprm_check_security",
  lsm_file_mmap: "bpf_lsm_mmap_file",
  lsm_socket_connect: "bpf_lsm_socket_connect",
  lsm_socket_bind: "bpf_lsm_socket_bind",
  lsm_socket_listen: "bpf_lsm_socket_listen",
  lsm_socket_accept: "bpf_lsm_socket_accept",
  lsm_socket_sendmsg: "bpf_lsm_socket_sendmsg",
  lsm_socket_recvmsg: "bpf_lsm_socket_recvmsg",
  lsm_inode_copy_up: "bpf_lsm_inode_copy_up",
  lsm_bprm_ima_check: "bpf_ima_file_hash",
};

/** Extra hooks exec identity (verified executables, inherited over fork) uses. */
export const EXEC_IDENTITY_SYMBOLS = [
  "bpf_lsm_bprm_creds_for_exec",
  "bpf_lsm_bprm_check_security",
  "bpf_lsm_bprm_committed_creds",
  "bpf_lsm_task_alloc",
] as const;

export interface HookRow {
  /** the kernel BTF has the hook's function; null = cannot tell (no BTF query) */
  kernel_supported: boolean | null;
  /** the agent needs it for the current mode and policy */
  required: boolean;
  btf_symbol: string;
}

export type HookTable = Record<HookName, HookRow>;

/** Which file hook(s) the daemon uses (`run --lsm-hook`). */
export type FileHookChoice = "file" | "inode" | "both";

/** Is `hook` required for these needs? Pure. */
export function hookRequired(
  hook: HookName,
  needs: PolicyNeeds,
  fileHook: FileHookChoice,
): boolean {
  switch (hook) {
    case "lsm_file_open":
      return fileHook !== "inode";
    case "lsm_inode_permission":
      return fileHook !== "file";
    case "lsm_bprm_check_security":
      return true;
    case "lsm_file_mmap":
      return needs.exec_runtime_deps;
    case "lsm_socket_connect":
    case "lsm_socket_bind":
    case "lsm_socket_sendmsg":
      return needs.network;
    case "lsm_bprm_ima_check":
      return needs.ima_appraisal || needs.exec_content;
    default:
      return false;
  }
}

/** The hook table; a failing BTF query makes a row unknown (null). */
export function probeHooks(
  hasBtfFunc: BtfFuncQuery,
  needs: PolicyNeeds,
  fileHook: FileHookChoice = "file",
): HookTable {
  const table = {} as HookTable;
  for (const h of HOOK_NAMES) {
    let k: boolean | null = null;
    if (hasBtfFunc) {
      try {
        k = hasBtfFunc(HOOK_SYMBOLS[h]);
      } catch {
        k = null;
      }
    }
    table[h] = {
      kernel_supported: k,
      required: hookRequired(h, needs, fileHook),
      btf_symbol: HOOK_SYMBOLS[h],
    };
  }
  return table;
}

/** Do all of `symbols` exist? null when unknown. */
export function allSymbols(hasBtfFunc: BtfFuncQuery, symbols: readonly string[]): boolean | null {
  if (!hasBtfFunc) return null;
  try {
    return symbols.every((s) => hasBtfFunc(s));
  } catch {
    return null;
  }
}
