import { deepStrictEqual as eq, ok, strictEqual } from "node:assert/strict";
import { capabilityTier, coreSupported, enforceBlockers } from "./blockers.ts";
import { NO_NEEDS } from "./needs.ts";
import { EXEC_HASH_SECTION, execIdentity } from "./exec_identity.ts";
import { allSymbols, fixtureReport } from "./posture_testing.ts";
import { NativeCallError } from "../errors.ts";

const eperm = () => {
  throw new NativeCallError("aegis_obj_load", 1);
};
const codes = (b: { code: string }[]) => b.map((x) => x.code);
const without = (...names: string[]) => {
  const s = allSymbols();
  for (const n of names) s.delete(n);
  return s;
};

Deno.test("tier Full and no blockers: bpf listed and the trial attaches", async () => {
  const p = await fixtureReport();
  strictEqual(capabilityTier(p), "Full");
  strictEqual(coreSupported(p), true);
  eq(enforceBlockers(p, NO_NEEDS), []);
});

Deno.test("host-like (listed, load EPERM): AuditOnly, BPF_LSM_DISABLED + CAPABILITY_AUDIT_ONLY", async () => {
  const p = await fixtureReport({ trial: eperm });
  strictEqual(capabilityTier(p), "AuditOnly");
  const b = enforceBlockers(p, NO_NEEDS);
  eq(codes(b), ["BPF_LSM_DISABLED", "CAPABILITY_AUDIT_ONLY"]);
  ok(b[0].message.includes("EPERM"));
  ok(b[0].remedy.includes("lockdown"));
});

Deno.test("attached is not enforcing: bpf not in lsm= gives BPF_LSM_DISABLED with the boot line", async () => {
  const p = await fixtureReport({
    files: { "/sys/kernel/security/lsm": "lockdown,capability,apparmor" },
  });
  strictEqual(p.bpf_lsm_attach.status, "supported");
  strictEqual(capabilityTier(p), "AuditOnly");
  const b = enforceBlockers(p, NO_NEEDS).find((x) => x.code === "BPF_LSM_DISABLED")!;
  strictEqual(
    b.remedy,
    "boot with lsm=lockdown,capability,apparmor,bpf (kernel built with CONFIG_BPF_LSM=y)",
  );
});

Deno.test("Disabled: any core piece missing → CORE_UNSUPPORTED naming it", async () => {
  for (
    const [files, symbols, what] of [
      [{ "/sys/kernel/btf/vmlinux": undefined }, undefined, "kernel BTF"],
      [{ "/proc/sys/kernel/unprivileged_bpf_disabled": undefined }, undefined, "bpf syscall"],
      [{ "/sys/fs/cgroup/cgroup.controllers": undefined }, undefined, "cgroup v2"],
      [{}, without("bpf_ringbuf_reserve"), "BPF ring buffer"],
    ] as const
  ) {
    const p = await fixtureReport({ files, symbols, trial: eperm });
    strictEqual(capabilityTier(p), "Disabled", what);
    strictEqual(coreSupported(p), false);
    const b = enforceBlockers(p, NO_NEEDS);
    strictEqual(b[0].code, "CORE_UNSUPPORTED");
    ok(b[0].message.startsWith(what), b[0].message);
  }
});

Deno.test("Unknown: no tracepoints and no BPF LSM, or core facts unknown", async () => {
  const noTp = { "/sys/kernel/tracing/events/syscalls/sys_enter_openat/id": undefined };
  strictEqual(capabilityTier(await fixtureReport({ files: noTp, trial: eperm })), "Unknown");
  const p = await fixtureReport({
    files: { "/sys/kernel/btf/vmlinux": new Deno.errors.PermissionDenied("x") },
  });
  strictEqual(coreSupported(p), null);
  strictEqual(capabilityTier(p), "Unknown");
  ok(codes(enforceBlockers(p, NO_NEEDS)).includes("CORE_UNSUPPORTED"), "unknown blocks too");
});

Deno.test("no shim (not root): attach unknown → BPF_LSM_DISABLED asking for root", async () => {
  const p = await fixtureReport({ symbols: null, trial: null });
  const b = enforceBlockers(p, NO_NEEDS).find((x) => x.code === "BPF_LSM_DISABLED")!;
  ok(b.remedy.includes("as root"), b.remedy);
});

Deno.test("BPFFS_UNMOUNTED with the mount command", async () => {
  const p = await fixtureReport({
    files: {
      "/proc/self/mountinfo": "25 23 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n" +
        "32 23 0:13 / /sys/kernel/tracing rw - tracefs tracefs rw\n",
    },
  });
  const b = enforceBlockers(p, NO_NEEDS);
  eq(codes(b), ["BPFFS_UNMOUNTED"]);
  strictEqual(b[0].remedy, "mount -t bpf bpf /sys/fs/bpf (persist it in /etc/fstab)");
});

Deno.test("policy needs: network, exec identity, runtime deps, IMA appraisal", async () => {
  const needs = {
    network: true,
    exec_identity: true,
    exec_content: true,
    exec_allowlist: true,
    exec_trusted: true,
    exec_runtime_deps: true,
    ima_appraisal: true,
  };
  eq(enforceBlockers(await fixtureReport({ needs }), needs), [], "all present");
  const p = await fixtureReport({
    needs,
    symbols: without(
      "bpf_lsm_socket_connect",
      "bpf_lsm_task_alloc",
      "bpf_lsm_mmap_file",
      "bpf_ima_file_hash",
    ),
  });
  const b = enforceBlockers(p, needs);
  eq(codes(b), [
    "NETWORK_HOOK_UNAVAILABLE",
    "EXEC_IDENTITY_UNAVAILABLE",
    "EXEC_RUNTIME_DEPS_HOOK_UNAVAILABLE",
    "IMA_APPRAISAL_UNAVAILABLE",
  ]);
  ok(b[0].message.includes("lsm_socket_connect (bpf_lsm_socket_connect)"));
  ok(!b[0].message.includes("socket_bind"));
  for (const x of b) ok(x.remedy.length > 20, x.code);
  // the same kernel with no such rules: no policy blockers
  eq(enforceBlockers(p, NO_NEEDS), []);
  // IMA present but no appraise rule
  const noAppraise = await fixtureReport({
    needs,
    files: { "/sys/kernel/security/ima/policy": "measure func=BPRM_CHECK\n" },
  });
  const ima = enforceBlockers(noAppraise, needs).find((x) =>
    x.code === "IMA_APPRAISAL_UNAVAILABLE"
  )!;
  ok(ima.message.includes("no appraise rule"));
});

Deno.test("deny_binary_hash needs a content identity source: predicted, then the attach result", async () => {
  const needs = { ...NO_NEEDS, exec_content: true };
  const full = await fixtureReport({ needs });
  eq(enforceBlockers(full, needs), [], "BPF LSM, bpf_ima_file_hash, IMA: predicted ima");
  eq(execIdentity(full, null), { source: "ima", reason: null });
  // the daemon attached the exec-hash program / did not
  eq(enforceBlockers(full, needs, ["lsm/bprm_check_security", EXEC_HASH_SECTION]), []);
  const notAttached = enforceBlockers(full, needs, ["lsm/bprm_check_security"]);
  eq(codes(notAttached), ["EXEC_IDENTITY_UNAVAILABLE"]);
  ok(notAttached[0].message.includes("[deny_binary_hash]"), notAttached[0].message);
  ok(notAttached[0].message.includes("not attached"), notAttached[0].message);
  ok(!notAttached[0].message.includes("protect rules"), "only the reason that applies");
  // the exec-hash program refused but the inode rules attached: the daemon's content scan
  const scanAttached = ["lsm/file_open", "lsm/bprm_check_security"];
  eq(enforceBlockers(full, needs, scanAttached), []);
  const scan = execIdentity(full, scanAttached);
  strictEqual(scan.source, "scan");
  ok(scan.reason!.includes("not attached") && scan.reason!.includes("/usr/bin"), scan.reason!);
  // the daemon, on a kernel whose BTF has no helper: the detail says so
  const noHelperBtf = await fixtureReport({ needs, symbols: without("bpf_ima_file_hash") });
  const d = execIdentity(noHelperBtf, scanAttached);
  strictEqual(d.source, "scan");
  ok(d.reason!.startsWith("the kernel BTF has no bpf_ima_file_hash"), d.reason!);
  // no helper in the kernel BTF: predicted "scan" (file_open and bprm_check are there)
  const noHelper = await fixtureReport({ needs, symbols: without("bpf_ima_file_hash") });
  eq(enforceBlockers(noHelper, needs), []);
  strictEqual(execIdentity(noHelper, null).source, "scan");
  ok(execIdentity(noHelper, null).reason!.includes("bpf_ima_file_hash"));
  // ... and without an open hook either (file_open, inode_permission): no source at all
  const none = await fixtureReport({
    needs,
    symbols: without("bpf_ima_file_hash", "bpf_lsm_file_open", "bpf_lsm_inode_permission"),
  });
  strictEqual(execIdentity(none, null).source, "none");
  const b = enforceBlockers(none, needs).filter((x) => x.code === "EXEC_IDENTITY_UNAVAILABLE");
  eq(codes(b), ["EXEC_IDENTITY_UNAVAILABLE"]);
  ok(b[0].message.includes("bpf_ima_file_hash"), b[0].message);
  ok(b[0].remedy.includes("5.18"), b[0].remedy);
  // the same kernel without hash rules: no identity blocker
  eq(codes(enforceBlockers(none, NO_NEEDS)).includes("EXEC_IDENTITY_UNAVAILABLE"), false);
});

Deno.test("the content scan serves [deny_binary_hash] only: an allow or trusted list still needs the kernel's hash", async () => {
  const noHelper = await fixtureReport({ symbols: without("bpf_ima_file_hash") });
  for (
    const [needs, list] of [
      [{ ...NO_NEEDS, exec_content: true, exec_allowlist: true }, "[allow_binary_hash] allowlist"],
      [{ ...NO_NEEDS, exec_content: true, exec_trusted: true }, "[trusted_exec_hash] list"],
    ] as const
  ) {
    const b = enforceBlockers(noHelper, needs);
    eq(codes(b), ["EXEC_IDENTITY_UNAVAILABLE"]);
    ok(b[0].message.includes(list), b[0].message);
    ok(b[0].message.includes("serves [deny_binary_hash] only"), b[0].message);
    // the daemon: exec-hash refused, inode rules attached
    const d = enforceBlockers(noHelper, needs, ["lsm/file_open", "lsm/bprm_check_security"]);
    eq(codes(d), ["EXEC_IDENTITY_UNAVAILABLE"]);
  }
});

Deno.test("allow_binary_hash needs a content identity source like deny_binary_hash: the blocker says allowlist", async () => {
  const needs = { ...NO_NEEDS, exec_content: true, exec_allowlist: true };
  const full = await fixtureReport({ needs });
  eq(enforceBlockers(full, needs), [], "predicted ima");
  eq(enforceBlockers(full, needs, ["lsm/bprm_check_security", EXEC_HASH_SECTION]), []);
  const notAttached = enforceBlockers(full, needs, ["lsm/bprm_check_security"]);
  eq(codes(notAttached), ["EXEC_IDENTITY_UNAVAILABLE"]);
  ok(notAttached[0].message.includes("[allow_binary_hash] allowlist"), notAttached[0].message);
  ok(notAttached[0].remedy.includes("[allow_binary_hash]"), notAttached[0].remedy);
  const noHelper = await fixtureReport({ needs, symbols: without("bpf_ima_file_hash") });
  eq(codes(enforceBlockers(noHelper, needs)), ["EXEC_IDENTITY_UNAVAILABLE"]);
  ok(enforceBlockers(noHelper, needs)[0].message.includes("serves [deny_binary_hash] only"));
});

Deno.test("trusted_exec_hash needs a content source (the blocker names the trusted list); protect_runtime_deps the mapping program", async () => {
  const needs = { ...NO_NEEDS, exec_content: true, exec_trusted: true };
  const full = await fixtureReport({ needs });
  eq(enforceBlockers(full, needs), [], "predicted ima");
  const notAttached = enforceBlockers(full, needs, ["lsm/bprm_check_security"]);
  eq(codes(notAttached), ["EXEC_IDENTITY_UNAVAILABLE"]);
  ok(notAttached[0].message.includes("a [trusted_exec_hash] list"), notAttached[0].message);
  ok(notAttached[0].remedy.includes("[trusted_exec_hash]"), notAttached[0].remedy);
  // protect_runtime_deps: with a daemon, the mapping program must be attached
  const deps = { ...needs, exec_runtime_deps: true };
  eq(enforceBlockers(full, deps, [EXEC_HASH_SECTION, "lsm.s/mmap_file"]), []);
  const noMap = enforceBlockers(full, deps, [EXEC_HASH_SECTION]);
  eq(codes(noMap), ["EXEC_RUNTIME_DEPS_HOOK_UNAVAILABLE"]);
  ok(noMap[0].message.includes("lsm.s/mmap_file) is not attached"), noMap[0].message);
  // without a daemon: from the BTF
  const noBtf = await fixtureReport({ needs: deps, symbols: without("bpf_lsm_mmap_file") });
  eq(codes(enforceBlockers(noBtf, deps)), ["EXEC_RUNTIME_DEPS_HOOK_UNAVAILABLE"]);
});

Deno.test("require_ima_appraisal: IMA_APPRAISAL_UNAVAILABLE when the IMA policy cannot be read (Debian's kernels)", async () => {
  const needs = { ...NO_NEEDS, ima_appraisal: true };
  const unreadable = await fixtureReport({
    needs,
    files: { "/sys/kernel/security/ima/policy": new Deno.errors.PermissionDenied("EACCES") },
  });
  const b = enforceBlockers(unreadable, needs);
  eq(codes(b), ["IMA_APPRAISAL_UNAVAILABLE"]);
  ok(b[0].message.includes("CONFIG_IMA_READ_POLICY"), b[0].message);
  const appraising = await fixtureReport({
    needs,
    files: { "/sys/kernel/security/ima/policy": "appraise func=BPRM_CHECK\n" },
  });
  eq(enforceBlockers(appraising, needs), []);
});
