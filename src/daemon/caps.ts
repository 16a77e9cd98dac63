/**
 * The daemon's capabilities once it has started (docs/security.md,
 * "Capabilities"): the ones its running work needs are kept, every other one
 * is dropped from every thread's bounding, effective and permitted sets
 * (ffi/aegis_caps.c), and what the kernel then holds is read back from
 * /proc/self/task/N/status and reported (capabilities.json
 * `self_protection.capabilities`).
 *
 * @module
 */
import { literal, log } from "../log.ts";
import type { Shim } from "../native/mod.ts";
import type { CapabilitiesDrop } from "../posture/report.ts";

/** Linux capability numbers (include/uapi/linux/capability.h). */
export const CAPABILITY_BITS: Readonly<Record<string, number>> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_LINUX_IMMUTABLE: 9,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_IPC_LOCK: 14,
  CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16,
  CAP_SYS_RAWIO: 17,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_BOOT: 22,
  CAP_SYS_NICE: 23,
  CAP_SYS_RESOURCE: 24,
  CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26,
  CAP_MKNOD: 27,
  CAP_LEASE: 28,
  CAP_AUDIT_WRITE: 29,
  CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31,
  CAP_MAC_OVERRIDE: 32,
  CAP_MAC_ADMIN: 33,
  CAP_SYSLOG: 34,
  CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36,
  CAP_AUDIT_READ: 37,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
  CAP_CHECKPOINT_RESTORE: 40,
};

/**
 * What the running daemon keeps, and why. Everything it does only while
 * starting (binding a port below 1024, raising limits, loading and
 * attaching programs, mounting the bpffs) is done before the drop. The set
 * is reasoned from what the code does, not measured by dropping each one;
 * the ones marked "precaution" are not known to be needed.
 */
export const KEPT_CAPABILITIES: Readonly<Record<string, string>> = {
  CAP_BPF: "map reads and writes of every apply, live rule edit, proof and metrics read",
  CAP_PERFMON: "with CAP_BPF: the maps of tracing programs",
  CAP_SYS_ADMIN:
    "bpf() commands that open objects by id, and kernels that predate CAP_BPF; the proof's cgroup",
  CAP_NET_ADMIN: "precaution: the network maps of cgroup socket programs",
  CAP_SYS_RESOURCE: "precaution: maps created by an apply on kernels that charge RLIMIT_MEMLOCK",
  CAP_DAC_OVERRIDE: "rule paths and scanned files in any directory, whoever owns it",
  CAP_DAC_READ_SEARCH: "as CAP_DAC_OVERRIDE, for directory search",
  CAP_FOWNER: "precaution: modes of state files and snapshots, whoever created them",
  CAP_CHOWN: "--log-file-group on a log file reopened after rotation",
  CAP_KILL: "the signal fallback (--enforce-fallback signal) kills offenders of any user",
  CAP_SYS_PTRACE: "/proc/PID/exe of other users' processes (the survival list)",
  CAP_SYS_MODULE: "the kernel proof's init_module attempt (refused before the LSM hook without it)",
};

/** The bit mask of KEPT_CAPABILITIES. */
export function keepMask(kept: readonly string[] = Object.keys(KEPT_CAPABILITIES)): bigint {
  let m = 0n;
  for (const name of kept) {
    const bit = CAPABILITY_BITS[name];
    if (bit === undefined) throw new Error(`unknown capability ${name}`);
    m |= 1n << BigInt(bit);
  }
  return m;
}

/** The names of the bits set in `mask`, in number order. */
export function capabilityNames(mask: bigint): string[] {
  // CAPABILITY_BITS is written in number order
  return Object.entries(CAPABILITY_BITS)
    .filter(([, bit]) => (mask >> BigInt(bit)) & 1n)
    .map(([name]) => name);
}

/** One thread's sets, from /proc/self/task/N/status (hex CapEff/CapPrm/CapBnd/CapAmb/CapInh). */
export interface ThreadCaps {
  tid: string;
  eff: bigint;
  prm: bigint;
  bnd: bigint;
  amb: bigint;
  inh: bigint;
}

/** Parse a status file's capability lines; null when one is missing. */
export function parseThreadCaps(tid: string, status: string): ThreadCaps | null {
  const get = (k: string): bigint | null => {
    const m = status.match(new RegExp(`^${k}:\\s*([0-9a-f]+)$`, "m"));
    return m ? BigInt(`0x${m[1]}`) : null;
  };
  const eff = get("CapEff"), prm = get("CapPrm"), bnd = get("CapBnd");
  const amb = get("CapAmb"), inh = get("CapInh");
  if (eff === null || prm === null || bnd === null || inh === null) return null;
  return { tid, eff, prm, bnd, amb: amb ?? 0n, inh };
}

/**
 * The threads that hold anything outside `keep` (in any set), as
 * "tid: CAP_X, CAP_Y"; empty when every thread holds only kept ones.
 */
export function capsBeyond(threads: readonly ThreadCaps[], keep: bigint): string[] {
  const out: string[] = [];
  for (const t of threads) {
    const extra = (t.eff | t.prm | t.bnd | t.amb | t.inh) & ~keep;
    if (extra !== 0n) out.push(`thread ${t.tid}: ${capabilityNames(extra).join(", ")}`);
  }
  return out;
}

/** What the kernel holds for every thread of this process now. */
export function readThreadCaps(): ThreadCaps[] {
  const out: ThreadCaps[] = [];
  for (const e of Deno.readDirSync("/proc/self/task")) {
    try {
      const c = parseThreadCaps(e.name, Deno.readTextFileSync(`/proc/self/task/${e.name}/status`));
      if (c) out.push(c);
    } catch { /* the thread ended meanwhile */ }
  }
  return out;
}

export interface CapsDeps {
  shim: Pick<Shim, "capsLimit">;
  /** every thread's sets, read after the drop (readThreadCaps) */
  read: () => ThreadCaps[];
}

/**
 * `run --drop-caps` (the default): keep KEPT_CAPABILITIES on every thread,
 * then read back what the kernel holds. A refused drop, or a thread still
 * holding more, is logged and reported (limited: false); the agent runs on.
 */
export function limitCapabilities(deps: CapsDeps, on: boolean): CapabilitiesDrop {
  const keep = keepMask();
  const kept = capabilityNames(keep);
  if (!on) {
    log("run").warn(literal("capabilities: kept all (run --no-drop-caps)"));
    return { limited: false, kept: [], dropped: [], threads: 0, detail: "run --no-drop-caps" };
  }
  const before = deps.read();
  const held = before.reduce((m, t) => m | t.eff | t.prm | t.bnd, 0n);
  const dropped = capabilityNames(held & ~keep);
  let threads: number;
  try {
    threads = deps.shim.capsLimit(keep);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    log("run").error(literal(`capabilities: not limited: ${why}`));
    return { limited: false, kept, dropped: [], threads: 0, detail: `not limited: ${why}` };
  }
  const beyond = capsBeyond(deps.read(), keep);
  if (beyond.length > 0) {
    const detail = `still held after the drop: ${beyond.slice(0, 4).join("; ")}` +
      (beyond.length > 4 ? ` (and ${beyond.length - 4} more threads)` : "");
    log("run").error(literal(`capabilities: ${detail}`));
    return { limited: false, kept, dropped, threads, detail };
  }
  const detail = `${threads} threads keep ${kept.length} capabilities; ` +
    `${dropped.length} dropped from the bounding, effective and permitted sets`;
  log("run").info(literal(`capabilities: ${detail}`), { kept, dropped });
  return { limited: true, kept, dropped, threads, detail };
}
