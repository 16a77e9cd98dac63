/**
 * VM tier: the policy rollout an operator walks (docs/operations.md,
 * "Rolling a policy out"), end to end on a kernel that enforces:
 *
 * 1. record: `run --audit --policy P0 --log file:EVENTS`; an open of the
 *    file P0 names is allowed and recorded as an AUDIT block event;
 * 2. simulate: the recording against candidate C1 (P0's rule plus a rule on
 *    a file something on the node opens all the time, which the recording
 *    cannot show: nothing matched it then) — C1 would block the recorded open;
 * 3. canary: the enforcing daemon applies C1 with `--canary` while that file
 *    is opened ~25 times a second: the deny rate crosses the threshold, the
 *    previous policy comes back by itself, the command exits 1
 *    (CANARY_ROLLED_BACK) and a `policy_canary` event says `rolled_back`;
 *    the noisy file opens again, P0's file is still denied;
 * 4. the fixed candidate C2 (without the noisy rule) applies with a canary
 *    that keeps it (exit 0, `policy_canary` `kept`);
 * 5. explain: a denied open's block event, given to `explain`, names C2's
 *    rule (as stored in the state directory) and agrees with the kernel.
 */
import { ok, strictEqual } from "node:assert/strict";
import { AGENT, Agent, agentEnv, flowTestName, type Json, onFlowKernel } from "../lib/agent.ts";
import { run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const KERNEL = "6.12"; // a flow test: one cell runs it (balances the 6.1 cell's flows)

function policy(path: string, denyPaths: string[]): string {
  Deno.writeTextFileSync(path, ["version=2", "[deny_path]", ...denyPaths, ""].join("\n"));
  return path;
}

/** The JSON lines of a file the agent writes (the sink flushes on a short timer). */
function lines(path: string): Json[] {
  let text = "";
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

async function until<T>(what: () => T | undefined, label: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = what();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name: flowTestName(
    "rollout: audit record → simulate → canary rolls back → fixed → explain",
    KERNEL,
  ),
  ignore: !LSM_ON || !onFlowKernel(KERNEL),
  fn: async () => {
    const { env, dir } = agentEnv();
    const secret = `${dir}/secret`;
    const noisy = `${dir}/noisy`;
    Deno.writeTextFileSync(secret, "s");
    Deno.writeTextFileSync(noisy, "n");
    const p0 = policy(`${dir}/p0.conf`, [secret]);
    const c1 = policy(`${dir}/candidate.conf`, [secret, noisy]);
    const c2 = policy(`${dir}/fixed.conf`, [secret]);
    const recording = `${dir}/events.jsonl`;

    // 1. record in audit mode
    let agent = new Agent(["--audit", "--policy", p0, "--log", `file:${recording}`], env);
    try {
      await agent.ready();
      strictEqual(tryOpen(secret), "ok", "audit mode allows");
      await until(
        () => lines(recording).find((e) => e.type === "block" && e.action === "AUDIT") ?? undefined,
        "the AUDIT block event in the recording",
      );
    } finally {
      await agent.stop();
    }

    // 2. simulate the candidate against the recording
    const sim = await run(AGENT, ["simulate", recording, "--policy", c1, "--json"], env);
    strictEqual(sim.code, 0, sim.stderr);
    const report = JSON.parse(sim.stdout);
    ok(report.by_surface.file.would_block >= 1, JSON.stringify(report.by_surface));
    strictEqual(report.parse_errors.count, 0, JSON.stringify(report.parse_errors));
    const top = report.top_rules[0];
    strictEqual(top.rule.file, c1);
    strictEqual(
      top.rule.text,
      secret,
      "the recorded open is blocked by the candidate's first rule",
    );
    strictEqual(report.newly_allowed.count, 0, "nothing the recording blocked gets through");

    // 3. enforce (the stored P0 is restored), then the canary with a noisy rule
    agent = new Agent([], env);
    try {
      await agent.ready();
      strictEqual(tryOpen(secret), "EPERM/EACCES", "P0 restored and enforcing");
      const noise = setInterval(() => tryOpen(noisy), 40);
      let canary;
      try {
        canary = await run(AGENT, [
          "policy",
          "apply",
          c1,
          "--canary",
          "8s",
          "--canary-threshold",
          "5",
          "--json",
        ], env);
      } finally {
        clearInterval(noise);
      }
      strictEqual(canary.code, 1, `the canary rolls back: ${canary.stdout}\n${canary.stderr}`);
      const failure = JSON.parse(canary.stdout);
      strictEqual(failure.ok, false);
      strictEqual(failure.error.code, "CANARY_ROLLED_BACK", canary.stdout);
      const rolled = await agent.event(
        (e) => e.type === "policy_canary" && e.outcome === "rolled_back",
        "policy_canary rolled_back",
      );
      ok(rolled.rate_per_s > 5, `the rate that crossed: ${rolled.rate_per_s}/s`);
      strictEqual(tryOpen(noisy), "ok", "the noisy rule is gone again");
      strictEqual(tryOpen(secret), "EPERM/EACCES", "the previous policy enforces");

      // 4. the fixed candidate, kept by its canary
      const fixed = await run(AGENT, [
        "policy",
        "apply",
        c2,
        "--canary",
        "6s",
        "--canary-threshold",
        "5",
        "--json",
      ], env);
      strictEqual(fixed.code, 0, `${fixed.stdout}\n${fixed.stderr}`);
      strictEqual(JSON.parse(fixed.stdout).canary.outcome, "kept", fixed.stdout);
      await agent.event(
        (e) => e.type === "policy_canary" && e.outcome === "kept",
        "policy_canary kept",
      );

      // 5. explain a block
      strictEqual(tryOpen(secret), "EPERM/EACCES");
      const block = await agent.event(
        (e) => e.type === "block" && e.action === "BLOCK" && e.pid === Deno.pid,
        "the block event of the denied open",
      );
      const ex = await run(AGENT, ["explain", "-", "--json"], env, JSON.stringify(block));
      strictEqual(ex.code, 0, ex.stderr);
      const x = JSON.parse(ex.stdout);
      strictEqual(x.decision.outcome, "block", ex.stdout);
      strictEqual(x.decision.rule.text, secret, ex.stdout);
      strictEqual(x.recorded_rule.exists, true, ex.stdout);
      strictEqual(x.agrees, true, ex.stdout);
    } finally {
      await agent.stop();
    }
  },
});
