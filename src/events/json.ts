/**
 * Kernel records → the JSON event objects operators consume (docs/telemetry.md).
 *
 * Every kernel event has `type`, `ktime_ns` and the process fields `pid,
 * tid, ppid, uid, start_time, exec_id, parent_start_time, parent_exec_id,
 * cgid, cgroup_path, comm`. u64 kernel
 * values (`ktime_ns`, `start_time`, `cgid`, `ino`) are integers: numbers
 * while exact, bigints beyond 2^53, written with their exact digits by
 * eventJson() (./envelope.ts). `exec_id` is `<start_time>-<pid>`: unique per
 * process image for the life of the kernel. `cgroup_path` is "" unless a
 * resolver is given and knows the id. Block events add `action`, `hook`,
 * `rule_id`; file blocks `ino, dev, path_source` and `path` when known
 * (the kernel's, or the rule's through a {@link RulePaths}); network blocks
 * `rule_type` (ip|cidr|port|ip_port|cg_ip|cg_port), `family, addr, port,
 * protocol, direction` and `remote_ip, remote_port` or `local_port`. The
 * common fields (`timestamp`, `event_id`, `host`, `agent_version`) are
 * added when the event is emitted (./envelope.ts). docs/telemetry.md lists
 * them all.
 *
 * @module
 */
import {
  AEGIS_HOOK_BPF,
  AEGIS_HOOK_KERNEL_LOAD_DATA,
  AEGIS_HOOK_KERNEL_READ_FILE,
  AEGIS_HOOK_PTRACE,
  AEGIS_HOOK_SOCKET_BIND,
  AEGIS_HOOK_SOCKET_SENDMSG,
  AEGIS_RULE_TRUSTED,
  AEGIS_RULE_UNLISTED,
  AEGIS_RULE_UNVERIFIED,
} from "../bpf/abi_gen.ts";
import { GUARD_NAMES, TAMPER_OP_NAMES } from "../bpf/self_guard.ts";
import type { KernelRecord, ProcInfo, U64 } from "./decode.ts";

/** enum aegis_action → the event's `action`. */
export const ACTION_NAMES = ["AUDIT", "BLOCK", "TERM", "KILL", "INT"] as const;

/** enum aegis_rule_type → the event's `rule_type`. */
export const RULE_TYPE_NAMES: Record<number, string> = {
  1: "inode",
  2: "comm",
  3: "ip",
  4: "cidr",
  5: "port",
  6: "ip_port",
  7: "ptrace",
  8: "module",
  9: "bpf",
  10: "cg_ip",
  11: "cg_port",
  12: "cg_inode",
  13: "hash",
};

/** enum aegis_hook → hook name in events and metrics. */
export const HOOK_NAMES: Record<number, string> = {
  0: "file_open",
  1: "inode_permission",
  2: "bprm_check_security",
  3: "socket_connect",
  4: "socket_bind",
  5: "socket_sendmsg",
  6: "ptrace_access_check",
  7: "kernel_read_file",
  8: "kernel_load_data",
  9: "bpf",
  10: "tp_openat",
  11: "tp_execve",
  12: "tp_connect",
  13: "inode_copy_up",
  14: "bprm_check_hash",
  15: "mmap_file_hash",
  // self-protection guards (bpf/self.bpf.c)
  16: "self_inode_unlink",
  17: "self_inode_rmdir",
  18: "self_inode_rename",
  19: "self_inode_create",
  20: "self_file_open",
  21: "self_path_truncate",
  22: "self_bpf_map",
  23: "self_bpf",
  24: "self_inode_permission",
  25: "self_task_kill",
  26: "self_ptrace_access_check",
  27: "self_sb_umount",
  28: "file_mprotect_hash",
};

/** A self-protection guard's hook (bpf/self.bpf.c): its refusals are tamper blocks, not policy blocks. */
export function isSelfHook(name: string): boolean {
  return name.startsWith("self_");
}

/** cgroup id → path (src/events/cgroup_path.ts), null when unknown. */
export interface CgroupResolver {
  resolve(cgid: U64): string | null;
}

/**
 * A file rule's id → the path its rule names (the policy's `deny_path`
 * line, a live path rule), null when the id names no path rule.
 */
export interface RulePaths {
  pathOf(ruleId: number): string | null;
  /**
   * The [deny_binary_hash] content of a rule the daemon's content scan made
   * (an inode rule; policy/content_scan.ts), null otherwise.
   */
  contentOf?(ruleId: number): string | null;
}

function procFields(p: ProcInfo, cg: CgroupResolver | undefined): Record<string, unknown> {
  return {
    pid: p.pid,
    tid: p.tid,
    ppid: p.ppid,
    uid: p.uid,
    start_time: p.startTime,
    exec_id: `${p.startTime}-${p.pid}`,
    parent_start_time: p.parentStartTime,
    parent_exec_id: `${p.parentStartTime}-${p.ppid}`,
    cgid: p.cgid,
    cgroup_path: (cg ? cg.resolve(p.cgid) : null) ?? "",
    comm: p.comm,
  };
}

/** connect → egress, bind → bind, sendmsg → send (the C++ agent's `direction`). */
function netDirection(hook: number): "egress" | "bind" | "send" {
  if (hook === AEGIS_HOOK_SOCKET_BIND) return "bind";
  if (hook === AEGIS_HOOK_SOCKET_SENDMSG) return "send";
  return "egress";
}

/** The path of a file block: the kernel's, else the rule's, else none. */
function blockPath(
  path: string,
  ruleId: number,
  rules: RulePaths | undefined,
): { path?: string; path_source: "kernel" | "rule" | "none" } {
  if (path !== "") return { path, path_source: "kernel" };
  const fromRule = rules?.pathOf(ruleId) ?? null;
  return fromRule !== null ? { path: fromRule, path_source: "rule" } : { path_source: "none" };
}

function netType(hook: number): string {
  if (hook === AEGIS_HOOK_SOCKET_BIND) return "net_bind_block";
  if (hook === AEGIS_HOOK_SOCKET_SENDMSG) return "net_sendmsg_block";
  return "net_connect_block";
}

function kernelType(hook: number): string {
  if (hook === AEGIS_HOOK_PTRACE) return "kernel_ptrace_block";
  if (hook === AEGIS_HOOK_KERNEL_READ_FILE || hook === AEGIS_HOOK_KERNEL_LOAD_DATA) {
    return "kernel_module_block";
  }
  if (hook === AEGIS_HOOK_BPF) return "kernel_bpf_block";
  return "kernel_block";
}

/**
 * Where a hash block record's identity came from. The kernel has one source
 * of content identity today, IMA (bpf_ima_file_hash in bpf/exec_hash.bpf.c):
 * a digest means IMA gave it; all zero means the file had none (IMA gave no
 * SHA-256, or lsm/file_mprotect, which cannot hash).
 */
export function identitySource(sha256: string): "ima" | "none" {
  return /^0+$/.test(sha256) ? "none" : "ima";
}

/**
 * An inode rule the content scan made: named as the hash rule it stands for
 * (its rule id is the [deny_binary_hash] line), identity_source "scan".
 */
function scannedContent(
  ruleId: number,
  rules: RulePaths | undefined,
): { rule_type?: "hash"; sha256?: string; identity_source?: "scan" } {
  const sha256 = rules?.contentOf?.(ruleId) ?? null;
  return sha256 === null ? {} : { rule_type: "hash", sha256, identity_source: "scan" };
}

/** The list a hash block record names (bpf/lib/exec_identity.h). */
export function hashRuleType(
  ruleFlags: number,
): "hash" | "hash_allowlist" | "hash_trusted" | "hash_unverified" {
  if ((ruleFlags & AEGIS_RULE_UNVERIFIED) !== 0) return "hash_unverified";
  if ((ruleFlags & AEGIS_RULE_UNLISTED) === 0) return "hash";
  return (ruleFlags & AEGIS_RULE_TRUSTED) !== 0 ? "hash_trusted" : "hash_allowlist";
}

/**
 * One event as a JSON object (u64 values as numbers or bigints, see
 * eventJson()); `cgroups` fills `cgroup_path`, `rules` the `path` of a file
 * block the kernel could not resolve.
 */
export function recordToEvent(
  r: KernelRecord,
  cgroups?: CgroupResolver,
  rules?: RulePaths,
): { type: string } & Record<string, unknown> {
  const base = { ktime_ns: r.ktimeNs, ...procFields(r, cgroups) };
  switch (r.kind) {
    case "exec":
      return { type: "exec", ...base };
    case "exec_argv":
      return {
        type: "exec_argv",
        ...base,
        argc: r.argv.length,
        argv: r.argv,
        argv_truncated: r.truncated,
        argv_bytes: r.totalBytes,
      };
    case "open":
      return { type: "open", ...base, path: r.path, flags: r.flags, dfd: r.dfd };
    case "file_block":
      return {
        type: "block",
        ...base,
        action: ACTION_NAMES[r.action] ?? String(r.action),
        hook: HOOK_NAMES[r.hook] ?? String(r.hook),
        ino: r.ino,
        dev: r.dev,
        ...blockPath(r.path, r.ruleId, rules),
        rule_id: r.ruleId,
        // deny_binary_hash: the content that matched; allow_binary_hash /
        // trusted_exec_hash: a content not on the list (all zero: no SHA-256)
        // (docs/telemetry.md)
        ...(r.sha256 !== undefined
          ? {
            rule_type: hashRuleType(r.ruleFlags),
            sha256: r.sha256,
            identity_source: identitySource(r.sha256),
          }
          : scannedContent(r.ruleId, rules)),
      };
    case "net_block":
      return {
        type: netType(r.hook),
        ...base,
        action: ACTION_NAMES[r.action] ?? String(r.action),
        hook: HOOK_NAMES[r.hook] ?? String(r.hook),
        family: r.family === 10 ? "ipv6" : "ipv4",
        addr: r.addr,
        port: r.port,
        protocol: r.proto === 6 ? "tcp" : r.proto === 17 ? "udp" : String(r.proto),
        direction: netDirection(r.hook),
        ...(r.hook === AEGIS_HOOK_SOCKET_BIND
          ? { local_port: r.port }
          : { remote_ip: r.addr, remote_port: r.port }),
        rule_type: RULE_TYPE_NAMES[r.ruleType] ?? String(r.ruleType),
        rule_id: r.ruleId,
      };
    case "kernel_block":
      return {
        type: kernelType(r.hook),
        ...base,
        action: ACTION_NAMES[r.action] ?? String(r.action),
        hook: HOOK_NAMES[r.hook] ?? String(r.hook),
        target_pid: r.targetPid,
        detail: r.detail,
        rule_type: RULE_TYPE_NAMES[r.ruleType] ?? String(r.ruleType),
        rule_id: r.ruleId,
      };
    case "tamper_block":
      return {
        type: "tamper_block",
        ...base,
        action: ACTION_NAMES[r.action] ?? String(r.action),
        hook: HOOK_NAMES[r.hook] ?? String(r.hook),
        op: TAMPER_OP_NAMES[r.op] ?? String(r.op),
        guard: GUARD_NAMES[r.guard] ?? String(r.guard),
        ...(r.name !== "" ? { name: r.name } : {}),
        ino: r.ino,
        dev: r.dev,
        target: r.target,
        target_cgid: r.targetCgid,
        detail: r.detail,
      };
  }
}
