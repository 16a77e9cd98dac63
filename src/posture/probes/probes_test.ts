import { deepStrictEqual as eq, ok, strictEqual } from "node:assert/strict";
import { AegisError, NativeCallError, VerifierError } from "../../errors.ts";
import { fsTypeAt, parseMountinfo } from "../../util/mountinfo.ts";
import { fixtureFs, type ProbeResult } from "../probe.ts";
import { hostFiles, MOUNTINFO_OK } from "../posture_testing.ts";
import { probeBpfLsmAttach } from "./bpf_lsm_attach.ts";
import { probeBpfSyscall } from "./bpf_syscall.ts";
import { probeBpffs } from "./bpffs.ts";
import { probeBtf } from "./btf.ts";
import { probeCgroupV2 } from "./cgroup_v2.ts";
import { probeFsVerity } from "./fs_verity.ts";
import { HOOK_NAMES, hookRequired, probeHooks } from "./hooks.ts";
import { probeIma } from "./ima.ts";
import { kernelAtLeast, parseKernelRelease, probeKernelVersion } from "./kernel_version.ts";
import { probeLandlock } from "./landlock.ts";
import { probeNextGenBpf } from "./next_gen.ts";
import { probeRingbuf } from "./ringbuf.ts";
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

Deno.test("landlock: listed (ABI honestly unknown), not listed (boot remedy), no LSM list", () => {
  eq(probeLandlock({ status: "supported", value: ["landlock", "bpf"] }), {
    status: "supported",
    value: { abi: null },
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
});

Deno.test("fs-verity: BTF evidence, none, no query, failing query", () => {
  eq(probeFsVerity((n) => n === "bpf_get_fsverity_digest"), {
    status: "supported",
    value: { symbol: "bpf_get_fsverity_digest" },
  });
  ok(reasonOf(probeFsVerity(() => false)).includes("CONFIG_FS_VERITY"));
  errorOf(probeFsVerity(null));
  ok(
    errorOf(probeFsVerity(() => {
      throw new Error("EIO");
    })).includes("EIO"),
  );
});

Deno.test("next-gen BPF: each field from its own symbol; binary_auth needs evidence", () => {
  const r = probeNextGenBpf((n) =>
    ["bpf_arena_alloc_pages", "bpf_iter_num_new", "scx_bpf_dispatch"].includes(n)
  );
  eq(r, {
    status: "supported",
    value: {
      arena: true,
      user_ringbuf: false,
      sched_ext: true,
      open_coded_iterators: true,
      xattr_kfuncs: false,
      bpf_send_signal_task: false,
      binary_auth: false,
      bpf_token: false,
    },
  });
  errorOf(probeNextGenBpf(null));
});

Deno.test("hooks: 12 rows, kernel support from BTF, required from the needs and file hook", () => {
  const none = {
    network: false,
    exec_identity: false,
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
