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
import type { RuleSet } from "./ruleset.ts";
import {
  agentOrAllowCgroup,
  type Ask,
  Chain,
  type Decision,
  describe,
  type Facts,
  kernelSwitch,
  noMatch,
  type Outcome,
  type Run,
} from "./decide_steps.ts";
import { execDecision, fileDecision } from "./decide_file.ts";
import { netDecision } from "./decide_net.ts";

export type { Branch, Decision, Fact, Facts, Outcome, Step, Unknown } from "./decide_steps.ts";
export { commOf } from "./decide_file.ts";

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

function kernelDecision(
  rs: RuleSet,
  ev: ReplayEvent & { surface: "kernel" },
  facts: Facts,
  ask: Ask,
): Run {
  const c = new Chain();
  const { ref, section } = kernelSwitch(rs, ev.what);
  if (!ref) {
    c.add(section, "no_match", `[${section}] is off`);
    return noMatch(ev.hook, c);
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
  const exempt = agentOrAllowCgroup(rs, ev, facts, ask, c);
  if (exempt) return allow(exempt);
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
      return fileDecision(rs, ev, ev.hook, facts, ask, c) ?? noMatch(ev.hook, c);
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
