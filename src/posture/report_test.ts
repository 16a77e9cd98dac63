import { deepStrictEqual as eq, ok, strictEqual, throws } from "node:assert/strict";
import { CAPABILITIES_SCHEMA_PATH, renderCapabilitiesSchema } from "../../build/gen_schemas.ts";
import { AegisError, NativeCallError } from "../errors.ts";
import { HOOK_NAMES } from "./probes/hooks.ts";
import {
  buildReport,
  CapabilitiesReport,
  NO_POLICY,
  parseReport,
  type ReportInput,
  writeReport,
} from "./report.ts";
import { NO_NEEDS, policyNeeds, policyRuleFacts } from "./needs.ts";
import { parsePolicy } from "../policy/parse.ts";
import { fixtureReport } from "./posture_testing.ts";

const eperm = () => {
  throw new NativeCallError("aegis_obj_load", 1);
};

async function input(over: Partial<ReportInput> = {}): Promise<ReportInput> {
  return {
    probe: await fixtureReport(),
    needs: NO_NEEDS,
    runtimeState: "ENFORCE",
    transitions: { total: 1, degradation_total: 0, strict_mode: false, enforce_requested: true },
    policy: NO_POLICY,
    emergencyActive: false,
    attachedSections: ["lsm/file_open", "lsm/bprm_check_security"],
    generatedBy: "daemon",
    now: 1700000000.7,
    ...over,
  };
}

Deno.test("the shipped JSON Schema is the one generated from the zod schema", () => {
  strictEqual(Deno.readTextFileSync(CAPABILITIES_SCHEMA_PATH), renderCapabilitiesSchema());
});

Deno.test("an enforcing node: Full, enforce_capable, every documented field, valid", async () => {
  const r = buildReport(await input());
  CapabilitiesReport.parse(r);
  strictEqual(r.schema_version, 1);
  strictEqual(r.schema_semver, "2.0.0");
  eq(r.enforcement_proof, {}, "no daemon proof in the input");
  strictEqual(r.enforcement_proof_interval_seconds, null);
  eq(r.unenforced_rules, []);
  const proven = buildReport({
    ...(await input()),
    proof: {
      intervalSeconds: 30,
      results: { file: { ok: true, last_unix: 1699999990, detail: "EPERM" } },
    },
  });
  CapabilitiesReport.parse(proven);
  eq(proven.enforcement_proof.file, { ok: true, last_unix: 1699999990, detail: "EPERM" });
  strictEqual(proven.enforcement_proof_interval_seconds, 30);
  strictEqual(r.generated_at_unix, 1700000000);
  strictEqual(r.kernel_version, "6.12.38+deb13-amd64");
  strictEqual(r.capability, "Full");
  strictEqual(r.enforce_capable, true);
  strictEqual(r.audit_only, false);
  eq(r.enforce_blockers, []);
  strictEqual(r.lsm_enabled, true);
  strictEqual(r.core_supported, true);
  eq(Object.keys(r.hooks), [...HOOK_NAMES]);
  eq(Object.keys(r.hook_details), [...HOOK_NAMES]);
  strictEqual(r.hooks.lsm_file_open, true);
  strictEqual(r.hook_details.lsm_file_open.attached, true);
  strictEqual(r.hooks.lsm_socket_connect, false);
  strictEqual(r.hook_details.lsm_bprm_ima_check.attached, false, "a helper, not a section");
  eq(r.undetermined_fields, []);
  eq(r.requirements.required_hooks, ["lsm_file_open", "lsm_bprm_check_security"]);
  eq(r.requirements_met, {
    network: true,
    exec_identity: true,
    exec_runtime_deps: true,
    ima_appraisal: true,
  });
  eq(r.future_lsm, {
    active_lsms: "lockdown,capability,landlock,yama,apparmor,bpf",
    landlock: true,
    landlock_abi: 6,
    ipe: false,
    fs_verity: true,
    bpf_token: true,
  });
  strictEqual(r.features.ima_appraisal, true);
  strictEqual(r.features.bpf_ima_helpers, true);
  strictEqual(r.features.binary_auth, true);
  strictEqual(r.features.overlay_copy_up_propagation, false, "inode_copy_up not attached here");
  eq(Object.keys(r.feature_notes).sort(), [
    "deadman_fail_static",
    "deep_process_lineage",
    "enhanced_rule_engine",
    "ipe",
  ]);
});

Deno.test("host-like node: AuditOnly, blockers with remedies, notes, unmet network requirement", async () => {
  const needs = { ...NO_NEEDS, network: true };
  const r = buildReport(
    await input({
      probe: await fixtureReport({
        trial: eperm,
        symbols: new Set(["bpf_ringbuf_reserve"]),
        needs,
      }),
      needs,
      runtimeState: "AUDIT_FALLBACK",
      attachedSections: null,
      generatedBy: "cli",
    }),
  );
  CapabilitiesReport.parse(r);
  strictEqual(r.capability, "AuditOnly");
  strictEqual(r.audit_only, true);
  strictEqual(r.enforce_capable, false);
  eq(r.enforce_blockers, ["BPF_LSM_DISABLED", "CAPABILITY_AUDIT_ONLY", "NETWORK_HOOK_UNAVAILABLE"]);
  eq(r.enforce_blocker_details.map((b) => b.code), r.enforce_blockers);
  strictEqual(r.requirements_met.network, false);
  strictEqual(r.hook_details.lsm_socket_connect.required, true);
  strictEqual(r.hook_details.lsm_file_open.attached, null);
  strictEqual(r.hooks.lsm_file_open, false);
  ok(r.undetermined_fields.includes("hooks.lsm_file_open"));
  ok(r.feature_notes.bpf_lsm_attach.includes("EPERM"));
  strictEqual(r.next_gen_bpf.arena, false);
});

Deno.test("runtime_state null (no agent), unknown facts null, extra blockers kept once", async () => {
  const r = buildReport(
    await input({
      probe: await fixtureReport({ symbols: null, trial: null, landlockAbi: null }),
      runtimeState: null,
      extraBlockers: [
        { code: "BPF_LSM_DISABLED", message: "dup", remedy: "x" },
        {
          code: "NETWORK_HOOK_UNAVAILABLE",
          message: "lsm/socket_connect failed to attach",
          remedy: "y",
        },
      ],
    }),
  );
  CapabilitiesReport.parse(r);
  strictEqual(r.runtime_state, null);
  strictEqual(r.next_gen_bpf.arena, false);
  strictEqual(r.future_lsm.fs_verity, false);
  strictEqual(r.future_lsm.landlock_abi, -1);
  for (
    const u of [
      "next_gen_bpf.arena",
      "features.bpf_arena",
      "future_lsm.fs_verity",
      "future_lsm.landlock_abi",
      "features.binary_auth",
    ]
  ) ok(r.undetermined_fields.includes(u), u);
  ok(!r.undetermined_fields.includes("features.btf"), "read from the file system");
  strictEqual(r.hook_details.lsm_file_open.kernel_supported, null);
  eq(r.enforce_blockers, ["BPF_LSM_DISABLED", "CAPABILITY_AUDIT_ONLY", "NETWORK_HOOK_UNAVAILABLE"]);
  strictEqual(
    r.enforce_blocker_details[0].message.startsWith("BPF LSM enforcement is not confirmed"),
    true,
  );
});

Deno.test("schema refuses missing fields, unknown fields and bad values", async () => {
  const r = buildReport(await input());
  const { hooks: _h, ...noHooks } = r;
  ok(!CapabilitiesReport.safeParse(noHooks).success);
  ok(!CapabilitiesReport.safeParse({ ...r, surprise: 1 }).success);
  ok(!CapabilitiesReport.safeParse({ ...r, runtime_state: "AUDIT" }).success);
  ok(
    !CapabilitiesReport.safeParse({
      ...r,
      enforce_blockers: ["NOPE"],
    }).success,
  );
  ok(
    !CapabilitiesReport.safeParse({
      ...r,
      enforce_blocker_details: [{ code: "NOPE", message: "", remedy: "" }],
    }).success,
  );
  ok(
    !CapabilitiesReport.safeParse({
      ...r,
      enforcement_proof: { ptrace: { ok: true, last_unix: 1, detail: "" } },
    }).success,
    "unknown proof surface",
  );
  ok(
    !CapabilitiesReport.safeParse({
      ...r,
      enforcement_proof: { file: { ok: "yes", last_unix: 1, detail: "" } },
    }).success,
  );
  throws(
    () => parseReport({ ...r, schema_version: 2 }, "the daemon's answer"),
    (e: unknown) =>
      e instanceof AegisError && e.code === "REPORT_INVALID" &&
      e.message.includes("schema_version"),
  );
});

Deno.test("writeReport: atomic, 0644, directory created 0755, invalid refused with nothing written", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/sub/capabilities.json`;
    const r = buildReport(await input());
    writeReport(path, r);
    strictEqual(Deno.statSync(path).mode! & 0o777, 0o644);
    strictEqual(Deno.statSync(`${dir}/sub`).mode! & 0o777, 0o755);
    eq(CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(path))), r);
    writeReport(path, { ...r, runtime_state: "DEGRADED" });
    strictEqual(JSON.parse(Deno.readTextFileSync(path)).runtime_state, "DEGRADED");
    eq(
      [...Deno.readDirSync(`${dir}/sub`)].map((e) => e.name),
      ["capabilities.json"],
      "no temp files left",
    );
    throws(
      () => writeReport(path, { ...r, capability: "Maybe" } as never),
      /REPORT_INVALID|schema/,
    );
    strictEqual(JSON.parse(Deno.readTextFileSync(path)).runtime_state, "DEGRADED", "unchanged");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("allow_binary_hash: the report counts the allowlist and requires exec identity", async () => {
  const text =
    `version=3\n[allow_binary_hash]\nsha256:${"1".repeat(64)}\nsha256:${"2".repeat(64)}\n` +
    `sha256:${"3".repeat(64)}\n`;
  const p = parsePolicy(text, "a.conf").policy!;
  const r = buildReport(
    await input({
      needs: policyNeeds(p),
      policy: {
        applied: true,
        sha256: null,
        version: 3,
        unresolved: [],
        rules: policyRuleFacts(p),
      },
    }),
  );
  CapabilitiesReport.parse(r);
  eq(r.policy.allow_binary_hash_count, 3);
  eq(
    [
      r.requirements.exec_allowlist_required,
      r.requirements.exec_identity_required,
      r.requirements.exec_identity,
      r.requirements.verified_exec_required,
      r.exec_identity.required,
    ],
    [true, true, true, false, true],
  );
});

Deno.test("policy counts and the C++ requirement names from the applied policy's facts", async () => {
  const needs = { ...NO_NEEDS, network: true, exec_identity: true };
  const r = buildReport(
    await input({
      needs,
      policy: {
        applied: true,
        sha256: null,
        version: 4,
        unresolved: [],
        snapshot: { path: "/var/lib/aegisbpf/policy.applied", present: true, parse_ok: true },
        rules: {
          network_rule_count: 3,
          protect_path_count: 2,
          protect_connect: false,
          cgroup_deny_inode_count: 1,
          cgroup_deny_ip_count: 0,
          cgroup_deny_port_count: 4,
          allow_binary_hash_count: 0,
          trusted_exec_hash_count: 0,
          protect_runtime_deps: false,
          require_ima_appraisal: false,
          ima_fail_closed: false,
          network_connect: false,
          network_bind: true,
        },
      },
    }),
  );
  CapabilitiesReport.parse(r);
  eq(
    [r.policy.applied_path, r.policy.snapshot_present, r.policy.parse_ok],
    ["/var/lib/aegisbpf/policy.applied", true, true],
  );
  eq(
    [r.policy.network_rule_count, r.policy.protect_path_count, r.policy.cgroup_deny_port_count],
    [3, 2, 4],
  );
  eq(
    [
      r.requirements.network_enforcement_required,
      r.requirements.network_connect_required,
      r.requirements.network_bind_required,
      r.requirements.exec_identity_required,
      r.requirements.verified_exec_required,
      r.requirements.exec_allowlist_required,
    ],
    [true, false, true, true, true, false],
  );
  eq(
    [r.exec_identity.kernel_enabled, r.exec_identity.kernel_allow_exec_inode_entries],
    [false, 0],
    "the input attached only file_open and bprm_check_security",
  );
  const none = buildReport(await input());
  eq([none.policy.applied_path, none.policy.snapshot_present, none.policy.parse_ok], [
    "",
    false,
    false,
  ]);
});

Deno.test("v5 sections: counts, flags and requirements in the report; appraisal met in audit mode only", async () => {
  const text =
    `version=5\n[trusted_exec_hash]\nsha256:${"1".repeat(64)}\nsha256:${"2".repeat(64)}\n` +
    "[ima_fail_closed]\n[require_ima_appraisal]\n[protect_connect]\n[protect_runtime_deps]\n";
  const p = parsePolicy(text, "t.conf").policy!;
  const needs = policyNeeds(p);
  const unreadable = await fixtureReport({
    needs,
    files: { "/sys/kernel/security/ima/policy": new Deno.errors.PermissionDenied("EACCES") },
  });
  const at = (over: Partial<ReportInput>) =>
    buildReport({
      ...base,
      ...over,
    });
  const base = await input({
    needs,
    probe: unreadable,
    attachedSections: ["lsm/bprm_check_security", "lsm.s/bprm_check_security", "lsm.s/mmap_file"],
    policy: { applied: true, sha256: null, version: 5, unresolved: [], rules: policyRuleFacts(p) },
  });
  const r = at({});
  CapabilitiesReport.parse(r);
  eq(
    [
      r.policy.trusted_exec_hash_count,
      r.policy.ima_fail_closed,
      r.policy.require_ima_appraisal,
      r.policy.protect_runtime_deps,
      r.requirements.ima_appraisal_required,
      r.requirements.verified_exec_runtime_deps_required,
      r.requirements.exec_identity_required,
      r.exec_identity.runtime_deps_hook_attached,
    ],
    [2, true, true, true, true, true, true, true],
  );
  ok(r.enforce_blockers.includes("IMA_APPRAISAL_UNAVAILABLE"), r.enforce_blockers.join());
  eq(r.requirements_met.ima_appraisal, false, "enforce: not met");
  eq(r.requirements_met.exec_identity, true);
  eq(r.requirements_met.exec_runtime_deps, true);
  // started with --audit: the requirement counts as met (the C++ agent); the blocker stays
  const audit = at({
    runtimeState: "AUDIT_FALLBACK",
    transitions: { total: 1, degradation_total: 0, strict_mode: false, enforce_requested: false },
  });
  eq(audit.requirements_met.ima_appraisal, true);
  ok(audit.enforce_blockers.includes("IMA_APPRAISAL_UNAVAILABLE"));
  // enforce requested but fallen back to audit: not met
  const fallback = at({ runtimeState: "AUDIT_FALLBACK" });
  eq(fallback.requirements_met.ima_appraisal, false);
  // the mapping program not attached
  const noMap = at({ attachedSections: ["lsm.s/bprm_check_security"] });
  eq([noMap.exec_identity.runtime_deps_hook_attached, noMap.requirements_met.exec_runtime_deps], [
    false,
    false,
  ]);
});
