/**
 * The names and shapes the daemon's parts share: runtime states, reason and
 * blocker codes, the event bus, the well-known paths and the interfaces the
 * control socket serves. One definition here; every module imports it.
 *
 * @module
 */

/** `runtime_state` (docs/posture.md). */
export const RUNTIME_STATES = ["ENFORCE", "ENFORCE_SIGNAL", "AUDIT_FALLBACK", "DEGRADED"] as const;
export type RuntimeState = (typeof RUNTIME_STATES)[number];

/** `reason_code` of a state_change (docs/posture.md). */
export const REASON_CODES = [
  "STARTUP_ENFORCE_READY",
  "STARTUP_AUDIT_MODE",
  "CAPABILITY_AUDIT_ONLY",
  "ENFORCE_SIGNAL_FALLBACK",
  "BREAK_GLASS_ACTIVE",
  "BPF_LOAD_FAILED",
  "BPF_VERIFIER_REJECT",
  "ATTACH_CONTRACT_MISMATCH",
  "NETWORK_HOOK_UNAVAILABLE",
  "EXEC_IDENTITY_UNAVAILABLE",
  "RINGBUF_CREATE_FAILED",
  "RINGBUF_POLL_FAILED",
  "PRIORITY_RINGBUF_DROPS",
  "MAP_CAPACITY_EXCEEDED",
  "DENY_RATE_THRESHOLD_EXCEEDED",
  "TAMPER_ATTEMPTS",
  "POLICY_APPLY_FAILED",
  "ENFORCEMENT_PROOF_FAILED",
  "RECOVERED",
] as const;
export type ReasonCode = (typeof REASON_CODES)[number];

/** Enforce blockers (docs/posture.md). */
export const BLOCKER_CODES = [
  "CAPABILITY_AUDIT_ONLY",
  "BPF_LSM_DISABLED",
  "CORE_UNSUPPORTED",
  "BPFFS_UNMOUNTED",
  "NETWORK_HOOK_UNAVAILABLE",
  "EXEC_IDENTITY_UNAVAILABLE",
  "EXEC_RUNTIME_DEPS_HOOK_UNAVAILABLE",
  "IMA_APPRAISAL_UNAVAILABLE",
  "POLICY_RESTORE_FAILED",
  "RUN_POLICY_FAILED",
] as const;
export type BlockerCode = (typeof BLOCKER_CODES)[number];

/** One reason the node cannot enforce, with what would fix it. */
export interface Blocker {
  code: BlockerCode;
  /** what was found, in the operator's words */
  message: string;
  /** what to do about it */
  remedy: string;
}

/**
 * A JSON event (docs/telemetry.md): kernel records after recordToEvent, and
 * state_change / control_change from user space. `type` is always set.
 */
export type AegisEvent = { type: string } & Record<string, unknown>;

/**
 * Where every event goes: the configured sink (stdout or file) and the
 * /events subscribers. emit() never blocks and never throws; what cannot be
 * delivered is counted, not waited for.
 */
export interface EventBus {
  emit(event: AegisEvent): void;
}

/** The well-known files and sockets, with their test overrides. */
export interface AegisPaths {
  /** /var/lib/aegisbpf (AEGIS_STATE_DIR) */
  stateDir: string;
  /** stateDir/capabilities.json (AEGIS_CAPABILITIES_REPORT_PATH) */
  capabilities: string;
  /** stateDir/perf-slo-summary.json (AEGIS_PERF_SLO_SUMMARY_PATH) */
  perfSlo: string;
  /** /run/aegisbpf (AEGIS_RUNTIME_DIR) */
  runtimeDir: string;
  /** runtimeDir/control.sock (AEGIS_CONTROL_SOCKET) */
  controlSocket: string;
  /** /etc/aegisbpf (AEGIS_ETC_DIR) */
  etcDir: string;
  /** /etc/aegisbpf/keys: trusted bundle keys (AEGIS_KEYS_DIR) */
  keysDir: string;
  /** /sys/fs/bpf/aegisbpf: the agent's pinned maps and links (AEGIS_PIN_ROOT) */
  pinRoot: string;
}

/** Where the pins live without AEGIS_PIN_ROOT. */
export const DEFAULT_PIN_ROOT = "/sys/fs/bpf/aegisbpf";
/** Where trusted keys live without AEGIS_KEYS_DIR (docs/signing.md). */
export const DEFAULT_KEYS_DIR = "/etc/aegisbpf/keys";

/** The paths, from the environment's overrides or the defaults. */
export function aegisPaths(env: (name: string) => string | undefined = Deno.env.get): AegisPaths {
  const stateDir = env("AEGIS_STATE_DIR") ?? "/var/lib/aegisbpf";
  const runtimeDir = env("AEGIS_RUNTIME_DIR") ?? "/run/aegisbpf";
  return {
    stateDir,
    capabilities: env("AEGIS_CAPABILITIES_REPORT_PATH") ?? `${stateDir}/capabilities.json`,
    perfSlo: env("AEGIS_PERF_SLO_SUMMARY_PATH") ?? `${stateDir}/perf-slo-summary.json`,
    runtimeDir,
    controlSocket: env("AEGIS_CONTROL_SOCKET") ?? `${runtimeDir}/control.sock`,
    etcDir: env("AEGIS_ETC_DIR") ?? "/etc/aegisbpf",
    keysDir: env("AEGIS_KEYS_DIR") ?? DEFAULT_KEYS_DIR,
    pinRoot: env("AEGIS_PIN_ROOT") ?? DEFAULT_PIN_ROOT,
  };
}

/** Who asked for a mutation over the control socket (logged with it). */
export interface Caller {
  uid: number;
  pid: number;
}
