/**
 * What `aegisbpf run` asks of the daemon (src/cli/run.ts builds it from the
 * command line) and the faults a test injects through it.
 *
 * @module
 */
import type { FileHookChoice } from "../bpf/engine.ts";
import type { EventFormat } from "../events/format.ts";
import type { SeccompMode } from "../posture/report.ts";
import type { GateMode } from "./gate.ts";

export interface DaemonOptions {
  audit?: true;
  enforceFallback?: "signal";
  /**
   * `--enforce-signal`: a signal the LSM hooks send with a deny (EPERM as
   * ever); absent = none. Never in audit, emergency disable or break-glass.
   */
  enforceSignal?: EnforceSignal;
  /** `--kill-escalation`: SIGKILL instead on a process's threshold-th deny in the window */
  killEscalation?: KillEscalation;
  /**
   * `--self-protect`: kernel guards over the agent's pins, maps, links, state
   * and config, executable and processes (bpf/self.bpf.c; docs/security.md).
   * Only when enforcing with BPF LSM; never in audit, emergency or break-glass.
   */
  selfProtect?: true;
  /**
   * `--seccomp`: the daemon's system-call allow list on every thread once it
   * has started (ffi/aegis_seccomp_list.h; docs/security.md, "Seccomp").
   * Absent = "enforce".
   */
  seccomp?: SeccompMode;
  /**
   * `--no-drop-caps` (false): keep every capability. Absent/true: keep only
   * what the running daemon needs (src/daemon/caps.ts), on every thread.
   */
  dropCaps?: boolean;
  /**
   * `--tamper-degrade-threshold`: refused tamper attempts within 60 s that
   * make the posture DEGRADED (TAMPER_ATTEMPTS); 0 = never. Default
   * TAMPER_DEGRADE_THRESHOLD. Only counts while the guards are armed.
   */
  tamperDegradeThreshold?: number;
  enforceGateMode: GateMode;
  strictDegrade?: true;
  lsmHook: FileHookChoice;
  traceOpens?: true;
  /** `--exec-argv off`: no exec_argv events (argv capture is on by default) */
  execArgv?: boolean;
  ringbufBytes: number;
  /** "ADDR:PORT" or "off" */
  httpListen: string;
  httpAllowRemote?: true;
  /** "ADDR:PORT" or "off": /readyz and /livez only, for a pod's probes (src/http/probe.ts) */
  probeListen?: string;
  /** "ADDR:PORT" or "off": /metrics only, for Prometheus on the pod network */
  metricsListen?: string;
  /** "stdout" or "file:PATH" */
  log: string;
  /** how event lines are written to `log` (default json; /events is always json) */
  eventFormat?: EventFormat;
  /** `--log-file-mode` (file_perms.ts); the default 0600 when absent */
  logFileMode?: number;
  /** `--log-file-group` as a gid; the group is left alone when absent */
  logFileGid?: number;
  /** `--event-sample-rate`: 1 in N block events of each rule written (default 1: all) */
  eventSampleRate?: number;
  /** `--event-dedup-window`, seconds: repeated block events folded (absent: off) */
  eventDedupWindowSeconds?: number;
  /** denies per second (10 s average) above which the posture is DEGRADED */
  denyRateThreshold?: number;
  /** seconds between enforcement proofs (default 30); 0 = off (warned) */
  proofIntervalSeconds?: number;
  /** a policy file or signed bundle to apply at start and on SIGHUP */
  policy?: string;
  /** only signed bundles: for `policy` and the stored policy restored at start */
  requireSignature?: true;
  /** test fault injection (tests/lib/agent_main.ts); none in the shipped agent */
  faults?: Faults;
}

/** Refused tamper attempts within 60 s that degrade the posture, by default. */
export const TAMPER_DEGRADE_THRESHOLD = 3;

/** The signals `run --enforce-signal` sends with a deny (none: the option's default). */
export type EnforceSignal = "term" | "int" | "kill";

/** Signal numbers of EnforceSignal (AEGIS_CFG_ENFORCE_SIGNAL). */
export const SIGNAL_NUMBERS: Record<EnforceSignal, number> = { int: 2, kill: 9, term: 15 };

/** `run --kill-escalation`: N denies of one process within the window → SIGKILL. */
export interface KillEscalation {
  threshold: number;
  windowMs: number;
}

/**
 * Faults a test injects through DaemonOptions (tests/lib/agent_main.ts; the
 * shipped entry point passes none). Never read from the environment here.
 */
export interface Faults {
  /**
   * LSM hooks (by hook name: "file_open") or other BTF functions (by name:
   * "bpf_ima_file_hash") treated as absent from the kernel's BTF
   */
  hideHooks: Set<string>;
  /** program sections treated as failed to attach */
  failAttach: Set<string>;
  /**
   * Treat "bpf" as in the active LSM list, so an lsm-off kernel gets its
   * programs attached in enforce mode — where they deny nothing; the
   * enforcement proof must catch it (VM tests).
   */
  assumeBpfLsm: boolean;
}

export const NO_FAULTS: Faults = {
  hideHooks: new Set(),
  failAttach: new Set(),
  assumeBpfLsm: false,
};

/** The kernel's BTF as the probes and the engine see it: hooks a test hid are absent. */
export function btfHasFuncWith(
  faults: Faults,
  has: (name: string) => boolean,
): (name: string) => boolean {
  return (name) => !faults.hideHooks.has(name.replace(/^bpf_lsm_/, "")) && has(name);
}
