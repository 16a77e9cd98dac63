import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { FIXTURE_ENV } from "./decide_testing.ts";
import { parsePolicy } from "./parse.ts";
import { rulesById, ruleSetFromPolicy } from "./ruleset.ts";

function build(text: string) {
  const p = parsePolicy(text, "p.conf");
  if (!p.policy) throw new Error(JSON.stringify(p.errors));
  return ruleSetFromPolicy(p.policy, "p.conf", FIXTURE_ENV);
}

Deno.test("ruleset: deny and protect of one inode are one entry with both flags (compile.ts)", () => {
  const { rules } = build("version=6\n[deny_path]\n/etc/shadow\n[protect_path]\n/etc/shadow\n");
  const v = rules.inodes.get("2049:200")!;
  deepStrictEqual([v.deny, v.protect, v.ref.line, v.merged.map((m) => m.line)], [
    true,
    true,
    3,
    [5],
  ]);
  deepStrictEqual([...rulesById(rules).keys()].sort(), [3, 5]);
});

Deno.test("ruleset: paths and cgroups that do not resolve here are listed", () => {
  const { rules, unresolved } = build(
    "version=6\n[deny_path]\n/opt/missing\n[allow_cgroup]\n/gone.slice\n/app.slice\n" +
      "[cgroup_deny_port]\n/gone.slice 22\n",
  );
  deepStrictEqual(unresolved.map((u) => [u.ref.section, u.ref.line]), [
    ["deny_path", 3],
    ["allow_cgroup", 5],
    ["cgroup_deny_port", 8],
  ]);
  strictEqual(rules.inodes.size, 0);
  strictEqual(rules.paths.has("/opt/missing"), true);
  deepStrictEqual(rules.allowCgroups.map((a) => a.cgroup), [
    { cgid: null, path: "/gone.slice" },
    { cgid: "88", path: "/app.slice" },
  ]);
});

Deno.test("ruleset: protect_connect makes the policy's network rules protect-only", () => {
  const { rules } = build("version=6\n[deny_ip]\n10.1.2.3\n[protect_connect]\n");
  const v = [...rules.ips.values()][0];
  deepStrictEqual([v.deny, v.protect], [false, true]);
  strictEqual(
    build("version=6\n[deny_ip]\n10.1.2.3\n").rules.ips.values().next().value?.deny,
    true,
  );
});
