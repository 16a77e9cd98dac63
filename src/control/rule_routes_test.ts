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
