/**
 * Fixtures of the decision-model tests (decide, explain, simulate): a
 * compile environment with fixed inodes and cgroup ids, a rule set from
 * policy text, and recorded events.
 *
 * @module
 */
import type { CompileEnv } from "./compile.ts";
import { eventFromJson, type ReplayEvent } from "./event_input.ts";
import type { LiveRule } from "./live.ts";
import { parsePolicy } from "./parse.ts";
import { type RuleSet, ruleSetFromPolicy, withLiveRules } from "./ruleset.ts";

/** A few paths resolve to fixed inodes on dev 2049; cgroups to fixed ids. */
export const FIXTURE_ENV: CompileEnv = {
  resolvePath: (path) => {
    const m = new Map([
      ["/usr/bin/nc", 100],
      ["/etc/shadow", 200],
      ["/usr/bin/xmrig", 300],
      ["/srv/app/key", 400],
    ]).get(path);
    return m === undefined
      ? { status: "unresolved", path, reason: "does not exist (yet)" }
      : { status: "resolved", path, canonical: path, dev: 2049, ino: m } as never;
  },
  resolveCgroup: (path) =>
    new Map([["/system.slice/trusted.service", 77n], ["/app.slice", 88n]]).get(path) ?? null,
};

/** The rule set of policy text (file "p.conf") and live rules. */
export function rules(text: string, live: LiveRule[] = []): RuleSet {
  const r = parsePolicy(text, "p.conf");
  if (!r.policy) throw new Error(JSON.stringify(r.errors));
  const built = ruleSetFromPolicy(r.policy, "p.conf", FIXTURE_ENV);
  return withLiveRules(built.rules, live);
}

const PROC = {
  pid: 10,
  tid: 10,
  ppid: 1,
  uid: 0,
  start_time: "5",
  exec_id: "5-10",
  cgid: "50",
  cgroup_path: "/user.slice/s.scope",
  comm: "cat",
};

/** A recorded event: process fields of a task in /user.slice/s.scope (cgid 50), then `fields`. */
export function ev(fields: Record<string, unknown>): ReplayEvent {
  const r = eventFromJson({ ...PROC, ...fields }, 1);
  if (!r.ok) throw new Error(r.problem.message);
  return r.event;
}

export const fileBlock = (ino: number, extra: Record<string, unknown> = {}): ReplayEvent =>
  ev({
    type: "block",
    action: "BLOCK",
    hook: "file_open",
    ino: String(ino),
    dev: 2049,
    path: null,
    rule_id: 1,
    ...extra,
  });

export const connect = (
  addr: string,
  port: number,
  extra: Record<string, unknown> = {},
): ReplayEvent =>
  ev({
    type: "net_connect_block",
    action: "AUDIT",
    hook: "socket_connect",
    family: addr.includes(":") ? "ipv6" : "ipv4",
    addr,
    port,
    protocol: "tcp",
    rule_type: "ip",
    rule_id: 1,
    ...extra,
  });
