/**
 * The pieces every surface's decision shares (src/policy/decide.ts has
 * the order): the result types, the match chain, the unknown-fact
 * question, cgroup membership as the kernel tests it, and
 * aegis_rule_enforced (bpf/lib/verified.h).
 *
 * @module
 */
import type { ReplayEvent } from "./event_input.ts";
import type { CgroupSel, CgRule, RuleRef, RuleSet, RuleVal } from "./ruleset.ts";

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

export type Ask = (name: string, f: Fact | undefined, reason?: string) => boolean;

export interface Run {
  outcome: Exclude<Outcome, "undetermined">;
  rule: RuleRef | null;
  ruleType: string | null;
  exemptBy: string | null;
  hook: string;
  chain: Step[];
}

/** The kernel switch a kernel event hit: its rule (null when the section is off) and section. */
export function kernelSwitch(
  rs: RuleSet,
  what: string,
): { ref: RuleRef | null; section: "deny_ptrace" | "deny_module_load" | "deny_bpf" } {
  if (what === "ptrace") return { ref: rs.ptrace, section: "deny_ptrace" };
  if (what === "module") return { ref: rs.module, section: "deny_module_load" };
  return { ref: rs.bpf, section: "deny_bpf" };
}

/** The outcome when no rule matched (the chain so far says why). */
export function noMatch(hook: string, c: Chain): Run {
  return { outcome: "no_match", rule: null, ruleType: null, exemptBy: null, hook, chain: c.steps };
}

/**
 * After a matched global rule: the agent's own cgroup, then allow_cgroup
 * (the order of aegis_cgroup_allowed in bpf/lib/decide.h). Adds both steps
 * to the chain; returns which one exempts the task, or null.
 */
export function agentOrAllowCgroup(
  rs: RuleSet,
  ev: ReplayEvent,
  facts: Facts,
  ask: Ask,
  c: Chain,
): "agent" | "allow_cgroup" | null {
  if (ask("agent", facts.agent)) {
    c.add("agent cgroup", "exempt", "the agent's own cgroup");
    return "agent";
  }
  c.add("agent cgroup", "not_exempt", "not the agent");
  const a = allowCgroup(rs, ev, ask);
  if (a) {
    c.add("allow_cgroup", "exempt", describe(a), a);
    return "allow_cgroup";
  }
  c.add("allow_cgroup", "not_exempt", "not in an allowed cgroup");
  return null;
}

export class Chain {
  steps: Step[] = [];
  add(step: string, result: Step["result"], detail: string, rule?: RuleRef): void {
    this.steps.push(rule ? { step, result, detail, rule } : { step, result, detail });
  }
}

export function describe(r: RuleRef): string {
  return r.origin === "live"
    ? `live rule ${r.id} (${r.section}: ${r.text})`
    : `${r.file}:${r.line} [${r.section}] ${r.text}`;
}

/** Is the task in the cgroup a rule names? Exact cgroup (bpf_get_current_cgroup_id), not its children. */
export function inCgroup(ev: ReplayEvent, sel: CgroupSel, ask: Ask): boolean {
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
export function allowCgroup(rs: RuleSet, ev: ReplayEvent, ask: Ask): RuleRef | null {
  for (const a of rs.allowCgroups) if (inCgroup(ev, a.cgroup, ask)) return a.ref;
  return null;
}

export function cgRule(list: CgRule[] | undefined, ev: ReplayEvent, ask: Ask): RuleVal | null {
  if (!list) return null;
  for (const c of list) if (inCgroup(ev, c.cgroup, ask)) return c.val;
  return null;
}

/** aegis_rule_enforced: a deny flag always; protect-only for an unverified task. */
export function enforced(v: RuleVal | null | undefined, ask: Ask, facts: Facts): RuleVal | null {
  if (!v) return null;
  if (v.deny) return v;
  if (v.protect) return ask("verified", facts.verified) ? null : v;
  return null;
}
