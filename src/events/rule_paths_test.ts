import { strictEqual } from "node:assert/strict";
import { RulePathCache } from "./rule_paths.ts";

Deno.test("rule paths: read at most once per period, again after invalidate; a failed read keeps the table", () => {
  let t = 0;
  let reads = 0;
  let fail = false;
  let rules = [{ ruleId: 3, path: "/etc/shadow" }];
  const c = new RulePathCache(() => {
    reads++;
    if (fail) throw new Error("policy.applied unreadable");
    return rules;
  }, { maxAgeMs: 1000, now: () => t });
  strictEqual(c.pathOf(3), "/etc/shadow");
  strictEqual(c.pathOf(4), null);
  strictEqual(reads, 1, "one read for both lookups");
  rules = [{ ruleId: 4, path: "/root/.ssh" }];
  strictEqual(c.pathOf(4), null, "not read again within the period");
  c.invalidate();
  strictEqual(c.pathOf(4), "/root/.ssh");
  strictEqual(c.pathOf(3), null);
  fail = true;
  t = 5000;
  strictEqual(c.pathOf(4), "/root/.ssh", "the last table stays");
  strictEqual(c.errors, 1);
});

Deno.test("rule paths: a file the content scan denied gives its path and its content; a deny_path line with the same id wins", () => {
  const sha = "ef".repeat(32);
  const c = new RulePathCache(() => [
    { ruleId: 3, path: "/etc/shadow" },
    { ruleId: 7, path: "/usr/bin/nc", sha256: sha },
    { ruleId: 7, path: "/usr/bin/nc.copy", sha256: sha },
    { ruleId: 3, path: "/usr/bin/other", sha256: sha },
  ]);
  strictEqual(c.pathOf(7), "/usr/bin/nc");
  strictEqual(c.contentOf(7), sha);
  strictEqual(c.pathOf(3), "/etc/shadow");
  strictEqual(c.contentOf(3), null);
  strictEqual(c.contentOf(9), null);
});
