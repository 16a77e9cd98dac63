/**
 * Every capability probe in one report (docs/posture.md). One call feeds the
 * capability report, the health answer, `aegisbpf probe` and the daemon's
 * startup log.
 *
 * @module
 */
import { NO_NEEDS, type PolicyNeeds } from "../needs.ts";
import { type BtfFuncQuery, hostFs, probeBool, type ProbeFs, type ProbeResult } from "../probe.ts";
import { type LsmAttachTrial, probeBpfLsmAttach } from "./bpf_lsm_attach.ts";
import { type BpfSyscall, probeBpfSyscall } from "./bpf_syscall.ts";
import { probeBtf } from "./btf.ts";
import { probeBpffs } from "./bpffs.ts";
import { type CgroupV2, probeCgroupV2 } from "./cgroup_v2.ts";
import { probeFsVerity } from "./fs_verity.ts";
import {
  allSymbols,
  EXEC_IDENTITY_SYMBOLS,
  type FileHookChoice,
  type HookTable,
  probeHooks,
} from "./hooks.ts";
import { type Ima, probeIma } from "./ima.ts";
import { type KernelVersion, probeKernelVersion } from "./kernel_version.ts";
import { probeBinaryAuth } from "./binary_auth.ts";
import { ipeFromLsms } from "./ipe.ts";
import { type Landlock, type LandlockAbiQuery, probeLandlock } from "./landlock.ts";
import { probeActiveLsms, probeBpfLsmActive } from "./lsm.ts";
import { type NextGenBpf, probeNextGenBpf } from "./next_gen.ts";
import { probeRingbuf, type Ringbuf } from "./ringbuf.ts";
import { probeSchedExt, type SchedExt } from "./sched_ext.ts";
import { probeTracepoints } from "./tracepoints.ts";

export interface ProbeOptions {
  /** default: the host */
  fs?: ProbeFs;
  /** BTF FUNC query (the shim's btfHasFunc); null/absent: symbol probes are unknown */
  hasBtfFunc?: BtfFuncQuery;
  /** the shim's landlock_create_ruleset version call; null/absent: ABI unknown */
  landlockAbi?: LandlockAbiQuery;
  /** the LSM attach trial (needs root and the shim); null/absent: unknown */
  lsmTrial?: LsmAttachTrial | null;
  /** why there is no trial, for the unknown result */
  lsmTrialUnavailable?: string;
  /** what the policy needs (marks hooks required); default: nothing beyond the core */
  needs?: PolicyNeeds;
  fileHook?: FileHookChoice;
}

/** docs/posture.md future_lsm: evidence of newer LSMs (null = could not tell). */
export interface FutureLsm {
  active_lsms: string[];
  landlock: boolean | null;
  landlock_abi: number | null;
  ipe: boolean | null;
  fs_verity: boolean | null;
  bpf_token: boolean | null;
}

export interface ProbeReport {
  kernel_version: ProbeResult<KernelVersion>;
  btf: ProbeResult<{ path: string; size: number }>;
  bpffs: ProbeResult<{ mount_point: string }>;
  cgroup_v2: ProbeResult<CgroupV2>;
  bpf_syscall: ProbeResult<BpfSyscall>;
  ringbuf: ProbeResult<Ringbuf>;
  tracepoints: ProbeResult<{ tracefs: string }>;
  active_lsms: ProbeResult<string[]>;
  /** `bpf` is in the active LSM list */
  bpf_lsm_active: ProbeResult;
  /** a trial LSM program loads and attaches (not the same as enforcing) */
  bpf_lsm_attach: ProbeResult<{ section: string }>;
  landlock: ProbeResult<Landlock>;
  ima: ProbeResult<Ima>;
  fs_verity: ProbeResult<{ evidence: string }>;
  /** "ipe" is in the active LSM list */
  ipe: ProbeResult;
  sched_ext: ProbeResult<SchedExt>;
  next_gen_bpf: ProbeResult<NextGenBpf>;
  /** derived: fs-verity, usable BPF LSM and the xattr kfunc (probes/binary_auth.ts) */
  binary_auth: ProbeResult;
  /** the exec identity hooks all exist in BTF; null = unknown */
  exec_identity_hooks: boolean | null;
  hooks: HookTable;
  future_lsm: FutureLsm;
  /** where symbol evidence came from */
  symbol_source: "btf" | "none";
}

/** Run every probe. Read-only except the LSM attach trial, when one is given. */
export async function probeAll(opts: ProbeOptions = {}): Promise<ProbeReport> {
  const fs = opts.fs ?? hostFs;
  const btfq = opts.hasBtfFunc ?? null;
  const needs = opts.needs ?? NO_NEEDS;
  const [kernel, btf, bpffs, cgroup, syscall, tracepoints, lsms, bpfLsm, ima, fsVerity, schedExt] =
    await Promise.all([
      probeKernelVersion(fs),
      probeBtf(fs),
      probeBpffs(fs),
      probeCgroupV2(fs),
      probeBpfSyscall(fs),
      probeTracepoints(fs),
      probeActiveLsms(fs),
      probeBpfLsmActive(fs),
      probeIma(fs),
      probeFsVerity(fs, btfq),
      probeSchedExt(fs),
    ]);
  const landlock = probeLandlock(lsms, opts.landlockAbi ?? null);
  const ipe = ipeFromLsms(lsms);
  const nextGen = probeNextGenBpf(btfq);
  const lsmAttach = probeBpfLsmAttach(opts.lsmTrial ?? null, opts.lsmTrialUnavailable);
  return {
    kernel_version: kernel,
    btf,
    bpffs,
    cgroup_v2: cgroup,
    bpf_syscall: syscall,
    ringbuf: probeRingbuf(kernel, btfq),
    tracepoints,
    active_lsms: lsms,
    bpf_lsm_active: bpfLsm,
    bpf_lsm_attach: lsmAttach,
    landlock,
    ima,
    fs_verity: fsVerity,
    ipe,
    sched_ext: schedExt,
    next_gen_bpf: nextGen,
    binary_auth: probeBinaryAuth(fsVerity, bpfLsm, lsmAttach, nextGen),
    exec_identity_hooks: allSymbols(btfq, EXEC_IDENTITY_SYMBOLS),
    hooks: probeHooks(btfq, needs, opts.fileHook ?? "file"),
    future_lsm: {
      active_lsms: lsms.status === "supported" ? lsms.value : [],
      landlock: probeBool(landlock),
      landlock_abi: landlock.status === "supported" ? landlock.value.abi : null,
      ipe: probeBool(ipe),
      fs_verity: probeBool(fsVerity),
      bpf_token: nextGen.status === "supported" ? nextGen.value.bpf_token : null,
    },
    symbol_source: btfq ? "btf" : "none",
  };
}

export type { HookName, HookRow, HookTable } from "./hooks.ts";
export { HOOK_NAMES, HOOK_SYMBOLS } from "./hooks.ts";
export type { LsmAttachTrial } from "./bpf_lsm_attach.ts";
export { engineLsmTrial } from "./bpf_lsm_attach.ts";
