import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { connect, ev, fileBlock, rules } from "./decide_testing.ts";
import { eventFromLine } from "./event_input.ts";
import { Simulator } from "./simulate.ts";

const V = "version=6\n";

Deno.test("simulate: totals per surface and rule, newly blocked and allowed, problems", () => {
  const rs = rules(V + "[deny_path]\n/usr/bin/nc\n[deny_port]\n4444\n[allow_cgroup]\n/app.slice\n");
  const sim = new Simulator(rs, { top: 1, examples: 1 });
  // happened: blocked by an older rule; the candidate blocks too
  strictEqual(sim.add(fileBlock(100)).change, "same");
  // audited then; the candidate lets it through (no rule)
  strictEqual(sim.add(connect("192.0.2.1", 22)).change, "newly_allowed");
  // blocked by 4444 twice; once waived by allow_cgroup
  sim.add(connect("192.0.2.1", 4444));
  strictEqual(
    sim.add(connect("192.0.2.1", 4444, { cgroup_path: "/app.slice" })).change,
    "newly_allowed",
  );
  // an exec that happened; no comm rules, but file rules: undetermined (no inode)
  strictEqual(sim.add(ev({ type: "exec", comm: "nc" })).change, "undetermined");
  for (const [i, l] of ['{"type":"state_change"}', "{", '{"type":"zzz"}'].entries()) {
    const r = eventFromLine(l, 10 + i);
    if (!r.ok) sim.addProblem(r.problem);
  }
  const r = sim.report();
  strictEqual(r.events, 8);
  strictEqual(r.decided, 5);
  deepStrictEqual(r.by_surface.file, {
    would_block: 1,
    would_allow: 0,
    no_match: 0,
    undetermined: 0,
  });
  deepStrictEqual(r.by_surface.net, {
    would_block: 1,
    would_allow: 1,
    no_match: 1,
    undetermined: 0,
  });
  deepStrictEqual(r.by_surface.exec.undetermined, 1);
  strictEqual(r.rules_hit, 2);
  deepStrictEqual(r.top_rules.map((h) => [h.rule.line, h.would_block, h.would_allow]), [[5, 1, 1]]);
  strictEqual(r.newly_allowed.count, 2);
  strictEqual(r.newly_allowed.examples.length, 1);
  strictEqual(r.newly_blocked.count, 0);
  deepStrictEqual(r.happened, { blocked: 1, audited: 3, allowed: 1 });
  deepStrictEqual(r.undetermined, { count: 1, by_fact: { "binary rule": 1 } });
  deepStrictEqual(r.skipped, { count: 1, by_type: { state_change: 1 } });
  strictEqual(r.parse_errors.count, 1);
  strictEqual(r.parse_errors.first[0].line, 11);
  deepStrictEqual(r.unknown_types.by_type, { zzz: 1 });
});

Deno.test("simulate: a rule that newly blocks what happened", () => {
  const sim = new Simulator(rules(V + "[deny_comm]\nnc\n"));
  const nc = ev({ type: "exec", comm: "nc", cgroup_path: "/u" });
  // exec events: the survival allowlist (keyed by the binary) is unknown
  strictEqual(sim.add(nc).change, "undetermined");
  const b = ev({
    type: "block",
    action: "AUDIT",
    hook: "bprm_check_security",
    ino: "5",
    dev: 1,
    path: "/usr/bin/nc",
    rule_id: 9,
  });
  strictEqual(sim.add(b).change, "same");
  const sim2 = new Simulator(rules(V + "[deny_port]\n22\n"));
  strictEqual(sim2.add(connect("192.0.2.1", 22, { action: "AUDIT" })).change, "same");
});

Deno.test("simulate: hostile event types are counted under a bounded table", () => {
  const sim = new Simulator(rules(V));
  for (let i = 0; i < 200; i++) {
    const r = eventFromLine(JSON.stringify({ type: `t${i}` }), i + 1);
    if (!r.ok) sim.addProblem(r.problem);
  }
  const p = eventFromLine('{"type":"__proto__"}', 201);
  if (!p.ok) sim.addProblem(p.problem);
  const r = sim.report();
  strictEqual(r.unknown_types.count, 201);
  strictEqual(Object.keys(r.unknown_types.by_type).length, 65);
  strictEqual(r.unknown_types.by_type["(other)"], 137);
  strictEqual(r.unknown_types.first.length, 10);
});
