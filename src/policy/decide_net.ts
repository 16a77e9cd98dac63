/**
 * The network decision, replayed (src/policy/decide.ts): bpf/lib/net.h's
 * aegis_net_decide, table by table in its order.
 *
 * @module
 */
import type { ReplayEvent } from "./event_input.ts";
import {
  addrHex,
  type CidrTable,
  ipPortId,
  portId,
  type RuleRef,
  type RuleSet,
  type RuleVal,
} from "./ruleset.ts";
import {
  allowCgroup,
  type Ask,
  cgRule,
  Chain,
  describe,
  enforced,
  type Facts,
  noMatch,
  type Run,
} from "./decide_steps.ts";

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

export function netDecision(
  rs: RuleSet,
  ev: ReplayEvent & { surface: "net" },
  facts: Facts,
  ask: Ask,
): Run {
  const c = new Chain();
  const hook = `socket_${ev.hook}`;
  const none = (): Run => noMatch(hook, c);
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
