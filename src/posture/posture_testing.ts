/**
 * Test fixtures for the posture code: a healthy BPF-LSM host's files (as
 * text), a BTF symbol set, and a probe report built from them through the
 * real probes. Used by the unit tests only.
 *
 * @module
 */
import type { AgentFacts } from "./agent_facts.ts";
import { NO_NEEDS, type PolicyNeeds } from "./needs.ts";
import { fixtureFs } from "./probe.ts";
import type { LsmAttachTrial } from "./probes/bpf_lsm_attach.ts";
import { HOOK_SYMBOLS } from "./probes/hooks.ts";
import { probeAll, type ProbeReport } from "./probes/mod.ts";
import { NEXT_GEN_SYMBOLS } from "./probes/next_gen.ts";

export const MOUNTINFO_OK = [
  "22 1 0:21 / /proc rw,nosuid - proc proc rw",
  "25 23 0:24 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate",
  "30 23 0:26 / /sys/fs/bpf rw,nosuid shared:9 - bpf bpf rw,mode=700",
  "31 23 0:7 / /sys/kernel/security rw - securityfs securityfs rw",
  "32 23 0:13 / /sys/kernel/tracing rw - tracefs tracefs rw",
].join("\n") + "\n";

/** The files of a host where everything is present. */
export function hostFiles(): Record<string, string | Error> {
  return {
    "/proc/sys/kernel/osrelease": "6.12.38+deb13-amd64\n",
    "/proc/sys/kernel/unprivileged_bpf_disabled": "2\n",
    "/proc/self/mountinfo": MOUNTINFO_OK,
    "/sys/kernel/btf/vmlinux": "BTF-BLOB",
    "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
    "/sys/kernel/tracing/events/syscalls/sys_enter_openat/id": "700\n",
    "/sys/kernel/security/lsm": "lockdown,capability,landlock,yama,apparmor,bpf",
    "/sys/kernel/sched_ext/state": "disabled\n",
    "/sys/kernel/security/ima/policy":
      "measure func=BPRM_CHECK\nappraise func=BPRM_CHECK appraise_type=imasig\n",
  };
}

/** Every symbol the probes ask about. */
export function allSymbols(): Set<string> {
  return new Set([
    ...Object.values(HOOK_SYMBOLS),
    ...Object.values(NEXT_GEN_SYMBOLS).flat(),
    "bpf_ringbuf_reserve",
    "fsverity_ioctl_enable",
    "bpf_lsm_bprm_creds_for_exec",
    "bpf_lsm_bprm_committed_creds",
    "bpf_lsm_task_alloc",
  ]);
}

export const TRIAL_OK: LsmAttachTrial = (): string[] => ["lsm/file_open"];

export interface FixtureOptions {
  files?: Record<string, string | Error | undefined>;
  symbols?: Set<string> | null;
  trial?: LsmAttachTrial | null;
  /** the Landlock ABI call (default: ABI 6); null: no shim */
  landlockAbi?: (() => number) | null;
  needs?: PolicyNeeds;
}

/** A probe report from fixture files, symbols and trial (undefined file = removed). */
export function fixtureReport(o: FixtureOptions = {}): Promise<ProbeReport> {
  const files: Record<string, string | Error> = hostFiles();
  for (const [k, v] of Object.entries(o.files ?? {})) {
    if (v === undefined) delete files[k];
    else files[k] = v;
  }
  const syms = o.symbols === undefined ? allSymbols() : o.symbols;
  return probeAll({
    fs: fixtureFs(files),
    hasBtfFunc: syms === null ? null : (n) => syms.has(n),
    lsmTrial: o.trial === undefined ? TRIAL_OK : o.trial,
    landlockAbi: o.landlockAbi === undefined ? () => 6 : o.landlockAbi,
    needs: o.needs ?? NO_NEEDS,
  });
}

/** An agent whose embedded object verifies and whose maps are all pinned. */
export const AGENT_OK: AgentFacts = {
  object: {
    path: "embedded:aegis.bpf.o",
    found: true,
    hash_found: true,
    hash_verified: true,
    required_maps: true,
    network_maps: true,
  },
  pins: { present: true, required: true, network: true },
};
