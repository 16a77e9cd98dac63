/**
 * VM tier: the kill switch on a running agent, the way an operator uses it
 * (lsm-on cells).
 *
 * A file denied by policy → `emergency-disable --reason` → the open
 * succeeds and a block event with action AUDIT arrives → `emergency-enable`
 * → denied again; control_log.jsonl, control_state.json and
 * `emergency-status` agree; a no-op toggle logs nothing; toggles from two
 * processes at once serialise (every transition logged whole, alternating,
 * and the state matches the kernel flag); a read-only state directory makes
 * disable fail and leaves enforcement on.
 *
 * With the daemon's control socket wired in, the CLI goes through the
 * daemon: the step "control_change events on the daemon's stdout" and the
 * `via: "daemon"` check need that wiring; every other step also holds on
 * the CLI's direct (pinned map) path.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import {
  AGENT,
  Agent,
  agentEnv,
  cleanupAgent,
  flowTestName,
  type Json,
  ON_FLOW_KERNEL,
} from "../lib/agent.ts";
import { run, type RunResult, tryOpen } from "../lib/helpers.ts";
import { cppSchema, validate } from "../lib/json_schema.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

/** control_change events of the kill switch (policy applies send control_change too). */
function isEmergencyChange(ev: Json): boolean {
  return ev.type === "control_change" && ev.control === "emergency_disable";
}

function jsonLines(path: string): Json[] {
  try {
    return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "").map((l) =>
      JSON.parse(l)
    );
  } catch {
    return [];
  }
}

Deno.test({
  name: flowTestName(
    "emergency disable on a running agent: AUDIT while active, audit trail, serialised, fails closed on a read-only state dir",
  ),
  ignore: !LSM_ON || !ON_FLOW_KERNEL,
  fn: async (t) => {
    const e = agentEnv();
    const { dir, stateDir, env } = e;
    const cli = (...args: string[]): Promise<RunResult> => run(AGENT, args, env);
    const denied = `${dir}/denied`;
    Deno.writeTextFileSync(denied, "secret");
    const logPath = `${stateDir}/control_log.jsonl`;
    const statePath = `${stateDir}/control_state.json`;
    const agent = new Agent([], env);
    try {
      await agent.ready();
      match(agent.err, /agent started, ENFORCE/);
      Deno.writeTextFileSync(`${dir}/p.pol`, `version=1\n[deny_path]\n${denied}\n`);
      const ap = await cli("policy", "apply", `${dir}/p.pol`);
      strictEqual(ap.code, 0, ap.stderr);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "denied by policy");
      const ino = Deno.statSync(denied).ino;

      await t.step(
        "disable → allowed with an AUDIT block event; enable → denied again",
        async () => {
          const raw = "VM test INC-1\n\x1b[31mred\x1b[0m";
          const d = await cli("emergency-disable", "--reason", raw, "--json");
          strictEqual(d.code, 0, d.stderr);
          const dr = JSON.parse(d.stdout);
          strictEqual(dr.changed, true);
          strictEqual(dr.active, true);
          ok(!dr.reason.includes("\n") && !dr.reason.includes("\x1b"), "reason cleaned");
          const before = agent.events().length;
          strictEqual(tryOpen(denied), "ok", "allowed while emergency disable is active");
          await agent.waitFor(
            () =>
              agent.events().slice(before).some((ev) =>
                ev.type === "block" && ev.action === "AUDIT" && ev.ino === ino
              ),
            "a block event with action AUDIT",
            30_000,
          );
          // the LSM block event: the kernel's path, u64s as integers, the C++ event contract
          // (docs/telemetry.md, "Differences from the C++ agent"; skipped without shared/)
          const blk = agent.events().slice(before).find((ev) =>
            ev.type === "block" && ev.action === "AUDIT" && ev.ino === ino
          );
          // the kernel's (file_open resolves it) or, failing that, the rule's: never absent here
          strictEqual(blk.path, denied);
          ok(["kernel", "rule"].includes(blk.path_source), blk.path_source);
          strictEqual(typeof blk.cgid, "number");
          const cpp = cppSchema("event-schema.json");
          if (cpp) {
            deepStrictEqual(validate(cpp, blk, { additionalProperties: true }), []);
          }
          const st = await cli("emergency-status", "--json");
          strictEqual(st.code, 0, st.stderr);
          const s = JSON.parse(st.stdout);
          strictEqual(s.active, true);
          strictEqual(s.reason, dr.reason);
          strictEqual(s.state_consistent, true);

          const again = await cli("emergency-disable", "--reason", "again");
          strictEqual(again.code, 0, again.stderr);
          match(again.stdout, /already active; nothing changed/);

          const en = await cli("emergency-enable", "--reason", "VM test fixed");
          strictEqual(en.code, 0, en.stderr);
          strictEqual(tryOpen(denied), "EPERM/EACCES", "denied again after enable");

          const lines = jsonLines(logPath);
          strictEqual(lines.length, 2, "two transitions logged, the no-op not");
          deepStrictEqual(lines.map((l) => [l.type, l.action, l.enabled, l.prev_enabled]), [
            ["control_change", "disable", true, false],
            ["control_change", "enable", false, true],
          ]);
          strictEqual(lines[0].reason, dr.reason);
          strictEqual(lines[0].reason_sha256, dr.reason_sha256);
          strictEqual(lines[0].uid, 0);
          ok(lines[0].pid > 0);
          const state = JSON.parse(Deno.readTextFileSync(statePath));
          strictEqual(state.emergency_disable, false);
          strictEqual(state.transitions_total, 2);
          strictEqual(state.reason, "VM test fixed");
          strictEqual(Deno.statSync(logPath).mode! & 0o777, 0o600);
          strictEqual(Deno.statSync(statePath).mode! & 0o777, 0o600);
        },
      );

      await t.step(
        "control_change events on the daemon's stdout (needs the control socket wiring)",
        async () => {
          const st = JSON.parse((await cli("emergency-status", "--json")).stdout);
          strictEqual(st.via, "daemon", "the CLI went through the daemon's control socket");
          await agent.waitFor(
            () => agent.events().filter(isEmergencyChange).length >= 2,
            "two control_change events",
            10_000,
          );
          const cc = agent.events().filter(isEmergencyChange);
          const logged = jsonLines(logPath).slice(0, 2);
          // the event adds the common fields of every event (docs/telemetry.md)
          const own = (ev: Json) => {
            const { timestamp: _t, event_id: _i, host: _h, agent_version: _v, ...rest } = ev;
            return rest;
          };
          ok(cc.slice(0, 2).every((ev) => typeof ev.event_id === "string"), "stamped");
          deepStrictEqual(cc.slice(0, 2).map(own), logged, "the events are the log lines");
        },
      );

      /** Start a step from enforcing, whatever an earlier failed step left. */
      const ensureEnforcing = async () => {
        const r = await cli("emergency-enable", "--reason", "test: start from enforcing");
        strictEqual(r.code, 0, r.stderr);
      };

      await t.step("toggles from two processes at once serialise", async () => {
        await ensureEnforcing();
        const total0 = JSON.parse((await cli("emergency-status", "--json")).stdout)
          .transitions_total;
        const n0 = jsonLines(logPath).length;
        const worker = (who: string) =>
          (async () => {
            const results: number[] = [];
            // two toggles each: four CLI processes race through the daemon (each CLI call
            // costs seconds under TCG; tests/host/control_test.ts races many more)
            for (let i = 0; i < 2; i++) {
              const r = await cli(
                i % 2 === 0 ? "emergency-disable" : "emergency-enable",
                "--reason",
                `${who}${i}`,
              );
              results.push(r.code);
            }
            return results;
          })();
        const [a, b] = await Promise.all([worker("A"), worker("B")]);
        deepStrictEqual(
          [...a, ...b].filter((c) => c !== 0),
          [],
          "every toggle exits 0 (no-ops too)",
        );
        const lines = jsonLines(logPath).slice(n0);
        ok(lines.length >= 1 && lines.length <= 4, `transitions: ${lines.length}`);
        let prev = false;
        for (const l of lines) {
          strictEqual(l.prev_enabled, prev, "each transition starts where the last one ended");
          strictEqual(l.enabled, !prev);
          prev = l.enabled;
        }
        const s = JSON.parse((await cli("emergency-status", "--json")).stdout);
        strictEqual(s.active, prev, "the kernel flag is where the last logged transition left it");
        strictEqual(s.state_consistent, true);
        strictEqual(s.transitions_total, total0 + lines.length);
        if (prev) {
          const en = await cli("emergency-enable", "--reason", "back to enforcing");
          strictEqual(en.code, 0, en.stderr);
        }
        strictEqual(tryOpen(denied), "EPERM/EACCES");
      });

      await t.step("a read-only state directory: disable fails, enforcement stays on", async () => {
        await ensureEnforcing();
        const n0 = jsonLines(logPath).length;
        strictEqual((await run("mount", ["--bind", stateDir, stateDir])).code, 0);
        try {
          const ro = await run("mount", ["-o", "remount,bind,ro", stateDir]);
          strictEqual(ro.code, 0, ro.stderr);
          const d = await cli("emergency-disable", "--reason", "should fail");
          strictEqual(d.code, 1, `must fail: ${d.stdout}`);
          match(d.stderr, /Read-only file system/);
          strictEqual(tryOpen(denied), "EPERM/EACCES", "still enforcing");
          const s = JSON.parse((await cli("emergency-status", "--json")).stdout);
          strictEqual(s.active, false);
        } finally {
          await run("umount", [stateDir]);
        }
        strictEqual(jsonLines(logPath).length, n0, "nothing logged");
      });
    } finally {
      await cleanupAgent(agent, e);
    }
  },
});
