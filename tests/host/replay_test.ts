/**
 * Tier 2: `explain` and `simulate` as an operator runs them, through the
 * launcher (the binary's permissions): exit codes (0 explained / reported,
 * 1 refused input, 2 usage), `--json` failure objects, gzip on a pipe,
 * the applied policy of a state directory. Needs no agent and no root.
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { ExplainJson, JsonFailure, SimulateJson } from "../../src/cli/json_output.ts";
import { LAUNCHER, run } from "../lib/helpers.ts";

const PROC = '"pid":1,"tid":1,"ppid":0,"uid":0,"start_time":"1","exec_id":"1-1","cgid":"50",' +
  '"cgroup_path":"/user.slice/s.scope","comm":"nc"';
const NET = `{"type":"net_connect_block",${PROC},"action":"AUDIT","hook":"socket_connect",` +
  `"family":"ipv4","addr":"192.0.2.7","port":4444,"protocol":"tcp","rule_type":"port","rule_id":3}`;
const KERNEL = `{"type":"kernel_ptrace_block",${PROC},"action":"BLOCK","hook":` +
  `"ptrace_access_check","target_pid":9,"detail":2,"rule_type":"ptrace","rule_id":0}`;

function sandbox(): { dir: string; env: Record<string, string> } {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-host-replay-" });
  Deno.mkdirSync(`${dir}/state`, { mode: 0o700 });
  Deno.writeTextFileSync(`${dir}/p.conf`, "version=6\n[deny_port]\n4444:tcp\n[deny_ptrace]\n");
  return { dir, env: { AEGIS_STATE_DIR: `${dir}/state`, AEGIS_LOG_FORMAT: "text" } };
}

Deno.test("explain: exit 0 with the rule; the applied policy by default; --json", async () => {
  const { dir, env } = sandbox();
  try {
    const r = await run(LAUNCHER, ["explain", "-", "--policy", `${dir}/p.conf`], env, NET);
    strictEqual(r.code, 0, r.stderr);
    match(r.stdout, /decision now: block by .*p\.conf:3 \[deny_port\] 4444:tcp:egress/);
    const none = await run(LAUNCHER, ["explain", "-", "--json"], env, NET);
    strictEqual(none.code, 1);
    strictEqual(JsonFailure.parse(JSON.parse(none.stdout)).error.code, "NO_APPLIED_POLICY");
    Deno.copyFileSync(`${dir}/p.conf`, `${dir}/state/policy.applied`);
    const j = await run(LAUNCHER, ["explain", "-", "--json"], env, KERNEL);
    strictEqual(j.code, 0, j.stderr);
    const x = ExplainJson.parse(JSON.parse(j.stdout));
    ok(x.agrees && x.recorded_rule.kind === "flag" && x.decision.rule_type === "ptrace");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("explain/simulate: refused input exits 1, usage exits 2, both with --json objects", async () => {
  const { dir, env } = sandbox();
  try {
    const bad = await run(
      LAUNCHER,
      ["explain", "-", "--policy", `${dir}/p.conf`, "--json"],
      env,
      "{",
    );
    strictEqual(bad.code, 1);
    strictEqual(JsonFailure.parse(JSON.parse(bad.stdout)).error.code, "EVENT_INVALID");
    const usage = await run(LAUNCHER, ["simulate", "-", "--json"], env, "");
    strictEqual(usage.code, 2);
    strictEqual(JsonFailure.parse(JSON.parse(usage.stdout)).error.code, "USAGE");
    const top = await run(LAUNCHER, ["simulate", "-", "--policy", `${dir}/p.conf`, "--top", "x"]);
    strictEqual(top.code, 2);
    match(top.stderr, /--top must be a whole number/);
    const dev = await run(LAUNCHER, ["simulate", "/dev/zero", "--policy", `${dir}/p.conf`]);
    strictEqual(dev.code, 2);
    match(dev.stderr, /not a regular file or a pipe/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("simulate: a gzip recording on a pipe, parse errors counted, exit 0", async () => {
  const { dir, env } = sandbox();
  try {
    const lines = [NET, KERNEL, "not json", '{"type":"control_change"}'].join("\n") + "\n";
    Deno.writeTextFileSync(`${dir}/ev.jsonl`, lines.repeat(2));
    const sh =
      `gzip -c '${dir}/ev.jsonl' | '${LAUNCHER}' simulate - --policy '${dir}/p.conf' --json`;
    const r = await run("bash", ["-c", sh], env);
    strictEqual(r.code, 0, r.stderr);
    const j = SimulateJson.parse(JSON.parse(r.stdout));
    ok(j.gzip);
    strictEqual(j.decided, 4);
    strictEqual(j.parse_errors.count, 2);
    strictEqual(j.by_surface.net.would_block, 2);
    strictEqual(j.by_surface.kernel.would_block, 2);
    strictEqual(j.skipped.count, 2);
    // a rule matched both then (AUDIT, BLOCK): the candidate changes nothing
    strictEqual(j.newly_blocked.count + j.newly_allowed.count, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
