/**
 * The daemon behind `aegisbpf run`: probe, gate, attach, then keep the
 * posture honest for the whole life of the process.
 *
 * Order of start (each step can refuse, and a refusal leaves nothing
 * attached that this start attached):
 *
 *  1. bind the HTTP listener and the control socket (a port in use is a
 *     startup error naming --http-listen; both answer 503 until ready);
 *  2. break-glass detection (forces audit);
 *  3. probes → enforce blockers (including the policy's needs: a network
 *     rule with no network hook);
 *  4. the gate: fail-closed refuses with every blocker and its remedy
 *     before anything is attached; audit-fallback continues in
 *     AUDIT_FALLBACK; --enforce-fallback=signal gives ENFORCE_SIGNAL;
 *  5. the engine (LSM, or the tracepoint fallback); a load, verifier or
 *     attach failure is a blocker too;
 *  6. the first state_change, capabilities.json, events flowing;
 *  7. every second: runtime checks (attach health, ring-buffer drops, map
 *     pressure), TTL expiry of live rules, unresolved paths; a change of
 *     posture is a state_change event, a log line and a rewritten
 *     capabilities.json. --strict-degrade exits when an enforce-requested
 *     agent degrades.
 *
 * @module
 */
import { bpfObjectBytes, openEmbeddedShim } from "../assets/mod.ts";
import {
  AEGIS_CFG_AGENT_CGID,
  AEGIS_CFG_AUDIT_ONLY,
  AEGIS_CFG_BREAK_GLASS,
  AEGIS_CFG_EMERGENCY_DISABLE,
  AEGIS_CFG_TRACE_ENABLE,
  AEGIS_CFG_TRACE_TGID,
  AEGIS_CNT_RINGBUF_DROPS,
  AEGIS_POL_EXEC_RULES,
  AEGIS_POL_NET_RULES,
} from "../bpf/abi_gen.ts";
import { DEFAULT_PIN_ROOT, Engine, type EngineMode, type FileHookChoice } from "../bpf/engine.ts";
import type { BpfMap } from "../bpf/map.ts";
import { enterOwnCgroup } from "../bpf/self_cgroup.ts";
import { populateSurvival, type SurvivalEntry } from "../bpf/survival.ts";
import { AegisError, NativeCallError, VerifierError } from "../errors.ts";
import { EventDrain } from "../events/drain.ts";
import { recordToEvent } from "../events/json.ts";
import { literal, log } from "../log.ts";
import type { Shim } from "../native/mod.ts";
import { hostFs } from "../posture/probe.ts";
import {
  type AegisEvent,
  aegisPaths,
  type Blocker,
  type EventBus,
  type ReasonCode,
  type RuntimeState,
} from "./contracts.ts";

export const GATE_MODES = ["fail-closed", "audit-fallback"] as const;
export type GateMode = (typeof GATE_MODES)[number];

export interface DaemonOptions {
  audit?: true;
  enforceFallback?: "signal";
  enforceGateMode: GateMode;
  strictDegrade?: true;
  lsmHook: FileHookChoice;
  traceOpens?: true;
  ringbufBytes: number;
  /** "ADDR:PORT" or "off" */
  httpListen: string;
  httpAllowRemote?: true;
  /** "stdout" or "file:PATH" */
  log: string;
  /** off: no control socket (tests) */
  controlSocket: boolean;
}

/** Where pins live: AEGIS_PIN_ROOT (tests) or /sys/fs/bpf/aegisbpf. */
export function pinRoot(): string {
  return Deno.env.get("AEGIS_PIN_ROOT") ?? DEFAULT_PIN_ROOT;
}

/** Test-only fault injection, from the environment (docs/testing.md). */
interface Faults {
  /** LSM hooks treated as absent from the kernel's BTF */
  hideHooks: Set<string>;
  /** program sections treated as failed to attach */
  failAttach: Set<string>;
}

function faultsFromEnv(): Faults {
  const list = (name: string) =>
    new Set((Deno.env.get(name) ?? "").split(",").map((s) => s.trim()).filter((s) => s !== ""));
  return { hideHooks: list("AEGIS_TEST_HIDE_HOOKS"), failAttach: list("AEGIS_TEST_FAIL_ATTACH") };
}

/** The reason code for an engine that failed to start. */
export function engineFailure(e: unknown): { reason: ReasonCode; blocker: Blocker } {
  if (e instanceof NativeCallError && e.call === "aegis_obj_load" && e.errno === 1) {
    return {
      reason: "BPF_LOAD_FAILED",
      blocker: {
        code: "BPF_LSM_DISABLED",
        message: `the kernel refuses to load LSM programs (EPERM: ${e.message})`,
        remedy: "boot with bpf in lsm= (e.g. lsm=lockdown,capability,landlock,yama,apparmor,bpf) " +
          "and check kernel lockdown and any hypervisor or container restriction",
      },
    };
  }
  if (e instanceof VerifierError) {
    return {
      reason: "BPF_VERIFIER_REJECT",
      blocker: {
        code: "CAPABILITY_AUDIT_ONLY",
        message: e.message,
        remedy: "report the verifier log (aegisbpf probe --json and the agent's log) upstream; " +
          "this kernel is not supported for enforcement",
      },
    };
  }
  if (e instanceof AegisError && e.code === "ATTACH_CONTRACT_MISMATCH") {
    return {
      reason: "ATTACH_CONTRACT_MISMATCH",
      blocker: {
        code: "CAPABILITY_AUDIT_ONLY",
        message: e.message,
        remedy: "a required hook did not attach: check aegisbpf probe for the hook table",
      },
    };
  }
  return {
    reason: "BPF_LOAD_FAILED",
    blocker: {
      code: "CAPABILITY_AUDIT_ONLY",
      message: e instanceof Error ? e.message : String(e),
      remedy: "see the agent's log and aegisbpf doctor",
    },
  };
}

/** The event bus: sink (stdout or file) and the /events subscribers. */
export class DaemonBus implements EventBus {
  emitted = 0;
  #targets: EventBus[];
  constructor(targets: EventBus[]) {
    this.#targets = targets;
  }
  emit(event: AegisEvent): void {
    this.emitted++;
    for (const t of this.#targets) t.emit(event);
  }
}

/** What the applied policy needs from the kernel, and what it left unresolved. */
export interface AppliedPolicyInfo {
  applied: boolean;
  sha256: string | null;
  version: number | null;
  flags: number;
  needs: {
    network: boolean;
    exec_identity: boolean;
    exec_runtime_deps: boolean;
    ima_appraisal: boolean;
  };
}

/** The posture decision before anything is attached (pure; tested on fixtures). */
export interface GateDecision {
  /** null: refuse to start (fail-closed) */
  state: RuntimeState | null;
  reason: ReasonCode;
  engine: "lsm" | "fallback";
  /** programs deny (LSM enforce) or kill (signal fallback) */
  enforcing: boolean;
  detail: string;
}

/**
 * Decide the posture from the request and what is known before the engine
 * starts. `lsmUsable` is the probe's verdict on BPF LSM (listed, loads,
 * attaches); `blockers` are every enforce blocker found.
 */
export function decideGate(input: {
  audit: boolean;
  breakGlass: boolean;
  gateMode: GateMode;
  signalFallback: boolean;
  lsmUsable: boolean;
  tracepoints: boolean;
  blockers: Blocker[];
}): GateDecision {
  const engine = input.lsmUsable ? "lsm" : "fallback";
  const list = input.blockers.map((b) => b.code).join(", ");
  if (input.breakGlass) {
    return {
      state: "AUDIT_FALLBACK",
      reason: "BREAK_GLASS_ACTIVE",
      engine,
      enforcing: false,
      detail: "break-glass is active: forced audit",
    };
  }
  if (input.audit) {
    return {
      state: "AUDIT_FALLBACK",
      reason: "STARTUP_AUDIT_MODE",
      engine,
      enforcing: false,
      detail: "started with --audit: observing only",
    };
  }
  if (input.blockers.length === 0 && input.lsmUsable) {
    return {
      state: "ENFORCE",
      reason: "STARTUP_ENFORCE_READY",
      engine: "lsm",
      enforcing: true,
      detail: "BPF LSM active, every required hook present",
    };
  }
  const lsmOnly = input.blockers.every((b) => b.code === "BPF_LSM_DISABLED");
  if (input.signalFallback && !input.lsmUsable && input.tracepoints && lsmOnly) {
    return {
      state: "ENFORCE_SIGNAL",
      reason: "ENFORCE_SIGNAL_FALLBACK",
      engine: "fallback",
      enforcing: true,
      detail: `no BPF LSM (${list}): offenders are killed after the fact (SIGKILL)`,
    };
  }
  const reason: ReasonCode = input.blockers.some((b) => b.code === "NETWORK_HOOK_UNAVAILABLE")
    ? "NETWORK_HOOK_UNAVAILABLE"
    : input.blockers.some((b) => b.code === "EXEC_IDENTITY_UNAVAILABLE")
    ? "EXEC_IDENTITY_UNAVAILABLE"
    : "CAPABILITY_AUDIT_ONLY";
  if (input.gateMode === "fail-closed") {
    return { state: null, reason, engine, enforcing: false, detail: `enforce blockers: ${list}` };
  }
  return {
    state: "AUDIT_FALLBACK",
    reason,
    engine,
    enforcing: false,
    detail: `enforce blockers: ${list}; continuing in audit (gate audit-fallback)`,
  };
}

/** The refusal an operator reads: every blocker with its remedy. */
export function refusalMessage(blockers: Blocker[]): string {
  return "Refusing to start in enforce mode (gate fail-closed). Blockers:\n" +
    blockers.map((b) => `  - ${b.code}: ${b.message}\n    remedy: ${b.remedy}`).join("\n") +
    "\nUse --audit to observe only, --enforce-gate-mode=audit-fallback to accept a " +
    "reduced-security posture, or --enforce-fallback=signal to kill offenders instead.";
}

/** Read the applied policy snapshot (policy.applied) for its needs and unresolved paths. */
export interface AppliedPolicyLoader {
  (stateDir: string): Promise<AppliedPolicyInfo>;
}

/** Start the engine for a decision; the caller maps a throw to a blocker. */
export function startEngine(
  shim: Shim,
  bytes: Uint8Array<ArrayBuffer>,
  opts: DaemonOptions,
  how: { mode: EngineMode; enforcing: boolean; breakGlass: boolean; faults: Faults },
): { engine: Engine; survivors: SurvivalEntry[]; cgroup: string } {
  const lg = log("run");
  const audit = !how.enforcing;
  // Audit pins nothing of its own (nothing to keep enforcing after it stops)
  // but takes over an enforcing agent's pins if there are any.
  const root = pinRoot();
  const pinned = pinsExist(root);
  if (audit && pinned) {
    lg.warn(
      literal(
        `re-adopting the pins under ${root} in audit: the pinned programs stop denying ` +
          `until an enforcing "aegisbpf run" takes them over again`,
      ),
      { pins: root },
    );
  }
  const self = enterOwnCgroup();
  let survivors: SurvivalEntry[] = [];
  const engine = Engine.start(shim, bytes, {
    mode: how.mode,
    signal: how.mode === "fallback" && how.enforcing ? 9 : 0,
    pinRoot: audit && !pinned ? null : root,
    fileHook: opts.lsmHook,
    ringBytes: opts.ringbufBytes,
    execEvents: true,
    openEvents: opts.traceOpens === true,
    hasBtfFunc: (name) =>
      !how.faults.hideHooks.has(name.replace(/^bpf_lsm_/, "")) && shim.btfHasFunc(name),
    failAttach: (section) => how.faults.failAttach.has(section),
    // before attach: the new programs see the right switches from their first run
    configure: (obj) => {
      const cfg = obj.map("aegis_config");
      cfg.setU64(AEGIS_CFG_AUDIT_ONLY, audit ? 1n : 0n);
      cfg.setU64(AEGIS_CFG_BREAK_GLASS, how.breakGlass ? 1n : 0n);
      cfg.setU64(AEGIS_CFG_TRACE_TGID, 0n); // exec telemetry for every process
      cfg.setU64(AEGIS_CFG_TRACE_ENABLE, 1n);
      cfg.setU64(AEGIS_CFG_AGENT_CGID, self.id);
      survivors = populateSurvival(obj.map("aegis_survival_inode"));
    },
  });
  return { engine, survivors, cgroup: self.path };
}

function pinsExist(root: string): boolean {
  try {
    Deno.statSync(`${root}/maps/aegis_config`);
    return true;
  } catch {
    return false;
  }
}

/** Resolves on SIGINT or SIGTERM, or when `abort` fires. */
export function waitForStop(abort: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const done = (why: string) => {
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
      abort.removeEventListener("abort", onAbort);
      resolve(why);
    };
    const onInt = () => done("SIGINT");
    const onTerm = () => done("SIGTERM");
    const onAbort = () => done(String(abort.reason ?? "stop"));
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGTERM", onTerm);
    abort.addEventListener("abort", onAbort);
  });
}

/** Sum of a per-CPU counter, or 0 when the map is missing. */
export function counter(map: BpfMap | null, index: number): bigint {
  return map ? map.sumU64(index) : 0n;
}
