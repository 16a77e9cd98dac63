/**
 * Tier 2 (root, host kernel): the posture probes and commands on a kernel
 * that lists bpf as an LSM but refuses to load LSM programs (EPERM). Real
 * probes, real reports, validated against the shipped JSON Schema.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { HOOK_NAMES } from "../../src/posture/probes/hooks.ts";
import { openHostProbeDeps } from "../../src/posture/probes/host.ts";
import { probeAll } from "../../src/posture/probes/mod.ts";
import { capabilityTier, enforceBlockers } from "../../src/posture/blockers.ts";
import { NO_NEEDS } from "../../src/posture/needs.ts";
import { buildReport, CapabilitiesReport, NO_POLICY } from "../../src/posture/report.ts";
import { HealthBody } from "../../src/posture/health.ts";
import { DoctorBody } from "../../src/posture/doctor.ts";
import { LAUNCHER, ROOT, run } from "../lib/helpers.ts";

const SCHEMA = JSON.parse(Deno.readTextFileSync(`${ROOT}/schemas/capabilities.schema.json`));

type Json = Record<string, unknown>;

/** Every `required` key of the JSON Schema is present, recursively (nullable = anyOf). */
function missingRequired(schema: Json, value: unknown, at = "$"): string[] {
  if (value === null || typeof value !== "object") return [];
  const out: string[] = [];
  const variants = (schema.anyOf as Json[] | undefined) ?? [schema];
  for (const s of variants) {
    if (s.type !== "object") continue;
    for (const k of (s.required as string[] | undefined) ?? []) {
      if (!(k in (value as Json))) out.push(`${at}.${k}`);
    }
    for (const [k, sub] of Object.entries((s.properties as Record<string, Json>) ?? {})) {
      if (k in (value as Json)) out.push(...missingRequired(sub, (value as Json)[k], `${at}.${k}`));
    }
  }
  return out;
}

/** Parse with the zod schema AND check the shipped JSON Schema's required keys. */
function validate(value: unknown): CapabilitiesReport {
  const r = CapabilitiesReport.parse(value);
  deepStrictEqual(missingRequired(SCHEMA, value), []);
  return r;
}

/** An environment with no daemon: private state dir and control socket path. */
function noDaemonEnv(dir: string): Record<string, string> {
  return {
    ...Deno.env.toObject(),
    AEGIS_STATE_DIR: `${dir}/state`,
    AEGIS_CONTROL_SOCKET: `${dir}/control.sock`,
  };
}

Deno.test("the required-key check catches a missing nested key (it can fail)", () => {
  const r = { hook_details: { lsm_file_open: {} } };
  ok(missingRequired(SCHEMA, r).includes("$.hook_details.lsm_file_open.kernel_supported"));
  ok(missingRequired(SCHEMA, r).includes("$.enforce_capable"));
});

Deno.test("probeAll on this host: BPF LSM listed but not usable (EPERM load), AuditOnly, 12 hooks", async () => {
  using deps = await openHostProbeDeps();
  strictEqual(deps.limitation, null, "running as root with the embedded shim");
  const p = await probeAll({ ...deps });
  strictEqual(p.bpf_lsm_active.status, "supported", "this host lists bpf in the LSM list");
  strictEqual(p.bpf_lsm_attach.status, "unsupported");
  if (p.bpf_lsm_attach.status === "unsupported") ok(p.bpf_lsm_attach.reason.includes("EPERM"));
  for (
    const k of [
      "kernel_version",
      "btf",
      "bpffs",
      "bpf_syscall",
      "ringbuf",
      "tracepoints",
      "cgroup_v2",
    ] as const
  ) {
    strictEqual(p[k].status, "supported", `${k}: ${JSON.stringify(p[k])}`);
  }
  deepStrictEqual(Object.keys(p.hooks), [...HOOK_NAMES]);
  strictEqual(p.hooks.lsm_file_open.kernel_supported, true, "6.18 BTF has bpf_lsm_file_open");
  strictEqual(p.hooks.lsm_socket_connect.kernel_supported, true);
  strictEqual(p.symbol_source, "btf");
  strictEqual(capabilityTier(p), "AuditOnly");
  const b = enforceBlockers(p, NO_NEEDS);
  ok(b.some((x) => x.code === "BPF_LSM_DISABLED"));
  // the kernel version string is the kernel's own
  if (p.kernel_version.status === "supported") {
    strictEqual(
      p.kernel_version.value.release,
      Deno.readTextFileSync("/proc/sys/kernel/osrelease").trim(),
    );
  }
  const report = validate(buildReport({
    probe: p,
    needs: NO_NEEDS,
    runtimeState: null,
    transitions: { total: 0, degradation_total: 0, strict_mode: false, enforce_requested: false },
    policy: NO_POLICY,
    emergencyActive: null,
    attachedSections: null,
    generatedBy: "cli",
    now: Date.now() / 1000,
  }));
  strictEqual(report.enforce_capable, false);
  strictEqual(report.capability, "AuditOnly");
});

Deno.test("the LSM trial leaves no program loaded", async () => {
  using deps = await openHostProbeDeps();
  await probeAll({ ...deps });
  const progs = await run("bpftool", ["-j", "prog", "show"]);
  const ours = (JSON.parse(progs.stdout) as { name?: string; type?: string; pids?: unknown[] }[])
    .filter((x) => x.type === "lsm" && x.name?.startsWith("aegis_") && !x.pids);
  deepStrictEqual(ours, []);
});

Deno.test("aegisbpf probe --json: every probe and the hook table; probe (text) prints the table", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run(LAUNCHER, ["probe", "--json"], noDaemonEnv(dir));
    strictEqual(r.code, 0, r.stderr);
    const p = JSON.parse(r.stdout);
    strictEqual(p.bpf_lsm_attach.status, "unsupported");
    ok(p.bpf_lsm_attach.reason.includes("EPERM"));
    deepStrictEqual(Object.keys(p.hooks), [...HOOK_NAMES]);
    for (const h of HOOK_NAMES) {
      deepStrictEqual(Object.keys(p.hooks[h]).sort(), [
        "btf_symbol",
        "kernel_supported",
        "required",
      ]);
    }
    strictEqual(p.capability, "AuditOnly");
    ok(p.enforce_blockers.includes("BPF_LSM_DISABLED"));
    ok(p.enforce_blocker_details.some((b: { code: string }) => b.code === "BPF_LSM_DISABLED"));
    const t = await run(LAUNCHER, ["probe"], noDaemonEnv(dir));
    strictEqual(t.code, 0, t.stderr);
    ok(/lsm_socket_connect\s+yes\s+no\s+bpf_lsm_socket_connect/.test(t.stdout), t.stdout);
    ok(/bpf_lsm_attach\s+NO\s+.*EPERM/.test(t.stdout), t.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no daemon: health --require-enforce exits 1 listing BPF_LSM_DISABLED; plain health exits 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run(LAUNCHER, ["health", "--require-enforce", "--json"], noDaemonEnv(dir));
    strictEqual(r.code, 1, r.stdout + r.stderr);
    const body = HealthBody.parse(JSON.parse(r.stdout));
    strictEqual(body.ok, false);
    strictEqual(body.daemon_running, false);
    strictEqual(body.runtime_state, null);
    strictEqual(body.enforce_capable, false);
    ok(body.blockers.some((b) => b.code === "BPF_LSM_DISABLED" && b.remedy.length > 0));
    const plain = await run(LAUNCHER, ["health"], noDaemonEnv(dir));
    strictEqual(plain.code, 1, plain.stdout);
    ok(plain.stdout.includes("no aegisbpf agent is running"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no daemon: capabilities --json validates against the schema, enforce_capable false", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run(LAUNCHER, ["capabilities", "--json"], noDaemonEnv(dir));
    strictEqual(r.code, 0, r.stderr);
    const report = validate(JSON.parse(r.stdout));
    strictEqual(report.enforce_capable, false);
    strictEqual(report.runtime_state, null);
    strictEqual(report.generated_by, "cli");
    ok(report.enforce_blockers.includes("BPF_LSM_DISABLED"));
    strictEqual(report.policy.applied, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no daemon, applied network policy: NETWORK requirement shown, met on this kernel", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/state`, { mode: 0o700 });
    await Deno.writeTextFile(
      `${dir}/state/policy.applied`,
      "version=2\n[deny_port]\n9\n[deny_path]\n/nonexistent/aegis-x\n",
    );
    const r = await run(LAUNCHER, ["capabilities", "--json"], noDaemonEnv(dir));
    strictEqual(r.code, 0, r.stderr);
    const report = validate(JSON.parse(r.stdout));
    strictEqual(report.requirements.network, true);
    ok(report.requirements.required_hooks.includes("lsm_socket_connect"));
    strictEqual(report.requirements_met.network, true, "6.18 has the socket hooks");
    deepStrictEqual(report.policy.unresolved, ["/nonexistent/aegis-x"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no daemon: doctor --json gives advice with a remediation for every finding, exit 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run(LAUNCHER, ["doctor", "--json"], {
      ...noDaemonEnv(dir),
      AEGIS_PIN_ROOT: `/sys/fs/bpf/aegis-none-${crypto.randomUUID().slice(0, 8)}`,
    });
    strictEqual(r.code, 1, r.stdout + r.stderr);
    const d = DoctorBody.parse(JSON.parse(r.stdout));
    strictEqual(d.ok, false);
    deepStrictEqual(d.report, d.health);
    strictEqual(d.report.bpf_hash_verified, true, "the embedded object verifies");
    strictEqual(d.report.checks.required_pins, false, "no pins under that root");
    const codes = d.advice.map((a) => a.code);
    ok(codes.includes("BPF_LSM_DISABLED"), codes.join());
    ok(codes.includes("NO_DAEMON"), codes.join());
    for (const a of d.advice) ok(a.remediation.length > 10 && a.message.length > 10, a.code);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
