/**
 * `aegisbpf run`: the daemon.
 *
 * Enforce (default): refuse before loading anything when BPF LSM is not
 * active (fail-closed), else load and attach every LSM program the kernel
 * offers, check the attach contract (a partial attach is fatal), pin maps
 * and links, fill the survival allowlist, move into the agent's own
 * cgroup, and stream block and exec events. The rules are whatever the
 * pinned rule maps hold (policy files come with the policy commands).
 *
 * Audit (`--audit`, or `--enforce-gate-mode=audit-fallback` when enforce is
 * impossible): the same programs with AEGIS_CFG_AUDIT_ONLY set where BPF
 * LSM works; elsewhere the exec tracepoint for telemetry.
 *
 * On SIGINT/SIGTERM the agent stops reading events; pinned links keep
 * enforcing (`aegisbpf uninstall` removes them).
 *
 * @module
 */
import { type Command, Option } from "@commander-js/extra-typings";
import { bpfObjectBytes, openEmbeddedShim } from "../assets/mod.ts";
import {
  AEGIS_CFG_AGENT_CGID,
  AEGIS_CFG_AUDIT_ONLY,
  AEGIS_CFG_TRACE_ENABLE,
  AEGIS_CFG_TRACE_TGID,
} from "../bpf/abi_gen.ts";
import { DEFAULT_PIN_ROOT, Engine, type EngineMode, type FileHookChoice } from "../bpf/engine.ts";
import { enterOwnCgroup } from "../bpf/self_cgroup.ts";
import { populateSurvival, type SurvivalEntry } from "../bpf/survival.ts";
import { AegisError, NativeCallError } from "../errors.ts";
import { EventDrain } from "../events/drain.ts";
import { recordToEvent } from "../events/json.ts";
import { isStdoutClosed, literal, log, writeStdout } from "../log.ts";
import type { Shim } from "../native/mod.ts";
import { probeBpfLsmActive } from "../posture/lsm.ts";
import { hostFs } from "../posture/probe.ts";

const GATE_MODES = ["fail-closed", "audit-fallback"] as const;
type GateMode = (typeof GATE_MODES)[number];
const FILE_HOOKS = ["file", "inode", "both"] as const;

function parseRingBytes(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 4096 || (n & (n - 1)) !== 0) {
    throw new AegisError("USAGE", `--ringbuf-bytes "${v}": must be a power of two >= 4096`);
  }
  return n;
}

/** Where pins live: AEGIS_PIN_ROOT (tests) or /sys/fs/bpf/aegisbpf. */
export function pinRoot(): string {
  return Deno.env.get("AEGIS_PIN_ROOT") ?? DEFAULT_PIN_ROOT;
}

interface RunOptions {
  audit?: true;
  enforceFallback?: "signal";
  enforceGateMode: GateMode;
  lsmHook: FileHookChoice;
  traceOpens?: true;
  ringbufBytes: number;
}

export function addRunCommand(program: Command): void {
  program.command("run")
    .description("run the agent daemon (enforce by default; see --audit)")
    .addOption(new Option("--enforce", "enforce rules in the kernel (default)").conflicts("audit"))
    .addOption(new Option("--audit", "observe and report only; deny nothing"))
    .addOption(
      new Option("--enforce-gate-mode <mode>", "what to do when enforcement is impossible")
        .choices(GATE_MODES).env("AEGIS_ENFORCE_GATE_MODE").default("fail-closed" as GateMode),
    )
    .addOption(
      new Option("--lsm-hook <hook>", "file hook: file_open, inode_permission, or both")
        .choices(FILE_HOOKS).default("file" as FileHookChoice),
    )
    .addOption(
      new Option(
        "--enforce-fallback <how>",
        "without BPF LSM: kill processes that break a rule (ENFORCE_SIGNAL; opt-in)",
      ).choices(["signal"] as const),
    )
    .option("--trace-opens", "also report every openat() as an open event (busy)")
    .option("--ringbuf-bytes <bytes>", "event ring buffer size", parseRingBytes, 4 << 20)
    .addHelpText(
      "after",
      `
Enforce mode refuses to start (exit 1) unless BPF LSM is active and every
LSM program the kernel offers loads and attaches; nothing is left attached
after a refusal. With --enforce-gate-mode=audit-fallback it continues in
audit mode instead and says why.

Programs and maps are pinned under /sys/fs/bpf/aegisbpf: they keep
enforcing after the agent stops or is killed, and a restarted agent takes
them over without a gap. "aegisbpf uninstall" removes them.

Events (exec, block, net_*_block, kernel_*_block) are JSON lines on stdout.`,
    )
    .action(async (opts) => {
      await runAgent(opts as RunOptions);
    });
}

/** The posture the agent runs in (the runtime state machine comes with the posture work). */
type Posture = "ENFORCE" | "ENFORCE_SIGNAL" | "AUDIT_FALLBACK" | "AUDIT";

async function runAgent(opts: RunOptions): Promise<void> {
  const lg = log("run");
  const bpfLsm = await probeBpfLsmActive(hostFs);
  let blocker: string | null = bpfLsm.status === "supported"
    ? null
    : bpfLsm.status === "unsupported"
    ? `BPF_LSM_DISABLED: ${bpfLsm.reason}`
    : `BPF_LSM_DISABLED: cannot tell whether BPF LSM is active (${bpfLsm.error})`;

  using shim = await openEmbeddedShim();
  const bytes = await bpfObjectBytes();
  let engine: Engine | null = null;
  let posture: Posture = opts.audit ? "AUDIT" : "ENFORCE";

  if (blocker === null) {
    try {
      engine = startEngine(shim, bytes, opts, { mode: "lsm", audit: posture === "AUDIT" });
    } catch (e) {
      blocker = engineBlocker(e);
    }
  }
  if (engine === null) {
    if (posture === "ENFORCE") {
      if (opts.enforceFallback === "signal") {
        posture = "ENFORCE_SIGNAL";
      } else if (opts.enforceGateMode === "fail-closed") {
        throw new AegisError(
          "ENFORCE_GATE",
          `Refusing to start in enforce mode (gate fail-closed): ${blocker}. ` +
            `Use --audit to observe only, --enforce-gate-mode=audit-fallback to accept a ` +
            `reduced-security posture, or --enforce-fallback=signal to kill offenders instead.`,
        );
      } else {
        posture = "AUDIT_FALLBACK";
      }
    }
    lg.warn(literal(`BPF LSM unusable (${blocker}); running in ${posture} with tracepoints`), {
      posture,
      blocker,
    });
    engine = startEngine(shim, bytes, opts, {
      mode: "fallback",
      audit: posture !== "ENFORCE_SIGNAL",
    });
  }

  using ring = shim.openRing(engine.obj.map("aegis_events").fd);
  let warnedClosed = false;
  using drain = new EventDrain(ring, (r) => {
    writeStdout(JSON.stringify(recordToEvent(r)) + "\n");
    if (isStdoutClosed() && !warnedClosed) {
      warnedClosed = true;
      lg.error("stdout was closed: events are dropped from now on; enforcement continues");
    }
  });
  const hooks = engine.attachedSections();
  lg.info(
    literal(
      `agent started, ${posture}: ${hooks.join(", ")}; ` +
        (engine.pinRoot ? `pins under ${engine.pinRoot}` : "not pinned") +
        (engine.readopted ? " (re-adopted)" : "") +
        (posture === "ENFORCE_SIGNAL"
          ? "; offenders are killed after the fact (SIGKILL), enforce_capable stays false"
          : ""),
    ),
    { posture, hooks, pins: engine.pinRoot, readopted: engine.readopted },
  );
  drain.start();
  await waitForStopSignal();
  drain.stop();
  engine.close();
  const note = engine.pinRoot
    ? "pinned programs keep running (aegisbpf uninstall removes them)"
    : "programs detached";
  lg.info(literal(`agent stopping: ${drain.stats.records} records read; ${note}`), {
    records: drain.stats.records,
  });
}

function pinsExist(root: string): boolean {
  try {
    Deno.statSync(`${root}/maps/aegis_config`);
    return true;
  } catch {
    return false;
  }
}

/** The blocker to report when the engine cannot start. */
function engineBlocker(e: unknown): string {
  if (e instanceof NativeCallError && e.call === "aegis_obj_load" && e.errno === 1) {
    return "BPF_LSM_DISABLED: bpf is in the active LSM list, but the kernel refuses to load " +
      `LSM programs (EPERM: ${e.message}). BPF LSM is not usable on this kernel or in this ` +
      "sandbox; check kernel lockdown and any hypervisor or container restrictions";
  }
  if (e instanceof AegisError && e.code === "ATTACH_CONTRACT_MISMATCH") {
    return `ATTACH_CONTRACT_MISMATCH: ${e.message}`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** Load the LSM engine, then the allowlists and the mode switch. */
function startEngine(
  shim: Shim,
  bytes: Uint8Array<ArrayBuffer>,
  opts: RunOptions,
  how: { mode: EngineMode; audit: boolean },
): Engine {
  const audit = how.audit;
  const lg = log("run");
  // Audit mode pins nothing of its own (nothing to keep enforcing after it
  // stops), but takes over an enforcing agent's pins if there are any.
  const root = pinRoot();
  const pinned = pinsExist(root);
  if (audit && pinned) {
    lg.warn(
      literal(
        `re-adopting the pins under ${root} in AUDIT mode: the pinned programs stop denying ` +
          `until an enforcing "aegisbpf run" takes them over again`,
      ),
      { pins: root },
    );
  }
  const self = enterOwnCgroup();
  let survivors: SurvivalEntry[] = [];
  const engine = Engine.start(shim, bytes, {
    mode: how.mode,
    signal: how.mode === "fallback" && !audit ? 9 : 0,
    pinRoot: audit && !pinned ? null : root,
    fileHook: opts.lsmHook,
    ringBytes: opts.ringbufBytes,
    execEvents: true,
    openEvents: opts.traceOpens === true,
    // before attach: the new programs see the right switches from their first run
    configure: (obj) => {
      const cfg = obj.map("aegis_config");
      cfg.setU64(AEGIS_CFG_AUDIT_ONLY, audit ? 1n : 0n);
      cfg.setU64(AEGIS_CFG_TRACE_TGID, 0n); // exec telemetry for every process
      cfg.setU64(AEGIS_CFG_TRACE_ENABLE, 1n);
      cfg.setU64(AEGIS_CFG_AGENT_CGID, self.id);
      survivors = populateSurvival(obj.map("aegis_survival_inode"));
    },
  });
  try {
    lg.info(
      literal(
        `own cgroup ${self.path} (id ${self.id}); survival allowlist: ${survivors.length} executables`,
      ),
      { cgroup: self.path, cgid: String(self.id), survivors: survivors.map((s) => s.exe) },
    );
    for (const p of engine.plan.filter((p) => !p.available)) {
      lg.warn(literal(`kernel has no hook for ${p.section}: not loaded`), { section: p.section });
    }
    return engine;
  } catch (e) {
    engine.close();
    throw e;
  }
}

/** Resolves on SIGINT or SIGTERM. */
function waitForStopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
}
