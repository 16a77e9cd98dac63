/**
 * Host tier (root): `policy apply --canary` against a real daemon on this
 * kernel (the signal fallback enforces without BPF LSM), then on the pins
 * without one (docs/policy.md, "Canary apply"): a quiet candidate is kept, a
 * candidate that denies what a loop keeps opening is rolled back to the
 * previous policy, exit 1, and both give a policy_canary event.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { JsonFailure } from "../../src/cli/json_output.ts";
import { EventLine } from "../../src/events/schema.ts";
import { Agent, agentEnv, cleanupAgent } from "../lib/agent.ts";
import { LAUNCHER, run } from "../lib/helpers.ts";

Deno.test("policy apply --canary: kept when quiet, rolled back above the threshold, through the daemon and on the pins", async () => {
  const e = agentEnv();
  let agent: Agent | null = new Agent(["--enforce-fallback=signal"], e.env);
  let loop: Deno.ChildProcess | null = null;
  try {
    await agent.ready();
    const hot = `${e.dir}/hot`;
    const cold = `${e.dir}/cold`;
    Deno.writeTextFileSync(hot, "x");
    Deno.writeTextFileSync(cold, "x");
    const quiet = `${e.dir}/quiet.conf`;
    const loud = `${e.dir}/loud.conf`;
    Deno.writeTextFileSync(quiet, `version=1\n[deny_path]\n${cold}\n`);
    Deno.writeTextFileSync(loud, `version=1\n[deny_path]\n${cold}\n${hot}\n`);
    const cli = (...args: string[]) => run(LAUNCHER, args, e.env);

    const kept = await cli("policy", "apply", quiet, "--canary", "2s", "--json");
    strictEqual(kept.code, 0, kept.stderr);
    const k = JSON.parse(kept.stdout);
    deepStrictEqual([k.via, k.canary.outcome, k.canary.window_s], ["daemon", "kept", 2]);

    // something keeps opening the file the candidate denies
    loop = new Deno.Command("/bin/sh", {
      args: ["-c", `while :; do cat ${hot} >/dev/null 2>&1; done`],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const rb = await cli("policy", "apply", loud, "--canary", "10s", "--canary-threshold", "1");
    strictEqual(rb.code, 1, rb.stdout + rb.stderr);
    ok(rb.stderr.includes("[CANARY_ROLLED_BACK]"), rb.stderr);
    ok(rb.stdout.includes("canary:") && rb.stdout.includes("rolled back"), rb.stdout);
    strictEqual(
      Deno.readTextFileSync(`${e.stateDir}/policy.applied`),
      `version=1\n[deny_path]\n${cold}\n`,
    );

    const events = () => agent!.events().filter((x) => x.type === "policy_canary");
    await agent.waitFor(() => events().length >= 2, "two policy_canary events", 10_000);
    deepStrictEqual(events().map((x) => x.outcome), ["kept", "rolled_back"]);
    for (const x of events()) ok(EventLine.safeParse(x).success, JSON.stringify(x));
    ok(events()[1].rate_per_s > 1 && events()[1].rollback.generation);

    // without the daemon: the CLI watches the pins itself
    await agent.stop();
    agent = null;
    const local = await cli(
      "policy",
      "apply",
      loud,
      "--canary",
      "2s",
      "--canary-threshold",
      "1",
      "--json",
    );
    if (
      local.code === 1 && JsonFailure.parse(JSON.parse(local.stdout)).error.code === "NOT_RUNNING"
    ) {
      Deno.stderr.writeSync(new TextEncoder().encode("  no pins after the daemon stopped\n"));
    } else {
      // the loop still opens the file; with no daemon the signal programs are gone, so the
      // kernel counts depend on what stays attached: either outcome, named and consistent
      const j = JSON.parse(local.stdout);
      Deno.stderr.writeSync(new TextEncoder().encode(`  on the pins: exit ${local.code}\n`));
      if (local.code === 0) deepStrictEqual([j.via, j.canary.outcome], ["local", "kept"]);
      else deepStrictEqual([j.error.code, j.error.details.via], ["CANARY_ROLLED_BACK", "local"]);
    }
  } finally {
    try {
      loop?.kill("SIGKILL");
      await loop?.status;
    } catch { /* gone */ }
    await cleanupAgent(agent, e);
  }
});
