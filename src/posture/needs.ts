/**
 * What a policy needs from the kernel beyond the core file and exec hooks
 * (docs/posture.md `requirements`). Pure: derived from the parsed policy.
 *
 * @module
 */
import type { Policy } from "../policy/model.ts";
import type { PolicyRuleFacts } from "./report.ts";

export interface PolicyNeeds {
  /** network rules → the socket hooks */
  network: boolean;
  /** protect rules (only verified executables may touch) → exec identity hooks */
  exec_identity: boolean;
  /**
   * deny_binary_hash, allow_binary_hash or trusted_exec_hash → the content
   * (SHA-256) of executed files: src/posture/exec_identity.ts
   */
  exec_content: boolean;
  /** allow_binary_hash: allowlist mode (only listed contents may exec) */
  exec_allowlist: boolean;
  /** trusted_exec_hash: trusted mode (only trusted contents may exec) */
  exec_trusted: boolean;
  /** protect_runtime_deps: what an executable maps (shared libraries) → the mmap hook */
  exec_runtime_deps: boolean;
  /** require_ima_appraisal → an IMA appraisal policy on the node */
  ima_appraisal: boolean;
}

/** Needs of "no policy": only the core hooks. */
export const NO_NEEDS: PolicyNeeds = Object.freeze({
  network: false,
  exec_identity: false,
  exec_content: false,
  exec_allowlist: false,
  exec_trusted: false,
  exec_runtime_deps: false,
  ima_appraisal: false,
});

const on = (f: Policy["denyPtrace"]) => f !== null && f.enabled;

/** The needs of a parsed policy (a flag section set to false needs nothing). */
export function policyNeeds(p: Policy): PolicyNeeds {
  return {
    network: p.denyIp.length > 0 || p.denyCidr.length > 0 || p.denyPort.length > 0 ||
      p.denyIpPort.length > 0 || p.cgroupDenyIp.length > 0 || p.cgroupDenyPort.length > 0 ||
      on(p.protectConnect),
    exec_identity: p.protectPath.length > 0 || on(p.protectConnect),
    exec_content: p.denyBinaryHash.length > 0 || p.allowBinaryHash.length > 0 ||
      p.trustedExecHash.length > 0,
    exec_allowlist: p.allowBinaryHash.length > 0,
    exec_trusted: p.trustedExecHash.length > 0,
    exec_runtime_deps: on(p.protectRuntimeDeps),
    ima_appraisal: on(p.requireImaAppraisal),
  };
}

/**
 * The applied policy's rule counts and which network hooks its rules need
 * (capabilities.json `policy` and `requirements`, docs/posture.md). Connect
 * covers egress (connect, and sendmsg for UDP); bind covers `:bind` ports.
 */
export function policyRuleFacts(p: Policy): PolicyRuleFacts {
  const egress = (d: string) => d === "egress" || d === "both";
  const bind = (d: string) => d === "bind" || d === "both";
  return {
    network_rule_count: p.denyIp.length + p.denyCidr.length + p.denyPort.length +
      p.denyIpPort.length,
    protect_path_count: p.protectPath.length,
    protect_connect: on(p.protectConnect),
    cgroup_deny_inode_count: p.cgroupDenyInode.length,
    cgroup_deny_ip_count: p.cgroupDenyIp.length,
    cgroup_deny_port_count: p.cgroupDenyPort.length,
    allow_binary_hash_count: p.allowBinaryHash.length,
    trusted_exec_hash_count: p.trustedExecHash.length,
    protect_runtime_deps: on(p.protectRuntimeDeps),
    require_ima_appraisal: on(p.requireImaAppraisal),
    ima_fail_closed: on(p.imaFailClosed),
    network_connect: p.denyIp.length > 0 || p.denyCidr.length > 0 || p.denyIpPort.length > 0 ||
      p.cgroupDenyIp.length > 0 || on(p.protectConnect) ||
      [...p.denyPort, ...p.cgroupDenyPort].some((e) => egress(e.dir)),
    network_bind: [...p.denyPort, ...p.cgroupDenyPort].some((e) => bind(e.dir)),
  };
}
