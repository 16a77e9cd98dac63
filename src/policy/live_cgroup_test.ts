/**
 * Live cgroup-scoped denies (`cgroup deny add|del|list|clear`) and the
 * `clear` of every family, over fake maps (docs/policy.md, "Live rule edits").
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  AEGIS_POL_CGROUP_RULES,
  AEGIS_POL_FILE_RULES,
  AEGIS_POL_NET_RULES,
  AEGIS_RT_CG_PORT,
  AEGIS_RULE_DENY,
} from "../bpf/abi_gen.ts";
import { cgInodeKey, cgIpKey, cgPortKey, inodeKey, ruleValue, u32Key } from "../bpf/rule_codec.ts";
import { parseIp } from "../bpf/net_codec.ts";
import { fakeMaps, fakeResolvePath } from "./fake_maps_testing.ts";
import { LIVE_RULE_ID_BASE, LiveRules } from "./live.ts";
import { ruleSetFromPolicy, withLiveRules } from "./ruleset.ts";
import { FIXTURE_ENV } from "./decide_testing.ts";
import { parsePolicy } from "./parse.ts";

const DEV = 0x800001;

function setup() {
  const dir = Deno.makeTempDirSync();
  const fm = fakeMaps();
  const live = new LiveRules({
    maps: fm.maps,
    storePath: `${dir}/live_rules.json`,
    now: () => 1_000_000,
    resolvePath: fakeResolvePath(DEV, 10),
    resolveCgroup: (p) => (p === "/web" ? 77n : null),
    ownerUid: Deno.statSync(dir).uid!,
  });
  return { fm, live };
}

function flags(fm: ReturnType<typeof fakeMaps>): number {
  const v = fm.get("aegis_policy").lookup(u32Key(0));
  return v ? Number(new DataView(v.buffer).getBigUint64(0, true)) : 0;
}

Deno.test("cgroup deny: inode, ip and port rules go to the cgroup maps with their switches", () => {
  const { fm, live } = setup();
  const a = live.add({ kind: "cg_inode", cgroup: "/web", inode: "2049:100" });
  deepStrictEqual(a.rule.spec, {
    kind: "cg_inode",
    cgroup: "/web",
    cgid: "77",
    dev: 2049,
    ino: "100",
  });
  ok(fm.get("aegis_cg_deny_inode").lookup(cgInodeKey(77n, 2049, 100n, 0)));
  strictEqual(flags(fm), AEGIS_POL_CGROUP_RULES | AEGIS_POL_FILE_RULES);
  // major:minor:ino, as the policy takes it
  const b = live.add({ kind: "cg_inode", cgroup: "cgid:5", inode: "8:1:42" });
  strictEqual(b.rule.spec.kind === "cg_inode" && b.rule.spec.dev, (8 << 20) | 1);
  live.add({ kind: "cg_ip", cgroup: "cgid:5", ip: "2001:DB8::1" }, 60);
  ok(fm.get("aegis_cg_deny_ip").lookup(cgIpKey(5n, parseIp("2001:db8::1").bytes, 0)));
  const p = live.add({
    kind: "cg_port",
    cgroup: "/web",
    port: 22,
    protocol: "tcp",
    direction: "bind",
  });
  const v = fm.get("aegis_cg_deny_port").lookup(cgPortKey(77n, 22, 6, 1, 0));
  deepStrictEqual(v, ruleValue(p.rule.id, AEGIS_RULE_DENY, AEGIS_RT_CG_PORT));
  strictEqual(
    flags(fm),
    AEGIS_POL_CGROUP_RULES | AEGIS_POL_FILE_RULES | AEGIS_POL_NET_RULES,
  );
  deepStrictEqual(live.list("cgroup_deny").map((r) => r.rule), [
    "cgroup /web (cgid:77) inode 2049:100",
    "cgroup cgid:5 inode 8388609:42",
    "cgroup cgid:5 ip 2001:db8::1",
    "cgroup /web (cgid:77) port 22:tcp:bind",
  ]);
  deepStrictEqual(live.list("network"), [], "cgroup rules are not network deny rules");
  strictEqual(live.consistency().length, 0);
  // the same rule again renews it
  strictEqual(live.add({ kind: "cg_ip", cgroup: "cgid:5", ip: "2001:db8::1" }).renewed, true);
  // del by the same options
  live.del({ kind: "cg_port", cgroup: "/web", port: 22, protocol: "tcp", direction: "bind" });
  strictEqual(fm.get("aegis_cg_deny_port").data.size, 0);
});

Deno.test("cgroup deny: bad input is refused by name and changes nothing", () => {
  const { fm, live } = setup();
  const bad: [Parameters<LiveRules["add"]>[0], RegExp][] = [
    [{ kind: "cg_ip", cgroup: "/nope", ip: "1.2.3.4" }, /Cannot scope .*"\/nope": no such cgroup/],
    [{ kind: "cg_ip", cgroup: "__proto__", ip: "1.2.3.4" }, /absolute cgroup v2 path/],
    [{ kind: "cg_ip", cgroup: "constructor", ip: "1.2.3.4" }, /absolute cgroup v2 path/],
    [{ kind: "cg_ip", cgroup: "cgid:0", ip: "1.2.3.4" }, /cgroup id 0/],
    [
      { kind: "cg_ip", cgroup: "cgid:184467440737095516160", ip: "1.2.3.4" },
      /does not fit in 64 bits/,
    ],
    [{ kind: "cg_ip", cgroup: "cgid:5", ip: "1.2.3.400" }, /1\.2\.3\.400/],
    [{ kind: "cg_ip", cgroup: "cgid:5", ip: "10.0.0.0/8" }, /exact address/],
    [{ kind: "cg_ip", cgroup: "cgid:5", ip: "__proto__" }, /__proto__/],
    [{ kind: "cg_port", cgroup: "cgid:5", port: 0 }, /port/i],
    [{ kind: "cg_port", cgroup: "cgid:5", port: 70000 }, /70000/],
    [{ kind: "cg_port", cgroup: "cgid:5", port: 1e300 }, /port/i],
    [{ kind: "cg_inode", cgroup: "cgid:5", inode: "constructor" }, /--inode: .*dev:ino/],
    [{ kind: "cg_inode", cgroup: "cgid:5", inode: "1:0" }, /inode number 0/],
    [{ kind: "cg_inode", cgroup: "cgid:5", inode: "99999:1:5" }, /major 99999/],
    [
      { kind: "cg_inode", cgroup: "cgid:5", inode: "1:99999999999999999999999" },
      /--inode: .*64 bits/,
    ],
  ];
  for (const [req, re] of bad) throws(() => live.add(req), re, JSON.stringify(req));
  strictEqual(live.rules().length, 0);
  for (const m of ["aegis_cg_deny_inode", "aegis_cg_deny_ip", "aegis_cg_deny_port"]) {
    strictEqual(fm.get(m).data.size, 0, m);
  }
  strictEqual(fm.get("aegis_policy").data.size, 0, "no switch was turned on");
});

Deno.test("clear: deletes the family's live rules only, restores shadowed policy values", () => {
  const { fm, live } = setup();
  const key = inodeKey(DEV, 60, 0);
  const policyVal = ruleValue(3, AEGIS_RULE_DENY, 1);
  fm.get("aegis_deny_inode").update(key, policyVal); // a policy rule on /etc/x
  live.add({ kind: "path", path: "/etc/x" });
  live.add({ kind: "path", path: "/etc/yy" });
  live.add({ kind: "ip", ip: "10.1.2.3" });
  live.add({ kind: "cg_ip", cgroup: "cgid:5", ip: "10.1.2.3" });
  const gone = live.delGroup("block");
  deepStrictEqual(gone.map((r) => r.id), [LIVE_RULE_ID_BASE, LIVE_RULE_ID_BASE + 1]);
  deepStrictEqual(fm.get("aegis_deny_inode").lookup(key), policyVal, "the policy's rule is back");
  strictEqual(fm.get("aegis_deny_inode").data.size, 1);
  deepStrictEqual(live.rules().map((r) => r.spec.kind), ["ip", "cg_ip"]);
  deepStrictEqual(live.delGroup("block"), [], "nothing left: an empty clear");
  strictEqual(live.delGroup("cgroup_deny").length, 1);
  strictEqual(fm.get("aegis_cg_deny_ip").data.size, 0);
  strictEqual(live.delGroup("network").length, 1);
  strictEqual(fm.get("aegis_deny_ip4").data.size, 0);
  deepStrictEqual(live.consistency(), []);
});

Deno.test("clear: a map failure midway leaves the rest marked; the next edit finishes the clear", () => {
  const { fm, live } = setup();
  live.add({ kind: "cg_port", cgroup: "cgid:5", port: 22 });
  live.add({ kind: "cg_inode", cgroup: "cgid:5", inode: "1:2" });
  // the policy value shadowed by nothing: delete fails by making the map refuse deletes once
  const m = fm.get("aegis_cg_deny_inode");
  const realDelete = m.delete.bind(m);
  let fail = true;
  m.delete = (k) => {
    if (fail) {
      fail = false;
      throw new Error("injected");
    }
    return realDelete(k);
  };
  throws(() => live.delGroup("cgroup_deny"), /injected/);
  deepStrictEqual(live.rules().map((r) => r.state), ["deleting", "deleting"]);
  strictEqual(live.recover(), 2);
  deepStrictEqual(live.rules(), []);
  strictEqual(fm.get("aegis_cg_deny_port").data.size + m.data.size, 0);
});

Deno.test("cgroup deny: a live rule takes the place of the policy's rule for explain/simulate", () => {
  const { live } = setup();
  const text = "version=6\n[cgroup_deny_port]\ncgid:5 22\n";
  const { rules: rs } = ruleSetFromPolicy(
    parsePolicy(text, "p.conf").policy!,
    "p.conf",
    FIXTURE_ENV,
  );
  live.add({ kind: "cg_port", cgroup: "cgid:5", port: 22 });
  live.add({ kind: "cg_ip", cgroup: "cgid:6", ip: "10.0.0.1" });
  const merged = withLiveRules(rs, live.rules());
  const port = merged.cgPorts.get("22/0/0")!;
  deepStrictEqual(port.map((r) => [r.cgroup.cgid, r.val.ref.origin]), [["5", "live"]]);
  strictEqual(merged.cgIps.get("4:0a000001")?.[0].val.ref.section, "cgroup_deny_ip");
  ok(merged.hasCgroupRules && merged.hasNetRules);
});

Deno.test("ruleName: live rules, policy lines, the kernel switches, and gone rules", () => {
  const { live } = setup();
  const { rule } = live.add({ kind: "cg_ip", cgroup: "cgid:5", ip: "10.0.0.1" });
  strictEqual(live.ruleName(rule.id, ""), "live rule cgroup cgid:5 ip 10.0.0.1");
  strictEqual(live.ruleName(rule.id + 1, ""), null);
  strictEqual(live.ruleName(2, "version=1\n/etc/shadow\n"), "line 2: /etc/shadow");
  strictEqual(live.ruleName(9, "version=1\n"), null);
  ok(live.ruleName(0, "")?.includes("kernel switch"));
});
