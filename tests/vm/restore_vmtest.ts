/**
 * VM tier: the stored desired state comes back when the pins are gone (what a
 * reboot does to bpffs). An agent applies a policy and a live rule; it stops,
 * the pins are removed, nothing denies; the next `aegisbpf run`, with no
 * operator step, puts both back into the kernel before its first
 * state_change, and watches the policy's missing path again. An emergency
 * disable that was on stays on across the same reboot, announced. A stored
 * policy changed behind the agent's back is refused at start (nothing stays
 * attached) and, in audit-fallback, reported as POLICY_RESTORE_FAILED with
 * /health?require_enforce=1 at 503; a good policy applied clears the blocker,
 * and the next start enforces it.
 *
 * A flow test (docs/vm.md "Flow tests run in one cell"): what it touches in
 * the kernel is proven on both kernels elsewhere, and the restore across a
 * real reboot runs on both in durability_reboot_vmtest.ts; it runs on 6.12.
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { uninstallPins } from "../../src/bpf/engine.ts";
import { pinsExist } from "../../src/bpf/pins.ts";
import {
  AGENT,
  Agent,
  agentEnv,
  cleanupAgent,
  flowTestName,
  httpGet,
  type Json,
  onFlowKernel,
  waitUntil,
} from "../lib/agent.ts";
import { run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const DENIED = "EPERM/EACCES";
const KERNEL = "6.12";

Deno.test({
  name: flowTestName(
    "restart with the pins gone (a reboot): policy and live rule deny again before the first state_change, emergency disable stays on; a damaged store is refused",
    KERNEL,
  ),
  ignore: !LSM_ON || !onFlowKernel(KERNEL),
  fn: async () => {
    const e = agentEnv();
    const f = (n: string) => `${e.dir}/${n}`;
    for (const n of ["pol", "live"]) Deno.writeTextFileSync(f(n), n);
    const cli = async (...args: string[]) => {
      const r = await run(AGENT, args, e.env);
      strictEqual(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      return r.stdout;
    };
    let a: Agent | null = new Agent([], e.env);
    try {
      await a.ready();
      Deno.writeTextFileSync(f("p.pol"), `version=1\n[deny_path]\n${f("pol")}\n${f("later")}\n`);
      await cli("policy", "apply", f("p.pol"));
      await cli("block", "add", f("live"));
      strictEqual(tryOpen(f("pol")), DENIED);
      strictEqual(tryOpen(f("live")), DENIED);
      await a.stop();

      // what a reboot leaves: the state directory, no pins
      uninstallPins(e.pinRoot);
      // the kernel frees an unpinned link from a work queue: the detach lands a moment later
      await waitUntil(
        () => tryOpen(f("pol")) === "ok",
        "nothing to enforce once the pins are gone",
        30_000,
      );
      strictEqual(tryOpen(f("live")), "ok");

      a = new Agent([], e.env);
      await a.ready();
      match(a.err, /restored the applied policy \(sha256 [0-9a-f]{64}\)/);
      match(a.err, /agent started, ENFORCE/);
      await a.stateChanges(); // stdout may trail the log on stderr
      const evs: Json[] = a.events();
      const restored = evs.findIndex((ev) => ev.type === "policy_restored");
      const firstState = evs.findIndex((ev) => ev.type === "state_change");
      ok(
        restored >= 0 && restored < firstState,
        `policy_restored (${restored}) before the first state_change (${firstState})`,
      );
      strictEqual(evs[restored].live_rules, 1);
      strictEqual(evs[restored].unresolved, 1);
      strictEqual(tryOpen(f("pol")), DENIED, "the policy's path is denied again");
      strictEqual(tryOpen(f("live")), DENIED, "the live rule is denied again");
      const h = await httpGet(e.port, "/health?require_enforce=1");
      strictEqual(h.status, 200, JSON.stringify(h.body));
      // the path that did not exist yet is watched again
      Deno.writeTextFileSync(f("later"), "x");
      await waitUntil(() => tryOpen(f("later")) === DENIED, "the late path to be denied", 60_000);

      // an operator's emergency disable outlives the reboot too, announced
      await cli("emergency-disable", "--reason", "INC-restore");
      strictEqual(tryOpen(f("pol")), "ok", "emergency disable lets it through");
      await a.stop();
      uninstallPins(e.pinRoot);
      a = new Agent([], e.env);
      await a.ready();
      await a.event(
        (ev) => ev.type === "control_change" && ev.reconciled_at_start === true && ev.enabled,
        "the emergency state put back at start",
      );
      match(a.err, /emergency disable was active .*switched it on again/);
      strictEqual(tryOpen(f("pol")), "ok", "still switched off after the reboot");
      strictEqual(JSON.parse(await cli("emergency-status", "--json")).active, true);
      await cli("emergency-enable", "--reason", "INC-restore closed");
      strictEqual(tryOpen(f("pol")), DENIED, "the restored policy enforces once re-enabled");
      await a.stop();
      uninstallPins(e.pinRoot);

      // the stored policy changed behind the agent's back: refused, nothing attached
      Deno.writeTextFileSync(`${e.stateDir}/policy.applied`, `version=1\n[deny_path]\n${f("x")}\n`);
      a = new Agent([], e.env);
      strictEqual((await a.exit()).code, 1, a.err);
      match(a.err, /POLICY_RESTORE_FAILED/);
      match(a.err, /changed or damaged/);
      ok(!pinsExist(e.pinRoot), "a refused start leaves no pins");
      await waitUntil(
        () => tryOpen(f("pol")) === "ok",
        "nothing attached after the refusal",
        30_000,
      );

      a = new Agent(["--enforce-gate-mode=audit-fallback"], e.env);
      await a.ready();
      const sc = await a.stateChanges();
      strictEqual(sc.at(-1).to, "AUDIT_FALLBACK");
      strictEqual(sc.at(-1).reason_code, "POLICY_APPLY_FAILED");
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 503);
      const report = JSON.parse(Deno.readTextFileSync(e.report));
      ok(
        report.enforce_blockers.includes("POLICY_RESTORE_FAILED"),
        JSON.stringify(report.enforce_blockers),
      );
      strictEqual(report.policy.applied, false, "the report does not claim the stored policy");
      strictEqual(tryOpen(f("live")), "ok", "audit only: nothing denied");

      // a good policy applied: the blocker goes, the node still reports only until a restart
      await cli("policy", "apply", f("p.pol"));
      await a.waitFor(
        () =>
          /POLICY_RESTORE_FAILED cleared: a good policy is applied; restart the agent/.test(a!.err),
        "the cleared blocker",
        30_000,
      );
      const after = JSON.parse(Deno.readTextFileSync(e.report));
      ok(!after.enforce_blockers.includes("POLICY_RESTORE_FAILED"));
      strictEqual(after.policy.applied, true);
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 503, "still audit");
      await a.stop();
      a = new Agent([], e.env);
      await a.ready();
      match(a.err, /agent started, ENFORCE/);
      strictEqual(tryOpen(f("pol")), DENIED, "enforced after the restart");
    } finally {
      await cleanupAgent(a, e);
    }
  },
});
