/**
 * Start order step 5 (docs/architecture.md, "The daemon"): the agent into
 * a cgroup of its own (below its supervisor's), then the engine (LSM
 * programs, or the tracepoint fallback) sized for the applied policy. A
 * load, verifier or attach failure is a blocker: fail-closed refuses with
 * it, otherwise the start goes on in audit with whatever engine loads.
 * Then the emergency control over the engine's switch.
 *
 * @module
 */
import {
  AEGIS_CFG_AGENT_CGID,
  AEGIS_CFG_AUDIT_ONLY,
  AEGIS_CFG_BREAK_GLASS,
  AEGIS_CFG_EMERGENCY_DISABLE,
  AEGIS_CFG_ENFORCE_SIGNAL,
  AEGIS_CFG_EXEC_ARGV,
  AEGIS_CFG_KILL_ESCALATION,
  AEGIS_CFG_SELF_PROTECT,
  AEGIS_CFG_TRACE_ENABLE,
  AEGIS_CFG_TRACE_TGID,
} from "../bpf/abi_gen.ts";
import { Engine, type EngineMode, MAP_CONFIG, MAP_COUNTERS, pinRoot } from "../bpf/engine.ts";
import type { BpfMap } from "../bpf/map.ts";
import { pinsExist } from "../bpf/pins.ts";
import { enterOwnCgroup, leaveOwnCgroup, type SelfCgroup } from "../bpf/self_cgroup.ts";
import { populateSurvival, type SurvivalEntry } from "../bpf/survival.ts";
import { EmergencyControl } from "../control/emergency.ts";
import { AegisError } from "../errors.ts";
import { literal, log } from "../log.ts";
import type { Shim } from "../native/mod.ts";
import type { Blocker, EventBus } from "../contracts.ts";
import { engineFailure, refusalMessage } from "./gate.ts";
import {
  btfHasFuncWith,
  type DaemonOptions,
  type EnforceSignal,
  type Faults,
  type KillEscalation,
  SIGNAL_NUMBERS,
} from "./options.ts";
import type { StartDecision } from "./probe_gate.ts";
import type { Cleanups } from "./shutdown.ts";
import type { AgentStatus } from "./status.ts";

type EngineOptions = Pick<
  DaemonOptions,
  | "lsmHook"
  | "ringbufBytes"
  | "traceOpens"
  | "execArgv"
  | "enforceGateMode"
  | "enforceSignal"
  | "killEscalation"
  | "selfProtect"
>;

/**
 * The config slots of `run --enforce-signal` / `--kill-escalation`
 * (bpf/lib/decide.h aegis_deny_signal): armed only for enforcing LSM
 * programs, and written as 0 otherwise, so a restart without the options
 * disarms what the pinned config map held.
 */
export function signalSlots(
  o: { enforceSignal?: EnforceSignal; killEscalation?: KillEscalation },
  armed: boolean,
): { signal: bigint; escalation: bigint } {
  if (!armed || !o.enforceSignal) return { signal: 0n, escalation: 0n };
  const e = o.killEscalation;
  return {
    signal: BigInt(SIGNAL_NUMBERS[o.enforceSignal]),
    escalation: e ? (BigInt(e.windowMs) << 32n) | BigInt(e.threshold) : 0n,
  };
}

/**
 * Whether the self-protection guards load (`run --self-protect`): only for
 * enforcing LSM programs with pins, never in break-glass (like
 * --enforce-signal's slots, see signalSlots).
 */
export function selfProtectLoads(
  o: { selfProtect?: true },
  how: { mode: EngineMode; enforcing: boolean; breakGlass: boolean },
): boolean {
  return o.selfProtect === true && how.enforcing && how.mode === "lsm" && !how.breakGlass;
}

/** Start the engine for a decision; the caller maps a throw to a blocker. */
export function startEngine(
  shim: Shim,
  bytes: Uint8Array<ArrayBuffer>,
  opts: EngineOptions,
  how: {
    mode: EngineMode;
    enforcing: boolean;
    breakGlass: boolean;
    faults: Faults;
    mapSizes?: Record<string, number>;
    /** the agent's own cgroup id: exempt from every rule */
    agentCgid: bigint;
  },
): { engine: Engine; survivors: SurvivalEntry[] } {
  const audit = !how.enforcing;
  // Audit pins nothing of its own (nothing to keep enforcing after it stops)
  // but takes over an enforcing agent's pins if there are any.
  const root = pinRoot();
  const pinned = pinsExist(root);
  if (audit && pinned) {
    log("run").warn(
      literal(
        `re-adopting the pins under ${root} in audit: the pinned programs stop denying ` +
          `until an enforcing "aegisbpf run" takes them over again`,
      ),
      { pins: root },
    );
  }
  let survivors: SurvivalEntry[] = [];
  const engine = Engine.start(shim, bytes, {
    mode: how.mode,
    signal: how.mode === "fallback" && how.enforcing ? 9 : 0,
    pinRoot: audit && !pinned ? null : root,
    fileHook: opts.lsmHook,
    ringBytes: opts.ringbufBytes,
    mapSizes: how.mapSizes,
    execEvents: true,
    openEvents: opts.traceOpens === true,
    // the guards only where they could be armed (armed after start: self_protect.ts)
    selfProtect: selfProtectLoads(opts, how),
    hasBtfFunc: btfHasFuncWith(how.faults, (name) => shim.btfHasFunc(name)),
    failAttach: (section) => how.faults.failAttach.has(section),
    // before attach: the new programs see the right switches from their first run
    configure: (obj) => {
      const cfg = obj.map("aegis_config");
      cfg.setU64(AEGIS_CFG_AUDIT_ONLY, audit ? 1n : 0n);
      cfg.setU64(AEGIS_CFG_BREAK_GLASS, how.breakGlass ? 1n : 0n);
      cfg.setU64(AEGIS_CFG_TRACE_TGID, 0n); // exec telemetry for every process
      cfg.setU64(AEGIS_CFG_TRACE_ENABLE, 1n);
      // exec_argv events after each exec (docs/telemetry.md; --exec-argv off)
      cfg.setU64(AEGIS_CFG_EXEC_ARGV, opts.execArgv === false ? 0n : 1n);
      cfg.setU64(AEGIS_CFG_AGENT_CGID, how.agentCgid);
      const sig = signalSlots(opts, how.enforcing && how.mode === "lsm");
      cfg.setU64(AEGIS_CFG_ENFORCE_SIGNAL, sig.signal);
      cfg.setU64(AEGIS_CFG_KILL_ESCALATION, sig.escalation);
      // a start without the guards disarms those an earlier start left armed in the pins
      if (!selfProtectLoads(opts, how)) cfg.setU64(AEGIS_CFG_SELF_PROTECT, 0n);
      survivors = populateSurvival(obj.map("aegis_survival_inode"));
    },
  });
  return { engine, survivors };
}

export interface EngineInputs {
  opts: EngineOptions;
  faults: Faults;
  shim: Shim;
  bytes: Uint8Array<ArrayBuffer>;
  decision: StartDecision;
  /** the gate's blockers (a refusal lists them all) */
  blockers: Blocker[];
  breakGlass: boolean;
  /** sized for the applied policy (stored.ts) */
  mapSizes: Record<string, number>;
}

export interface StartedEngine {
  engine: Engine;
  /** the agent's own cgroup */
  self: SelfCgroup;
  /** the gate's decision, or audit when the engine failed and the gate allows it */
  decision: StartDecision;
  /** the engine's switches (aegis_config) */
  cfg: BpfMap;
  /** the engine's per-CPU counters (aegis_counters) */
  counters: BpfMap;
}

/** The own cgroup, then the engine; it goes to the status, and both are let go at shutdown. */
export function startEngineAtStart(
  i: EngineInputs,
  status: AgentStatus,
  cleanups: Cleanups,
): StartedEngine {
  const self = enterOwnCgroupAtStart(cleanups);
  const { started, decision } = engineOrAudit(i, self, status);
  const engine = started.engine;
  status.attach({ engine });
  cleanups.push(() => engine.close());
  const cfg = engine.obj.map(MAP_CONFIG);
  const counters = engine.obj.map(MAP_COUNTERS);
  const lg = log("run");
  lg.info(
    literal(
      `own cgroup ${self.path}; survival allowlist: ${started.survivors.length} executables`,
    ),
    { cgroup: self.path, survivors: started.survivors.map((s) => s.exe) },
  );
  for (const p of engine.plan.filter((p) => !p.available)) {
    lg.warn(literal(`${p.program} (${p.section}) not loaded: ${p.reason ?? "no such hook"}`), {
      section: p.section,
      program: p.program,
    });
  }
  announceSignal(i.opts, decision);
  return { engine, self, decision, cfg, counters };
}

/** Say what `--enforce-signal` does in this start, loudly when it does nothing. */
function announceSignal(opts: EngineOptions, decision: StartDecision): void {
  const sig = opts.enforceSignal;
  if (!sig) return;
  const lg = log("run");
  const e = opts.killEscalation;
  const name = `SIG${sig.toUpperCase()}`;
  if (!decision.enforcing || decision.engine !== "lsm") {
    lg.warn(
      literal(
        `--enforce-signal ${sig} does nothing in this start: ` +
          (decision.enforcing
            ? "the tracepoint fallback cannot deny (--enforce-fallback signal sends SIGKILL)"
            : "the hooks only report (audit)"),
      ),
      { enforce_signal: sig },
    );
    return;
  }
  const esc = e
    ? `; SIGKILL instead at its deny number ${e.threshold} within ${e.windowMs / 1000} s`
    : "";
  lg.info(literal(`a denied process is also sent ${name}${esc}`), {
    enforce_signal: sig,
    kill_escalation: e ? { threshold: e.threshold, window_seconds: e.windowMs / 1000 } : null,
  });
}

function enterOwnCgroupAtStart(cleanups: Cleanups): SelfCgroup {
  const lg = log("run");
  const self = enterOwnCgroup();
  cleanups.push(() => {
    const problem = leaveOwnCgroup(self);
    if (problem) lg.warn(literal(problem));
  });
  if (self.movedOut.length > 0) {
    lg.warn(
      literal(
        `moved ${self.movedOut.length} process(es) that are not the agent out of its cgroup ` +
          `${self.path} (they would have been exempt from every rule): ${self.movedOut.join(", ")}`,
      ),
      { pids: self.movedOut },
    );
  }
  return self;
}

/** The engine the gate decided; when it fails, a refusal or an audit engine. */
function engineOrAudit(
  i: EngineInputs,
  self: SelfCgroup,
  status: AgentStatus,
): { started: ReturnType<typeof startEngine>; decision: StartDecision } {
  const decision = i.decision;
  try {
    const started = startEngine(i.shim, i.bytes, i.opts, {
      agentCgid: self.id,
      mode: decision.engine,
      enforcing: decision.enforcing,
      breakGlass: i.breakGlass,
      faults: i.faults,
      // sized for the applied policy twice (an apply writes beside the live
      // rules) when the maps are created; re-adopted pins keep their size
      mapSizes: i.mapSizes,
    });
    return { started, decision };
  } catch (e) {
    const f = engineFailure(e);
    status.addBlocker(f.blocker);
    if (decision.enforcing && i.opts.enforceGateMode === "fail-closed") {
      status.rebuild();
      throw new AegisError("ENFORCE_GATE", refusalMessage([...i.blockers, f.blocker]));
    }
    log("run").warn(
      literal(`engine failed (${f.reason}): ${f.blocker.message}; continuing in audit`),
    );
    const audit: StartDecision = {
      state: "AUDIT_FALLBACK",
      reason: decision.state === "AUDIT_FALLBACK" ? decision.reason : f.reason,
      engine: decision.engine,
      enforcing: false,
      detail: `${f.reason}: ${f.blocker.message}`,
    };
    const started = auditEngine(i, self, audit.engine);
    if (!started) throw e;
    return { started, decision: audit };
  }
}

/**
 * Audit with the same programs where possible (a failed attach was
 * injected or transient), else the tracepoint fallback; null when none
 * starts.
 */
function auditEngine(
  i: EngineInputs,
  self: SelfCgroup,
  decided: EngineMode,
): ReturnType<typeof startEngine> | null {
  const modes = decided === "lsm" ? ["lsm", "fallback"] as const : ["fallback"] as const;
  for (const mode of modes) {
    try {
      return startEngine(i.shim, i.bytes, i.opts, {
        agentCgid: self.id,
        mode,
        enforcing: false,
        breakGlass: i.breakGlass,
        faults: { ...i.faults, failAttach: new Set() },
      });
    } catch (e2) {
      log("run").warn(
        literal(`audit engine (${mode}) failed too: ${e2 instanceof Error ? e2.message : e2}`),
      );
    }
  }
  return null;
}

/**
 * The emergency control over the engine's switch (src/control/emergency.ts):
 * an operator's emergency disable outlives a reboot (fresh maps start with
 * the flag off), so the recorded state wins, loudly.
 */
export function startEmergency(
  cfg: BpfMap,
  stateDir: string,
  bus: EventBus,
  status: AgentStatus,
): EmergencyControl {
  const emergency = new EmergencyControl({
    stateDir,
    flag: {
      get: () => cfg.sumU64(AEGIS_CFG_EMERGENCY_DISABLE) !== 0n,
      set: (on) => cfg.setU64(AEGIS_CFG_EMERGENCY_DISABLE, on ? 1n : 0n),
    },
    bus,
  });
  status.attach({ emergency });
  emergency.reconcileAtStart();
  return emergency;
}
