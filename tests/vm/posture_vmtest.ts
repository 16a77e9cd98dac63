/**
 * VM tier: the posture contract on real kernels (docs/posture.md).
 *
 * lsm-on: `run` reaches ENFORCE (state_change STARTUP_ENFORCE_READY,
 * capabilities.json, `health --require-enforce` exit 0, HTTP
 * /health?require_enforce=1 → 200; 503 while emergency disable is active);
 * a hook made to fail to attach (fault injection) → fail-closed refusal
 * naming ATTACH_CONTRACT_MISMATCH, or AUDIT_FALLBACK with that reason; a
 * policy with network rules on a kernel without the network hooks
 * (hidden by fault injection) → NETWORK_HOOK_UNAVAILABLE.
 * lsm-off: the same results as the host without BPF LSM: fail-closed exit
 * with BPF_LSM_DISABLED, audit-fallback serves 200 / 503 and reports
 * enforce_capable false.
 */
import { sha256Hex } from "../../src/util/bytes.ts";
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { CapabilitiesReport } from "../../src/posture/report.ts";
import { AGENT, Agent, agentEnv, cleanupAgent, httpGet } from "../lib/agent.ts";
import { run } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

Deno.test({
  name: "posture: run reaches ENFORCE and every health surface says so",
  ignore: !LSM_ON,
  fn: async () => {
    const e = agentEnv();
    let a: Agent | null = null;
    try {
      a = new Agent([], e.env);
      await a.ready();
      Deno.stderr.writeSync(
        new TextEncoder().encode(`time from run to ENFORCE: ${Date.now() - a.started} ms\n`),
      );
      match(a.err, /agent started, ENFORCE/);
      const sc = await a.stateChanges();
      strictEqual(sc.length, 1, a.out.slice(0, 2000));
      strictEqual(sc[0].transition_id, 1);
      strictEqual(sc[0].to, "ENFORCE");
      strictEqual(sc[0].reason_code, "STARTUP_ENFORCE_READY");

      const report = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(report.runtime_state, "ENFORCE");
      strictEqual(report.enforce_capable, true);
      strictEqual(report.capability, "Full");
      deepStrictEqual(report.enforce_blockers, []);
      strictEqual(report.hook_details.lsm_file_open.kernel_supported, true);

      const h = await run(AGENT, ["health", "--require-enforce", "--json"], e.env);
      strictEqual(h.code, 0, h.stdout + h.stderr);
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 200);
      strictEqual((await httpGet(e.port, "/health")).status, 200);
      const st = await httpGet(e.port, "/state");
      strictEqual(st.body.runtime_state, "ENFORCE");

      // emergency disable keeps runtime_state but fails require_enforce
      const d = await run(AGENT, ["emergency-disable", "--reason", "posture test"], e.env);
      strictEqual(d.code, 0, d.stderr);
      const during = await httpGet(e.port, "/health?require_enforce=1");
      strictEqual(during.status, 503);
      strictEqual(during.body.runtime_state, "ENFORCE");
      strictEqual(
        (await run(AGENT, ["health", "--require-enforce"], e.env)).code,
        1,
        "health --require-enforce fails during emergency disable",
      );
      const en = await run(AGENT, ["emergency-enable", "--reason", "posture test done"], e.env);
      strictEqual(en.code, 0, en.stderr);
      match(en.stdout, /emergency disable is off: enforcement is ON again\./);
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 200);
    } finally {
      await cleanupAgent(a, e);
    }
  },
});

Deno.test({
  name: "posture: a hook that fails to attach → fail-closed refusal or AUDIT_FALLBACK",
  ignore: !LSM_ON,
  fn: async () => {
    const fault = { AEGIS_TEST_FAIL_ATTACH: "lsm/socket_connect" };
    const e = agentEnv(fault);
    let a: Agent | null = null;
    try {
      a = new Agent([], e.env);
      const st = await a.exit();
      strictEqual(st.code, 1, a.err);
      match(a.err, /Refusing to start in enforce mode/);
      match(a.err, /lsm\/socket_connect \(injected failure\)/);
      let pinned = true;
      try {
        Deno.statSync(`${e.pinRoot}/links`);
      } catch {
        pinned = false;
      }
      strictEqual(pinned, false, "nothing left attached or pinned");

      a = new Agent(["--enforce-gate-mode=audit-fallback"], e.env);
      await a.ready();
      const sc = await a.stateChanges();
      strictEqual(sc.at(-1).to, "AUDIT_FALLBACK", a.out.slice(0, 2000));
      strictEqual(sc.at(-1).reason_code, "ATTACH_CONTRACT_MISMATCH");
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 503);
      const report = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(report.runtime_state, "AUDIT_FALLBACK");
    } finally {
      await cleanupAgent(a, e);
    }
  },
});

Deno.test({
  name: "posture: network rules without network hooks → NETWORK_HOOK_UNAVAILABLE",
  ignore: !LSM_ON,
  fn: async () => {
    const e = agentEnv({ AEGIS_TEST_HIDE_HOOKS: "socket_connect,socket_bind,socket_sendmsg" });
    let a: Agent | null = null;
    try {
      // the applied policy the daemon reads at start
      const stored = "version=2\n[deny_ip]\n192.0.2.7\n";
      Deno.writeTextFileSync(`${e.stateDir}/policy.applied`, stored, { mode: 0o600 });
      // with its hash, as an apply leaves it (a restore checks it)
      Deno.writeTextFileSync(
        `${e.stateDir}/policy.sha256`,
        `${await sha256Hex(new TextEncoder().encode(stored))}\n`,
        { mode: 0o600 },
      );
      a = new Agent([], e.env);
      strictEqual((await a.exit()).code, 1, a.err);
      match(a.err, /NETWORK_HOOK_UNAVAILABLE/);
      a = new Agent(["--enforce-gate-mode=audit-fallback"], e.env);
      await a.ready();
      const sc = await a.stateChanges();
      strictEqual(sc.at(-1).reason_code, "NETWORK_HOOK_UNAVAILABLE", a.out.slice(0, 2000));
      const report = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      ok(report.enforce_blockers.includes("NETWORK_HOOK_UNAVAILABLE"));
      strictEqual(report.requirements_met.network, false);
      strictEqual(report.enforce_capable, false);
    } finally {
      await cleanupAgent(a, e);
    }
  },
});

Deno.test({
  name: "posture without bpf in lsm=: fail-closed exit, audit-fallback 200/503, report says why",
  ignore: LSM_ON,
  fn: async () => {
    const e = agentEnv();
    let a: Agent | null = null;
    try {
      a = new Agent([], e.env);
      strictEqual((await a.exit()).code, 1, a.err);
      match(a.err, /BPF_LSM_DISABLED/);
      match(a.err, /remedy: .*lsm=/);
      const h = await run(AGENT, ["health", "--require-enforce", "--json"], e.env);
      strictEqual(h.code, 1, h.stdout);

      a = new Agent(["--enforce-gate-mode=audit-fallback"], e.env);
      await a.ready();
      const sc = await a.stateChanges();
      strictEqual(sc.at(-1).to, "AUDIT_FALLBACK");
      strictEqual(sc.at(-1).reason_code, "CAPABILITY_AUDIT_ONLY");
      strictEqual((await httpGet(e.port, "/health")).status, 200);
      const r = await httpGet(e.port, "/health?require_enforce=1");
      strictEqual(r.status, 503);
      ok(JSON.stringify(r.body).includes("BPF_LSM_DISABLED"), JSON.stringify(r.body));
      const report = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(report.enforce_capable, false);
      ok(report.enforce_blockers.includes("BPF_LSM_DISABLED"));
      strictEqual(
        (await run(AGENT, ["health", "--require-enforce"], e.env)).code,
        1,
        "health --require-enforce asks the running daemon: not enforcing",
      );
    } finally {
      await cleanupAgent(a, e);
    }
  },
});
