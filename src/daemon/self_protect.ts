/**
 * Start order step 5c (docs/architecture.md, "The daemon"): `run
 * --self-protect` arms the kernel guards (bpf/self.bpf.c,
 * src/bpf/self_guard.ts) once the engine pinned and the policy is
 * restored; a clean stop disarms them first thing. Never armed in audit,
 * the tracepoint fallback, break-glass or emergency disable
 * (docs/security.md, "Self-protection").
 *
 * @module
 */
import { AEGIS_CFG_SELF_PROTECT } from "../bpf/abi_gen.ts";
import { type Engine, isSelfProgram } from "../bpf/engine.ts";
import {
  armSelfGuard,
  disarmSelfGuard,
  GUARD_NAMES,
  type SelfGuardSummary,
} from "../bpf/self_guard.ts";
import type { SelfCgroup } from "../bpf/self_cgroup.ts";
import type { AegisPaths } from "../contracts.ts";
import { literal, log } from "../log.ts";
import type { Shim } from "../native/mod.ts";
import type { SeccompMode, SeccompReport, SelfProtectionReport } from "../posture/report.ts";
import type { StartDecision } from "./probe_gate.ts";
import type { Cleanups } from "./shutdown.ts";

export interface SelfProtectInputs {
  opts: { selfProtect?: true };
  shim: Shim;
  engine: Engine;
  self: SelfCgroup;
  paths: AegisPaths;
  /** after the policy phase (a failed restore may have turned it to audit) */
  decision: StartDecision;
  breakGlass: boolean;
  emergencyActive: boolean;
  /** the agent's executable (Deno.execPath(): aegisbpf, or deno under `deno run`) */
  exe: string;
}

/** The kernel guards' part of the report (the daemon adds the user-space hardening). */
export type GuardReport = Omit<SelfProtectionReport, "no_new_privs" | "seccomp" | "capabilities">;

const OFF: GuardReport = {
  requested: false,
  armed: false,
  detail: "off (run --self-protect arms it)",
  guarded_inodes: 0,
  guarded_maps: 0,
  guarded_links: 0,
  missing_hooks: [],
};

/** Why the guards stay off although asked for; null when they can be armed. */
export function selfProtectRefusal(
  i: Pick<SelfProtectInputs, "decision" | "breakGlass" | "emergencyActive">,
): string | null {
  if (!i.decision.enforcing) return "not enforcing (audit): the guards only arm in enforce mode";
  if (i.decision.engine !== "lsm") return "the tracepoint fallback has no guards (no BPF LSM)";
  if (i.breakGlass) return "break-glass is active";
  if (i.emergencyActive) return "emergency disable is on";
  return null;
}

/** Arm the guards when asked and allowed; the report's self_protection either way. */
export function armSelfProtectAtStart(
  i: SelfProtectInputs,
  cleanups: Cleanups,
): GuardReport {
  if (!i.opts.selfProtect) return OFF;
  const lg = log("run");
  const refusal = selfProtectRefusal(i);
  const cfg = i.engine.obj.map("aegis_config");
  if (refusal !== null) {
    cfg.setU64(AEGIS_CFG_SELF_PROTECT, 0n);
    lg.warn(literal(`--self-protect: not armed: ${refusal}`), { self_protect: false });
    return { ...OFF, requested: true, detail: `not armed: ${refusal}` };
  }
  const missing = i.engine.plan.filter((p) => isSelfProgram(p.program) && !p.available)
    .map((p) => p.section);
  let sum: SelfGuardSummary;
  try {
    sum = armSelfGuard(i.shim, i.engine.obj, {
      pinRoot: i.paths.pinRoot,
      stateDir: i.paths.stateDir,
      etcDir: i.paths.etcDir,
      keysDir: i.paths.keysDir,
      runtimeDir: i.paths.runtimeDir,
      cgroupDir: i.self.path,
      exe: i.exe,
    });
  } catch (e) {
    // enforcement goes on; the report and doctor say the guards are off
    const why = `arming failed: ${e instanceof Error ? e.message : e}`;
    disarmSelfGuard(i.engine.obj);
    lg.error(literal(`--self-protect: not armed: ${why}`), { self_protect: false });
    return { ...OFF, requested: true, detail: `not armed: ${why}`, missing_hooks: missing };
  }
  // first step of a clean stop (cleanups run last pushed first): before the
  // engine closes and the agent leaves its cgroup
  cleanups.push(() => {
    disarmSelfGuard(i.engine.obj);
    log("run").info(literal("self-protection disarmed (clean stop)"));
  });
  const byGuard: Record<string, string[]> = {};
  for (const g of sum.inodes) (byGuard[GUARD_NAMES[g.guard]] ??= []).push(g.path);
  lg.info(
    literal(
      `self-protection armed: ${sum.inodes.length} inodes, ${sum.mapIds.length} maps, ` +
        `${sum.linkIds.length} links guarded; trusted: the agent's cgroup and executable ` +
        `${i.exe}${missing.length ? `; kernel lacks ${missing.join(", ")}` : ""}`,
    ),
    { self_protect: true, guarded: byGuard, missing_hooks: missing },
  );
  return {
    requested: true,
    armed: true,
    detail: `armed; trusted: the agent's cgroup ${i.self.path} and executable ${i.exe}`,
    guarded_inodes: sum.inodes.length,
    guarded_maps: sum.mapIds.length,
    guarded_links: sum.linkIds.length,
    missing_hooks: missing,
  };
}

/**
 * no_new_privs for the daemon (docs/security.md, "User-space hardening"):
 * set at start, before any process is started, on the main thread every
 * child is forked from; what the kernel then holds (a refused set is
 * logged, and the agent runs on without it), or null when even reading it
 * failed.
 */
export function setNoNewPrivs(shim: Pick<Shim, "noNewPrivs">): boolean | null {
  let on: boolean;
  try {
    on = shim.noNewPrivs(true);
  } catch (e) {
    log("run").warn(literal(`no_new_privs: not set: ${e instanceof Error ? e.message : e}`));
    try {
      return shim.noNewPrivs(false);
    } catch {
      return null;
    }
  }
  if (!on) log("run").warn(literal("no_new_privs: set, but the kernel reports it off"));
  return on;
}

/**
 * The daemon's seccomp filter (docs/security.md, "Seccomp";
 * ffi/aegis_seccomp_list.h): installed on every thread once the agent has
 * started, before the first proof (whose probes inherit it: a call the
 * probes need and the list lacks shows in the first proof, not later). "enforce": a call
 * not on the list fails with ENOSYS and the kernel's audit logs it
 * (type=1326); "log": only logged; "off": nothing. A refused install is
 * logged and reported; the agent runs on without the filter.
 */
export function installSeccomp(
  shim: Pick<Shim, "seccompInstall">,
  mode: SeccompMode,
): SeccompReport {
  if (mode === "off") {
    log("run").warn(
      literal("seccomp: off (run --seccomp off): the daemon may make any system call"),
    );
    return { mode, installed: false, syscalls: 0, detail: "run --seccomp off" };
  }
  try {
    const n = shim.seccompInstall(mode);
    const detail = mode === "enforce"
      ? `${n} system calls allowed; any other fails with ENOSYS and is logged by the kernel's audit (type=1326)`
      : `${n} system calls listed; any other is allowed and logged by the kernel's audit (type=1326)`;
    log("run").info(literal(`seccomp: ${detail}`), { mode, syscalls: n });
    return { mode, installed: true, syscalls: n, detail };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    log("run").error(literal(`seccomp: not installed: ${why}`), { mode });
    return { mode, installed: false, syscalls: 0, detail: `not installed: ${why}` };
  }
}
