/**
 * Host tier (root): the day-2 commands against a real daemon on this kernel
 * (docs/operations.md, "Counters", "Clearing live rules", "The survival
 * allowlist"), then the same reads from the pins after the daemon stopped:
 * `stats`, `network stats`, `cgroup deny add|list|del|clear`, `block clear`,
 * `survival list|verify`. Every --json object is parsed with its schema
 * (src/cli/json_output.ts).
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  JsonFailure,
  NetworkStatsJson,
  RulesClearJson,
  StatsJson,
  SurvivalListJson,
  SurvivalVerifyJson,
} from "../../src/cli/json_output.ts";
import { Agent, agentEnv, cleanupAgent } from "../lib/agent.ts";
import { LAUNCHER, run } from "../lib/helpers.ts";

/** Enforcing with pins on any host: the signal fallback when BPF LSM cannot load. */
const AGENT_ARGS = ["--enforce-fallback=signal"];

Deno.test("ops commands: stats, network stats, cgroup deny, clear and survival through the daemon and from the pins", async () => {
  const e = agentEnv();
  let agent: Agent | null = new Agent(AGENT_ARGS, e.env);
  try {
    await agent.ready();
    const cli = async (...args: string[]) => {
      const r = await run(LAUNCHER, args, e.env);
      return {
        ...r,
        json: args.includes("--json") && r.stdout.trim() ? JSON.parse(r.stdout) : null,
      };
    };

    // --- counters through the daemon
    const s = await cli("stats", "--detailed", "--json");
    strictEqual(s.code, 0, s.stderr);
    const stats = StatsJson.parse(s.json);
    strictEqual(stats.via, "daemon");
    ok(stats.hooks.some((h) => h.invocations > 0), "some hook ran");
    ok(stats.detailed?.tally, "the daemon answers GET /stats/blocks");
    const n = await cli("network", "stats", "--json");
    strictEqual(n.code, 0, n.stderr);
    const net = NetworkStatsJson.parse(n.json);
    ok(net.by_type !== null, "the daemon counts network blocks by rule type");
    const text = await cli("stats");
    ok(text.stdout.includes("stats from the running daemon"), text.stdout);

    // --- cgroup deny: add, list, bad input, del, clear
    const cgid = `cgid:${Deno.statSync("/sys/fs/cgroup").ino}`;
    const add = await cli("cgroup", "deny", "add", "--cgroup", cgid, "--port", "4444", "--json");
    strictEqual(add.code, 0, add.stderr);
    strictEqual(add.json.rule.spec.kind, "cg_port");
    strictEqual(
      (await cli("cgroup", "deny", "add", "--cgroup", cgid, "--ip", "192.0.2.7", "--ttl", "1h"))
        .code,
      0,
    );
    const list = await cli("cgroup", "deny", "list", "--json");
    deepStrictEqual(
      list.json.rules.map((r: { origin: string; rule: string }) => [r.origin, r.rule]),
      [["live", `cgroup ${cgid} port 4444:any:egress`], ["live", `cgroup ${cgid} ip 192.0.2.7`]],
    );
    for (
      const [args, code] of [
        [["--cgroup", "/no/such/cgroup", "--ip", "192.0.2.8"], "USAGE"],
        [["--cgroup", "__proto__", "--port", "1"], "USAGE"],
        [["--cgroup", cgid, "--ip", "192.0.2.999"], "USAGE"],
        [["--cgroup", cgid, "--port", "65536"], "USAGE"],
        [["--cgroup", cgid, "--inode", "constructor"], "USAGE"],
      ] as const
    ) {
      const bad = await cli("cgroup", "deny", "add", ...args, "--json");
      strictEqual(bad.code, 2, `${args.join(" ")}: ${bad.stderr}`);
      strictEqual(JsonFailure.parse(bad.json).error.code, code);
    }
    strictEqual(
      (await cli("cgroup", "deny", "del", "--cgroup", cgid, "--port", "4444")).code,
      0,
    );
    const clear = await cli("cgroup", "deny", "clear", "--json");
    strictEqual(clear.code, 0, clear.stderr);
    const cleared = RulesClearJson.parse(clear.json);
    deepStrictEqual([cleared.via, cleared.deleted.map((r) => r.spec.kind)], ["daemon", ["cg_ip"]]);
    deepStrictEqual((await cli("cgroup", "deny", "list", "--json")).json.rules, []);

    // --- block clear
    const f = `${e.dir}/blocked`;
    Deno.writeTextFileSync(f, "x");
    strictEqual((await cli("block", "add", f)).code, 0);
    const bc = await cli("block", "clear", "--json");
    strictEqual(bc.code, 0, bc.stderr);
    strictEqual(RulesClearJson.parse(bc.json).deleted.length, 1);
    ok((await cli("block", "clear")).stdout.includes("0 live block rule(s) deleted"));

    // --- survival
    const sl = await cli("survival", "list", "--json");
    strictEqual(sl.code, 0, sl.stderr);
    const surv = SurvivalListJson.parse(sl.json);
    ok(surv.entries.length > 0, "PID 1's executable at least");
    ok(surv.entries.some((x) => x.exe !== null), "named by a running survivor");
    const sv = await cli("survival", "verify", "--json");
    if (sv.code === 0) SurvivalVerifyJson.parse(sv.json);
    else {
      // a survivor whose binary changed since the agent started: named, never silent
      strictEqual(JsonFailure.parse(sv.json).error.code, "SURVIVAL_INCOMPLETE", sv.stderr);
      ok(sv.json.error.details.missing.length > 0);
    }

    // --- without the daemon: the pins
    await agent.stop();
    agent = null;
    // bad input is a usage error before the pins are opened
    for (
      const args of [["--cgroup", "__proto__", "--port", "1"], ["--cgroup", cgid, "--ip", "::g"]]
    ) {
      const bad = await cli("cgroup", "deny", "add", ...args, "--json");
      strictEqual(bad.code, 2, bad.stderr);
      strictEqual(JsonFailure.parse(bad.json).error.code, "USAGE");
    }
    const ls = await cli("stats", "--detailed", "--json");
    if (ls.code === 0) {
      const local = StatsJson.parse(ls.json);
      deepStrictEqual([local.via, local.detailed?.tally], ["local", null]);
      const sl2 = await cli("survival", "list", "--json");
      strictEqual(SurvivalListJson.parse(sl2.json).via, "local");
      Deno.stderr.writeSync(new TextEncoder().encode("  after the daemon: read from the pins\n"));
    } else {
      Deno.stderr.writeSync(new TextEncoder().encode("  after the daemon: no pins left\n"));
      strictEqual(JsonFailure.parse(ls.json).error.code, "NOT_RUNNING", ls.stderr);
    }
  } finally {
    await cleanupAgent(agent, e);
  }
});
