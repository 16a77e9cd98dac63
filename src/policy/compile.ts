/**
 * Policy model → map writes (CompiledPolicy), a pure function apart from
 * the two resolvers it is given (path → inode, cgroup path → id), so it is
 * tested with fixtures. Every rule's id is its policy line, reported in
 * block events.
 *
 * - deny_path / protect_path resolve to inodes now; a path that does not
 *   exist is reported as unresolved (not an error).
 * - The same inode in deny and protect: one entry with both flags (deny
 *   beats protect in the kernel).
 * - protect_connect (a flag): every network rule becomes protect-only —
 *   verified executables may still connect, others are blocked.
 * - deny_binary_hash: aegis_deny_hash keyed by the digest, under its own
 *   switch EXEC_HASH (only then does bpf/exec_hash.bpf.c hash a file).
 * - allow_binary_hash: the same map, flag ALLOW (one lookup answers both
 *   lists; the parser refuses a digest in both), under EXEC_ALLOWLIST: the
 *   exec program then denies every content not listed (docs/policy.md).
 * - trusted_exec_hash: the same map, flag TRUSTED OR-ed into the content's
 *   entry, under EXEC_TRUSTED (+ IMA_FAIL_CLOSED with [ima_fail_closed]);
 *   protect_runtime_deps sets RUNTIME_DEPS: the mapping program applies the
 *   allowlist and the trusted list too (docs/engine.md).
 * - Policy switches: FILE/EXEC/NET/CGROUP_RULES when such entries exist,
 *   NET_TABLES and a bit per network table that holds rules,
 *   DENY_PTRACE/MODULE/BPF from the flag sections.
 *
 * @module
 */
import type { ContentMatch } from "./content_scan.ts";
import {
  AEGIS_POL_CGROUP_RULES,
  AEGIS_POL_DENY_BPF,
  AEGIS_POL_DENY_MODULE,
  AEGIS_POL_DENY_PTRACE,
  AEGIS_POL_EXEC_ALLOWLIST,
  AEGIS_POL_EXEC_HASH,
  AEGIS_POL_EXEC_RULES,
  AEGIS_POL_EXEC_TRUSTED,
  AEGIS_POL_FILE_RULES,
  AEGIS_POL_IMA_FAIL_CLOSED,
  AEGIS_POL_NET_RULES,
  AEGIS_POL_NET_TABLES,
  AEGIS_POL_RUNTIME_DEPS,
  AEGIS_RT_CG_INODE,
  AEGIS_RT_CG_IP,
  AEGIS_RT_CG_PORT,
  AEGIS_RT_CIDR,
  AEGIS_RT_COMM,
  AEGIS_RT_HASH,
  AEGIS_RT_INODE,
  AEGIS_RT_IP,
  AEGIS_RT_IP_PORT,
  AEGIS_RT_PORT,
  AEGIS_RULE_ALLOW,
  AEGIS_RULE_DENY,
  AEGIS_RULE_PROTECT,
  AEGIS_RULE_TRUSTED,
} from "../bpf/abi_gen.ts";
import { commKey } from "../bpf/exec_codec.ts";
import {
  cidrKey,
  ipKey,
  ipPortKey,
  type NetDir,
  type NetKey,
  type NetProto,
  netTableFlag,
  parseCidr,
  parseIp,
  portKey,
} from "../bpf/net_codec.ts";
import type { ResolvedPath } from "../bpf/path_rule.ts";
import { UsageError } from "../errors.ts";
import {
  cgInodeKey,
  cgIpKey,
  cgPortKey,
  cgroupKey,
  hashKey,
  inodeKey,
  ruleValue,
} from "../bpf/rule_codec.ts";
import type { CgroupRef, Dir, Policy, Proto } from "./model.ts";
import type { MapName } from "../bpf/abi_gen.ts";

export interface CompileEnv {
  resolvePath(path: string): ResolvedPath;
  /** cgroup v2 id of a cgroup path (relative to the cgroup mount), or null if missing. */
  resolveCgroup(path: string): bigint | null;
}

export interface Unresolved {
  section: string;
  line: number;
  what: string;
  reason: string;
}

export interface CompileResult {
  compiled: CompiledPolicy;
  unresolved: Unresolved[];
}

// Maps, not object literals: a model built elsewhere (not by parsePolicy)
// with proto "constructor" must not find Object.prototype.constructor.
const PROTOS = new Map<string, NetProto>([["any", 0], ["tcp", 6], ["udp", 17]]);
const DIRS = new Map<string, NetDir>([["egress", 0], ["bind", 1], ["both", 2]]);

function proto(p: Proto, line: number): NetProto {
  const v = PROTOS.get(p);
  if (v === undefined) throw new UsageError(`line ${line}: protocol "${p}" is not tcp, udp or any`);
  return v;
}

function dir(d: Dir, line: number): NetDir {
  const v = DIRS.get(d);
  if (v === undefined) {
    throw new UsageError(`line ${line}: direction "${d}" is not egress, bind or both`);
  }
  return v;
}

/**
 * Compile a parsed policy. `scanned`: the files a content scan found with a
 * [deny_binary_hash] content (policy/content_scan.ts; only where the kernel
 * hashes nothing), each an inode deny rule with its hash line as rule id.
 */
export function compilePolicy(
  policy: Policy,
  env: CompileEnv,
  scanned: readonly ContentMatch[] = [],
): CompileResult {
  const entries: CompiledEntry[] = [];
  const unresolved: Unresolved[] = [];
  let flags = 0;

  // --- inodes: deny and protect merged per inode ---------------------------
  // per dev, the inode number as a number when exact (else a bigint: equal
  // values always give the same key, cheaper than a "dev:ino" string)
  const inodes: { dev: number; ino: bigint; flags: number; line: number }[] = [];
  const byDev = new Map<number, Map<number | bigint, (typeof inodes)[number]>>();
  const addInode = (dev: number, ino: bigint | number, f: number, line: number) => {
    const k = typeof ino === "bigint"
      ? (ino <= Number.MAX_SAFE_INTEGER ? Number(ino) : ino)
      : (ino <= Number.MAX_SAFE_INTEGER ? ino : BigInt(ino));
    let m = byDev.get(dev);
    if (!m) byDev.set(dev, m = new Map());
    const cur = m.get(k);
    if (cur) cur.flags |= f;
    else {
      const i = { dev, ino: BigInt(ino), flags: f, line };
      m.set(k, i);
      inodes.push(i);
    }
  };
  const paths = (section: string, list: { path: string; line: number }[], f: number) => {
    for (const e of list) {
      const r = env.resolvePath(e.path);
      if (r.status === "resolved") addInode(r.dev, r.ino, f, e.line);
      else unresolved.push({ section, line: e.line, what: e.path, reason: r.reason });
    }
  };
  paths("deny_path", policy.denyPath, AEGIS_RULE_DENY);
  for (const e of policy.denyInode) addInode(e.dev, e.ino, AEGIS_RULE_DENY, e.line);
  paths("protect_path", policy.protectPath, AEGIS_RULE_PROTECT);
  for (const m of scanned) {
    const r = env.resolvePath(m.path);
    if (r.status === "resolved") addInode(r.dev, r.ino, AEGIS_RULE_DENY, m.line);
    else {unresolved.push({
        section: "deny_binary_hash",
        line: m.line,
        what: m.path,
        reason: r.reason,
      });}
  }
  for (const i of inodes) {
    entries.push({
      map: "aegis_deny_inode",
      key: (gen) => inodeKey(i.dev, i.ino, gen),
      value: ruleValue(i.line, i.flags, AEGIS_RT_INODE),
    });
  }
  if (inodes.length > 0) flags |= AEGIS_POL_FILE_RULES;

  // --- exec: comm ------------------------------------------------------------
  for (const e of policy.denyComm) {
    entries.push({
      map: "aegis_deny_comm",
      key: (gen) => commKey(e.comm, gen),
      value: ruleValue(e.line, AEGIS_RULE_DENY, AEGIS_RT_COMM),
    });
  }
  if (policy.denyComm.length > 0) flags |= AEGIS_POL_EXEC_RULES;

  // --- exec: content (deny/allow_binary_hash, trusted_exec_hash) -------------
  // one aegis_deny_hash entry per content, the lists' flags OR-ed (one
  // lookup answers all of them); its id is the deny line when denied (the
  // record names it), else the content's first line. Their own switches:
  // the sleepable programs hash only when one is set.
  const contents = new Map<string, { line: number; flags: number }>();
  const hashes = (list: typeof policy.denyBinaryHash, flag: number) => {
    for (const e of list) {
      const c = contents.get(e.sha256);
      if (!c) contents.set(e.sha256, { line: e.line, flags: flag });
      else {
        if (flag === AEGIS_RULE_DENY && (c.flags & AEGIS_RULE_DENY) === 0) c.line = e.line;
        c.flags |= flag;
      }
    }
  };
  hashes(policy.denyBinaryHash, AEGIS_RULE_DENY);
  hashes(policy.allowBinaryHash, AEGIS_RULE_ALLOW);
  hashes(policy.trustedExecHash, AEGIS_RULE_TRUSTED);
  for (const [sha256, c] of contents) {
    entries.push({
      map: "aegis_deny_hash",
      key: (gen) => hashKey(sha256, gen),
      value: ruleValue(c.line, c.flags, AEGIS_RT_HASH),
    });
  }
  if (policy.denyBinaryHash.length > 0) flags |= AEGIS_POL_EXEC_HASH;
  if (policy.allowBinaryHash.length > 0) flags |= AEGIS_POL_EXEC_ALLOWLIST;
  if (policy.trustedExecHash.length > 0) {
    flags |= AEGIS_POL_EXEC_TRUSTED;
    if (policy.imaFailClosed?.enabled) flags |= AEGIS_POL_IMA_FAIL_CLOSED;
  }
  if (policy.protectRuntimeDeps?.enabled) flags |= AEGIS_POL_RUNTIME_DEPS;

  // --- network ---------------------------------------------------------------
  const netFlag = policy.protectConnect?.enabled ? AEGIS_RULE_PROTECT : AEGIS_RULE_DENY;
  // this compile sees every rule of the generation: the table bits are complete
  flags |= AEGIS_POL_NET_TABLES;
  const net = (line: number, rt: number, key: (gen: number) => NetKey) => {
    entries.push({
      map: key(0).map,
      key: (gen) => key(gen).key,
      value: ruleValue(line, netFlag, rt),
    });
    flags |= AEGIS_POL_NET_RULES | netTableFlag(rt);
  };
  for (const e of policy.denyIp) {
    const ip = parseIp(e.ip, e.family);
    net(e.line, AEGIS_RT_IP, (gen) => ipKey(ip, gen));
  }
  for (const e of policy.denyCidr) {
    const c = parseCidr(e.cidr, e.family);
    net(e.line, AEGIS_RT_CIDR, (gen) => cidrKey(c, gen));
  }
  for (const e of policy.denyPort) {
    const p = { port: e.port, proto: proto(e.proto, e.line), dir: dir(e.dir, e.line) };
    net(e.line, AEGIS_RT_PORT, (gen) => portKey(p, gen));
  }
  for (const e of policy.denyIpPort) {
    const r = { ip: parseIp(e.ip, e.family), port: e.port, proto: proto(e.proto, e.line) };
    net(e.line, AEGIS_RT_IP_PORT, (gen) => ipPortKey(r, gen));
  }

  // --- allow_cgroup and cgroup-scoped rules -----------------------------------
  const cgid = (section: string, ref: CgroupRef, line: number): bigint | null => {
    if (ref.kind === "cgid") return ref.cgid;
    const id = env.resolveCgroup(ref.path);
    if (id === null) {
      unresolved.push({ section, line, what: ref.path, reason: "no such cgroup (yet)" });
    }
    return id;
  };
  for (const e of policy.allowCgroup) {
    const id = cgid("allow_cgroup", e.cgroup, e.line);
    if (id === null) continue;
    entries.push({
      map: "aegis_allow_cgroup",
      key: (gen) => cgroupKey(id, gen),
      value: ruleValue(e.line, 0, 0),
    });
  }
  for (const e of policy.cgroupDenyInode) {
    const id = cgid("cgroup_deny_inode", e.cgroup, e.line);
    if (id === null) continue;
    entries.push({
      map: "aegis_cg_deny_inode",
      key: (gen) => cgInodeKey(id, e.dev, e.ino, gen),
      value: ruleValue(e.line, AEGIS_RULE_DENY, AEGIS_RT_CG_INODE),
    });
    flags |= AEGIS_POL_CGROUP_RULES | AEGIS_POL_FILE_RULES;
  }
  for (const e of policy.cgroupDenyIp) {
    const id = cgid("cgroup_deny_ip", e.cgroup, e.line);
    if (id === null) continue;
    const ip = parseIp(e.ip, e.family);
    entries.push({
      map: "aegis_cg_deny_ip",
      key: (gen) => cgIpKey(id, ip.bytes, gen),
      value: ruleValue(e.line, AEGIS_RULE_DENY, AEGIS_RT_CG_IP),
    });
    flags |= AEGIS_POL_CGROUP_RULES | AEGIS_POL_NET_RULES;
  }
  for (const e of policy.cgroupDenyPort) {
    const id = cgid("cgroup_deny_port", e.cgroup, e.line);
    if (id === null) continue;
    const pr = proto(e.proto, e.line), dr = dir(e.dir, e.line);
    entries.push({
      map: "aegis_cg_deny_port",
      key: (gen) => cgPortKey(id, e.port, pr, dr, gen),
      value: ruleValue(e.line, AEGIS_RULE_DENY, AEGIS_RT_CG_PORT),
    });
    flags |= AEGIS_POL_CGROUP_RULES | AEGIS_POL_NET_RULES;
  }

  // --- kernel switches ---------------------------------------------------------
  if (policy.denyPtrace?.enabled) flags |= AEGIS_POL_DENY_PTRACE;
  if (policy.denyModuleLoad?.enabled) flags |= AEGIS_POL_DENY_MODULE;
  if (policy.denyBpf?.enabled) flags |= AEGIS_POL_DENY_BPF;

  return { compiled: { flags, entries }, unresolved };
}

/** One rule-map entry of a compiled policy; the key depends on the generation. */
export interface CompiledEntry {
  map: MapName;
  key: (gen: number) => Uint8Array<ArrayBuffer>;
  value: Uint8Array<ArrayBuffer>;
}

/** What the policy compiler produces (pure); what apply writes. */
export interface CompiledPolicy {
  /** aegis_policy flags of the new generation (enum aegis_policy_flag) */
  flags: number;
  entries: CompiledEntry[];
}
