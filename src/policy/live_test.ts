import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import {
  AEGIS_POL_FILE_RULES,
  AEGIS_POL_NET_IP,
  AEGIS_POL_NET_IP_PORT,
  AEGIS_POL_NET_RULES,
  AEGIS_POL_NET_TABLES,
  AEGIS_RULE_DENY,
  AEGIS_RULE_PROTECT,
} from "../bpf/abi_gen.ts";
import { inodeKey, policyValue, ruleValue, u32Key } from "../bpf/rule_codec.ts";
import { cidrKey, ipKey, parseCidr, parseIp } from "../bpf/net_codec.ts";
import { AEGIS_CFG_GENERATION, AEGIS_RT_INODE } from "../bpf/abi_gen.ts";
import { fakeMaps, fakeResolvePath } from "./fake_maps_testing.ts";
import { expiryChange, LIVE_RULE_ID_BASE, LiveRules, mergeLive } from "./live.ts";
import { addedExpiry } from "../cli/rules.ts";

const DEV = 0x800001;
const resolvePath = fakeResolvePath(DEV, 10);

function setup() {
  const dir = Deno.makeTempDirSync();
  const fm = fakeMaps();
  let now = 1_000_000;
  const live = new LiveRules({
    maps: fm.maps,
    storePath: `${dir}/live_rules.json`,
    now: () => now,
    resolvePath,
    resolveCgroup: (p) => (p === "/web" ? 77n : null),
    ownerUid: Deno.statSync(dir).uid!,
  });
  return { dir, fm, live, tick: (ms: number) => (now += ms) };
}

function ruleId(v: Uint8Array | null): number {
  ok(v, "entry present");
  return new DataView(v.buffer).getUint32(0, true);
}
function ruleFlags(v: Uint8Array | null): number {
  return new DataView(v!.buffer).getUint16(4, true);
}

Deno.test("live: block add writes the live generation, ids from 2^31, store 0600, file switch on", () => {
  const { dir, fm, live } = setup();
  const gen = 0;
  const { rule, renewed } = live.add({ kind: "path", path: "/etc/x" });
  strictEqual(renewed, false);
  strictEqual(rule.id, LIVE_RULE_ID_BASE);
  const v = fm.get("aegis_deny_inode").lookup(inodeKey(DEV, 60, gen));
  strictEqual(ruleId(v), LIVE_RULE_ID_BASE);
  strictEqual(ruleFlags(v), AEGIS_RULE_DENY);
  const pol = fm.get("aegis_policy").lookup(u32Key(gen))!;
  strictEqual(Number(new DataView(pol.buffer).getBigUint64(0, true)) & AEGIS_POL_FILE_RULES, 1);
  strictEqual(Deno.statSync(`${dir}/live_rules.json`).mode! & 0o777, 0o600);
  strictEqual(live.add({ kind: "path", path: "/etc/yy" }).rule.id, LIVE_RULE_ID_BASE + 1);
  // the same inode again renews, it does not add
  strictEqual(live.add({ kind: "path", path: "/etc/y" }).renewed, true);
  // a missing file is refused and nothing is written
  throws(() => live.add({ kind: "path", path: "/missing/z" }), /Cannot block.*does not exist/);
  strictEqual(fm.get("aegis_deny_inode").data.size, 2);
  strictEqual(live.rules().length, 2);
});

Deno.test("live: a network rule adds its table's bit even when the switches have NET_RULES already", () => {
  const { fm, live } = setup();
  // a policy apply (or the proof's canary) left NET_RULES with another table's bit
  const before = AEGIS_POL_NET_RULES | AEGIS_POL_NET_TABLES | AEGIS_POL_NET_IP_PORT;
  fm.get("aegis_policy").update(u32Key(0), policyValue(before));
  live.add({ kind: "ip", ip: "10.1.2.3" });
  const pol = fm.get("aegis_policy").lookup(u32Key(0))!;
  strictEqual(
    Number(new DataView(pol.buffer).getBigUint64(0, true)),
    before | AEGIS_POL_NET_IP,
    "the ip table's bit was added: without it the hooks skip the ip table",
  );
});

Deno.test("live: writes go to the live generation when it is 1", () => {
  const { fm, live } = setup();
  fm.get("aegis_config").setU64(AEGIS_CFG_GENERATION, 1n);
  live.add({ kind: "ip", ip: "10.1.2.3" }, 60);
  ok(fm.get("aegis_deny_ip4").lookup(ipKey(parseIp("10.1.2.3"), 1).key));
  strictEqual(fm.get("aegis_deny_ip4").lookup(ipKey(parseIp("10.1.2.3"), 0).key), null);
  const pol = fm.get("aegis_policy").lookup(u32Key(1))!;
  ok(Number(new DataView(pol.buffer).getBigUint64(0, true)) & AEGIS_POL_NET_RULES);
});

Deno.test("live: TTL expiry is swept from maps and store and reported; renew extends", () => {
  const { fm, live, tick } = setup();
  live.add({ kind: "cidr", cidr: "10.0.0.0/8" }, 2);
  live.add({ kind: "port", port: 22, protocol: "tcp", direction: "bind" }, 10);
  live.add({ kind: "path", path: "/etc/keep" });
  tick(1000);
  deepStrictEqual(live.sweep(), []);
  const renewed = live.add({ kind: "port", port: 22, protocol: "tcp", direction: "bind" }, 60);
  strictEqual(renewed.renewed, true);
  tick(1500);
  const expired = live.sweep();
  deepStrictEqual(expired.map((r) => r.spec.kind), ["cidr"]);
  strictEqual(fm.get("aegis_deny_cidr4").lookup(cidrKey(parseCidr("10.0.0.0/8"), 0).key), null);
  strictEqual(fm.get("aegis_deny_port").data.size, 1, "the renewed rule stays");
  deepStrictEqual(live.rules().map((r) => r.spec.kind).sort(), ["path", "port"]);
  const listed = live.list("network");
  strictEqual(listed.length, 1);
  strictEqual(listed[0].origin, "live");
  strictEqual(listed[0].ttl_remaining_s, 59); // renewed at +1 s for 60 s, now +2.5 s
  strictEqual(live.list("block")[0].ttl_remaining_s, null);
});

Deno.test("live: a rule on a policy key shadows it; del restores the policy value", () => {
  const { fm, live } = setup();
  const key = inodeKey(DEV, 60, 0);
  const policyVal = ruleValue(3, AEGIS_RULE_PROTECT, AEGIS_RT_INODE);
  fm.get("aegis_deny_inode").update(key, policyVal);
  const { rule } = live.add({ kind: "path", path: "/etc/x" });
  const v = fm.get("aegis_deny_inode").lookup(key);
  strictEqual(ruleId(v), rule.id);
  strictEqual(ruleFlags(v), AEGIS_RULE_DENY | AEGIS_RULE_PROTECT, "policy flags kept");
  const listed = live.list("block", "version=4\n[protect_path]\n/etc/x\n");
  deepStrictEqual(listed.map((l) => [l.origin, l.rule]), [["live", "/etc/x (inode 8388609:60)"]]);
  live.del({ kind: "path", path: "/etc/x" });
  deepStrictEqual(fm.get("aegis_deny_inode").lookup(key), policyVal);
  deepStrictEqual(live.list("block", "version=4\n[protect_path]\n/etc/x\n").map((l) => l.rule), [
    "line 3: /etc/x",
  ]);
  throws(() => live.del({ kind: "path", path: "/etc/x" }), /No live rule/);
});

Deno.test("live: allow by cgroup path or cgid; bad input changes nothing", () => {
  const { fm, live } = setup();
  live.add({ kind: "cgroup", cgroup: "/web" });
  live.add({ kind: "cgroup", cgroup: "cgid:99" });
  strictEqual(fm.get("aegis_allow_cgroup").data.size, 2);
  throws(() => live.add({ kind: "cgroup", cgroup: "/nope" }), /no such cgroup/);
  throws(() => live.add({ kind: "cgroup", cgroup: "web" }), /absolute/);
  throws(() => live.add({ kind: "cidr", cidr: "10.1.2.3/8" }), /host bits are set/);
  throws(() => live.add({ kind: "port", port: 70000 }), /70000/);
  throws(() => live.add({ kind: "ip_port", ip_port: "2001:db8::1:443" }), /brackets/);
  strictEqual(live.rules().length, 2);
  live.del({ kind: "cgroup", cgroup: "cgid:77" });
  strictEqual(fm.get("aegis_allow_cgroup").data.size, 1);
});

Deno.test("live: a full map refuses with map full and the store is unchanged", () => {
  const { fm, live } = setup();
  fm.get("aegis_deny_ip4").maxEntries = 1;
  live.add({ kind: "ip", ip: "10.0.0.1" });
  throws(() => live.add({ kind: "ip", ip: "10.0.0.2" }), /map full: aegis_deny_ip4 holds 1/);
  strictEqual(live.rules().length, 1);
});

Deno.test("live: a store writable by others is refused", () => {
  const { dir, live } = setup();
  live.add({ kind: "ip", ip: "10.0.0.1" });
  Deno.chmodSync(`${dir}/live_rules.json`, 0o666);
  throws(() => live.rules(), (e: Error) => {
    match(e.message, /writable only by it; refusing/);
    return true;
  });
});

Deno.test("mergeLive: live rules join the compiled policy, replacing a colliding entry", () => {
  const { live } = setup();
  live.add({ kind: "path", path: "/etc/x" });
  live.add({ kind: "ip", ip: "10.0.0.1" });
  const compiled = {
    flags: AEGIS_POL_FILE_RULES,
    entries: [{
      map: "aegis_deny_inode" as const,
      key: (g: number) => inodeKey(DEV, 60, g),
      value: ruleValue(7, AEGIS_RULE_PROTECT, AEGIS_RT_INODE),
    }],
  };
  const { policy, shadows } = mergeLive(compiled, live.rules());
  strictEqual(policy.entries.length, 2);
  strictEqual(
    policy.flags,
    AEGIS_POL_FILE_RULES | AEGIS_POL_NET_RULES | AEGIS_POL_NET_IP,
    "a live rule adds its table's bit, never NET_TABLES (it does not know every table)",
  );
  strictEqual(ruleId(policy.entries[0].value), LIVE_RULE_ID_BASE);
  strictEqual(ruleFlags(policy.entries[0].value), AEGIS_RULE_DENY | AEGIS_RULE_PROTECT);
  strictEqual(shadows.get(LIVE_RULE_ID_BASE), "07000000" + "0200" + "0100");
  strictEqual(shadows.get(LIVE_RULE_ID_BASE + 1), null);
});

/** Rewrite the store as a killed process would have left it. */
function editStore(dir: string, f: (s: { rules: Record<string, unknown>[] }) => void): void {
  const p = `${dir}/live_rules.json`;
  const s = JSON.parse(Deno.readTextFileSync(p));
  f(s);
  Deno.writeTextFileSync(p, JSON.stringify(s));
}

Deno.test("live: an add killed after its store write is finished by the next sweep", () => {
  const { dir, fm, live } = setup();
  const { rule } = live.add({ kind: "path", path: "/etc/x" });
  const key = inodeKey(DEV, 60, 0);
  // killed before the map write: the store says "adding", the map lacks it
  editStore(dir, (s) => s.rules[0].state = "adding");
  fm.get("aegis_deny_inode").delete(key);
  deepStrictEqual(live.consistency(), [
    `live rule ${rule.id}: adding not finished`,
    `live rule ${rule.id} (/etc/x (inode 8388609:60)) is not in aegis_deny_inode`,
  ]);
  deepStrictEqual(live.sweep(), [], "nothing expired");
  strictEqual(ruleId(fm.get("aegis_deny_inode").lookup(key)), rule.id);
  deepStrictEqual(live.consistency(), []);
  strictEqual(live.rules()[0].state, undefined);
  // killed after the map write: recover() only clears the state
  editStore(dir, (s) => s.rules[0].state = "adding");
  strictEqual(live.recover(), 1);
  strictEqual(live.recover(), 0);
  deepStrictEqual(live.consistency(), []);
});

Deno.test("live: a del killed after its store write is finished; the shadowed policy value comes back", () => {
  const { dir, fm, live } = setup();
  const key = inodeKey(DEV, 60, 0);
  const policyVal = ruleValue(3, AEGIS_RULE_PROTECT, AEGIS_RT_INODE);
  fm.get("aegis_deny_inode").update(key, policyVal);
  const { rule } = live.add({ kind: "path", path: "/etc/x" });
  editStore(dir, (s) => s.rules[0].state = "deleting");
  // the next edit recovers first, then does its own work
  live.add({ kind: "ip", ip: "10.0.0.1" });
  deepStrictEqual(fm.get("aegis_deny_inode").lookup(key), policyVal);
  deepStrictEqual(live.rules().map((r) => r.spec.kind), ["ip"]);
  ok(!live.rules().some((r) => r.id === rule.id));
  deepStrictEqual(live.consistency(), []);
  // a del killed after its map write (entry already gone) finishes too
  const ip = live.rules()[0];
  editStore(dir, (s) => s.rules[0].state = "deleting");
  fm.get("aegis_deny_ip4").delete(ipKey(parseIp("10.0.0.1"), 0).key);
  strictEqual(live.recover(), 1);
  deepStrictEqual(live.rules(), []);
  strictEqual(fm.get("aegis_deny_ip4").lookup(ipKey(parseIp("10.0.0.1"), 0).key), null);
  ok(ip.id > rule.id);
});

Deno.test("live: consistency() names orphan entries and stale ids; a killed writer's temp file is removed", () => {
  const { dir, fm, live } = setup();
  live.add({ kind: "ip", ip: "10.0.0.1" });
  const orphanKey = ipKey(parseIp("10.0.0.9"), 0).key;
  fm.get("aegis_deny_ip4").update(
    orphanKey,
    ruleValue(LIVE_RULE_ID_BASE + 77, AEGIS_RULE_DENY, 0),
  );
  deepStrictEqual(live.consistency(), [
    `aegis_deny_ip4 holds live rule id ${
      LIVE_RULE_ID_BASE + 77
    }, which the store does not list there`,
  ]);
  fm.get("aegis_deny_ip4").delete(orphanKey);
  fm.get("aegis_deny_ip4").update(
    ipKey(parseIp("10.0.0.1"), 0).key,
    ruleValue(LIVE_RULE_ID_BASE + 5, AEGIS_RULE_DENY, 0),
  );
  strictEqual(live.consistency().length, 2);
  Deno.writeTextFileSync(`${dir}/.live_rules.json.tmp-abc123`, "{partial");
  live.add({ kind: "ip", ip: "10.0.0.2" });
  throws(() => Deno.statSync(`${dir}/.live_rules.json.tmp-abc123`), Deno.errors.NotFound);
});

Deno.test("live: a recovery whose map write fails keeps the rule marked and does not throw", () => {
  const { dir, fm, live } = setup();
  live.add({ kind: "ip", ip: "10.0.0.1" });
  live.add({ kind: "ip", ip: "10.0.0.2" });
  editStore(dir, (s) => {
    s.rules[0].state = "deleting";
    s.rules[1].state = "deleting";
  });
  const m = fm.get("aegis_deny_ip4");
  const realDelete = m.delete.bind(m);
  let calls = 0;
  m.delete = (k) => {
    if (calls++ === 0) throw new Error("map delete failed (test)");
    return realDelete(k);
  };
  // the first delete fails: that rule stays marked, the second is finished
  deepStrictEqual(live.sweep(), []);
  deepStrictEqual(live.rules().map((r) => [r.spec.kind === "ip" && r.spec.ip, r.state]), [
    ["10.0.0.1", "deleting"],
  ]);
  // the next sweep finishes it
  deepStrictEqual(live.sweep(), []);
  deepStrictEqual(live.rules(), []);
  deepStrictEqual(live.consistency(), []);
});

Deno.test("live: re-adding a rule replaces its expiry and says how (issue 14: the TTL was dropped silently)", () => {
  const { live, tick } = setup();
  const req = { kind: "path", path: "/etc/x" } as const;
  const first = live.add(req, 3600);
  deepStrictEqual([first.renewed, first.expiry, first.previous_expires], [false, "new", null]);
  const ttlEnd = first.rule.expires!;
  strictEqual(ttlEnd, 1_000_000 + 3_600_000);
  tick(600_000);
  // without --ttl: the TTL is removed (the rule now stays), and the result says what it was
  const again = live.add(req);
  deepStrictEqual([again.renewed, again.expiry, again.previous_expires], [true, "removed", ttlEnd]);
  strictEqual(again.rule.expires, null);
  strictEqual(live.rules()[0].expires, null, "stored: no expiry");
  tick(3_600_000);
  deepStrictEqual(live.sweep(), [], "no longer swept at the old expiry");
  // the reverse: a TTL on a permanent rule sets one
  const set = live.add(req, 60);
  deepStrictEqual([set.expiry, set.previous_expires], ["set", null]);
  strictEqual(live.add(req, 120).expiry, "extended");
  strictEqual(live.add(req, 30).expiry, "shortened");
  tick(31_000);
  deepStrictEqual(live.sweep().map((r) => r.id), [first.rule.id], "the last add's TTL holds");
  strictEqual(live.add(req).expiry, "new", "after expiry the rule is new again");
  strictEqual(live.add(req).expiry, "unchanged");
});

Deno.test("live: expiryChange covers every transition", () => {
  strictEqual(expiryChange(null, null), "unchanged");
  strictEqual(expiryChange(null, 5), "set");
  strictEqual(expiryChange(5, null), "removed");
  strictEqual(expiryChange(5, 5), "extended");
  strictEqual(expiryChange(5, 9), "extended");
  strictEqual(expiryChange(9, 5), "shortened");
});

Deno.test("block add's text names what a re-add did to the TTL", () => {
  const now = 1_000_000;
  strictEqual(addedExpiry("new", null, null, now), " (no TTL: until deleted)");
  strictEqual(addedExpiry("new", null, 60, now), " (expires in 60 s)");
  match(
    addedExpiry("removed", now + 3_000_000, null, now),
    /its TTL, 3000 s left, is removed: the rule now stays until deleted/,
  );
  strictEqual(addedExpiry("set", null, 60, now), " (it had no TTL; now it expires in 60 s)");
  strictEqual(
    addedExpiry("shortened", now + 90_500, 30, now),
    " (expires in 30 s; it had 91 s left)",
  );
  strictEqual(addedExpiry("unchanged", null, null, now), " (no TTL, as before: until deleted)");
});
