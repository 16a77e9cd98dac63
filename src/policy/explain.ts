/**
 * `aegisbpf explain`, the logic (pure): one recorded block event against a
 * rule set — which rule the event names and whether it still exists, which
 * rule decides the same operation now (src/policy/decide.ts), the match
 * chain, and what enforce and audit mode do.
 *
 * The record itself proves facts the event has no field for: the kernel
 * wrote a block record, so the file was not on the survival allowlist and
 * the task was not the agent; and when the rule it names is protect-only,
 * the task was not verified (the kernel applies protect rules only to
 * unverified tasks). Those are used, and said.
 *
 * @module
 */
import { decide, type Decision, factsOf } from "./decide.ts";
import type { ReplayEvent } from "./event_input.ts";
import { kernelSwitch } from "./decide_steps.ts";
import { LIVE_RULE_ID_BASE } from "./live.ts";
import { type RuleRef, rulesById, type RuleSet } from "./ruleset.ts";

/** What the event's rule id names in the rule set. */
export interface RecordedRule {
  id: number | null;
  /** policy (a line), live (a live rule), flag (a kernel switch: id 0), none (no id) */
  kind: "policy" | "live" | "flag" | "none";
  exists: boolean;
  rules: RuleRef[];
  message: string;
}

export interface Explanation {
  event: {
    line: number;
    type: string;
    surface: ReplayEvent["surface"];
    hook: string;
    action: string | null;
    happened: ReplayEvent["happened"];
    rule_id: number | null;
    summary: string;
  };
  recorded_rule: RecordedRule;
  decision: Decision;
  /** does the rule set decide it as the kernel did (same rule, matched)? */
  agrees: boolean;
  notes: string[];
}

/** A short line naming what the event is about. */
export function eventSummary(ev: ReplayEvent): string {
  const who = `${ev.comm ?? "?"} (cgroup ${ev.cgroupPath ?? (ev.cgid ? `cgid:${ev.cgid}` : "?")})`;
  switch (ev.surface) {
    case "file":
      return `${ev.hook} of ${ev.path ?? "?"} (inode ${ev.dev}:${ev.ino}) by ${who}`;
    case "exec":
      return ev.hook === "exec"
        ? `exec of comm ${JSON.stringify(ev.comm)} by ${who}`
        : `exec of ${ev.path ?? "?"} (inode ${ev.dev}:${ev.ino}${
          ev.sha256 ? `, sha256:${ev.sha256}` : ""
        }${ev.unlisted ? ", not on the allowlist" : ""}${
          ev.unverified ? ", not verified" : ev.untrusted ? ", not trusted" : ""
        }) by ${who}`;
    case "net": {
      const a = ev.family === 4 ? [...ev.addr].join(".") : hex6(ev.addr);
      const p = ev.proto === 6 ? "tcp" : ev.proto === 17 ? "udp" : `proto ${ev.proto}`;
      return `${ev.hook} ${ev.family === 6 ? `[${a}]` : a}:${ev.port} ${p} by ${who}`;
    }
    case "kernel":
      return `${ev.what} (${ev.hook}) by ${who}`;
  }
}

function hex6(b: Uint8Array): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[i] << 8) | b[i + 1]).toString(16));
  return parts.join(":");
}

/** The sections (and live groups) whose rules a surface's records can name. */
const SURFACE_SECTIONS: Record<ReplayEvent["surface"], ReadonlySet<string>> = {
  file: new Set(["deny_path", "deny_inode", "protect_path", "cgroup_deny_inode", "block"]),
  exec: new Set([
    "deny_path",
    "deny_inode",
    "protect_path",
    "cgroup_deny_inode",
    "deny_comm",
    "deny_binary_hash",
    "block",
  ]),
  net: new Set([
    "deny_ip",
    "deny_cidr",
    "deny_port",
    "deny_ip_port",
    "cgroup_deny_ip",
    "cgroup_deny_port",
    "network",
  ]),
  kernel: new Set(["deny_ptrace", "deny_module_load", "deny_bpf"]),
};

/**
 * The answer for a record whose rule is a switch or a list as a whole
 * (rule id 0): the ref when the rules still hold it, else why not.
 */
function flagAnswer(
  id: number,
  ref: RuleRef | null,
  present: (r: RuleRef) => string,
  absent: string,
): RecordedRule {
  return {
    id,
    kind: "flag",
    exists: ref !== null,
    rules: ref ? [ref] : [],
    message: ref ? present(ref) : absent,
  };
}

function recordedRule(
  rs: RuleSet,
  ev: ReplayEvent,
  byId: Map<number, RuleRef[]>,
  now: number,
): RecordedRule {
  const id = ev.ruleId;
  if (id === null) {
    return {
      id,
      kind: "none",
      exists: false,
      rules: [],
      message: "the event names no rule (it is not a block record)",
    };
  }
  if (ev.surface === "kernel") {
    const { ref, section } = kernelSwitch(rs, ev.what);
    return flagAnswer(
      id,
      ref,
      (r) => `the switch [${section}] (${r.file}:${r.line})`,
      `[${section}] is off in ${rs.source.policy ?? "the rules"} now: the rule that ` +
        "blocked this no longer exists",
    );
  }
  if (ev.surface === "exec" && ev.unverified) {
    // a mprotect record: rule id 0 names the section that turns the check on
    // ([deny_binary_hash], or [protect_runtime_deps] with an allow/trusted list)
    return flagAnswer(
      id,
      rs.unverified,
      (u) =>
        `not verified: a file mapping made executable with mprotect while [${u.section}] ` +
        `(${u.file}:${u.line}) is live, and no executable mapping verified the file`,
      `neither [deny_binary_hash] nor [protect_runtime_deps] with an allow or trusted list ` +
        `is in ${rs.source.policy ?? "the rules"} now: the check that blocked this is off`,
    );
  }
  if (ev.surface === "exec" && (ev.unlisted || ev.untrusted)) {
    // allow_binary_hash / trusted_exec_hash: rule id 0 names the list as a whole
    const [l, section, what, count] = ev.unlisted
      ? [rs.allowlist, "allow_binary_hash", "allowlist", `${rs.allowHashes.size} listed`]
      : [
        rs.trusted,
        "trusted_exec_hash",
        "trusted list",
        `${rs.trustedHashes.size} trusted${rs.imaFailClosed ? ", ima_fail_closed" : ""}`,
      ];
    return flagAnswer(
      id,
      l,
      (r) =>
        `${ev.unlisted ? "not on the allowlist" : "not trusted"}: the content is not in ` +
        `[${section}] (${r.file}:${r.line}, ${count})`,
      `[${section}] is empty or absent in ${rs.source.policy ?? "the rules"} now: ` +
        `the ${what} that blocked this no longer exists`,
    );
  }
  const all = byId.get(id) ?? [];
  const want = SURFACE_SECTIONS[ev.surface];
  const found = all.filter((r) => want.has(r.section));
  const kind = id >= LIVE_RULE_ID_BASE ? "live" : "policy";
  if (found.length === 0 && all.length > 0) {
    const r = all[0];
    return {
      id,
      kind,
      exists: false,
      rules: all,
      message: `rule ${id} is now ${
        r.origin === "live"
          ? `live rule ${r.section} ${r.text}`
          : `${r.file}:${r.line} [${r.section}] ${r.text}`
      }, not a ${ev.surface} rule: the rule this event names no longer exists`,
    };
  }
  if (found.length > 0) {
    const r = found[0];
    return {
      id,
      kind,
      exists: true,
      rules: found,
      message: kind === "live"
        ? `live rule ${id}: ${r.section} ${r.text}${ttlText(r, now)}`
        : found.map((x) => `${x.file}:${x.line} [${x.section}] ${x.text}`).join("; "),
    };
  }
  return {
    id,
    kind,
    exists: false,
    rules: [],
    message: kind === "live"
      ? `live rule ${id} no longer exists (deleted, expired, or dropped by policy apply --reset)`
      : `the rule at line ${id} no longer exists: ${
        rs.source.policy ?? "the policy"
      } has no rule at line ${id} (the policy changed since the event)`,
  };
}

function ttlText(r: RuleRef, now: number): string {
  if (r.expires === undefined) return "";
  if (r.expires === null) return " (no TTL: until deleted)";
  const left = Math.round((r.expires - now) / 1000);
  if (left <= 0) {
    return ` (its TTL ran out ${-left} s ago; it stays in the maps until the next sweep: ` +
      "the daemon's, or the next rule command)";
  }
  return ` (expires in ${left} s)`;
}

/** Explain one event against `rs`. */
export function explainEvent(rs: RuleSet, ev: ReplayEvent, now = Date.now()): Explanation {
  const byId = rulesById(rs);
  const rec = recordedRule(rs, ev, byId, now);
  const notes: string[] = [];
  const facts = factsOf(ev);
  let d = decide(rs, ev, facts);
  if (ev.action !== null) {
    notes.push(
      "the kernel wrote this block record: the file was not on the survival allowlist and " +
        "the task was not in the agent's cgroup when it happened",
    );
  }
  // a protect-only rule matched only an unverified task: the record proves it
  if (d.outcome === "undetermined" && rec.exists && typeof facts.verified !== "boolean") {
    const unverified = decide(rs, ev, { ...facts, verified: false });
    const verified = decide(rs, ev, { ...facts, verified: true });
    if (
      unverified.outcome === "block" && unverified.rule?.id === ev.ruleId &&
      !(verified.outcome === "block" && verified.rule?.id === ev.ruleId)
    ) {
      d = unverified;
      notes.push(
        `rule ${ev.ruleId} applies only to processes that are not verified executables ` +
          "(protect), so the record shows this one was not verified",
      );
    }
  }
  const agrees = d.outcome === "block" && d.rule !== null && d.rule.id === ev.ruleId;
  if (ev.action !== null && !agrees) {
    if (d.outcome === "block") {
      notes.push(
        `the same operation is decided now by rule ${d.rule?.id}, not by rule ${ev.ruleId} ` +
          "named in the event",
      );
    } else if (d.outcome === "undetermined") {
      notes.push("what the rules decide now depends on facts the event does not carry");
    } else {
      notes.push(
        `the rules now ${d.outcome === "allow" ? "waive" : "do not match"} it: ` +
          "the same operation would be allowed",
      );
    }
  }
  return {
    event: {
      line: ev.line,
      type: ev.type,
      surface: ev.surface,
      hook: ev.hook,
      action: ev.action,
      happened: ev.happened,
      rule_id: ev.ruleId,
      summary: eventSummary(ev),
    },
    recorded_rule: rec,
    decision: d,
    agrees,
    notes,
  };
}
