/**
 * The kernel's decisions, replayed in user space (pure): for a recorded
 * event ({@link ReplayEvent}) and a rule set (src/policy/ruleset.ts), which
 * rule decides and what enforce and audit mode would do, in the order the
 * BPF programs follow (docs/engine.md, "Decision order"):
 *
 * - file (lsm/file_open, inode_permission, inode_copy_up; bpf/lib/inode.h):
 *   global inode rule (deny; protect-only for an unverified task) and the
 *   cgroup-scoped inode rule → none: allow; survival allowlist → allow;
 *   agent's cgroup → allow; global rule and not in an allowed cgroup →
 *   block; else the cgroup-scoped rule → block; else allow (allow_cgroup);
 * - exec (lsm/bprm_check_security; bpf/exec.bpf.c), after the file hook
 *   on the binary: inode rule with the deny flag, else deny_comm on the
 *   new comm (basename of the filename, 15 bytes) → none: allow; survival
 *   allowlist, agent's cgroup, allowed cgroup → allow; else block. No
 *   cgroup-scoped rules and no protect rules here;
 * - network (bpf/lib/net.h): exact ip → cidr (longest prefix) → ip:port
 *   (proto, then any) for connect/sendmsg, then port ((proto, dir), (any,
 *   dir), (proto, both), (any, both)); a global match is waived in an
 *   allowed cgroup; then the cgroup-scoped rules (ip, then port); the
 *   agent's cgroup → allow; else block;
 * - kernel (bpf/kernel.bpf.c): the flag → agent's or allowed cgroup →
 *   allow; else block.
 *
 * Facts the kernel knew and an event may not carry (the survival
 * allowlist, the verified-exec state, whether the task was the agent, a
 * cgroup named by a path this host cannot resolve, the inode of an exec
 * event, whether a path rule's file is the event's file) are asked through
 * {@link Facts}; an unknown fact that changes the outcome makes it
 * `undetermined`, with the reason, never a silent guess. docs/operations.md
 * lists them.
 *
 * @module
 */
import type { ReplayEvent } from "./event_input.ts";
import {
  addrHex,
  type CgroupSel,
  type CgRule,
  type CidrTable,
  inodeId,
  ipPortId,
  portId,
  type RuleRef,
  type RuleSet,
  type RuleVal,
} from "./ruleset.ts";

/** What the candidate rules do with the operation. */
export type Outcome = "block" | "allow" | "no_match" | "undetermined";

/** One step of the match chain, in decision order. */
export interface Step {
  step: string;
  result: "match" | "no_match" | "exempt" | "not_exempt" | "skipped" | "unknown";
  detail: string;
  rule?: RuleRef;
}

/** A fact the kernel knew that the event does not say, and why. */
export interface Unknown {
  fact: string;
  reason: string;
}

/** One way the unknown facts could have been, and what it gives. */
export interface Branch {
  assume: Record<string, boolean>;
  outcome: Exclude<Outcome, "undetermined">;
  rule: RuleRef | null;
}

export interface Decision {
  surface: ReplayEvent["surface"];
  /** the hook whose decision this is (exec: file_open when the open of the binary decides) */
  hook: string;
  outcome: Outcome;
  /** the rule that decides (block), or the rule an exemption waived (allow) */
  rule: RuleRef | null;
  /** the table the rule is in: inode, path, cg_inode, comm, ip, cidr, ip_port, port, cg_ip, cg_port, ptrace, module, bpf */
  rule_type: string | null;
  /** the exemption that allowed a matched rule (allow) */
  exempt_by: string | null;
  chain: Step[];
  /** facts the outcome depended on that the event does not carry */
  unknown: Unknown[];
  /** undetermined: each way the unknown facts could have been */
  branches: Branch[];
  /** what enforce mode and audit mode (or emergency disable, break-glass) do */
  enforce: string;
  audit: string;
}

/** A fact's value: true/false when the event tells it, or unknown with the reason. */
export type Fact = boolean | { unknown: string };

/** Known facts of one event (decide.ts fills the rest from the event). */
export interface Facts {
  /** the file is on the survival allowlist */
  survival?: Fact;
  /** the task is in the agent's own cgroup */
  agent?: Fact;
  /** the task runs a verified executable (protect rules) */
  verified?: Fact;
}

/** The agent's own cgroup (docs/engine.md, "The agent itself"): a child named so. */
const AGENT_CGROUP_SUFFIX = "/aegisbpf.agent";

/** The facts a recorded event proves or leaves open. */
export function factsOf(ev: ReplayEvent): Facts {
  const f: Facts = {};
  const recordedBlock = ev.action !== null; // the kernel emitted a block record
  f.survival = recordedBlock && ev.surface !== "kernel" && ev.surface !== "net" ? false : {
    unknown: "the survival allowlist (executables of init, ssh, shells … running at the " +
      "agent's start) is not in the policy or the event",
  };
  if (recordedBlock) f.agent = false; // the kernel never records a block of the agent
  else if (ev.cgroupPath !== null) f.agent = ev.cgroupPath.endsWith(AGENT_CGROUP_SUFFIX);
  else f.agent = { unknown: "the event has no cgroup_path to tell the agent's cgroup" };
  f.verified = {
    unknown: "whether the process ran a verified executable (protect rules) is kernel " +
      "task state the event does not carry",
  };
  return f;
}

type Ask = (name: string, f: Fact | undefined, reason?: string) => boolean;

interface Run {
  outcome: Exclude<Outcome, "undetermined">;
  rule: RuleRef | null;
  ruleType: string | null;
  exemptBy: string | null;
  hook: string;
  chain: Step[];
}

class Chain {
  steps: Step[] = [];
  add(step: string, result: Step["result"], detail: string, rule?: RuleRef): void {
    this.steps.push(rule ? { step, result, detail, rule } : { step, result, detail });
  }
}

function describe(r: RuleRef): string {
  return r.origin === "live"
    ? `live rule ${r.id} (${r.section}: ${r.text})`
    : `${r.file}:${r.line} [${r.section}] ${r.text}`;
}

/** Is the task in the cgroup a rule names? Exact cgroup (bpf_get_current_cgroup_id), not its children. */
function inCgroup(ev: ReplayEvent, sel: CgroupSel, ask: Ask): boolean {
  if (sel.cgid !== null && ev.cgid !== null && sel.cgid === ev.cgid) return true;
  if (sel.path !== null && ev.cgroupPath !== null) return sel.path === ev.cgroupPath;
  if (sel.cgid !== null && ev.cgid !== null) return false;
  const name = sel.path ?? `cgid:${sel.cgid}`;
  return ask(`cgroup ${name}`, {
    unknown: sel.path !== null
      ? `the cgroup ${name} does not exist on this host and the event has no cgroup_path`
      : `the event has no cgid to compare with ${name}`,
  });
}

/** The allow_cgroup rule the task is in, if any. */
function allowCgroup(rs: RuleSet, ev: ReplayEvent, ask: Ask): RuleRef | null {
  for (const a of rs.allowCgroups) if (inCgroup(ev, a.cgroup, ask)) return a.ref;
  return null;
}

function cgRule(list: CgRule[] | undefined, ev: ReplayEvent, ask: Ask): RuleVal | null {
  if (!list) return null;
  for (const c of list) if (inCgroup(ev, c.cgroup, ask)) return c.val;
  return null;
}

/** aegis_rule_enforced: a deny flag always; protect-only for an unverified task. */
function enforced(v: RuleVal | null | undefined, ask: Ask, facts: Facts): RuleVal | null {
  if (!v) return null;
  if (v.deny) return v;
  if (v.protect) return ask("verified", facts.verified) ? null : v;
  return null;
}

/** The file decision (bpf/lib/inode.h, aegis_inode_match) on an inode; null inode: an exec event. */
function fileDecision(
  rs: RuleSet,
  ev: ReplayEvent & { surface: "file" | "exec" },
  hook: string,
  facts: Facts,
  ask: Ask,
  c: Chain,
): Run | null {
  if (!rs.hasFileRules) {
    c.add(
      "file rules",
      "skipped",
      "the policy has no file rules: the hook allows without a lookup",
    );
    return null;
  }
  let r: RuleVal | null = null;
  let ruleType = "inode";
  let cr: RuleVal | null = null;
  if (ev.ino === null || ev.dev === null) {
    const any = ask("binary rule", {
      unknown: "an exec event carries no inode or path of the binary; the policy has file rules",
    });
    c.add(
      "deny/protect inode",
      "unknown",
      "the event does not say which file was executed: an inode rule " +
        (any ? "is assumed to match" : "is assumed not to match"),
    );
    if (any) {
      return {
        outcome: "block",
        rule: null,
        ruleType: "inode",
        exemptBy: null,
        hook,
        chain: c.steps,
      };
    }
  } else {
    const key = inodeId(ev.dev, ev.ino);
    let v = rs.inodes.get(key) ?? null;
    if (!v && ev.path !== null) {
      const byPath = rs.paths.get(ev.path);
      if (byPath) {
        const same = ask("path identity", {
          unknown: `the rule names the path ${ev.path}, which does not resolve here to the ` +
            `event's file ${key}: whether it named that file when the event happened is unknown`,
        });
        if (same) {
          v = byPath;
          ruleType = "path";
        }
      }
    }
    r = enforced(v, ask, facts);
    if (v && !r) {
      c.add(
        "deny/protect inode",
        "no_match",
        `${describe(v.ref)} is protect-only and the task is verified`,
        v.ref,
      );
    } else if (r) {
      c.add(
        "deny/protect inode",
        "match",
        `${ruleType === "path" ? "by path " : ""}${key}: ${describe(r.ref)}` +
          (r.deny ? "" : " (protect: the task is not verified)"),
        r.ref,
      );
    } else c.add("deny/protect inode", "no_match", `no global rule on ${key}`);
    if (rs.hasCgroupRules) {
      cr = enforced(cgRule(rs.cgInodes.get(key), ev, ask), ask, facts);
      c.add(
        "cgroup-scoped inode",
        cr ? "match" : "no_match",
        cr ? describe(cr.ref) : `no cgroup_deny_inode rule on ${key} for this cgroup`,
        cr?.ref,
      );
    }
  }
  if (!r && !cr) return null;
  if (ask("survival", facts.survival)) {
    c.add("survival allowlist", "exempt", "the file is on the survival allowlist: allowed");
    const w = (r ?? cr)!;
    return {
      outcome: "allow",
      rule: w.ref,
      ruleType,
      exemptBy: "survival",
      hook,
      chain: c.steps,
    };
  }
  c.add("survival allowlist", "not_exempt", "not on the survival allowlist");
  if (ask("agent", facts.agent)) {
    c.add("agent cgroup", "exempt", "the agent's own cgroup: no rule applies");
    return {
      outcome: "allow",
      rule: (r ?? cr)!.ref,
      ruleType,
      exemptBy: "agent",
      hook,
      chain: c.steps,
    };
  }
  c.add("agent cgroup", "not_exempt", "not the agent");
  if (r) {
    const a = allowCgroup(rs, ev, ask);
    if (!a) {
      c.add("allow_cgroup", "not_exempt", "not in an allowed cgroup");
      return { outcome: "block", rule: r.ref, ruleType, exemptBy: null, hook, chain: c.steps };
    }
    c.add("allow_cgroup", "exempt", `waives the global rule: ${describe(a)}`, a);
    if (!cr) {
      return {
        outcome: "allow",
        rule: r.ref,
        ruleType,
        exemptBy: "allow_cgroup",
        hook,
        chain: c.steps,
      };
    }
  }
  return {
    outcome: "block",
    rule: cr!.ref,
    ruleType: "cg_inode",
    exemptBy: null,
    hook,
    chain: c.steps,
  };
}

/** kbasename(filename) cut to TASK_COMM_LEN - 1 = 15 bytes (begin_new_exec). */
export function commOf(filename: string): string {
  const base = filename.slice(filename.lastIndexOf("/") + 1);
  const bytes = new TextEncoder().encode(base);
  if (bytes.length <= 15) return base;
  return new TextDecoder().decode(bytes.subarray(0, 15));
}

function execDecision(
  rs: RuleSet,
  ev: ReplayEvent & { surface: "exec" },
  facts: Facts,
  ask: Ask,
): Run {
  const c = new Chain();
  // the exec opens the binary first: the file hook decides before bprm_check
  const f = fileDecision(rs, ev, "file_open", facts, ask, c);
  if (f && f.outcome === "block") {
    c.add("exec", "skipped", "the open of the binary is denied first (file_open)");
    return f;
  }
  const hook = ev.hook === "exec" ? "bprm_check_security" : ev.hook;
  if (!rs.hasFileRules && !rs.hasCommRules) {
    c.add("exec rules", "skipped", "no file or comm rules: bprm_check allows without a lookup");
    return {
      outcome: "no_match",
      rule: null,
      ruleType: null,
      exemptBy: null,
      hook,
      chain: c.steps,
    };
  }
  let r: RuleVal | null = null;
  let ruleType = "inode";
  if (ev.ino !== null && ev.dev !== null) {
    const v = rs.inodes.get(inodeId(ev.dev, ev.ino));
    if (v?.deny) r = v;
    c.add(
      "binary inode",
      r ? "match" : "no_match",
      r
        ? describe(r.ref)
        : v
        ? `${describe(v.ref)} is protect-only (not checked at exec)`
        : "no deny rule on the binary",
      r?.ref,
    );
  } else if (f === null && rs.hasFileRules) {
    // fileDecision asked "binary rule" already and it was false in this branch
    c.add("binary inode", "no_match", "assumed (the event carries no inode)");
  }
  if (!r && rs.hasCommRules) {
    let comm: string | null = null;
    if (ev.hook === "exec") comm = ev.comm;
    else if (ev.path !== null) comm = commOf(ev.path);
    if (comm === null) {
      c.add("deny_comm", "unknown", "the event names no file name or comm");
    } else {
      const v = rs.comms.get(comm);
      if (v) {
        r = v;
        ruleType = "comm";
      }
      c.add(
        "deny_comm",
        v ? "match" : "no_match",
        v
          ? `comm ${JSON.stringify(comm)}: ${describe(v.ref)}`
          : `no rule for comm ${JSON.stringify(comm)}`,
        v?.ref,
      );
    }
  }
  if (!r) {
    if (f) return f; // the file hook matched and was exempt
    return {
      outcome: "no_match",
      rule: null,
      ruleType: null,
      exemptBy: null,
      hook,
      chain: c.steps,
    };
  }
  const allow = (by: string): Run => ({
    outcome: "allow",
    rule: r!.ref,
    ruleType,
    exemptBy: by,
    hook,
    chain: c.steps,
  });
  if (ask("survival", facts.survival)) {
    c.add("survival allowlist", "exempt", "the binary is on the survival allowlist: allowed");
    return allow("survival");
  }
  c.add("survival allowlist", "not_exempt", "not on the survival allowlist");
  if (ask("agent", facts.agent)) {
    c.add("agent cgroup", "exempt", "the agent's own cgroup");
    return allow("agent");
  }
  c.add("agent cgroup", "not_exempt", "not the agent");
  const a = allowCgroup(rs, ev, ask);
  if (a) {
    c.add("allow_cgroup", "exempt", describe(a), a);
    return allow("allow_cgroup");
  }
  c.add("allow_cgroup", "not_exempt", "not in an allowed cgroup");
  return { outcome: "block", rule: r.ref, ruleType, exemptBy: null, hook, chain: c.steps };
}

function lpm(t: CidrTable, addr: Uint8Array): { val: RuleVal; prefix: number } | null {
  for (const p of t.prefixes) {
    const masked = addr.slice();
    for (let i = 0; i < masked.length; i++) {
      const bits = Math.max(0, Math.min(8, p - i * 8));
      masked[i] &= bits === 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    }
    const v = t.byPrefix.get(p)?.get(addrHex(masked));
    if (v) return { val: v, prefix: p };
  }
  return null;
}

const NET_DIR_BIND = 1, NET_DIR_BOTH = 2, NET_DIR_EGRESS = 0;

function netDecision(
  rs: RuleSet,
  ev: ReplayEvent & { surface: "net" },
  facts: Facts,
  ask: Ask,
): Run {
  const c = new Chain();
  const hook = `socket_${ev.hook}`;
  const none = (): Run => ({
    outcome: "no_match",
    rule: null,
    ruleType: null,
    exemptBy: null,
    hook,
    chain: c.steps,
  });
  if (!rs.hasNetRules) {
    c.add("network rules", "skipped", "the policy has no network rules: allowed without a lookup");
    return none();
  }
  const dir = ev.hook === "bind" ? NET_DIR_BIND : NET_DIR_EGRESS;
  const checkAddr = dir === NET_DIR_EGRESS;
  // IPv4 (native or mapped ::ffff:a.b.c.d) is checked against the IPv4 rules too
  let v4: Uint8Array | null = null;
  if (ev.family === 4) v4 = ev.addr;
  else if (
    ev.addr.subarray(0, 10).every((b) => b === 0) && ev.addr[10] === 0xff && ev.addr[11] === 0xff
  ) v4 = ev.addr.subarray(12, 16);
  const v6 = ev.family === 6 ? ev.addr : null;
  const en = (v: RuleVal | undefined | null) => enforced(v, ask, facts);
  let r: RuleVal | null = null;
  let rt: string | null = null;
  if (checkAddr) {
    if (v6) r = en(rs.ips.get(`6:${addrHex(v6)}`));
    if (!r && v4) r = en(rs.ips.get(`4:${addrHex(v4)}`));
    c.add("ip", r ? "match" : "no_match", r ? describe(r.ref) : "no exact address rule", r?.ref);
    if (r) rt = "ip";
    if (!r) {
      if (v6) r = en(lpm(rs.cidr6, v6)?.val);
      if (!r && v4) r = en(lpm(rs.cidr4, v4)?.val);
      c.add(
        "cidr",
        r ? "match" : "no_match",
        r ? describe(r.ref) : "no network contains it",
        r?.ref,
      );
      if (r) rt = "cidr";
    }
    if (!r) {
      const ipp = (hex: string) =>
        en(rs.ipPorts.get(ipPortId(hex, ev.port, ev.proto))) ??
          en(rs.ipPorts.get(ipPortId(hex, ev.port, 0)));
      if (v6) r = ipp(`6:${addrHex(v6)}`);
      if (!r && v4) r = ipp(`4:${addrHex(v4)}`);
      c.add("ip:port", r ? "match" : "no_match", r ? describe(r.ref) : "no ip:port rule", r?.ref);
      if (r) rt = "ip_port";
    }
  } else c.add("address rules", "skipped", "bind is checked against port rules only");
  if (!r) {
    r = en(rs.ports.get(portId(ev.port, ev.proto, dir))) ??
      en(rs.ports.get(portId(ev.port, 0, dir))) ??
      en(rs.ports.get(portId(ev.port, ev.proto, NET_DIR_BOTH))) ??
      en(rs.ports.get(portId(ev.port, 0, NET_DIR_BOTH)));
    c.add(
      "port",
      r ? "match" : "no_match",
      r ? describe(r.ref) : `no rule on port ${ev.port}`,
      r?.ref,
    );
    if (r) rt = "port";
  }
  let waived: RuleRef | null = null;
  if (r) {
    const a = allowCgroup(rs, ev, ask);
    if (a) {
      c.add("allow_cgroup", "exempt", `waives the global rule: ${describe(a)}`, a);
      waived = r.ref;
      r = null;
      rt = null;
    } else c.add("allow_cgroup", "not_exempt", "not in an allowed cgroup");
  }
  if (!r && rs.hasCgroupRules) {
    if (checkAddr) {
      if (v4) r = en(cgRule(rs.cgIps.get(`4:${addrHex(v4)}`), ev, ask));
      if (!r && v6) r = en(cgRule(rs.cgIps.get(`6:${addrHex(v6)}`), ev, ask));
      c.add(
        "cgroup ip",
        r ? "match" : "no_match",
        r ? describe(r.ref) : "no cgroup_deny_ip rule",
        r?.ref,
      );
      if (r) rt = "cg_ip";
    }
    if (!r) {
      const cp = (p: number, d: number) =>
        en(cgRule(rs.cgPorts.get(portId(ev.port, p, d)), ev, ask));
      r = cp(ev.proto, dir) ?? cp(0, dir) ?? cp(ev.proto, NET_DIR_BOTH) ?? cp(0, NET_DIR_BOTH);
      c.add(
        "cgroup port",
        r ? "match" : "no_match",
        r ? describe(r.ref) : "no cgroup_deny_port rule",
        r?.ref,
      );
      if (r) rt = "cg_port";
    }
  }
  if (!r) {
    if (waived) {
      return {
        outcome: "allow",
        rule: waived,
        ruleType: null,
        exemptBy: "allow_cgroup",
        hook,
        chain: c.steps,
      };
    }
    return none();
  }
  if (ask("agent", facts.agent)) {
    c.add("agent cgroup", "exempt", "the agent's own cgroup");
    return { outcome: "allow", rule: r.ref, ruleType: rt, exemptBy: "agent", hook, chain: c.steps };
  }
  c.add("agent cgroup", "not_exempt", "not the agent");
  return { outcome: "block", rule: r.ref, ruleType: rt, exemptBy: null, hook, chain: c.steps };
}

function kernelDecision(
  rs: RuleSet,
  ev: ReplayEvent & { surface: "kernel" },
  facts: Facts,
  ask: Ask,
): Run {
  const c = new Chain();
  const ref = ev.what === "ptrace" ? rs.ptrace : ev.what === "module" ? rs.module : rs.bpf;
  const section = ev.what === "ptrace"
    ? "deny_ptrace"
    : ev.what === "module"
    ? "deny_module_load"
    : "deny_bpf";
  if (!ref) {
    c.add(section, "no_match", `[${section}] is off`);
    return {
      outcome: "no_match",
      rule: null,
      ruleType: null,
      exemptBy: null,
      hook: ev.hook,
      chain: c.steps,
    };
  }
  c.add(section, "match", describe(ref), ref);
  const allow = (by: string): Run => ({
    outcome: "allow",
    rule: ref,
    ruleType: ev.what,
    exemptBy: by,
    hook: ev.hook,
    chain: c.steps,
  });
  if (ask("agent", facts.agent)) {
    c.add("agent cgroup", "exempt", "the agent's own cgroup");
    return allow("agent");
  }
  c.add("agent cgroup", "not_exempt", "not the agent");
  const a = allowCgroup(rs, ev, ask);
  if (a) {
    c.add("allow_cgroup", "exempt", describe(a), a);
    return allow("allow_cgroup");
  }
  c.add("allow_cgroup", "not_exempt", "not in an allowed cgroup");
  return {
    outcome: "block",
    rule: ref,
    ruleType: ev.what,
    exemptBy: null,
    hook: ev.hook,
    chain: c.steps,
  };
}

function runOnce(rs: RuleSet, ev: ReplayEvent, facts: Facts, ask: Ask): Run {
  switch (ev.surface) {
    case "file": {
      const c = new Chain();
      return fileDecision(rs, ev, ev.hook, facts, ask, c) ??
        {
          outcome: "no_match",
          rule: null,
          ruleType: null,
          exemptBy: null,
          hook: ev.hook,
          chain: c.steps,
        };
    }
    case "exec":
      return execDecision(rs, ev, facts, ask);
    case "net":
      return netDecision(rs, ev, facts, ask);
    case "kernel":
      return kernelDecision(rs, ev, facts, ask);
  }
}

/** Most ways the unknown facts are tried per event (2^4). */
const MAX_BRANCHES = 16;

function modes(outcome: Outcome): { enforce: string; audit: string } {
  switch (outcome) {
    case "block":
      return {
        enforce: "denied (EPERM), a block event with action BLOCK",
        audit: "allowed, reported by a block event with action AUDIT",
      };
    case "allow":
      return { enforce: "allowed (a rule matched but is waived), no event", audit: "the same" };
    case "no_match":
      return { enforce: "allowed, no rule matches, no event", audit: "the same" };
    case "undetermined":
      return {
        enforce: "depends on facts the event does not carry (see unknown)",
        audit: "never denied; reported with action AUDIT where enforce would deny",
      };
  }
}

/**
 * Decide `ev` against `rs`. `facts` overrides what {@link factsOf} derives
 * (explain: the record proves the rule matched).
 */
export function decide(rs: RuleSet, ev: ReplayEvent, facts: Facts = factsOf(ev)): Decision {
  const runs: { assume: Record<string, boolean>; run: Run }[] = [];
  const unknown = new Map<string, string>();
  const queue: boolean[][] = [[]];
  while (queue.length > 0 && runs.length < MAX_BRANCHES) {
    const choices = queue.shift()!;
    const assume: Record<string, boolean> = {};
    const taken: boolean[] = [];
    const ask: Ask = (name, f) => {
      if (typeof f === "boolean") return f;
      if (f === undefined) return false;
      if (Object.hasOwn(assume, name)) return assume[name];
      unknown.set(name, f.unknown);
      const v = taken.length < choices.length ? choices[taken.length] : false;
      taken.push(v);
      assume[name] = v;
      return v;
    };
    const run = runOnce(rs, ev, facts, ask);
    runs.push({ assume, run });
    for (let j = choices.length; j < taken.length; j++) {
      queue.push([...taken.slice(0, j), true]);
    }
  }
  const first = runs[0].run;
  const same = runs.every((x) =>
    x.run.outcome === first.outcome && x.run.rule?.id === first.rule?.id &&
    x.run.rule?.section === first.rule?.section
  );
  const outcome: Outcome = same ? first.outcome : "undetermined";
  const m = modes(outcome);
  return {
    surface: ev.surface,
    hook: first.hook,
    outcome,
    rule: same ? first.rule : null,
    rule_type: same ? first.ruleType : null,
    exempt_by: same ? first.exemptBy : null,
    chain: first.chain,
    unknown: same ? [] : [...unknown].map(([fact, reason]) => ({ fact, reason })),
    branches: same ? [] : runs.map((x) => ({
      assume: x.assume,
      outcome: x.run.outcome,
      rule: x.run.rule,
    })),
    enforce: m.enforce,
    audit: m.audit,
  };
}
