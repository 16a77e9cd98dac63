/**
 * The parsed policy model (docs/policy.md): what `parsePolicy` produces, what
 * `formatPolicy` writes back and what the rule compiler consumes. Every
 * entry carries the 1-based `line` it came from, so later stages (apply,
 * explain) can point back into the file.
 *
 * Addresses are kept as text in canonical form (the compiler re-parses them
 * with src/bpf/net_codec.ts, which is cheap and keeps this model plain
 * data); numbers that may exceed 2^53 (inode numbers, cgroup ids) are
 * bigint.
 *
 * @module
 */
import { z } from "zod";

/** Lowest and highest `version=N` we accept. */
export const MIN_VERSION = 1;
export const MAX_VERSION = 6;

const line = z.number().int().positive();

/** `/abs/path` (checked with checkRulePath). */
export const PathEntry = z.object({ path: z.string(), line });
export type PathEntry = z.infer<typeof PathEntry>;

/** `dev:ino` (dev = kernel encoding, as events show it) or `major:minor:ino`. */
export const InodeEntry = z.object({
  /** Kernel dev encoding: (major << 20) | minor. */
  dev: z.number().int().min(0).max(0xffffffff),
  ino: z.bigint().nonnegative(),
  line,
});
export type InodeEntry = z.infer<typeof InodeEntry>;

/** A cgroup: an absolute cgroup v2 path (below the cgroup mount) or `cgid:N`. */
export const CgroupRef = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("path"), path: z.string() }),
  z.object({ kind: z.literal("cgid"), cgid: z.bigint().positive() }),
]);
export type CgroupRef = z.infer<typeof CgroupRef>;

export const CgroupEntry = z.object({ cgroup: CgroupRef, line });
export type CgroupEntry = z.infer<typeof CgroupEntry>;

/** An exact address, canonical text ("10.1.2.3", "2001:db8::1"). */
export const IpEntry = z.object({
  ip: z.string(),
  family: z.union([z.literal(4), z.literal(6)]),
  line,
});
export type IpEntry = z.infer<typeof IpEntry>;

/** A network, canonical text with host bits cleared ("10.0.0.0/8"). */
export const CidrEntry = z.object({
  cidr: z.string(),
  family: z.union([z.literal(4), z.literal(6)]),
  line,
});
export type CidrEntry = z.infer<typeof CidrEntry>;

export const Proto = z.enum(["any", "tcp", "udp"]);
export type Proto = z.infer<typeof Proto>;
export const Dir = z.enum(["egress", "bind", "both"]);
export type Dir = z.infer<typeof Dir>;

/** `port[:tcp|udp|any[:egress|bind|both]]`; defaults any, egress. */
export const PortEntry = z.object({
  port: z.number().int().min(1).max(65535),
  proto: Proto,
  dir: Dir,
  line,
});
export type PortEntry = z.infer<typeof PortEntry>;

/** `ip:port[:proto]` or `[v6]:port[:proto]`; proto defaults to any. */
export const IpPortEntry = z.object({
  ip: z.string(),
  family: z.union([z.literal(4), z.literal(6)]),
  port: z.number().int().min(1).max(65535),
  proto: Proto,
  line,
});
export type IpPortEntry = z.infer<typeof IpPortEntry>;

/**
 * `sha256:<64 hex>` (deny_binary_hash and allow_binary_hash, version 3;
 * trusted_exec_hash, version 5): a file's content. Kept as the 64 lower-case hex digits (the C++ parser
 * lower-cases too).
 */
export const HashEntry = z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), line });
export type HashEntry = z.infer<typeof HashEntry>;

/** A process name (the kernel comm), 1 to 15 bytes. */
export const CommEntry = z.object({ comm: z.string().min(1), line });
export type CommEntry = z.infer<typeof CommEntry>;

/**
 * A flag section (`deny_ptrace`, `deny_module_load`, `deny_bpf`,
 * `protect_connect`): present = on, unless its one optional value line says
 * `false`/`0`/`off`. `line` is the section header's line. null = absent.
 */
export const Flag = z.object({ enabled: z.boolean(), line }).nullable();
export type Flag = z.infer<typeof Flag>;

/** The Policy fields that are flag sections. */
export type FlagField =
  | "denyPtrace"
  | "denyModuleLoad"
  | "denyBpf"
  | "protectConnect"
  | "protectRuntimeDeps"
  | "requireImaAppraisal"
  | "imaFailClosed";

/** cgroup-scoped rules (v6): `CGROUP RULE` per line. */
export const CgroupInodeEntry = z.object({
  cgroup: CgroupRef,
  dev: z.number().int().min(0).max(0xffffffff),
  ino: z.bigint().nonnegative(),
  line,
});
export type CgroupInodeEntry = z.infer<typeof CgroupInodeEntry>;

export const CgroupIpEntry = z.object({
  cgroup: CgroupRef,
  ip: z.string(),
  family: z.union([z.literal(4), z.literal(6)]),
  line,
});
export type CgroupIpEntry = z.infer<typeof CgroupIpEntry>;

export const CgroupPortEntry = z.object({
  cgroup: CgroupRef,
  port: z.number().int().min(1).max(65535),
  proto: Proto,
  dir: Dir,
  line,
});
export type CgroupPortEntry = z.infer<typeof CgroupPortEntry>;

export const Policy = z.object({
  version: z.number().int().min(MIN_VERSION).max(MAX_VERSION),
  denyPath: z.array(PathEntry),
  denyInode: z.array(InodeEntry),
  allowCgroup: z.array(CgroupEntry),
  denyIp: z.array(IpEntry),
  denyCidr: z.array(CidrEntry),
  denyPort: z.array(PortEntry),
  denyIpPort: z.array(IpPortEntry),
  denyComm: z.array(CommEntry),
  denyBinaryHash: z.array(HashEntry),
  allowBinaryHash: z.array(HashEntry),
  trustedExecHash: z.array(HashEntry),
  /**
   * Directories (not recursive) hashed at apply, beside the default ones,
   * when the kernel gives no content identity (src/policy/content_scan.ts).
   */
  scanPaths: z.array(PathEntry),
  denyPtrace: Flag,
  denyModuleLoad: Flag,
  denyBpf: Flag,
  protectPath: z.array(PathEntry),
  protectConnect: Flag,
  protectRuntimeDeps: Flag,
  requireImaAppraisal: Flag,
  imaFailClosed: Flag,
  cgroupDenyInode: z.array(CgroupInodeEntry),
  cgroupDenyIp: z.array(CgroupIpEntry),
  cgroupDenyPort: z.array(CgroupPortEntry),
});
export type Policy = z.infer<typeof Policy>;

/** An error or warning: where and why. `line` 0 = the file as a whole. */
export const PolicyIssue = z.object({
  file: z.string(),
  line: z.number().int().min(0),
  message: z.string(),
});
export type PolicyIssue = z.infer<typeof PolicyIssue>;

/** What a section holds: entries of one kind, or a flag. */
export type SectionKind =
  | "path"
  | "inode"
  | "cgroup"
  | "ip"
  | "cidr"
  | "port"
  | "ip_port"
  | "comm"
  | "hash"
  | "flag"
  | "cg_inode"
  | "cg_ip"
  | "cg_port";

export interface SectionInfo {
  /** The `[name]` in the file. */
  name: string;
  /**
   * Lowest `version=` that may use it (docs/policy.md, "Version rules"). A
   * flag section needs it by being present; a section of entries only when
   * it holds an entry (an empty one is accepted under any version).
   */
  minVersion: number;
  /** The Policy field it fills (null only in the parser's stand-in for an unknown section). */
  field: keyof Omit<Policy, "version"> | null;
  kind: SectionKind | null;
}

/**
 * Every section a policy file may name, in canonical output order, with the
 * version rules of docs/policy.md ("Version rules"): the same as the C++
 * agent's parser, which numbers only the hash (3), protect (4), IMA (5) and
 * cgroup-scoped (6) sections; every other section is accepted in any version.
 */
export const SECTIONS: readonly SectionInfo[] = [
  { name: "deny_path", minVersion: 1, field: "denyPath", kind: "path" },
  { name: "deny_inode", minVersion: 1, field: "denyInode", kind: "inode" },
  { name: "allow_cgroup", minVersion: 1, field: "allowCgroup", kind: "cgroup" },
  { name: "deny_ip", minVersion: 1, field: "denyIp", kind: "ip" },
  { name: "deny_cidr", minVersion: 1, field: "denyCidr", kind: "cidr" },
  { name: "deny_port", minVersion: 1, field: "denyPort", kind: "port" },
  { name: "deny_ip_port", minVersion: 1, field: "denyIpPort", kind: "ip_port" },
  { name: "deny_comm", minVersion: 1, field: "denyComm", kind: "comm" },
  { name: "deny_ptrace", minVersion: 1, field: "denyPtrace", kind: "flag" },
  { name: "deny_module_load", minVersion: 1, field: "denyModuleLoad", kind: "flag" },
  { name: "deny_bpf", minVersion: 1, field: "denyBpf", kind: "flag" },
  { name: "deny_binary_hash", minVersion: 3, field: "denyBinaryHash", kind: "hash" },
  { name: "allow_binary_hash", minVersion: 3, field: "allowBinaryHash", kind: "hash" },
  // The C++ agent's documentation says 3; its parser checks no version (as here).
  { name: "scan_paths", minVersion: 1, field: "scanPaths", kind: "path" },
  { name: "protect_path", minVersion: 4, field: "protectPath", kind: "path" },
  { name: "protect_connect", minVersion: 4, field: "protectConnect", kind: "flag" },
  { name: "protect_runtime_deps", minVersion: 4, field: "protectRuntimeDeps", kind: "flag" },
  { name: "trusted_exec_hash", minVersion: 5, field: "trustedExecHash", kind: "hash" },
  { name: "require_ima_appraisal", minVersion: 5, field: "requireImaAppraisal", kind: "flag" },
  // No version of its own (as the C++ agent); it needs a non-empty
  // [trusted_exec_hash], so version 5 in effect.
  { name: "ima_fail_closed", minVersion: 1, field: "imaFailClosed", kind: "flag" },
  { name: "cgroup_deny_inode", minVersion: 6, field: "cgroupDenyInode", kind: "cg_inode" },
  { name: "cgroup_deny_ip", minVersion: 6, field: "cgroupDenyIp", kind: "cg_ip" },
  { name: "cgroup_deny_port", minVersion: 6, field: "cgroupDenyPort", kind: "cg_port" },
];

/** A policy with every section empty. */
export function emptyPolicy(version: number): Policy {
  return {
    version,
    denyPath: [],
    denyInode: [],
    allowCgroup: [],
    denyIp: [],
    denyCidr: [],
    denyPort: [],
    denyIpPort: [],
    denyComm: [],
    denyBinaryHash: [],
    allowBinaryHash: [],
    trustedExecHash: [],
    scanPaths: [],
    denyPtrace: null,
    denyModuleLoad: null,
    denyBpf: null,
    protectPath: [],
    protectConnect: null,
    protectRuntimeDeps: null,
    requireImaAppraisal: null,
    imaFailClosed: null,
    cgroupDenyInode: [],
    cgroupDenyIp: [],
    cgroupDenyPort: [],
  };
}
