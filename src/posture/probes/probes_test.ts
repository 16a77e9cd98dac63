import { deepStrictEqual as eq, ok, strictEqual } from "node:assert/strict";
import { AegisError, NativeCallError, VerifierError } from "../../errors.ts";
import { fsTypeAt, parseMountinfo } from "../../util/mountinfo.ts";
import { fixtureFs, type ProbeResult } from "../probe.ts";
import { hostFiles, MOUNTINFO_OK } from "../posture_testing.ts";
import { probeBinaryAuth } from "./binary_auth.ts";
import { probeBpfLsmAttach } from "./bpf_lsm_attach.ts";
import { probeBpfSyscall } from "./bpf_syscall.ts";
import { probeBpffs } from "./bpffs.ts";
import { probeBtf } from "./btf.ts";
import { probeCgroupV2 } from "./cgroup_v2.ts";
import { probeFsVerity } from "./fs_verity.ts";
import { HOOK_NAMES, hookRequired, probeHooks } from "./hooks.ts";
import { probeIma } from "./ima.ts";
import { kernelAtLeast, parseKernelRelease, probeKernelVersion } from "./kernel_version.ts";
import { probeIpe } from "./ipe.ts";
import { probeLandlock } from "./landlock.ts";
import { type NextGenBpf, probeNextGenBpf } from "./next_gen.ts";
import { probeRingbuf } from "./ringbuf.ts";
import { probeSchedExt } from "./sched_ext.ts";
import { probeTracepoints } from "./tracepoints.ts";

const denied = () => new Deno.errors.PermissionDenied("fixture: denied");
const fsWith = (over: Record<string, string | Error | undefined>) => {
  const f: Record<string, string | Error> = hostFiles();
  for (const [k, v] of Object.entries(over)) v === undefined ? delete f[k] : (f[k] = v);
  return fixtureFs(f);
};
function reasonOf(r: ProbeResult<unknown>): string {
  strictEqual(r.status, "unsupported", JSON.stringify(r));
  return r.status === "unsupported" ? r.reason : "";
}
function errorOf(r: ProbeResult<unknown>): string {
  strictEqual(r.status, "unknown", JSON.stringify(r));
  return r.status === "unknown" ? r.error : "";
}

Deno.test("mountinfo: optional fields, escapes and the last mount on a path win", () => {
  const m = parseMountinfo(
    MOUNTINFO_OK + "40 30 0:50 / /mnt/with\\040space rw - tmpfs tmpfs rw\n" +
      "41 23 0:51 / /sys/fs/bpf rw shared:1 master:2 - tmpfs none rw\nbroken line\n",
  );
  eq(m.find((x) => x.mountPoint === "/mnt/with space")?.fsType, "tmpfs");
  strictEqual(fsTypeAt(m, "/sys/fs/bpf"), "tmpfs");
  strictEqual(fsTypeAt(m, "/nowhere"), null);
  strictEqual(m.length, 7);
});

Deno.test("kernel version: parsed; garbage and unreadable are unknown", async () => {
  const r = await probeKernelVersion(fsWith({}));
  eq(r, {
    status: "supported",
    value: { release: "6.12.38+deb13-amd64", major: 6, minor: 12, patch: 38 },
  });
  ok(
    errorOf(await probeKernelVersion(fsWith({ "/proc/sys/kernel/osrelease": "linux\n" }))).includes(
      '"linux"',
    ),
  );
  ok(
    errorOf(await probeKernelVersion(fsWith({ "/proc/sys/kernel/osrelease": undefined }))).includes(
      "osrelease",
    ),
  );
  const v = parseKernelRelease("5.8")!;
  strictEqual(kernelAtLeast(v, 5, 8), true);
  strictEqual(kernelAtLeast(v, 5, 9), false);
  strictEqual(kernelAtLeast(v, 4, 20), true);
});

Deno.test("btf: present, missing (unsupported naming the config), empty, unreadable", async () => {
  eq(await probeBtf(fsWith({})), {
    status: "supported",
    value: { path: "/sys/kernel/btf/vmlinux", size: 8 },
  });
  ok(
    reasonOf(await probeBtf(fsWith({ "/sys/kernel/btf/vmlinux": undefined }))).includes(
      "CONFIG_DEBUG_INFO_BTF",
    ),
  );
  ok(reasonOf(await probeBtf(fsWith({ "/sys/kernel/btf/vmlinux": "" }))).includes("empty"));
  ok(errorOf(await probeBtf(fsWith({ "/sys/kernel/btf/vmlinux": denied() }))).includes("denied"));
});

Deno.test("bpffs: decided by the mount's file system type, not the directory", async () => {
  eq(await probeBpffs(fsWith({})), { status: "supported", value: { mount_point: "/sys/fs/bpf" } });
  const noBpf = MOUNTINFO_OK.split("\n").filter((l) => !l.includes(" bpf ")).join("\n");
  // the directory exists (a file below it) but nothing is mounted there
  const r = await probeBpffs(fsWith({ "/proc/self/mountinfo": noBpf, "/sys/fs/bpf/x": "" }));
  ok(reasonOf(r).includes("mount -t bpf bpf /sys/fs/bpf"));
  const tmp = MOUNTINFO_OK + "50 23 0:60 / /sys/fs/bpf rw - tmpfs tmpfs rw\n";
  ok(reasonOf(await probeBpffs(fsWith({ "/proc/self/mountinfo": tmp }))).includes("tmpfs mount"));
  ok(errorOf(await probeBpffs(fsWith({ "/proc/self/mountinfo": denied() }))).includes("mountinfo"));
});

Deno.test("cgroup v2: unified, hybrid, none, controllers unreadable", async () => {
  eq(await probeCgroupV2(fsWith({})), {
    status: "supported",
    value: {
      mount_point: "/sys/fs/cgroup",
      controllers: ["cpuset", "cpu", "io", "memory", "pids"],
      hybrid: false,
    },
  });
  const hybrid = MOUNTINFO_OK.replace("/sys/fs/cgroup rw", "/sys/fs/cgroup/unified rw");
  const h = await probeCgroupV2(fsWith({
    "/proc/self/mountinfo": hybrid,
    "/sys/fs/cgroup/unified/cgroup.controllers": "\n",
  }));
  eq(h, {
    status: "supported",
    value: { mount_point: "/sys/fs/cgroup/unified", controllers: [], hybrid: true },
  });
  const none = MOUNTINFO_OK.split("\n").filter((l) => !l.includes("cgroup2")).join("\n");
  ok(
    reasonOf(await probeCgroupV2(fsWith({ "/proc/self/mountinfo": none }))).includes(
      "unified_cgroup_hierarchy",
    ),
  );
  ok(
    reasonOf(await probeCgroupV2(fsWith({ "/sys/fs/cgroup/cgroup.controllers": undefined })))
      .includes("missing"),
  );
  ok(
    errorOf(await probeCgroupV2(fsWith({ "/sys/fs/cgroup/cgroup.controllers": denied() })))
      .includes("denied"),
  );
});

Deno.test("bpf syscall: the sysctl exists exactly when bpf() is compiled in", async () => {
  eq(await probeBpfSyscall(fsWith({})), {
    status: "supported",
    value: { unprivileged_bpf_disabled: 2 },
  });
  const gone = { "/proc/sys/kernel/unprivileged_bpf_disabled": undefined };
  ok(reasonOf(await probeBpfSyscall(fsWith(gone))).includes("CONFIG_BPF_SYSCALL"));
  ok(
    errorOf(
      await probeBpfSyscall(fsWith({ "/proc/sys/kernel/unprivileged_bpf_disabled": denied() })),
    ).length > 0,
  );
});

Deno.test("ring buffer: BTF evidence first, else the kernel version, else unknown", async () => {
  const k = await probeKernelVersion(fsWith({}));
  eq(probeRingbuf(k, (n) => n === "bpf_ringbuf_reserve"), {
    status: "supported",
    value: { evidence: "btf" },
  });
  ok(reasonOf(probeRingbuf(k, () => false)).includes("bpf_ringbuf_reserve"));
  eq(probeRingbuf(k, null), { status: "supported", value: { evidence: "kernel_version" } });
  const old = await probeKernelVersion(
    fsWith({ "/proc/sys/kernel/osrelease": "5.4.0-150-generic" }),
  );
  ok(reasonOf(probeRingbuf(old, null)).includes("older than 5.8"));
  const none = await probeKernelVersion(fsWith({ "/proc/sys/kernel/osrelease": undefined }));
  errorOf(probeRingbuf(none, null));
  // a failing BTF query falls back to the version
  eq(
    probeRingbuf(k, () => {
      throw new Error("EIO");
    }).status,
    "supported",
  );
});

Deno.test("tracepoints: the openat event, a tracefs without it, no tracefs, debugfs path", async () => {
  eq(await probeTracepoints(fsWith({})), {
    status: "supported",
    value: { tracefs: "/sys/kernel/tracing" },
  });
  const r = await probeTracepoints(
    fsWith({
      "/sys/kernel/tracing/events/syscalls/sys_enter_openat/id": undefined,
      "/sys/kernel/tracing/events/sched/x": "",
    }),
  );
  ok(reasonOf(r).includes("CONFIG_FTRACE_SYSCALLS"));
  const noTrace = MOUNTINFO_OK.split("\n").filter((l) => !l.includes("tracefs")).join("\n");
  ok(
    errorOf(await probeTracepoints(fsWith({ "/proc/self/mountinfo": noTrace }))).includes(
      "mount -t tracefs",
    ),
  );
  const debugfs = noTrace + "60 23 0:70 / /sys/kernel/debug rw - debugfs debugfs rw\n";
  const d = await probeTracepoints(fsWith({
    "/proc/self/mountinfo": debugfs,
    "/sys/kernel/debug/tracing/events/syscalls/sys_enter_openat/id": "1",
  }));
  eq(d, { status: "supported", value: { tracefs: "/sys/kernel/debug/tracing" } });
});

Deno.test("landlock: listed (ABI unknown without the shim), not listed (boot remedy), no LSM list", () => {
  eq(probeLandlock({ status: "supported", value: ["landlock", "bpf"] }), {
    status: "supported",
    value: { abi: null, abi_note: "no shim to ask landlock_create_ruleset (needs root)" },
  });
  ok(reasonOf(probeLandlock({ status: "supported", value: ["bpf"] })).includes("lsm=bpf,landlock"));
  eq(probeLandlock({ status: "unknown", error: "no securityfs" }), {
    status: "unknown",
    error: "no securityfs",
  });
});

Deno.test("ima: appraise rules counted; no appraisal; no IMA; no securityfs; policy unreadable", async () => {
  eq(await probeIma(fsWith({})), {
    status: "supported",
    value: { appraisal: true, appraise_rules: 1 },
  });
  eq(
    await probeIma(
      fsWith({
        "/sys/kernel/security/ima/policy":
          "measure func=FILE_CHECK\ndont_appraise fsmagic=0x9fa0\n",
      }),
    ),
    {
      status: "supported",
      value: { appraisal: false, appraise_rules: 0 },
    },
  );
  ok(
    reasonOf(await probeIma(fsWith({ "/sys/kernel/security/ima/policy": undefined }))).includes(
      "CONFIG_IMA",
    ),
  );
  ok(
    errorOf(
      await probeIma(
        fsWith({
          "/sys/kernel/security/ima/policy": undefined,
          "/sys/kernel/security/lsm": undefined,
        }),
      ),
    ).includes("securityfs"),
  );
  ok(
    errorOf(
      await probeIma(
        fsWith({ "/sys/kernel/security/ima/policy": denied(), "/sys/kernel/security/ima/x": "" }),
      ),
    ).includes("CONFIG_IMA_READ_POLICY"),
  );
  // the action token only: appraise and appraise_*, not dont_appraise nor an option
  eq(
    await probeIma(
      fsWith({
        "/sys/kernel/security/ima/policy": "dont_appraise fsmagic=0x9fa0\n" +
          "measure appraise_type=imasig\nappraise_x func=BPRM_CHECK\n  appraise fowner=4242\n" +
          "appraisefoo func=MMAP_CHECK\n",
      }),
    ),
    { status: "supported", value: { appraisal: true, appraise_rules: 2 } },
  );
  // written once on a kernel without CONFIG_IMA_WRITE_POLICY: the file is gone
  const gone = errorOf(
    await probeIma(
      fsWith({
        "/sys/kernel/security/ima/policy": new Deno.errors.NotFound("x"),
        "/sys/kernel/security/ima/x": "",
      }),
    ),
  );
  ok(gone.includes("does not exist") && gone.includes("CONFIG_IMA_WRITE_POLICY"), gone);
});

Deno.test("fs-verity: BTF evidence, none, no query, failing query", async () => {
  const fs = fsWith({});
  eq(await probeFsVerity(fs, (n) => n === "bpf_get_fsverity_digest"), {
    status: "supported",
    value: { evidence: "BTF bpf_get_fsverity_digest" },
  });
  ok(reasonOf(await probeFsVerity(fs, () => false)).includes("CONFIG_FS_VERITY"));
  errorOf(await probeFsVerity(fs, null));
  ok(
    errorOf(
      await probeFsVerity(fs, () => {
        throw new Error("EIO");
      }),
    ).includes("EIO"),
  );
});

/** No next-gen feature. */
const NG_NONE: NextGenBpf = {
  arena: false,
  user_ringbuf: false,
  open_coded_iterators: false,
  xattr_kfuncs: false,
  bpf_send_signal_task: false,
  bpf_token: false,
  bpf_ima_helpers: false,
};

Deno.test("next-gen BPF: each field from its own symbol", () => {
  const r = probeNextGenBpf((n) =>
    ["bpf_arena_alloc_pages", "bpf_iter_num_new", "bpf_ima_file_hash"].includes(n)
  );
  eq(r, {
    status: "supported",
    value: { ...NG_NONE, arena: true, open_coded_iterators: true, bpf_ima_helpers: true },
  });
  errorOf(probeNextGenBpf(null));
});

Deno.test("hooks: 12 rows, kernel support from BTF, required from the needs and file hook", () => {
  const none = {
    network: false,
    exec_identity: false,
    exec_content: false,
    exec_allowlist: false,
    exec_trusted: false,
    exec_runtime_deps: false,
    ima_appraisal: false,
  };
  const t = probeHooks((n) => n !== "bpf_lsm_socket_bind", { ...none, network: true });
  eq(Object.keys(t), [...HOOK_NAMES]);
  strictEqual(HOOK_NAMES.length, 12);
  eq(t.lsm_socket_bind, {
    kernel_supported: false,
    required: true,
    btf_symbol: "bpf_lsm_socket_bind",
  });
  eq(t.lsm_file_mmap, { kernel_supported: true, required: false, btf_symbol: "bpf_lsm_mmap_file" });
  strictEqual(t.lsm_socket_listen.required, false);
  strictEqual(probeHooks(null, none).lsm_file_open.kernel_supported, null);
  strictEqual(hookRequired("lsm_inode_permission", none, "both"), true);
  strictEqual(hookRequired("lsm_file_open", none, "inode"), false);
  strictEqual(hookRequired("lsm_file_mmap", { ...none, exec_runtime_deps: true }, "file"), true);
  strictEqual(hookRequired("lsm_bprm_ima_check", { ...none, ima_appraisal: true }, "file"), true);
  strictEqual(hookRequired("lsm_bprm_ima_check", { ...none, exec_content: true }, "file"), true);
  strictEqual(hookRequired("lsm_bprm_ima_check", none, "file"), false);
});

Deno.test("LSM attach trial: attached, EPERM on load, verifier, attach failure, other, no trial", () => {
  eq(probeBpfLsmAttach(() => ["lsm/file_open"]), {
    status: "supported",
    value: { section: "lsm/file_open" },
  });
  ok(reasonOf(probeBpfLsmAttach(() => [])).includes("bpf_lsm_file_open"));
  const eperm = () => {
    throw new NativeCallError("aegis_obj_load", 1, "aegis");
  };
  ok(reasonOf(probeBpfLsmAttach(eperm)).includes("EPERM"));
  const verifier = () => {
    throw new VerifierError("aegis_file_open", 22, ["R1 invalid mem access"]);
  };
  ok(reasonOf(probeBpfLsmAttach(verifier)).includes("verifier"));
  const attach = () => {
    throw new AegisError("ATTACH_CONTRACT_MISMATCH", "not attached: lsm/file_open (ENOTSUPP)");
  };
  ok(reasonOf(probeBpfLsmAttach(attach)).includes("did not attach"));
  ok(
    errorOf(probeBpfLsmAttach(() => {
      throw new Error("boom");
    })).includes("boom"),
  );
  ok(errorOf(probeBpfLsmAttach(null, "not running as root")).includes("not running as root"));
});

// ---- the probes behind the C++ contract's features (docs/posture.md): each on fixtures,
// present / absent / unreadable → supported / unsupported / unknown

Deno.test("ipe: listed, not listed (boot remedy), LSM list missing or unreadable", async () => {
  eq(await probeIpe(fsWith({ "/sys/kernel/security/lsm": "lockdown,capability,ipe,bpf\n" })), {
    status: "supported",
    value: true,
  });
  const no = reasonOf(await probeIpe(fsWith({})));
  ok(no.includes("CONFIG_SECURITY_IPE") && no.includes(",ipe"), no);
  ok(
    errorOf(await probeIpe(fsWith({ "/sys/kernel/security/lsm": undefined }))).includes(
      "securityfs",
    ),
  );
  ok(errorOf(await probeIpe(fsWith({ "/sys/kernel/security/lsm": denied() }))).includes("denied"));
});

Deno.test("sched_ext: the sysfs directory (with its state), absent, not a directory, unreadable", async () => {
  eq(await probeSchedExt(fsWith({})), { status: "supported", value: { state: "disabled" } });
  eq(
    await probeSchedExt(
      fsWith({ "/sys/kernel/sched_ext/state": denied(), "/sys/kernel/sched_ext/root/ops": "" }),
    ),
    { status: "supported", value: { state: null } },
    "the directory is the evidence; an unreadable state is only a detail",
  );
  ok(
    reasonOf(await probeSchedExt(fsWith({ "/sys/kernel/sched_ext/state": undefined }))).includes(
      "CONFIG_SCHED_CLASS_EXT",
    ),
  );
  ok(
    reasonOf(
      await probeSchedExt(
        fsWith({ "/sys/kernel/sched_ext/state": undefined, "/sys/kernel/sched_ext": "x" }),
      ),
    ).includes("not a directory"),
  );
  ok(
    errorOf(
      await probeSchedExt(
        fsWith({ "/sys/kernel/sched_ext/state": undefined, "/sys/kernel/sched_ext": denied() }),
      ),
    ).includes("cannot stat"),
  );
});

Deno.test("fs-verity without BTF: the sysctl directory is evidence, its absence is not; unreadable", async () => {
  const withDir = fsWith({ "/proc/sys/fs/verity/require_signatures": "0\n" });
  eq(await probeFsVerity(withDir, null), {
    status: "supported",
    value: { evidence: "/proc/sys/fs/verity" },
  });
  eq(
    await probeFsVerity(withDir, () => {
      throw new Error("EIO");
    }),
    { status: "supported", value: { evidence: "/proc/sys/fs/verity" } },
    "a failing BTF query falls back to the directory",
  );
  ok(errorOf(await probeFsVerity(fsWith({}), null)).includes("does not rule fs-verity out"));
  ok(
    errorOf(await probeFsVerity(fsWith({ "/proc/sys/fs/verity": denied() }), null)).includes(
      "cannot stat",
    ),
  );
  // BTF says no: absent, whatever the directory
  ok(reasonOf(await probeFsVerity(fsWith({}), () => false)).includes("CONFIG_FS_VERITY"));
});

Deno.test("landlock ABI: from the system call; ENOSYS, EOPNOTSUPP, other errors and a throw stay unknown", () => {
  const listed = { status: "supported" as const, value: ["landlock", "bpf"] };
  eq(probeLandlock(listed, () => 7), { status: "supported", value: { abi: 7 } });
  const abiNote = (q: () => number) => {
    const r = probeLandlock(listed, q);
    strictEqual(r.status, "supported");
    strictEqual(r.status === "supported" && r.value.abi, null);
    return r.status === "supported" ? r.value.abi_note ?? "" : "";
  };
  ok(abiNote(() => -38).includes("ENOSYS"));
  ok(abiNote(() => -95).includes("EOPNOTSUPP"));
  ok(abiNote(() => -1).includes("errno 1"));
  ok(
    abiNote(() => {
      throw new Error("dlopen failed");
    }).includes("dlopen failed"),
  );
  let asked = false;
  reasonOf(probeLandlock({ status: "supported", value: ["bpf"] }, () => (asked = true, 7)));
  strictEqual(asked, false, "not listed: the call is not needed");
});

Deno.test("next-gen BPF: IMA helpers (either function), BPF token; no query or a failing one is unknown", () => {
  const only = (...names: string[]) => probeNextGenBpf((n) => names.includes(n));
  const v = (r: ProbeResult<NextGenBpf>) => (r.status === "supported" ? r.value : null);
  strictEqual(v(only("bpf_ima_inode_hash"))?.bpf_ima_helpers, true);
  strictEqual(v(only("bpf_ima_file_hash"))?.bpf_ima_helpers, true);
  strictEqual(v(only("bpf_token_create"))?.bpf_token, true);
  eq(v(only()), NG_NONE);
  ok(errorOf(probeNextGenBpf(null)).includes("no BTF query"));
  ok(
    errorOf(probeNextGenBpf(() => {
      throw new Error("EIO");
    })).includes("EIO"),
  );
});

Deno.test("binary_auth: all four facts; one missing is unsupported naming it; one unknown is unknown", () => {
  const yes: ProbeResult<unknown> = { status: "supported", value: true };
  const no: ProbeResult<unknown> = { status: "unsupported", reason: "x" };
  const unk: ProbeResult<unknown> = { status: "unknown", error: "x" };
  const ng = (xattr: boolean): ProbeResult<NextGenBpf> => ({
    status: "supported",
    value: { ...NG_NONE, xattr_kfuncs: xattr },
  });
  eq(probeBinaryAuth(yes, yes, yes, ng(true)), { status: "supported", value: true });
  ok(reasonOf(probeBinaryAuth(no, yes, yes, ng(true))).includes("fs-verity"));
  ok(reasonOf(probeBinaryAuth(yes, yes, yes, ng(false))).includes("bpf_get_file_xattr"));
  ok(reasonOf(probeBinaryAuth(yes, yes, no, ng(true))).includes("an LSM program attaches"));
  ok(reasonOf(probeBinaryAuth(no, unk, yes, ng(true))).includes("fs-verity"), "a no wins");
  ok(errorOf(probeBinaryAuth(yes, unk, yes, ng(true))).includes("bpf in the LSM list"));
  ok(
    errorOf(probeBinaryAuth(yes, yes, yes, { status: "unknown", error: "no BTF" })).includes(
      "bpf_get_file_xattr",
    ),
  );
});
