/**
 * POST /rules (what `block add` asks the daemon): a re-add's reply says
 * what happened to the rule's expiry (docs/policy.md, "Live rule edits").
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { createRuleRoutes } from "./rule_routes.ts";
import { LiveRules } from "../policy/live.ts";
import { fakeMaps, fakeResolvePath } from "../policy/fake_maps_testing.ts";

Deno.test("POST /rules: the reply has expiry and previous_expires; a re-add without ttl removes the TTL", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    let now = 5_000_000;
    const live = new LiveRules({
      maps: fakeMaps().maps,
      storePath: `${dir}/live_rules.json`,
      now: () => now,
      resolvePath: fakeResolvePath(0x800001, 10),
      resolveCgroup: () => null,
      ownerUid: Deno.statSync(dir).uid!,
    });
    const app = createRuleRoutes({ live, policyText: () => "" });
    const post = async (ttl: number | null) => {
      const r = await app.request("/", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ rule: { kind: "path", path: "/etc/x" }, ttl_seconds: ttl }),
      });
      strictEqual(r.status, 200);
      return await r.json();
    };
    const a = await post(3600);
    deepStrictEqual([a.renewed, a.expiry, a.previous_expires, a.rule.expires], [
      false,
      "new",
      null,
      5_000_000 + 3_600_000,
    ]);
    now += 1000;
    const b = await post(null);
    deepStrictEqual([b.renewed, b.expiry, b.previous_expires, b.rule.expires], [
      true,
      "removed",
      5_000_000 + 3_600_000,
      null,
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("POST /rules/clear: deletes the group's live rules, reports each; a bad group is a 400", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const live = new LiveRules({
      maps: fakeMaps().maps,
      storePath: `${dir}/live_rules.json`,
      resolvePath: fakeResolvePath(0x800001, 10),
      resolveCgroup: () => null,
      ownerUid: Deno.statSync(dir).uid!,
    });
    const changes: string[] = [];
    const app = createRuleRoutes({
      live,
      policyText: () => "",
      onChange: (c) => changes.push(`${c.action} ${c.rule.id}`),
    });
    live.add({ kind: "cg_port", cgroup: "cgid:5", port: 22 });
    live.add({ kind: "ip", ip: "10.0.0.1" });
    const req = (body: unknown) =>
      app.request("/clear", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const r = await req({ group: "cgroup_deny" });
    strictEqual(r.status, 200);
    const b = await r.json();
    deepStrictEqual(b.rules.map((x: { spec: { kind: string } }) => x.spec.kind), ["cg_port"]);
    deepStrictEqual(changes, [`del ${b.rules[0].id}`]);
    for (
      const bad of [{ group: "__proto__" }, { group: "constructor" }, {}, { group: "block", x: 1 }]
    ) {
      const e = await req(bad);
      strictEqual(e.status, 400, JSON.stringify(bad));
      strictEqual((await e.json()).code, "BAD_REQUEST");
    }
    strictEqual(live.rules().length, 1, "the network rule stays");
    const l = await app.request("/?group=cgroup_deny");
    deepStrictEqual((await l.json()).rules, []);
    strictEqual((await app.request("/?group=__proto__")).status, 400);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
