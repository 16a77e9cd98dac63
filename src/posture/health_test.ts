import { deepStrictEqual as eq, ok, strictEqual } from "node:assert/strict";
import { NativeCallError } from "../errors.ts";
import {
  DOCTOR_SCHEMA_PATH,
  HEALTH_SCHEMA_PATH,
  renderDoctorSchema,
  renderHealthSchema,
} from "../../build/gen_schemas.ts";
import { doctorAdvice, DoctorBody, doctorBody, type DoctorFacts } from "./doctor.ts";
import { evaluateHealth, HealthBody } from "./health.ts";
import { NO_NEEDS } from "./needs.ts";
import { buildReport, type CapabilitiesReport, NO_POLICY } from "./report.ts";
import { AGENT_OK, fixtureReport } from "./posture_testing.ts";
import type { RuntimeState } from "../contracts.ts";

const eperm = () => {
  throw new NativeCallError("aegis_obj_load", 1);
};

const PASSED = {
  file: { ok: true, last_unix: 1000, detail: "open of the sentinel denied with EPERM" },
};

async function report(
  state: RuntimeState | null,
  lsmWorks = true,
  proof: { intervalSeconds: number; results: typeof PASSED | Record<string, never> } | null = {
    intervalSeconds: 30,
    results: PASSED,
  },
  attachedSections: string[] | null = null,
): Promise<CapabilitiesReport> {
  return buildReport({
    probe: await fixtureReport(lsmWorks ? {} : { trial: eperm }),
    needs: NO_NEEDS,
    runtimeState: state,
    transitions: { total: 1, degradation_total: 0, strict_mode: false, enforce_requested: true },
    policy: NO_POLICY,
    emergencyActive: false,
    attachedSections,
    generatedBy: "daemon",
    now: 1,
    proof: proof ?? undefined,
  });
}

Deno.test("require_enforce: 200 only for ENFORCE, no blockers, emergency off", async () => {
  const good = evaluateHealth({
    report: await report("ENFORCE"),
    emergencyActive: false,
    daemonRunning: true,
    agent: AGENT_OK,
  }, true);
  strictEqual(good.healthy, true);
  strictEqual(good.status, 200);
  eq(good.body.reasons, []);
  HealthBody.parse(good.body);

  const emergency = evaluateHealth({
    report: await report("ENFORCE"),
    emergencyActive: true,
    daemonRunning: true,
    agent: AGENT_OK,
  }, true);
  strictEqual(emergency.status, 503);
  strictEqual(emergency.body.runtime_state, "ENFORCE");
  ok(emergency.body.reasons[0].includes("emergency disable"));

  const unknownEmergency = evaluateHealth({
    report: await report("ENFORCE"),
    emergencyActive: null,
    daemonRunning: true,
    agent: AGENT_OK,
  }, true);
  strictEqual(unknownEmergency.status, 503);

  for (const s of ["ENFORCE_SIGNAL", "AUDIT_FALLBACK", "DEGRADED"] as const) {
    const h = evaluateHealth({
      report: await report(s),
      emergencyActive: false,
      daemonRunning: true,
      agent: AGENT_OK,
    }, true);
    strictEqual(h.status, 503, s);
    ok(h.body.reasons.some((r) => r.includes(`runtime_state is ${s}`)));
  }
  const blocked = evaluateHealth({
    report: await report("AUDIT_FALLBACK", false),
    emergencyActive: false,
    daemonRunning: true,
    agent: AGENT_OK,
  }, true);
  eq(blocked.body.blockers.map((b) => b.code), ["BPF_LSM_DISABLED", "CAPABILITY_AUDIT_ONLY"]);
});

Deno.test("plain health: the agent runs (any state is reported, not failed); no agent is unhealthy", async () => {
  const audit = evaluateHealth({
    report: await report("AUDIT_FALLBACK", false),
    emergencyActive: true,
    daemonRunning: true,
    agent: AGENT_OK,
  }, false);
  strictEqual(audit.status, 200);
  strictEqual(audit.body.ok, true);
  strictEqual(audit.body.emergency_disable_active, true);
  const none = evaluateHealth({
    report: await report(null),
    emergencyActive: null,
    daemonRunning: false,
    agent: AGENT_OK,
  }, false);
  strictEqual(none.status, 503);
  eq(none.body.reasons, ["no aegisbpf agent is running"]);
  const starting = evaluateHealth({
    report: await report(null),
    emergencyActive: false,
    daemonRunning: true,
    agent: AGENT_OK,
  }, false);
  strictEqual(starting.healthy, false);
});

async function facts(over: Partial<DoctorFacts> = {}): Promise<DoctorFacts> {
  const r = over.report ?? await report("ENFORCE");
  return {
    report: r,
    health: evaluateHealth({
      report: r,
      emergencyActive: false,
      daemonRunning: true,
      agent: AGENT_OK,
    }, true),
    daemonRunning: true,
    mounts: { securityfs: true, tracefs: true },
    pinsPresent: true,
    pinRoot: "/sys/fs/bpf/aegisbpf",
    probeLimitation: null,
    ...over,
  };
}

Deno.test("doctor: no advice on an enforcing node; every blocker and finding otherwise", async () => {
  eq(doctorAdvice(await facts()), []);
  const r = await report(null, false);
  r.policy = {
    ...r.policy,
    applied: true,
    sha256: null,
    version: 2,
    unresolved_count: 1,
    unresolved: ["/opt/app/secret"],
  };
  const a = doctorAdvice(
    await facts({
      report: r,
      health: evaluateHealth({
        report: r,
        emergencyActive: true,
        daemonRunning: false,
        agent: AGENT_OK,
      }, true),
      daemonRunning: false,
      mounts: { securityfs: false, tracefs: false },
      pinsPresent: true,
      probeLimitation: "not running as root",
    }),
  );
  eq(a.map((x) => x.code), [
    "BPF_LSM_DISABLED",
    "CAPABILITY_AUDIT_ONLY",
    "SECURITYFS_UNMOUNTED",
    "TRACEFS_UNMOUNTED",
    "NO_DAEMON",
    "EMERGENCY_DISABLE_ACTIVE",
    "POLICY_UNRESOLVED",
    "PROBE_INCOMPLETE",
  ]);
  strictEqual(a[0].remediation, r.enforce_blocker_details[0].remedy);
  ok(a.find((x) => x.code === "NO_DAEMON")!.message.includes("pins exist"));
  ok(a.find((x) => x.code === "POLICY_UNRESOLVED")!.message.includes("/opt/app/secret"));
  for (const x of a) ok(x.remediation.length > 10, x.code);
});

Deno.test("doctor: an enforcing agent without armed self-protection gets SELF_PROTECTION_OFF", async () => {
  const r = await report("ENFORCE");
  const off = { ...r.self_protection, requested: false, armed: false };
  eq(doctorAdvice(await facts({ report: { ...r, self_protection: off } })).map((x) => x.code), [
    "SELF_PROTECTION_OFF",
  ]);
  const refused = { ...off, requested: true, detail: "not armed: emergency disable is on" };
  const a = doctorAdvice(await facts({ report: { ...r, self_protection: refused } }));
  ok(a[0].message.includes("emergency disable is on"), a[0].message);
  const armed = { ...off, requested: true, armed: true };
  eq(doctorAdvice(await facts({ report: { ...r, self_protection: armed } })), []);
});

Deno.test("doctor: a running agent the kernel reports without no_new_privs gets NO_NEW_PRIVS_OFF", async () => {
  const r = await report("ENFORCE");
  const armed = { ...r.self_protection, requested: true, armed: true };
  const advice = async (no_new_privs: boolean | null) =>
    doctorAdvice(await facts({ report: { ...r, self_protection: { ...armed, no_new_privs } } }))
      .map((x) => x.code);
  eq(await advice(false), ["NO_NEW_PRIVS_OFF"]);
  eq(await advice(true), []);
  eq(await advice(null), [], "unknown (not read yet) is not a finding");
});

Deno.test("doctor: a running agent without its seccomp filter, or with a logging one, gets SECCOMP_OFF", async () => {
  const r = await report("ENFORCE");
  const armed = { ...r.self_protection, requested: true, armed: true, no_new_privs: true };
  const advice = async (seccomp: typeof r.self_protection.seccomp) =>
    doctorAdvice(await facts({ report: { ...r, self_protection: { ...armed, seccomp } } }))
      .map((x) => `${x.code}: ${x.remediation}`);
  const on = { mode: "enforce", installed: true, syscalls: 140, detail: "140 allowed" } as const;
  eq(await advice(on), []);
  const off = await advice({
    mode: "off",
    installed: false,
    syscalls: 0,
    detail: "run --seccomp off",
  });
  eq(off.length, 1);
  ok(off[0].startsWith("SECCOMP_OFF: restart the agent without --seccomp"), off[0]);
  const failed = await advice({
    ...on,
    installed: false,
    syscalls: 0,
    detail: "not installed: EBUSY",
  });
  ok(failed[0].startsWith("SECCOMP_OFF: see the agent's start log"), failed[0]);
  eq((await advice({ ...on, mode: "log" })).map((a) => a.split(":")[0]), ["SECCOMP_OFF"]);
  eq(await advice({ mode: null, installed: null, syscalls: 0, detail: "no daemon" }), []);
});

Deno.test("doctor: a running agent that kept every capability, or failed to drop them, gets CAPABILITIES_NOT_LIMITED", async () => {
  const r = await report("ENFORCE");
  const armed = { ...r.self_protection, requested: true, armed: true, no_new_privs: true };
  const advice = async (capabilities: typeof r.self_protection.capabilities) =>
    doctorAdvice(await facts({ report: { ...r, self_protection: { ...armed, capabilities } } }))
      .map((x) => `${x.code}: ${x.remediation}`);
  const base = { kept: ["CAP_BPF"], dropped: ["CAP_SETUID"], threads: 9, detail: "9 threads" };
  eq(await advice({ ...base, limited: true }), []);
  eq(await advice({ ...base, limited: null }), [], "unknown is not a finding");
  const off = await advice({
    limited: false,
    kept: [],
    dropped: [],
    threads: 0,
    detail: "run --no-drop-caps",
  });
  ok(
    off[0].startsWith("CAPABILITIES_NOT_LIMITED: restart the agent without --no-drop-caps"),
    off[0],
  );
  const failed = await advice({ ...base, limited: false, detail: "not limited: ETIMEDOUT" });
  ok(failed[0].startsWith("CAPABILITIES_NOT_LIMITED: see the agent's start log"), failed[0]);
});

Deno.test("doctor: hash rules served by the content scan only get EXEC_IDENTITY_SCAN_ONLY", async () => {
  const r = await report("ENFORCE");
  const advice = async (source: "ima" | "scan" | "none", required = true) =>
    doctorAdvice(
      await facts({ report: { ...r, exec_identity: { ...r.exec_identity, source, required } } }),
    ).map((x) => x.code);
  eq(await advice("scan"), ["EXEC_IDENTITY_SCAN_ONLY"]);
  eq(await advice("ima"), []);
  eq(await advice("scan", false), [], "no hash rules: nothing to say");
});

Deno.test("doctor: a running agent that does not enforce gets NOT_ENFORCING", async () => {
  const r = await report("DEGRADED");
  const a = doctorAdvice(
    await facts({ report: r }), // health evaluated from r
  );
  eq(a.map((x) => x.code), ["NOT_ENFORCING"]);
  ok(a[0].message.includes("DEGRADED"));
});

Deno.test("require_enforce: needs a passing proof; failed, off, none → 503", async () => {
  const h = async (proof: Parameters<typeof report>[2]) =>
    evaluateHealth({
      report: await report("ENFORCE", true, proof),
      emergencyActive: false,
      daemonRunning: true,
      agent: AGENT_OK,
    }, true);
  strictEqual((await h({ intervalSeconds: 30, results: PASSED })).status, 200);
  // a stale proof is the agent's transition to DEGRADED (state_test.ts), seen as runtime_state
  const failed = await h({
    intervalSeconds: 30,
    results: { file: { ok: false, last_unix: 1000, detail: "the probe opened the sentinel" } },
  });
  strictEqual(failed.status, 503);
  ok(failed.body.reasons.some((r) => r.includes("file: the probe opened the sentinel")));
  const off = await h({ intervalSeconds: 0, results: PASSED });
  strictEqual(off.status, 503);
  ok(off.body.reasons.some((r) => r.includes("--proof-interval 0")));
  const none = await h({ intervalSeconds: 30, results: {} });
  ok(none.body.reasons.includes("no enforcement proof has run yet"));
  const unknown = await h(null);
  ok(unknown.body.reasons.includes("the agent reports no enforcement proof"));
  // plain health does not judge proofs
  strictEqual(
    evaluateHealth({
      report: await report("ENFORCE", true, { intervalSeconds: 0, results: {} }),
      emergencyActive: false,
      daemonRunning: true,
      agent: AGENT_OK,
    }, false).status,
    200,
  );
});

Deno.test("doctor: a failed proof and proofs off get advice with a remedy", async () => {
  const r = await report("DEGRADED", true, {
    intervalSeconds: 30,
    results: {
      file: {
        ok: false,
        last_unix: 1000,
        detail: "the probe opened the sentinel: the kernel did not deny the canary rule",
      },
    },
  });
  const a = doctorAdvice(await facts({ report: r }));
  const f = a.find((x) => x.code === "ENFORCEMENT_PROOF_FAILED");
  ok(f, a.map((x) => x.code).join(","));
  ok(f.message.includes("file proof failed"));
  ok(f.remediation.includes("/sys/kernel/security/lsm"));
  const off = await report("ENFORCE", true, { intervalSeconds: 0, results: PASSED });
  eq(doctorAdvice(await facts({ report: off })).map((x) => x.code), ["ENFORCEMENT_PROOF_OFF"]);
});

Deno.test("require_enforce: an unenforced rule (rule verification) → 503 naming it; plain health 200", async () => {
  const r = await report("ENFORCE");
  r.unenforced_rules = [{
    rule_id: 3,
    surface: "file",
    target: "/srv/t/secret",
    reason: "a process outside the agent's cgroup opened the file",
  }];
  const v = evaluateHealth({
    report: r,
    emergencyActive: false,
    daemonRunning: true,
    agent: AGENT_OK,
  }, true);
  strictEqual(v.status, 503);
  ok(
    v.body.reasons.some((x) =>
      x.includes("1 rule(s) not denied by the kernel") && x.includes('rule 3 "/srv/t/secret"')
    ),
  );
  strictEqual(
    evaluateHealth(
      { report: r, emergencyActive: false, daemonRunning: true, agent: AGENT_OK },
      false,
    ).status,
    200,
  );
});

Deno.test("doctor: an unenforced rule gets advice naming it, with the remedy for its reason", async () => {
  const r = await report("DEGRADED");
  r.unenforced_rules = [
    {
      rule_id: 3,
      surface: "file",
      target: "/srv/a",
      reason: "… it was replaced or created again …",
    },
    { rule_id: 4, surface: "file", target: "/srv/b", reason: "… the kernel holds a rule for it …" },
  ];
  const a = doctorAdvice(await facts({ report: r })).filter((x) => x.code === "RULE_UNENFORCED");
  strictEqual(a.length, 2);
  ok(a[0].message.includes('rule 3 (file) on "/srv/a"'));
  ok(a[0].remediation.includes("policy apply"));
  ok(a[1].remediation.includes("File identity per file system"));
});

Deno.test("the shipped health and doctor JSON Schemas are the ones generated from zod", () => {
  strictEqual(Deno.readTextFileSync(HEALTH_SCHEMA_PATH), renderHealthSchema());
  strictEqual(Deno.readTextFileSync(DOCTOR_SCHEMA_PATH), renderDoctorSchema());
});

Deno.test("health: the C++ fields from the report and the agent facts", async () => {
  const enforcing = evaluateHealth({
    report: await report("ENFORCE", true, undefined, ["lsm/file_open", "lsm/bprm_check_security"]),
    emergencyActive: false,
    daemonRunning: true,
    agent: AGENT_OK,
  }, false).body;
  HealthBody.parse(enforcing);
  eq(
    [enforcing.capability, enforcing.capability_tier, enforcing.mode, enforcing.engine_mode],
    ["Full", "Full", "enforce", "bpf_lsm"],
  );
  eq(enforcing.checks, {
    prereqs: true,
    bpf_load: true,
    required_maps: true,
    layout_version: true,
    required_pins: true,
    network_pins: true,
    bpf_object: true,
    bpf_hash_verified: true,
  });
  strictEqual(enforcing.bpf_object_path, "embedded:aegis.bpf.o");
  strictEqual(enforcing.allow_unsigned_bpf, false);
  strictEqual(enforcing.future_lsm.landlock_abi, 6);
  eq(enforcing.undetermined_fields, []);

  // no agent on an audit-only node, pins unreadable, the object corrupt
  const r = await report(null, false);
  const local = evaluateHealth({
    report: r,
    emergencyActive: null,
    daemonRunning: false,
    agent: {
      object: { ...AGENT_OK.object, hash_verified: false, required_maps: false },
      pins: { present: null, required: null, network: false },
    },
  }, false).body;
  HealthBody.parse(local);
  eq([local.mode, local.engine_mode], ["audit-only", "tracepoint_audit"]);
  eq(local.checks, {
    prereqs: true,
    bpf_load: false,
    required_maps: false,
    layout_version: false,
    required_pins: false,
    network_pins: false,
    bpf_object: true,
    bpf_hash_verified: false,
  });
  strictEqual(local.bpf_hash_verified, false);
  for (const u of ["checks.bpf_load", "checks.layout_version", "checks.required_pins"]) {
    ok(local.undetermined_fields.includes(u), u);
  }
  ok(!local.undetermined_fields.includes("checks.network_pins"), "known: not pinned");
  ok(!local.undetermined_fields.some((u) => u.startsWith("hooks.")), "not a health field");

  // an agent on tracepoints: signal or audit engine
  const sig = evaluateHealth({
    report: await report("ENFORCE_SIGNAL", false),
    emergencyActive: false,
    daemonRunning: true,
    agent: AGENT_OK,
  }, false).body;
  strictEqual(sig.engine_mode, "tracepoint_signal");
});

Deno.test("doctor --json: {ok, report, health, advice}, report and health the same body", async () => {
  const f = await facts();
  const d = doctorBody(f.health, doctorAdvice(f));
  DoctorBody.parse(d);
  strictEqual(d.ok, f.health.healthy);
  strictEqual(d.report, d.health);
});
