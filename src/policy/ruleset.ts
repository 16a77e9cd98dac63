/**
 * The rules a generation holds, as user space can know them: a parsed
 * policy (and, for `explain`, the live rules) turned into lookup tables
 * keyed the way the kernel's maps are (inode, comm, address, port, cgroup),
 * with every entry pointing back at the policy line or live rule that made
 * it. What `explain` and `simulate` decide against (src/policy/decide.ts).
 *
 * It follows src/policy/compile.ts and mergeLive (src/policy/live.ts):
 *
 * - deny_path / protect_path resolve to inodes through the environment (as
 *   `policy apply` does); the same inode in deny and protect is one entry
 *   with both flags, named by the first line that made it; path rules are
 *   also kept by their text, for events whose file is no longer that inode
 *   (decide.ts says so when it matches by path);
 * - `protect_connect` makes every network rule of the policy protect-only;
 * - a live rule on a key the policy holds replaces that entry, keeping the
 *   policy's flags (DENY | the policy's flags, the live rule's id);
 * - a cgroup named by path is matched by the event's `cgroup_path` and by
 *   the id it resolves to here; one that does not resolve is matched by
 *   path alone.
 *
 * Pure apart from the two resolvers it is given.
 *
 * @module
 */
import { parseCidr, parseIp } from "../bpf/net_codec.ts";
import type { CompileEnv } from "./compile.ts";
import type { LiveRule } from "./live.ts";
import type { CgroupRef, Dir, Policy, Proto } from "./model.ts";

/** Where a rule came from: a policy line, a live rule, or a flag section. */
export interface RuleRef {
  origin: "policy" | "live";
  /** the rule id block events carry: the policy line, or the live rule's id (kernel flags: 0) */
  id: number;
  /** policy section (`deny_path`, …) or live group (`block`, `network`, `allow`) */
  section: string;
  /** the entry as the operator wrote it (canonical) */
  text: string;
  /** the policy file, or null for a live rule */
  file: string | null;
  /** the policy line, or null for a live rule */
  line: number | null;
  /** live rules: unix ms when it expires (null: until deleted) */
  expires?: number | null;
}

/** One rule-map value: its flags and the rule it names. */
export interface RuleVal {
  deny: boolean;
  protect: boolean;
  ref: RuleRef;
  /** other policy lines merged into this entry (deny and protect of one inode) */
  merged: RuleRef[];
}

/** A cgroup as a rule names it: by id, by path (and the id it resolves to here, if any). */
export interface CgroupSel {
  cgid: string | null;
  path: string | null;
}

/** Key of an inode: "dev:ino" (dev in the kernel encoding, ino decimal). */
export function inodeId(dev: number, ino: bigint | string): string {
  return `${dev}:${ino}`;
}

/** Hex of address bytes (4 or 16): the address tables' keys. */
export function addrHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += (b < 16 ? "0" : "") + b.toString(16);
  return s;
}

const PROTO_NUM = new Map<string, number>([["any", 0], ["tcp", 6], ["udp", 17]]);
const DIR_NUM = new Map<string, number>([["egress", 0], ["bind", 1], ["both", 2]]);

function protoNum(p: Proto | string): number {
  return PROTO_NUM.get(p) ?? 0;
}
function dirNum(d: Dir | string): number {
  return DIR_NUM.get(d) ?? 0;
}

export function portId(port: number, proto: number, dir: number): string {
  return `${port}/${proto}/${dir}`;
}
export function ipPortId(hex: string, port: number, proto: number): string {
  return `${hex}/${port}/${proto}`;
}

/** CIDR rules of one family by prefix length (longest first), network hex → value. */
export interface CidrTable {
  prefixes: number[];
  byPrefix: Map<number, Map<string, RuleVal>>;
}

/** A cgroup-scoped rule: its cgroup and value. */
export interface CgRule {
  cgroup: CgroupSel;
  val: RuleVal;
}

/** The lookup tables of one generation (what decide.ts reads). */
export interface RuleSet {
  /** where the rules came from, for the output */
  source: { policy: string | null; live: number };
  inodes: Map<string, RuleVal>;
  /** path rules by their path text (decide.ts: matched by path when the inode differs) */
  paths: Map<string, RuleVal>;
  comms: Map<string, RuleVal>;
  /** deny_binary_hash: 64 lower-case hex digits → rule */
  hashes: Map<string, RuleVal>;
  /** allow_binary_hash: 64 lower-case hex digits → its line */
  allowHashes: Map<string, RuleRef>;
  /**
   * allowlist mode (a non-empty allow_binary_hash): what a "not on the
   * allowlist" record names (rule id 0, the section's first entry); null
   * without an allowlist
   */
  allowlist: RuleRef | null;
  /**
   * where lsm/file_mprotect checks (deny_binary_hash rules, or
   * protect_runtime_deps with an allow or trusted list): what a mprotect
   * record of a file no executable mapping verified names (rule id 0, the
   * section that turned the check on; docs/engine.md "mprotect(PROT_EXEC)");
   * null where it does not check
   */
  unverified: RuleRef | null;
  /** trusted_exec_hash: 64 lower-case hex digits → its line */
  trustedHashes: Map<string, RuleRef>;
  /**
   * trusted mode (a non-empty trusted_exec_hash): what an "untrusted"
   * record names (rule id 0, the section's first entry); null without one
   */
  trusted: RuleRef | null;
  /** [ima_fail_closed]: in trusted mode a file with no SHA-256 is denied */
  imaFailClosed: boolean;
  /** [protect_runtime_deps]: the mappings are checked against both lists too */
  runtimeDeps: boolean;
  ips: Map<string, RuleVal>;
  cidr4: CidrTable;
  cidr6: CidrTable;
  ipPorts: Map<string, RuleVal>;
  ports: Map<string, RuleVal>;
  allowCgroups: { cgroup: CgroupSel; ref: RuleRef }[];
  /** cgroup-scoped rules by inode id / address hex ("4:"|"6:" + hex) / port id */
  cgInodes: Map<string, CgRule[]>;
  cgIps: Map<string, CgRule[]>;
  cgPorts: Map<string, CgRule[]>;
  ptrace: RuleRef | null;
  module: RuleRef | null;
  bpf: RuleRef | null;
  /** any file rule (global or cgroup-scoped): AEGIS_POL_FILE_RULES */
  hasFileRules: boolean;
  hasCommRules: boolean;
  hasNetRules: boolean;
  hasCgroupRules: boolean;
}

export function emptyRuleSet(): RuleSet {
  return {
    source: { policy: null, live: 0 },
    inodes: new Map(),
    paths: new Map(),
    comms: new Map(),
    hashes: new Map(),
    allowHashes: new Map(),
    allowlist: null,
    unverified: null,
    trustedHashes: new Map(),
    trusted: null,
    imaFailClosed: false,
    runtimeDeps: false,
    ips: new Map(),
    cidr4: { prefixes: [], byPrefix: new Map() },
    cidr6: { prefixes: [], byPrefix: new Map() },
    ipPorts: new Map(),
    ports: new Map(),
    allowCgroups: [],
    cgInodes: new Map(),
    cgIps: new Map(),
    cgPorts: new Map(),
    ptrace: null,
    module: null,
    bpf: null,
    hasFileRules: false,
    hasCommRules: false,
    hasNetRules: false,
    hasCgroupRules: false,
  };
}

/** A path rule that did not resolve here (reported by explain/simulate). */
export interface UnresolvedRule {
  ref: RuleRef;
  reason: string;
}

export interface BuiltRuleSet {
  rules: RuleSet;
  unresolved: UnresolvedRule[];
}

function cgroupText(c: CgroupRef): string {
  return c.kind === "cgid" ? `cgid:${c.cgid}` : c.path;
}

function pushTo<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

function addCidr(t: CidrTable, hex: string, prefix: number, val: RuleVal): void {
  let m = t.byPrefix.get(prefix);
  if (!m) {
    t.byPrefix.set(prefix, m = new Map());
    t.prefixes.push(prefix);
    t.prefixes.sort((a, b) => b - a);
  }
  m.set(hex, val);
}

/** The rules of a parsed policy (file = its name in the output), resolved in `env`. */
export function ruleSetFromPolicy(policy: Policy, file: string, env: CompileEnv): BuiltRuleSet {
  const rs = emptyRuleSet();
  rs.source.policy = file;
  const unresolved: UnresolvedRule[] = [];
  const ref = (section: string, line: number, text: string): RuleRef => ({
    origin: "policy",
    id: line,
    section,
    text,
    file,
    line,
  });
  // A cgroup path that does not exist here would be left out by `policy apply` now
  // (compile.ts); the event's cgroup_path still shows the cgroup existed where and
  // when it was recorded, so the rule is matched by that path, and listed as unresolved.
  const cgSel = (c: CgroupRef, r: RuleRef): CgroupSel => {
    if (c.kind === "cgid") return { cgid: String(c.cgid), path: null };
    const id = env.resolveCgroup(c.path);
    if (id === null) {
      unresolved.push({
        ref: r,
        reason: "no such cgroup on this host: applied here now, the rule would be left out; " +
          "matched by the events' cgroup_path",
      });
    }
    return { cgid: id === null ? null : String(id), path: c.path };
  };

  // --- inodes: deny and protect merged per inode (compile.ts order) --------
  const addInode = (key: string, deny: boolean, protect: boolean, r: RuleRef) => {
    const cur = rs.inodes.get(key);
    if (cur) {
      cur.deny ||= deny;
      cur.protect ||= protect;
      cur.merged.push(r);
    } else rs.inodes.set(key, { deny, protect, ref: r, merged: [] });
  };
  const paths = (section: string, list: { path: string; line: number }[], deny: boolean) => {
    for (const e of list) {
      const r = ref(section, e.line, e.path);
      const res = env.resolvePath(e.path);
      if (res.status === "resolved") addInode(inodeId(res.dev, BigInt(res.ino)), deny, !deny, r);
      else unresolved.push({ ref: r, reason: res.reason });
      const cur = rs.paths.get(e.path);
      if (cur) {
        cur.deny ||= deny;
        cur.protect ||= !deny;
        cur.merged.push(r);
      } else rs.paths.set(e.path, { deny, protect: !deny, ref: r, merged: [] });
    }
  };
  paths("deny_path", policy.denyPath, true);
  for (const e of policy.denyInode) {
    addInode(inodeId(e.dev, e.ino), true, false, ref("deny_inode", e.line, `${e.dev}:${e.ino}`));
  }
  paths("protect_path", policy.protectPath, false);

  for (const e of policy.denyComm) {
    rs.comms.set(e.comm, {
      deny: true,
      protect: false,
      ref: ref("deny_comm", e.line, e.comm),
      merged: [],
    });
  }

  for (const e of policy.denyBinaryHash) {
    rs.hashes.set(e.sha256, {
      deny: true,
      protect: false,
      ref: ref("deny_binary_hash", e.line, `sha256:${e.sha256}`),
      merged: [],
    });
  }
  // allow_binary_hash, trusted_exec_hash: each digest's first line, and the
  // list as a whole (rule id 0, its first entry) when it holds any
  const contentList = (
    section: string,
    list: Policy["allowBinaryHash"],
    into: Map<string, RuleRef>,
    what: string,
  ): RuleRef | null => {
    for (const e of list) {
      if (!into.has(e.sha256)) into.set(e.sha256, ref(section, e.line, `sha256:${e.sha256}`));
    }
    if (list.length === 0) return null;
    return {
      ...ref(section, list[0].line, `any content not ${what} (${into.size} ${what})`),
      id: 0,
    };
  };
  rs.allowlist = contentList("allow_binary_hash", policy.allowBinaryHash, rs.allowHashes, "listed");
  rs.trusted = contentList(
    "trusted_exec_hash",
    policy.trustedExecHash,
    rs.trustedHashes,
    "trusted",
  );
  rs.imaFailClosed = rs.trusted !== null && policy.imaFailClosed?.enabled === true;
  rs.runtimeDeps = policy.protectRuntimeDeps?.enabled === true;
  // lsm/file_mprotect checks wherever the mapping program hashes
  // (aegis_id_lists(flags, 1) in bpf/lib/exec_identity.h): under the deny
  // list, and under protect_runtime_deps with an allow or trusted list. The
  // record names the section that turned the check on (rule id 0).
  const mprotectBy = policy.denyBinaryHash.length > 0
    ? { section: "deny_binary_hash", line: policy.denyBinaryHash[0].line }
    : rs.runtimeDeps && (rs.allowlist || rs.trusted)
    ? { section: "protect_runtime_deps", line: policy.protectRuntimeDeps!.line }
    : null;
  if (mprotectBy) {
    rs.unverified = {
      ...ref(
        mprotectBy.section,
        mprotectBy.line,
        "any file mapping made executable with mprotect whose file was not verified",
      ),
      id: 0,
    };
  }

  // --- network: protect-only under protect_connect -------------------------
  const pc = policy.protectConnect?.enabled === true;
  const netVal = (r: RuleRef): RuleVal => ({ deny: !pc, protect: pc, ref: r, merged: [] });
  for (const e of policy.denyIp) {
    const ip = parseIp(e.ip, e.family);
    rs.ips.set(`${ip.family}:${addrHex(ip.bytes)}`, netVal(ref("deny_ip", e.line, e.ip)));
  }
  for (const e of policy.denyCidr) {
    const c = parseCidr(e.cidr, e.family);
    addCidr(
      c.family === 4 ? rs.cidr4 : rs.cidr6,
      addrHex(c.bytes),
      c.prefix,
      netVal(ref("deny_cidr", e.line, e.cidr)),
    );
  }
  for (const e of policy.denyPort) {
    rs.ports.set(
      portId(e.port, protoNum(e.proto), dirNum(e.dir)),
      netVal(ref("deny_port", e.line, `${e.port}:${e.proto}:${e.dir}`)),
    );
  }
  for (const e of policy.denyIpPort) {
    const ip = parseIp(e.ip, e.family);
    const text = `${e.family === 6 ? `[${e.ip}]` : e.ip}:${e.port}:${e.proto}`;
    rs.ipPorts.set(
      ipPortId(`${ip.family}:${addrHex(ip.bytes)}`, e.port, protoNum(e.proto)),
      netVal(ref("deny_ip_port", e.line, text)),
    );
  }

  // --- cgroups -------------------------------------------------------------------
  for (const e of policy.allowCgroup) {
    const r = ref("allow_cgroup", e.line, cgroupText(e.cgroup));
    rs.allowCgroups.push({ cgroup: cgSel(e.cgroup, r), ref: r });
  }
  const deny = (r: RuleRef): RuleVal => ({ deny: true, protect: false, ref: r, merged: [] });
  for (const e of policy.cgroupDenyInode) {
    const r = ref("cgroup_deny_inode", e.line, `${cgroupText(e.cgroup)} ${e.dev}:${e.ino}`);
    pushTo(rs.cgInodes, inodeId(e.dev, e.ino), { cgroup: cgSel(e.cgroup, r), val: deny(r) });
  }
  for (const e of policy.cgroupDenyIp) {
    const ip = parseIp(e.ip, e.family);
    const r = ref("cgroup_deny_ip", e.line, `${cgroupText(e.cgroup)} ${e.ip}`);
    pushTo(rs.cgIps, `${ip.family}:${addrHex(ip.bytes)}`, {
      cgroup: cgSel(e.cgroup, r),
      val: deny(r),
    });
  }
  for (const e of policy.cgroupDenyPort) {
    const text = `${cgroupText(e.cgroup)} ${e.port}:${e.proto}:${e.dir}`;
    const r = ref("cgroup_deny_port", e.line, text);
    pushTo(rs.cgPorts, portId(e.port, protoNum(e.proto), dirNum(e.dir)), {
      cgroup: cgSel(e.cgroup, r),
      val: deny(r),
    });
  }

  const flag = (section: string, f: Policy["denyPtrace"]) =>
    f?.enabled ? { ...ref(section, f.line, "on"), id: 0 } : null;
  rs.ptrace = flag("deny_ptrace", policy.denyPtrace);
  rs.module = flag("deny_module_load", policy.denyModuleLoad);
  rs.bpf = flag("deny_bpf", policy.denyBpf);
  refreshSwitches(rs);
  return { rules: rs, unresolved };
}

/** The policy switches (docs/engine.md, "Decision order"): which surfaces hold rules. */
function refreshSwitches(rs: RuleSet): void {
  rs.hasFileRules = rs.inodes.size > 0 || rs.paths.size > 0 || rs.cgInodes.size > 0;
  rs.hasCommRules = rs.comms.size > 0;
  rs.hasCgroupRules = rs.cgInodes.size > 0 || rs.cgIps.size > 0 || rs.cgPorts.size > 0;
  rs.hasNetRules = rs.ips.size > 0 || rs.cidr4.prefixes.length > 0 ||
    rs.cidr6.prefixes.length > 0 || rs.ipPorts.size > 0 || rs.ports.size > 0 ||
    rs.cgIps.size > 0 || rs.cgPorts.size > 0;
}

/**
 * Live rules over the policy's tables (mergeLive): a live rule replaces the
 * policy's entry of the same key, keeping its flags. Rules with an edit in
 * progress are left out. A rule whose TTL is over but that is still in the
 * store is kept: nothing has swept it yet (no daemon runs), so it is still in
 * the maps (docs/policy.md, "Time to live"); its `expires` says so.
 */
export function withLiveRules(rs: RuleSet, rules: readonly LiveRule[]): RuleSet {
  for (const r of rules) {
    if (r.state !== undefined) continue;
    const s = r.spec;
    const ref = (section: string, text: string): RuleRef => ({
      origin: "live",
      id: r.id,
      section,
      text,
      file: null,
      line: null,
      expires: r.expires,
    });
    const over = (m: Map<string, RuleVal>, key: string, section: string, text: string) => {
      const prev = m.get(key);
      m.set(key, {
        deny: true,
        protect: prev?.protect ?? false,
        ref: ref(section, text),
        merged: [],
      });
    };
    // a cgroup rule on the same cgroup and key takes the policy rule's place, as in the map
    const cgOver = (
      m: Map<string, CgRule[]>,
      key: string,
      c: { cgroup: string; cgid: string },
      section: string,
      text: string,
    ) => {
      const rule: CgRule = {
        cgroup: { cgid: c.cgid, path: c.cgroup.startsWith("/") ? c.cgroup : null },
        val: {
          deny: true,
          protect: false,
          ref: ref(section, `${c.cgroup} ${text}`),
          merged: [],
        },
      };
      m.set(key, [...(m.get(key) ?? []).filter((x) => x.cgroup.cgid !== c.cgid), rule]);
    };
    switch (s.kind) {
      case "path":
        over(rs.inodes, inodeId(s.dev, s.ino), "block", s.path);
        break;
      case "cgroup":
        rs.allowCgroups.push({
          cgroup: { cgid: s.cgid, path: s.cgroup.startsWith("/") ? s.cgroup : null },
          ref: ref("allow", s.cgroup),
        });
        break;
      case "ip": {
        const ip = parseIp(s.ip);
        over(rs.ips, `${ip.family}:${addrHex(ip.bytes)}`, "network", `ip ${s.ip}`);
        break;
      }
      case "cidr": {
        const c = parseCidr(s.cidr);
        const t = c.family === 4 ? rs.cidr4 : rs.cidr6;
        const hex = addrHex(c.bytes);
        const prev = t.byPrefix.get(c.prefix)?.get(hex);
        addCidr(t, hex, c.prefix, {
          deny: true,
          protect: prev?.protect ?? false,
          ref: ref("network", `cidr ${s.cidr}`),
          merged: [],
        });
        break;
      }
      case "port":
        over(
          rs.ports,
          portId(s.port, protoNum(s.protocol), dirNum(s.direction)),
          "network",
          `port ${s.port}:${s.protocol}:${s.direction}`,
        );
        break;
      case "ip_port": {
        const ip = parseIp(s.ip);
        over(
          rs.ipPorts,
          ipPortId(`${ip.family}:${addrHex(ip.bytes)}`, s.port, protoNum(s.protocol)),
          "network",
          `ip:port ${ip.family === 6 ? `[${s.ip}]` : s.ip}:${s.port}:${s.protocol}`,
        );
        break;
      }
      case "cg_inode":
        cgOver(
          rs.cgInodes,
          inodeId(s.dev, s.ino),
          s,
          "cgroup_deny_inode",
          `inode ${s.dev}:${s.ino}`,
        );
        break;
      case "cg_ip": {
        const ip = parseIp(s.ip);
        cgOver(rs.cgIps, `${ip.family}:${addrHex(ip.bytes)}`, s, "cgroup_deny_ip", `ip ${s.ip}`);
        break;
      }
      case "cg_port":
        cgOver(
          rs.cgPorts,
          portId(s.port, protoNum(s.protocol), dirNum(s.direction)),
          s,
          "cgroup_deny_port",
          `port ${s.port}:${s.protocol}:${s.direction}`,
        );
        break;
    }
    rs.source.live++;
  }
  refreshSwitches(rs);
  return rs;
}

/** Every rule of the set with its id (for "does the event's rule still exist"). */
export function rulesById(rs: RuleSet): Map<number, RuleRef[]> {
  const m = new Map<number, RuleRef[]>();
  const add = (r: RuleRef) => pushTo(m, r.id, r);
  const vals = (it: Iterable<RuleVal>) => {
    for (const v of it) {
      add(v.ref);
      v.merged.forEach(add);
    }
  };
  vals(rs.inodes.values());
  vals(rs.paths.values());
  vals(rs.comms.values());
  vals(rs.hashes.values());
  vals(rs.ips.values());
  for (const t of [rs.cidr4, rs.cidr6]) for (const mm of t.byPrefix.values()) vals(mm.values());
  vals(rs.ipPorts.values());
  vals(rs.ports.values());
  for (const a of rs.allowCgroups) add(a.ref);
  for (const mm of [rs.cgInodes, rs.cgIps, rs.cgPorts]) {
    for (const l of mm.values()) for (const c of l) add(c.val.ref);
  }
  // dedupe (a path rule is in both inodes and paths)
  for (const [k, l] of m) {
    m.set(
      k,
      l.filter((r, i) => l.findIndex((x) => x.section === r.section && x.text === r.text) === i),
    );
  }
  return m;
}
