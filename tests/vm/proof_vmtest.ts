/**
 * VM tier: the enforcement proof (docs/guarantees.md, "Enforcement proof").
 *
 * lsm-on: the proof passes at start and every period (capabilities.json
 * enforcement_proof file, exec and network ok, /health?require_enforce=1 → 200, proof
 * metrics); the canary's denies are self_test events and never in
 * aegisbpf_blocks_total, while a user rule's deny is; a `policy apply`
 * (a new rule generation) carries the canary, so the proof keeps passing.
 * Rule verification: the applied rule is opened from the canary cgroup
 * (denied: a self_test event, no block); the file replaced under its path
 * (a new inode the rule does not hold) is listed in unenforced_rules with
 * the reason, the node goes DEGRADED (ENFORCEMENT_PROOF_FAILED) and
 * readiness is 503, until the policy is applied again. The kernel surface
 * is proven while a policy turns deny_ptrace/deny_module_load/deny_bpf on.
 * lsm-off: the programs are attached in enforce mode by an injection
 * (AEGIS_TEST_ASSUME_BPF_LSM=1: "bpf" treated as an active LSM) — they
 * attach and deny nothing — and the proof catches it: the first state is
 * DEGRADED with ENFORCEMENT_PROOF_FAILED, readiness is 503.
 *
 * One agent start per cell (each costs seconds under TCG); the proof
 * period is 3 s so periodic rounds are seen quickly.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { CapabilitiesReport } from "../../src/posture/report.ts";
import { CANARY_EXEC_RULE_ID, CANARY_FILE_RULE_ID } from "../../src/proof/canary.ts";
import { AGENT, Agent, agentEnv, cleanupAgent, httpGet } from "../lib/agent.ts";
import { run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

function metric(text: string, name: string, labels = ""): number | null {
  const esc = (s: string) => s.replace(/[{}"\\]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${name}${labels ? esc(labels) : ""} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : null;
}

/** Phase timings, to the cell's results folder (the TAP reporter hides stderr). */
function stamp(label: string, since: number): void {
  const line = `${Deno.env.get("AEGIS_VM_KERNEL")}/${Deno.env.get("AEGIS_VM_LSM")} ${label}: ${
    Date.now() - since
  } ms\n`;
  const dir = Deno.env.get("AEGIS_VM_RESULTS");
  if (dir) Deno.writeTextFileSync(`${dir}/proof_vmtest.times`, line, { append: true });
  else Deno.stderr.writeSync(new TextEncoder().encode(line));
}

Deno.test({
  name: "proof: passes on an enforcing node, every period, invisible in block counts",
  ignore: !LSM_ON,
  fn: async () => {
    const e = agentEnv();
    const f = (n: string) => `${e.dir}/${n}`;
    Deno.writeTextFileSync(f("secret"), "s");
    let a: Agent | null = null;
    try {
      a = new Agent(["--proof-interval", "3"], e.env);
      await a.ready();
      stamp("time from run to ENFORCE (proof included)", a.started);
      match(a.err, /agent started, ENFORCE/);
      match(a.err, /enforcement proof \(file\): open of the sentinel denied with EPERM/);
      const sc = await a.stateChanges();
      strictEqual(sc[0].to, "ENFORCE");
      strictEqual(sc[0].reason_code, "STARTUP_ENFORCE_READY");

      const report = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(
        report.enforcement_proof.file?.ok,
        true,
        JSON.stringify(report.enforcement_proof),
      );
      strictEqual(report.enforcement_proof_interval_seconds, 3);
      strictEqual(
        report.enforcement_proof.exec?.ok,
        true,
        JSON.stringify(report.enforcement_proof),
      );
      strictEqual(
        report.enforcement_proof.network?.ok,
        true,
        JSON.stringify(report.enforcement_proof),
      );
      match(
        report.enforcement_proof.network!.detail,
        /connect to 127\.77\.65\.71:9 denied with EPERM/,
      );
      deepStrictEqual(report.unenforced_rules, []);
      const h = await httpGet(e.port, "/health?require_enforce=1");
      strictEqual(h.status, 200, JSON.stringify(h.body));

      // periodic rounds: the self-test counter grows, each deny a self_test event
      let text = "";
      const t0 = Date.now();
      while (Date.now() - t0 < 60_000) {
        text = (await httpGet(e.port, "/metrics?detailed=1")).body as string;
        if ((metric(text, "aegisbpf_self_test_denies_total", '{hook="file_open"}') ?? 0) >= 2) {
          break;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      stamp("start to the second proof round", a.started);
      ok(
        (metric(text, "aegisbpf_self_test_denies_total", '{hook="file_open"}') ?? 0) >= 2,
        "two proof rounds denied:\n" + text.split("\n").filter((l) => /self_test|proof/.test(l))
          .join("\n"),
      );
      strictEqual(
        metric(text, "aegisbpf_blocks_total", '{action="block"}'),
        0,
        "canary denies are not blocks",
      );
      strictEqual(metric(text, "aegisbpf_enforcement_proof_ok", '{surface="file"}'), 1);
      strictEqual(metric(text, "aegisbpf_enforcement_proof_ok", '{surface="exec"}'), 1);
      ok(
        (metric(text, "aegisbpf_self_test_denies_total", '{hook="bprm_check_security"}') ?? 0) >=
          1,
        "the exec canary denied in bprm_check_security",
      );
      strictEqual(metric(text, "aegisbpf_enforcement_proof_ok", '{surface="network"}'), 1);
      ok(
        (metric(text, "aegisbpf_self_test_denies_total", '{hook="socket_connect"}') ?? 0) >= 1,
        "the network canary denied in socket_connect",
      );
      strictEqual(
        metric(text, "aegisbpf_hook_blocks_total", '{action="block",hook="socket_connect"}') ?? 0,
        0,
        "canary connects are not blocks",
      );
      ok(metric(text, "aegisbpf_enforcement_proof_age_seconds", '{surface="file"}') !== null);
      strictEqual(metric(text, "aegisbpf_deny_inode_entries"), 0, "the canary is not a rule");
      const selfTestEvents = () =>
        a!.events().filter((x) => x.type === "self_test" && x.self_test === true);
      const both = () =>
        [CANARY_FILE_RULE_ID, CANARY_EXEC_RULE_ID].every((id) =>
          selfTestEvents().some((x) => x.rule_id === id)
        );
      await a.waitFor(both, "self_test events of both canaries", 30_000);
      const own = selfTestEvents();
      ok(own.some((x) => x.hook === "bprm_check_security" && x.rule_id === CANARY_EXEC_RULE_ID));
      ok(own.every((x) => x.action === "BLOCK"));
      ok(
        !a.events().some((x) => x.type === "block"),
        "no user-visible block yet",
      );

      // a new generation (policy apply) carries the canary; a user deny is a block
      Deno.writeTextFileSync(f("p.pol"), `version=1\n[deny_path]\n${f("secret")}\n`);
      const tApply = Date.now();
      const ap = await run(AGENT, ["policy", "apply", f("p.pol")], e.env);
      stamp("policy apply (CLI)", tApply);
      strictEqual(ap.code, 0, ap.stderr);
      // the daemon replied after one verification round had tried the new rule
      match(ap.stdout, /verified: 1 of 1 file rule\(s\) tried were denied by the kernel/);
      strictEqual(tryOpen(f("secret")), "EPERM/EACCES");
      const before = metric(text, "aegisbpf_self_test_denies_total", '{hook="file_open"}')!;
      const t1 = Date.now();
      while (Date.now() - t1 < 30_000) {
        text = (await httpGet(e.port, "/metrics?detailed=1")).body as string;
        if (
          (metric(text, "aegisbpf_self_test_denies_total", '{hook="file_open"}') ?? 0) >=
            before + 2 && metric(text, "aegisbpf_blocks_total", '{action="block"}') === 1
        ) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      ok(
        metric(text, "aegisbpf_self_test_denies_total", '{hook="file_open"}')! >= before + 2,
        "proofs keep passing after the apply",
      );
      strictEqual(
        metric(text, "aegisbpf_blocks_total", '{action="block"}'),
        1,
        "exactly the user's deny",
      );
      strictEqual(metric(text, "aegisbpf_deny_inode_entries"), 1, "the policy's one rule");
      strictEqual(metric(text, "aegisbpf_enforcement_proof_ok", '{surface="file"}'), 1);
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 200);
      strictEqual(
        (await a.stateChanges()).length,
        1,
        "no transition: " + JSON.stringify(a.events().filter((x) => x.type === "state_change")),
      );

      // rule verification: the policy's own rule (line 3) is tried from the canary cgroup
      await a.waitFor(
        () => /rule verification: 1 of 1 rule\(s\) tried: 1 denied, 0 open/.test(a!.err),
        "the applied rule verified",
        30_000,
      );
      ok(
        a.events().some((x) => x.type === "self_test" && x.self_test === true && x.rule_id === 3),
        "the verification's deny is a self_test event",
      );
      text = (await httpGet(e.port, "/metrics?detailed=1")).body as string;
      strictEqual(metric(text, "aegisbpf_unenforced_rules"), 0);
      strictEqual(metric(text, "aegisbpf_verified_rules"), 1);
      strictEqual(
        metric(text, "aegisbpf_blocks_total", '{action="block"}'),
        1,
        "verification denies are not blocks",
      );

      // the file replaced under the same path (a new inode; editors and package managers do
      // this): the rule still holds the old inode, the path opens, and the agent says so
      Deno.removeSync(f("secret"));
      Deno.writeTextFileSync(f("secret"), "replaced");
      strictEqual(tryOpen(f("secret")), "ok", "the gap is real: the new file opens");
      const tReplace = Date.now();
      const reportNow = () => CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      await a.waitFor(() => reportNow().unenforced_rules.length === 1, "unenforced_rules", 30_000);
      stamp("file replaced to unenforced_rules", tReplace);
      const [u] = reportNow().unenforced_rules;
      deepStrictEqual([u.rule_id, u.surface, u.target], [3, "file", f("secret")]);
      match(u.reason, /holds no rule for the file the path names now .*replaced or created again/);
      // the report is written before the state_change event reaches this test's reader
      await a.event(
        (x) => x.type === "state_change" && x.to === "DEGRADED",
        "DEGRADED for the unenforced rule",
        15_000,
      );
      strictEqual(reportNow().runtime_state, "DEGRADED");
      const deg = (await a.stateChanges()).at(-1)!;
      strictEqual(deg.reason_code, "ENFORCEMENT_PROOF_FAILED");
      match(deg.detail, /rule verification: 1 rule\(s\) not denied by the kernel: rule 3/);
      const h503 = await httpGet(e.port, "/health?require_enforce=1");
      strictEqual(h503.status, 503);
      ok(
        h503.body.reasons.some((r: string) => r.includes("not denied by the kernel")),
        JSON.stringify(h503.body),
      );
      text = (await httpGet(e.port, "/metrics")).body as string;
      strictEqual(metric(text, "aegisbpf_unenforced_rules"), 1);
      // a change while a rule is unenforced says so and exits 4 (the new rule itself is denied)
      Deno.writeTextFileSync(f("other"), "o");
      const add = await run(AGENT, ["block", "add", f("other")], e.env);
      strictEqual(add.code, 4, add.stderr + add.stdout);
      match(add.stdout, /verified: 1 of 2 file rule\(s\) tried were denied/);
      match(add.stderr, /NOT ENFORCED: rule 3 ".*secret": .*replaced or created again/);
      strictEqual(tryOpen(f("other")), "EPERM/EACCES");

      // applied again: the path's new inode is ruled, verified, and the node recovers
      const again = await run(AGENT, ["policy", "apply", f("p.pol")], e.env);
      strictEqual(again.code, 0, again.stderr);
      match(again.stdout, /verified: 2 of 2 file rule\(s\) tried were denied/);
      strictEqual(again.stderr.includes("NOT ENFORCED"), false, again.stderr);
      await a.waitFor(
        () => reportNow().unenforced_rules.length === 0 && reportNow().runtime_state === "ENFORCE",
        "verified again, ENFORCE",
        30_000,
      );
      await a.event(
        (x) => x.type === "state_change" && x.reason_code === "RECOVERED",
        "RECOVERED",
        15_000,
      );
      strictEqual((await a.stateChanges()).at(-1)!.to, "ENFORCE");
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 200);
      strictEqual(tryOpen(f("secret")), "EPERM/EACCES");
      strictEqual(reportNow().enforcement_proof.kernel, undefined, "no kernel switch is on");

      // the kernel switches: proven while the policy turns them on (harmless attempts from the
      // canary cgroup: ptrace of its own grandchild, init_module of zeros, bpf(MAP_CREATE, {}))
      Deno.writeTextFileSync(
        f("k.pol"),
        `version=2\n[deny_path]\n${f("secret")}\n[deny_ptrace]\n[deny_module_load]\n[deny_bpf]\n`,
      );
      const k = await run(AGENT, ["policy", "apply", f("k.pol")], e.env);
      strictEqual(k.code, 0, k.stderr);
      // the apply triggers the next round (the reply itself waits only for rule verification)
      await a.waitFor(
        () => reportNow().enforcement_proof.kernel !== undefined,
        "the kernel surface proven",
        30_000,
      );
      const kp = reportNow().enforcement_proof.kernel;
      strictEqual(kp?.ok, true, JSON.stringify(reportNow().enforcement_proof));
      strictEqual(
        kp!.detail,
        "ptrace attach denied with EPERM; module load (init_module) denied with EPERM; " +
          "bpf() denied with EPERM",
      );
      text = (await httpGet(e.port, "/metrics?detailed=1")).body as string;
      strictEqual(metric(text, "aegisbpf_enforcement_proof_ok", '{surface="kernel"}'), 1);
      for (const hook of ["ptrace_access_check", "kernel_load_data", "bpf"]) {
        ok((metric(text, "aegisbpf_self_test_denies_total", `{hook="${hook}"}`) ?? 0) >= 1, hook);
        strictEqual(
          metric(text, "aegisbpf_hook_blocks_total", `{action="block",hook="${hook}"}`) ?? 0,
          0,
          hook,
        );
      }
      await a.event(
        (x) => x.type === "self_test" && x.hook === "bpf",
        "the bpf() deny as a self_test event",
      );
      ok(!a.events().some((x) => x.type === "block" && x.hook === "bpf"), "no user-visible block");
      // switched off again: nothing to prove, the surface leaves the report
      const off = await run(AGENT, ["policy", "apply", f("p.pol")], e.env);
      strictEqual(off.code, 0, off.stderr);
      await a.waitFor(
        () => reportNow().enforcement_proof.kernel === undefined,
        "the kernel surface gone from the report",
        30_000,
      );
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 200);
      stamp("whole lsm-on test", a.started);
    } finally {
      await cleanupAgent(a, e);
    }
  },
});

Deno.test({
  name: "proof: programs attached without BPF LSM deny nothing — the proof fails, readiness 503",
  ignore: LSM_ON,
  fn: async () => {
    const e = agentEnv({ AEGIS_TEST_ASSUME_BPF_LSM: "1" });
    let a: Agent | null = null;
    try {
      a = new Agent(["--proof-interval", "3"], e.env);
      await a.ready();
      stamp("time from run to the failed proof", a.started);
      const sc = await a.stateChanges();
      strictEqual(sc[0].to, "DEGRADED", JSON.stringify(sc));
      strictEqual(sc[0].reason_code, "ENFORCEMENT_PROOF_FAILED");
      match(sc[0].detail, /file: the probe opened the sentinel: the kernel did not deny/);
      match(a.err, /enforcement proof \(file\) FAILED/);
      const report = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(report.runtime_state, "DEGRADED");
      strictEqual(report.enforcement_proof.file?.ok, false);
      strictEqual(report.enforcement_proof.network?.ok, false, "the network canary too");
      match(report.enforcement_proof.network!.detail, /was let through .*did not deny/);
      const h = await httpGet(e.port, "/health?require_enforce=1");
      strictEqual(h.status, 503);
      ok(
        h.body.reasons.some((r: string) => r.includes("runtime_state is DEGRADED")),
        JSON.stringify(h.body),
      );
      const tCli = Date.now();
      const cli = await run(AGENT, ["health", "--require-enforce"], e.env);
      stamp("health --require-enforce (CLI)", tCli);
      strictEqual(cli.code, 1, "health --require-enforce fails");
      // later rounds keep failing: no recovery, and the proof metric says so
      const rounds = () => a!.err.split("enforcement proof (file) FAILED").length - 1;
      const tWait = Date.now();
      const lastOf = () =>
        CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)))
          .enforcement_proof.file?.last_unix ?? 0;
      const first = report.enforcement_proof.file!.last_unix;
      await a.waitFor(() => lastOf() >= first + 6, "two more proof rounds", 60_000);
      stamp("two more periods", tWait);
      strictEqual(
        CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report))).enforcement_proof
          .file?.ok,
        false,
        "later rounds fail too",
      );
      const text = (await httpGet(e.port, "/metrics")).body as string;
      strictEqual(metric(text, "aegisbpf_enforcement_proof_ok", '{surface="file"}'), 0);
      strictEqual(
        a.events().filter((x) => x.type === "state_change").length,
        1,
        "still DEGRADED, no flapping",
      );
      strictEqual(metric(text, "aegisbpf_blocks_total", '{action="block"}'), 0);
      strictEqual(rounds(), 1, "the failure is logged once, not every round");
      stamp("whole lsm-off test", a.started);
    } finally {
      await cleanupAgent(a, e);
    }
  },
});
