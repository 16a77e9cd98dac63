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
 *  6. the first enforcement proof (./proofs.ts: probes outside the agent's
 *     cgroup must get EPERM from each surface's canary, and the operator's
 *     file rules are verified) before ENFORCE is claimed: a failed one
 *     starts in DEGRADED (ENFORCEMENT_PROOF_FAILED); then the first
 *     state_change, capabilities.json, events flowing;
 *  7. every second: runtime checks (attach health, ring-buffer drops, map
 *     pressure, the enforcement proof every --proof-interval seconds, failed
 *     or stale after 3 periods), TTL expiry of live rules, unresolved paths; a change of
 *     posture is a state_change event, a log line and a rewritten
 *     capabilities.json. --strict-degrade exits when an enforce-requested
 *     agent degrades.
 *
 * @module
 */
import { attachedNow, CHECK_INTERVAL_MS, mapUtilisation, RuntimeMonitor } from "./monitor.ts";
import { type ServiceNotifier, serviceNotifier } from "./notify.ts";
import { bpfObjectBytes, BUILD, openEmbeddedShim } from "../assets/mod.ts";
import {
  AEGIS_CFG_AGENT_CGID,
  AEGIS_CFG_AUDIT_ONLY,
  AEGIS_CFG_BREAK_GLASS,
  AEGIS_CFG_EMERGENCY_DISABLE,
  AEGIS_CFG_EXEC_ARGV,
  AEGIS_CFG_TRACE_ENABLE,
  AEGIS_CFG_TRACE_TGID,
  AEGIS_CNT_RINGBUF_DROPS,
  type MapName,
} from "../bpf/abi_gen.ts";
import {
  btrfsBtfPresent,
  Engine,
  type EngineMode,
  type FileHookChoice,
  MAP_CONFIG,
  MAP_COUNTERS,
  MAP_EVENTS,
  MAP_HOOK_STATS,
  pinRoot,
  uninstallPins,
} from "../bpf/engine.ts";
import { pinsExist } from "../bpf/pins.ts";
import type { BpfMap } from "../bpf/map.ts";
import { setBtrfsIdentity } from "../bpf/path_rule.ts";
import { enterOwnCgroup, leaveOwnCgroup } from "../bpf/self_cgroup.ts";
import { populateSurvival, type SurvivalEntry } from "../bpf/survival.ts";
import { createControlApp } from "../control/app.ts";
import { breakGlassPaths, detectBreakGlass } from "../control/break_glass.ts";
import { EmergencyControl } from "../control/emergency.ts";
import { raiseFdLimitAtStart, startControlServer } from "../control/server.ts";
import { AegisError } from "../errors.ts";
import {
  afterPolicyProblem,
  decideGate,
  engineFailure,
  type GateMode,
  refusalMessage,
} from "./gate.ts";
import { CgroupPathResolver } from "../events/cgroup_path.ts";
import { EventDrain } from "../events/drain.ts";
import { type Envelope, EventEnvelope } from "../events/envelope.ts";
import { type EventFormat, eventLineWriter } from "../events/format.ts";
import { recordToEvent } from "../events/json.ts";
import { RulePathCache } from "../events/rule_paths.ts";
import { openSink } from "../events/sink.ts";
import { createApp } from "../http/app.ts";
import {
  createMetricsApp,
  createProbeApp,
  Liveness,
  METRICS_LISTEN_FLAG,
  PROBE_LISTEN_FLAG,
} from "../http/probe.ts";
import { parseListen, startHttpServer } from "../http/serve.ts";
import { SseHub } from "../http/sse.ts";
import { telemetryLineWriter } from "../events/telemetry_line.ts";
import type { KernelRecord } from "../events/decode.ts";
import { literal, log } from "../log.ts";
import { PROC_SELF } from "../metrics/process.ts";
import { agentBuildInfo, NetBlockCounter, renderMetrics, totalBlocks } from "../metrics/render.ts";
import type { Shim } from "../native/mod.ts";
import { type AppliedParse, parseAppliedPolicy, repairInterruptedApply } from "../policy/store.ts";
import { mapSizesFor, readMapSizeRequests } from "../policy/sizing.ts";
import { DEFAULT_PROOF_INTERVAL_SECONDS, proofProblem, SelfTestCounter } from "../proof/prover.ts";
import { type CompileEnv, compilePolicy } from "../policy/compile.ts";
import { hostCompileEnv } from "../policy/host_env.ts";
import { keysDir, loadTrustedKeys } from "../policy/keys.ts";
import { bpfLsmUsable, capabilityTier, enforceBlockers } from "../posture/blockers.ts";
import { evaluateHealth } from "../posture/health.ts";
import { objectFacts as objectFactsOf, pinFacts } from "../posture/agent_facts.ts";
import { NO_NEEDS, type PolicyNeeds } from "../posture/needs.ts";
import { readAppliedPolicy, unreadablePolicy } from "../posture/policy_status.ts";
import { engineLsmTrial, probeAll, type ProbeReport } from "../posture/probes/mod.ts";
import {
  buildReport,
  type CapabilitiesReport,
  NO_POLICY,
  type PolicyStatus,
  writeReport,
} from "../posture/report.ts";
import { PostureStateMachine, stateChangeEvent } from "../posture/state.ts";
import { DaemonPolicy } from "./live.ts";
import { type Proofs, wireProofs } from "./proofs.ts";
import { applyRunPolicy, bringPolicy } from "./policy_phase.ts";
import {
  type AegisEvent,
  aegisPaths,
  type Blocker,
  type BlockerCode,
  type EventBus,
  type RuntimeState,
} from "../contracts.ts";

export interface DaemonOptions {
  audit?: true;
  enforceFallback?: "signal";
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

/** Where pins live: AEGIS_PIN_ROOT (tests) or /sys/fs/bpf/aegisbpf. */
export { pinRoot };

/**
 * Faults a test injects through DaemonOptions (tests/lib/agent_main.ts; the
 * shipped entry point passes none). Never read from the environment here.
 */
export interface Faults {
  /** LSM hooks treated as absent from the kernel's BTF */
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

/**
 * The event bus: stamps each event with the common fields (timestamp,
 * event_id, host, agent_version: src/events/envelope.ts), then hands it to
 * the sink (stdout or file) and the /events subscribers.
 */
export class DaemonBus implements EventBus {
  emitted = 0;
  readonly envelope: EventEnvelope;
  #targets: EventBus[];
  #fast: FastTelemetry | null;
  constructor(envelope: EventEnvelope, targets: EventBus[], fast: FastTelemetry | null = null) {
    this.envelope = envelope;
    this.#targets = targets;
    this.#fast = fast;
  }
  emit(event: AegisEvent): void {
    this.emitted++;
    const stamped = this.envelope.stamp(event);
    for (const t of this.#targets) t.emit(stamped);
  }
  /**
   * A kernel record's event: its line written straight from the record when
   * nothing needs the event object (src/events/telemetry_line.ts), else
   * `event()` emitted as above. The same line either way.
   */
  emitRecord(r: KernelRecord, event: () => AegisEvent): void {
    const f = this.#fast;
    if (f !== null && f.hub.unwatched) {
      const text = f.line(r);
      if (text !== null) {
        this.emitted++;
        f.write(text);
        f.hub.publishedUnwatched();
        return;
      }
    }
    this.emit(event());
  }
}

/** The telemetry fast path of {@link DaemonBus.emitRecord} (JSON event format only). */
export interface FastTelemetry {
  line: (r: KernelRecord) => string | null;
  write: (text: string) => void;
  hub: Pick<SseHub, "unwatched" | "publishedUnwatched">;
}

/** The host name events carry (`host`); "unknown" when it cannot be read. */
function hostName(): string {
  try {
    return Deno.hostname() || "unknown";
  } catch {
    return "unknown";
  }
}

/** Start the engine for a decision; the caller maps a throw to a blocker. */
export function startEngine(
  shim: Shim,
  bytes: Uint8Array<ArrayBuffer>,
  opts: DaemonOptions,
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
      // exec_argv events after each exec (docs/telemetry.md; --exec-argv off)
      cfg.setU64(AEGIS_CFG_EXEC_ARGV, opts.execArgv === false ? 0n : 1n);
      cfg.setU64(AEGIS_CFG_AGENT_CGID, how.agentCgid);
      survivors = populateSurvival(obj.map("aegis_survival_inode"));
    },
  });
  return { engine, survivors };
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

/**
 * The snapshot and rule counts of the policy an apply just wrote (the
 * report's `policy` counts); none when it cannot be read back.
 */
function appliedFacts(stateDir: string): Pick<PolicyStatus, "snapshot" | "rules"> {
  try {
    // no stat() of its paths: the live policy tracks what is unresolved
    const { snapshot, rules } = readAppliedPolicy(stateDir, () => true).status;
    return { snapshot, rules };
  } catch {
    return unreadablePolicy(stateDir);
  }
}

/**
 * The applied policy snapshot: what it needs, its status, the map sizes it
 * asks for (from `parse`, policy.applied as parsed at start).
 */
export function appliedPolicy(stateDir: string, parse: AppliedParse | null): {
  needs: PolicyNeeds;
  status: PolicyStatus;
  mapSizes: Record<string, number>;
  warning: string | null;
} {
  // the programs about to load key btrfs by subvolume when the module's BTF is there
  setBtrfsIdentity(btrfsBtfPresent());
  const env = hostCompileEnv();
  let needs = NO_NEEDS;
  let status = NO_POLICY;
  let warning: string | null = null;
  try {
    ({ needs, status } = readAppliedPolicy(stateDir));
  } catch (e) {
    // the report must not claim "no policy"; the pinned rules keep enforcing
    status = unreadablePolicy(stateDir);
    warning = `${e instanceof Error ? e.message : e}; the policy's needs are unknown until it ` +
      `is applied again`;
  }
  // sized without touching its files: every path counts as an inode of its own
  // (an upper bound). The restore resolves them for real, once: a 65k-path
  // policy compiled twice at start cost a second of stat() calls
  let ino = 0;
  const sizing: CompileEnv = {
    ...env,
    resolvePath: (path) => ({ status: "resolved", path, canonical: path, dev: 0, ino: ++ino }),
  };
  const policy = parse?.result.policy;
  const compiled = policy ? compilePolicy(policy, sizing).compiled : null;
  return {
    needs,
    status,
    mapSizes: mapSizesFor(compiled, [], readMapSizeRequests(stateDir)),
    warning,
  };
}

/**
 * Run the daemon until SIGINT/SIGTERM (or, with --strict-degrade, until the
 * posture degrades: then AegisError STRICT_DEGRADE, exit 1).
 */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const lg = log("run");
  const paths = aegisPaths();
  const faults = opts.faults ?? NO_FAULTS;
  const enforceRequested = opts.audit !== true;
  const stop = new AbortController();
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async () => {
    for (const f of cleanups.reverse()) {
      try {
        await f();
      } catch (e) {
        lg.error(literal(`shutdown step failed: ${e instanceof Error ? e.message : e}`));
      }
    }
    cleanups.length = 0;
  };

  // ---- what the HTTP answers and the report read ------------------------
  let report: CapabilitiesReport | null = null;
  let sm: PostureStateMachine | null = null;
  let emergency: EmergencyControl | null = null;
  let engine: Engine | null = null;
  let notifier: ServiceNotifier | null = null;
  let unresolvedNow = (): string[] => [];
  /** the rule's path for a file block the kernel gave none (path_source "rule") */
  let rulePaths: RulePathCache | null = null;
  let unresolvedCountNow = (): number => 0;
  /** the enforcement proof (src/daemon/proofs.ts): only once the engine enforces */
  let proofs: Proofs | null = null;
  const selfTest = new SelfTestCounter();
  const proofInterval = opts.proofIntervalSeconds ?? DEFAULT_PROOF_INTERVAL_SECONDS;
  const sink = openSink(opts.log, {
    onError: (e) => lg.error(literal(`event sink: ${e instanceof Error ? e.message : e}`)),
    fileMode: opts.logFileMode,
    fileGid: opts.logFileGid,
    onNotice: (m) => lg.warn(literal(m)),
  });
  cleanups.push(() => sink.close());
  // SIGHUP (logrotate's postrotate, systemctl reload) reopens the event file;
  // Deno's default for it would end the agent
  let reapplyRunPolicy: (() => Promise<void>) | null = null;
  const onHup = () => {
    lg.info(
      literal(
        `SIGHUP: ${
          sink.spec === "stdout"
            ? "events go to stdout, nothing to reopen"
            : `reopening ${sink.spec.slice(5)}`
        }`,
      ),
    );
    sink.reopen();
    if (opts.policy) {
      if (reapplyRunPolicy) void reapplyRunPolicy();
      else {lg.warn(
          literal(`SIGHUP while starting: --policy ${opts.policy} is applied as read at start`),
        );}
    }
  };
  Deno.addSignalListener("SIGHUP", onHup);
  cleanups.push(() => Deno.removeSignalListener("SIGHUP", onHup));
  const hub = new SseHub();
  const netBlocks = new NetBlockCounter();
  const envelope = new EventEnvelope({
    host: hostName(),
    agentVersion: BUILD.agentVersion,
    clockOffsetNs: null, // read from the native library below, before any kernel event
  });
  const line = eventLineWriter(opts.eventFormat ?? "json", envelope);
  let unwritable = 0;
  const resolver = new CgroupPathResolver(); // cgroup id → path in events
  // exec telemetry goes straight from the record to its line (JSON format, no
  // /events subscriber): an exec loop costs the agent a third of the time per exec
  const fast: FastTelemetry | null = (opts.eventFormat ?? "json") === "json"
    ? { line: telemetryLineWriter(envelope, resolver), write: (t) => sink.write(t), hub }
    : null;
  const bus = new DaemonBus(envelope, [{
    emit: (ev) => {
      const text = line(ev as AegisEvent & Envelope);
      if (text !== null) sink.write(text);
      else if (unwritable++ === 0) lg.error(literal(`an event could not be written as JSON`));
    },
  }, hub], fast);
  const emergencyActive = () => emergency?.status().active ?? false;

  try {
    Deno.mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
    const repaired = await repairInterruptedApply(paths.stateDir);
    if (repaired) lg.warn(literal(repaired));
    // parsed once: for the map sizes here and for the restore (bringPolicy)
    let startParse = await parseAppliedPolicy(paths.stateDir);
    const applied = appliedPolicy(paths.stateDir, startParse);
    if (applied.warning) lg.warn(literal(applied.warning));
    // what the report says is applied: the stored policy, until a failed
    // restore shows the kernel does not hold it
    let policyStatus = applied.status;

    const shim = await openEmbeddedShim();
    // closed by cleanup(), after everything that uses it (cleanups run in reverse)
    cleanups.push(() => shim.close());
    // kernel times (ktime_ns) → wall-clock `timestamp`: read once, before any record
    envelope.clockOffsetNs = shim.clockOffsetNs();
    // systemd Type=notify (null when no service manager asked)
    notifier = serviceNotifier(
      Deno.env.toObject(),
      Deno.pid,
      (socket, msg) => shim.sdNotify(socket, msg),
      (e) =>
        lg.warn(
          literal(
            `cannot notify the service manager (NOTIFY_SOCKET): ${
              e instanceof Error ? e.message : e
            }; no more notifications are sent`,
          ),
        ),
    );
    if (notifier?.watchdogMs !== null && notifier?.watchdogMs !== undefined) {
      if (notifier.watchdogMs < 2 * CHECK_INTERVAL_MS) {
        lg.warn(
          literal(
            `WatchdogSec is ${notifier.watchdogMs} ms: the agent pings every ` +
              `${CHECK_INTERVAL_MS} ms from its runtime checks; use at least 3s`,
          ),
        );
      }
    }
    raiseFdLimitAtStart(shim);
    const bytes = await bpfObjectBytes();
    // hash-checked by bpfObjectBytes (it throws on a mismatch): what health reports
    const objectFacts = objectFactsOf({ found: true, hashVerified: true, bytes });
    const hasBtfFunc = (name: string) =>
      !faults.hideHooks.has(name.replace(/^bpf_lsm_/, "")) && shim.btfHasFunc(name);
    const extraBlockers: Blocker[] = [];
    let probe: ProbeReport | null = null;

    /** A start blocker that no longer holds: out of the report, said in the log. */
    const clearBlocker = (code: BlockerCode, why: string) => {
      const i = extraBlockers.findIndex((b) => b.code === code);
      if (i < 0) return;
      extraBlockers.splice(i, 1);
      lg.warn(
        literal(
          `${code} cleared: ${why}${
            sm?.state === "AUDIT_FALLBACK" ? "; restart the agent to enforce it" : ""
          }`,
        ),
      );
    };
    const rebuildReport = () => {
      if (!probe) return;
      report = buildReport({
        probe,
        needs: applied.needs,
        runtimeState: sm?.state ?? null,
        transitions: sm?.summary() ?? {
          total: 0,
          degradation_total: 0,
          strict_mode: opts.strictDegrade === true,
          enforce_requested: enforceRequested,
        },
        policy: { ...policyStatus, unresolved: unresolvedNow() },
        emergencyActive: emergency ? emergencyActive() : null,
        attachedSections: engine?.attachedSections() ?? null,
        generatedBy: "daemon",
        now: Math.floor(Date.now() / 1000),
        extraBlockers,
        proof: {
          intervalSeconds: proofInterval,
          results: proofs?.prover.results ?? {},
          unenforced: proofs?.verifier.unenforced ?? [],
        },
      });
      try {
        writeReport(paths.capabilities, report);
      } catch (e) {
        lg.error(literal(`cannot write ${paths.capabilities}: ${e}`), { path: paths.capabilities });
      }
    };

    // ---- 1. listeners first: a busy port or a running agent refuses early
    const health = (requireEnforce: boolean) => {
      if (!report) {
        return {
          status: 503 as const,
          body: { ok: false, error: "agent starting", code: "STARTING" },
        };
      }
      const h = evaluateHealth(
        {
          report,
          emergencyActive: emergencyActive(),
          daemonRunning: true,
          agent: { object: objectFacts, pins: pinFacts(paths.pinRoot) }, // pinned or not
        },
        requireEnforce,
      );
      return { status: h.status, body: h.body };
    };
    const metrics = (detailed: boolean) =>
      renderMetrics({
        map: (name: MapName) => engine ? engine.obj.map(name) : null,
        runtimeState: sm?.state ?? null,
        enforceCapable: report?.enforce_capable ?? null,
        blockers: report?.enforce_blockers ?? null,
        emergency: emergency?.counters() ?? null,
        events: {
          emitted: bus.emitted,
          sinkDropped: sink.stats.dropped,
          sinkWritten: sink.stats.written,
        },
        netBlocks: netBlocks.counts,
        sse: { droppedClients: sseDropped(hub) },
        unresolvedPaths: unresolvedCountNow(),
        perfSloPath: paths.perfSlo,
        process: PROC_SELF,
        build: agentBuildInfo(),
        selfTest: {
          byHook: selfTest.byHook,
          liveCanaryEntries: proofs?.liveCanaryEntries ?? 0,
          pending: selfTest.pending,
        },
        proof: proofs
          ? {
            results: proofs.prover.results,
            now: Math.floor(Date.now() / 1000),
            unenforcedRules: proofs.verifier.unenforced.length,
            verifiedRules: proofs.verifier.lastRound?.denied,
          }
          : null,
      }, { detailed });
    const app = createApp({
      health,
      capabilities: () => report,
      state: () => ({
        runtime_state: sm?.state ?? null,
        enforce_requested: enforceRequested,
        transitions: sm?.history ?? [],
        state_transitions: sm?.summary() ?? null,
        emergency: emergency?.status() ?? null,
        pins: engine?.pinRoot ?? null,
        attached: engine?.attachedSections() ?? [],
        unresolved_paths: unresolvedNow(),
      }),
      metrics,
      events: hub,
    });
    const listen = parseListen(opts.httpListen);
    if (listen) {
      const srv = await startHttpServer(app, listen, {
        allowRemote: opts.httpAllowRemote === true,
        // open /events streams would hold a graceful shutdown: end them first
        beforeClose: () => hub.close(),
      });
      cleanups.push(() => srv.close());
      lg.info(literal(`HTTP API on ${srv.addr.hostname}:${srv.addr.port}`), { http: srv.addr });
    }
    // the pod-network listeners (opt-in): answers without details (docs/http.md)
    const liveness = new Liveness();
    const narrow = [
      {
        flag: PROBE_LISTEN_FLAG,
        value: opts.probeListen,
        label: "probe listener",
        app: () =>
          createProbeApp({
            ready: () => health(true).status === 200,
            alive: () => liveness.alive(),
          }),
      },
      {
        flag: METRICS_LISTEN_FLAG,
        value: opts.metricsListen,
        label: "metrics listener",
        app: () => createMetricsApp(() => metrics(false)),
      },
    ];
    for (const n of narrow) {
      const at = n.value === undefined ? null : parseListen(n.value, n.flag);
      if (!at) continue;
      const srv = await startHttpServer(n.app(), at, {
        allowRemote: true, // meant for the pod network; they answer no details
        flag: n.flag,
        label: n.label,
        limits: { maxConnections: 64, maxBodyBytes: 1024 },
      });
      cleanups.push(() => srv.close());
    }
    const policy = new DaemonPolicy({
      stateDir: paths.stateDir,
      bus,
      onChange: () => rebuildReport(),
      // the report says what the maps hold: the policy just switched in
      onApplied: (r) => {
        policyStatus = {
          ...appliedFacts(paths.stateDir),
          applied: true,
          sha256: r.body_sha256 ?? r.sha256,
          version: r.version,
          unresolved: [],
        };
        clearBlocker("POLICY_RESTORE_FAILED", "a good policy is applied");
      },
      onRulesChanged: () => {
        rulePaths?.invalidate();
        // new or changed rules: verify them all, in the next 1 s tick
        proofs?.verifier.invalidate();
        proofs?.prover.expedite();
      },
      // an apply or block add replies after one round has tried the new rules
      verifyNow: () => proofs?.verifyNow() ?? Promise.resolve(null),
    });
    cleanups.push(() => policy.close());
    rulePaths = new RulePathCache(() => policy.fileRuleTargets());
    unresolvedNow = () => policy.unresolved();
    unresolvedCountNow = () => policy.unresolvedCount();
    const lazyEmergency = () => {
      if (!emergency) throw new AegisError("STARTING", "the agent is still starting");
      return emergency;
    };
    const control = await startControlServer(
      createControlApp({
        emergency: new Proxy({} as EmergencyControl, {
          get: (_t, p) => {
            const e = lazyEmergency();
            const v = Reflect.get(e, p, e);
            return typeof v === "function" ? v.bind(e) : v;
          },
        }),
        readOnly: app,
        mounts: policy.mounts(),
      }),
      paths.controlSocket,
    );
    cleanups.push(() => control.close());

    // ---- 2. break-glass
    const trusted = await loadTrustedKeys(keysDir());
    const bg = await detectBreakGlass({
      ...breakGlassPaths(paths),
      trustedKeys: trusted.keys,
      now: Date.now(),
    });
    for (const why of bg.ignored) lg.warn(literal(`break-glass ignored: ${why}`));
    if (bg.active) lg.warn(literal(`BREAK-GLASS active (${bg.source}): ${bg.detail}`));

    // ---- 3. probes and blockers
    probe = await probeAll({
      hasBtfFunc,
      landlockAbi: () => shim.landlockAbi(),
      lsmTrial: engineLsmTrial(shim, bytes),
      needs: applied.needs,
      fileHook: opts.lsmHook,
    });
    if (faults.assumeBpfLsm) {
      lg.warn(literal("injected fault: treating bpf as an active LSM (test only)"));
      probe = { ...probe, bpf_lsm_active: { status: "supported", value: true } };
    }
    const blockers = enforceBlockers(probe, applied.needs);
    if (capabilityTier(probe) === "Disabled") {
      rebuildReport();
      throw new AegisError(
        "CAPABILITY_DISABLED",
        `This kernel lacks what aegisbpf needs even to observe:\n${
          blockers.map((b) => `  - ${b.code}: ${b.message}\n    remedy: ${b.remedy}`).join("\n")
        }`,
      );
    }

    // ---- 4. the gate
    let decision = decideGate({
      audit: !enforceRequested,
      breakGlass: bg.active,
      gateMode: opts.enforceGateMode,
      signalFallback: opts.enforceFallback === "signal",
      lsmUsable: bpfLsmUsable(probe),
      tracepoints: probe.tracepoints.status === "supported",
      blockers,
    });
    if (decision.state === null) {
      rebuildReport(); // never leave an old ENFORCE report behind a refusal
      throw new AegisError("ENFORCE_GATE", refusalMessage(blockers));
    }
    let startState: RuntimeState = decision.state;

    // ---- 5. the engine, with the agent in a cgroup of its own (below its supervisor's)
    const self = enterOwnCgroup();
    cleanups.push(() => {
      const problem = leaveOwnCgroup(self);
      if (problem) lg.warn(literal(problem));
    });
    if (self.movedOut.length > 0) {
      lg.warn(
        literal(
          `moved ${self.movedOut.length} process(es) that are not the agent out of its cgroup ` +
            `${self.path} (they would have been exempt from every rule): ${
              self.movedOut.join(", ")
            }`,
        ),
        { pids: self.movedOut },
      );
    }
    let started: ReturnType<typeof startEngine> | null = null;
    try {
      started = startEngine(shim, bytes, opts, {
        agentCgid: self.id,
        mode: decision.engine,
        enforcing: decision.enforcing,
        breakGlass: bg.active,
        faults,
        // sized for the applied policy twice (an apply writes beside the live
        // rules) when the maps are created; re-adopted pins keep their size
        mapSizes: applied.mapSizes,
      });
    } catch (e) {
      const f = engineFailure(e);
      extraBlockers.push(f.blocker);
      if (decision.enforcing && opts.enforceGateMode === "fail-closed") {
        rebuildReport();
        throw new AegisError("ENFORCE_GATE", refusalMessage([...blockers, f.blocker]));
      }
      lg.warn(literal(`engine failed (${f.reason}): ${f.blocker.message}; continuing in audit`));
      decision = {
        state: "AUDIT_FALLBACK",
        reason: decision.state === "AUDIT_FALLBACK" ? decision.reason : f.reason,
        engine: decision.engine,
        enforcing: false,
        detail: `${f.reason}: ${f.blocker.message}`,
      };
      startState = "AUDIT_FALLBACK";
      // audit with the same programs where possible (a failed attach was
      // injected or transient), else the tracepoint fallback
      for (
        const mode of decision.engine === "lsm"
          ? ["lsm", "fallback"] as const
          : ["fallback"] as const
      ) {
        try {
          started = startEngine(shim, bytes, opts, {
            agentCgid: self.id,
            mode,
            enforcing: false,
            breakGlass: bg.active,
            faults: { ...faults, failAttach: new Set() },
          });
          break;
        } catch (e2) {
          lg.warn(
            literal(`audit engine (${mode}) failed too: ${e2 instanceof Error ? e2.message : e2}`),
          );
        }
      }
      if (!started) throw e;
    }
    engine = started.engine;
    cleanups.push(() => engine?.close());
    const cfg = engine.obj.map(MAP_CONFIG);
    const counters = engine.obj.map(MAP_COUNTERS);
    lg.info(
      literal(
        `own cgroup ${self.path}; survival allowlist: ${started.survivors.length} executables`,
      ),
      { cgroup: self.path, survivors: started.survivors.map((s) => s.exe) },
    );
    for (const p of engine.plan.filter((p) => !p.available)) {
      lg.warn(literal(`kernel has no hook for ${p.section}: not loaded`), { section: p.section });
    }

    // ---- 6. emergency control, live rules, unresolved paths
    emergency = new EmergencyControl({
      stateDir: paths.stateDir,
      flag: {
        get: () => cfg.sumU64(AEGIS_CFG_EMERGENCY_DISABLE) !== 0n,
        set: (on) => cfg.setU64(AEGIS_CFG_EMERGENCY_DISABLE, on ? 1n : 0n),
      },
      bus,
    });
    // an operator's emergency disable outlives a reboot (fresh maps start with
    // the flag off): the recorded state wins, loudly (EmergencyControl)
    emergency.reconcileAtStart();
    policy.attach(engine); // the restore below watches the policy's missing paths

    // ---- 6b. the stored policy, then --policy: before any claim of enforcement
    // (policy_phase.ts). A start that cannot have the policy it was given
    // refuses (fail-closed) or reports only (audit-fallback).
    const phase = {
      readopted: engine.readopted,
      requireSignature: opts.requireSignature === true,
      runPolicy: opts.policy,
    };
    const policyProblems = await bringPolicy(policy, { ...phase, parsed: startParse });
    startParse = null; // a large policy's parse is megabytes: not kept for the agent's life
    for (const b of policyProblems) {
      lg.error(literal(b.message));
      extraBlockers.push(b);
      if (b.code === "POLICY_RESTORE_FAILED") {
        // the snapshot is what failed: its counts are not what the kernel holds
        policyStatus = { ...NO_POLICY, snapshot: policyStatus.snapshot };
      }
      const next = afterPolicyProblem(decision, opts.enforceGateMode, b.message);
      if (next.refuse) {
        // nothing this start attached may stay behind a refusal; pins it took
        // over keep enforcing what they held (the previous policy)
        if (engine.pinRoot && !engine.readopted) uninstallPins(engine.pinRoot);
        rebuildReport();
        throw new AegisError("ENFORCE_GATE", refusalMessage([...blockers, b]));
      }
      if (decision.enforcing && !next.decision.enforcing) {
        cfg.setU64(AEGIS_CFG_AUDIT_ONLY, 1n); // the programs stay attached and only report
        startState = "AUDIT_FALLBACK";
      }
      decision = next.decision;
    }
    reapplyRunPolicy = async () => {
      if (!opts.policy) return;
      const failed = await applyRunPolicy(policy, opts.policy, phase.requireSignature);
      if (failed) lg.error(literal(`SIGHUP: ${failed}; the current policy keeps enforcing`));
      else clearBlocker("RUN_POLICY_FAILED", `--policy ${opts.policy} is applied`);
      rebuildReport();
    };

    // ---- 7. the posture, events flowing
    // events: a ring that cannot be opened or read degrades the posture
    // (enforcement is in the kernel and goes on), it does not stop the agent
    let ringProblem:
      | { reason: "RINGBUF_CREATE_FAILED" | "RINGBUF_POLL_FAILED"; detail: string }
      | null = null;
    let drain: EventDrain | null = null;
    let ringBroken = false; // until a restart: the runtime checks must not "recover" from it
    try {
      const ring = shim.openRing(engine.obj.map(MAP_EVENTS).fd);
      cleanups.push(() => ring.close());
      drain = new EventDrain(ring, (r) => {
        if (proofs?.isOwnRecord(r)) {
          // the proof's own deny (a canary, or a user rule verified from the canary
          // cgroup; counted by the prover): its own event type, marked, never a
          // user-visible block
          bus.emit({
            ...recordToEvent(r, resolver, rulePaths ?? undefined),
            type: "self_test",
            self_test: true,
          });
          return;
        }
        netBlocks.observe(r);
        bus.emitRecord(r, () => recordToEvent(r, resolver, rulePaths ?? undefined));
      }, {
        ready: () => !sink.saturated,
        // an empty ring sleeps in the kernel (epoll) instead of a 10 ms tick: an idle
        // agent costs ~0.5 % of a core instead of ~3.4 % (docs/telemetry.md)
        idleWaitMs: 250,
        onFailure: (e) => {
          const detail = `reading the event ring failed: ${e instanceof Error ? e.message : e}`;
          lg.error(literal(detail));
          ringBroken = true;
          sm?.transition("DEGRADED", "RINGBUF_POLL_FAILED", detail);
        },
      });
      cleanups.push(async () => {
        drain?.stop();
        // a wait still in native code must return before the ring and the shim close
        await drain?.settled();
      });
    } catch (e) {
      ringProblem = {
        reason: "RINGBUF_CREATE_FAILED",
        detail: `cannot open the event ring: ${e instanceof Error ? e.message : e}; no events`,
      };
      lg.error(literal(ringProblem.detail));
      ringBroken = true;
    }
    sm = new PostureStateMachine({
      enforceRequested,
      strictMode: opts.strictDegrade === true,
      onTransition: (t) => {
        bus.emit(stateChangeEvent(t));
        const line = `runtime_state ${
          t.from ?? "(start)"
        } -> ${t.to} (${t.reason_code}): ${t.detail}`;
        if (t.to === "ENFORCE") lg.info(literal(line), { ...t });
        else lg.warn(literal(line), { ...t });
        notifier?.status(`${t.to} (${t.reason_code})`);
        rebuildReport();
      },
    });
    const healthyState = startState;
    // the enforcement proof: only where the kernel is meant to deny
    let firstProof: string | null = null;
    if (startState === "ENFORCE") {
      proofs = wireProofs({
        engine,
        shim,
        runtimeDir: paths.runtimeDir,
        stateDir: paths.stateDir,
        canaryParent: self.parent,
        lsmHook: opts.lsmHook,
        intervalSeconds: proofInterval,
        selfTest,
        emergencyActive,
        targets: () => policy.fileRuleTargets(),
        onRound: () => rebuildReport(),
      });
      cleanups.push(async () => {
        proofs?.close();
        // a round's probes are native calls in flight: they must return before the
        // engine and the shim close (a SIGTERM right after an apply lands in one)
        await proofs?.prover.settled();
      });
      const res = await proofs.prover.round();
      // just ran: only a failure counts (its age is no question here)
      firstProof = proofProblem(proofs.prover.surfaces, res, 0, Number.MAX_SAFE_INTEGER) ??
        proofs.verifier.problem();
    }
    if (firstProof) {
      sm.transition("DEGRADED", "ENFORCEMENT_PROOF_FAILED", firstProof);
    } else {
      sm.transition(startState, decision.reason, decision.detail);
    }
    if (ringProblem && startState !== "AUDIT_FALLBACK") {
      sm.transition("DEGRADED", ringProblem.reason, ringProblem.detail);
    }
    drain?.start();
    const hooks = engine.attachedSections();
    lg.info(
      literal(
        `agent started, ${sm.state}: ${hooks.join(", ")}; ` +
          (engine.pinRoot ? `pins under ${engine.pinRoot}` : "not pinned") +
          (engine.readopted ? " (re-adopted)" : "") +
          (blockers.length > 0 ? `; blockers: ${blockers.map((b) => b.code).join(", ")}` : "") +
          (sm.state === "ENFORCE_SIGNAL"
            ? "; offenders are killed after the fact (SIGKILL), enforce_capable stays false"
            : ""),
      ),
      { state: sm.state, hooks, pins: engine.pinRoot, readopted: engine.readopted },
    );
    if (sm.shouldExit()) {
      throw new AegisError(
        "STRICT_DEGRADE",
        `--strict-degrade: enforce was requested but the agent is in ${sm.state} ` +
          `(${decision.reason}): exiting`,
      );
    }
    // the policy is restored and the posture decided: the service is up
    notifier?.ready(`${sm.state}: ${hooks.length} hooks`);
    cleanups.push(() => notifier?.stopping("stopping"));

    // ---- 8. runtime checks, every second (src/daemon/monitor.ts)
    const hookStats = engine.obj.map(MAP_HOOK_STATS);
    const eng = engine;
    const machine = sm;
    const wired = proofs;
    const monitor = new RuntimeMonitor({
      drops: () => counter(counters, AEGIS_CNT_RINGBUF_DROPS),
      denies: () => totalBlocks(hookStats) - BigInt(selfTest.total),
      expectedHooks: [...hooks],
      attachedHooks: () => attachedNow(eng),
      mapUtilisation: () => mapUtilisation(eng),
      healthyState,
      state: () => machine.state!,
      emergencyActive,
      proofs: wired && {
        tick: (emergencyOn) => emergencyOn ? wired.prover.expedite() : wired.prover.tick(),
        // a failed proof always counts; staleness only while proofs run
        // (not off, not during emergency disable, no round in flight)
        problem: (emergencyOn) =>
          proofProblem(
            wired.prover.surfaces,
            wired.prover.results,
            Math.floor(Date.now() / 1000),
            proofInterval > 0 && !emergencyOn && !wired.prover.running
              ? proofInterval
              : Number.MAX_SAFE_INTEGER,
          ) ?? wired.verifier.problem(),
      },
      policyTick: () => policy.tick(),
      ringBroken: () => ringBroken,
      denyRateThreshold: opts.denyRateThreshold,
      transition: (w) => machine.transition(w.state, w.reason, w.detail),
      shouldExit: () => machine.shouldExit(),
      onStrictExit: () => stop.abort("STRICT_DEGRADE"),
      onAlive: () => {
        liveness.beat();
        notifier?.watchdog();
      },
      onError: (what, e) =>
        (what === "live rule sweep" ? log("policy") : lg).error(
          literal(`${what} failed: ${e instanceof Error ? e.message : e}`),
        ),
    });
    cleanups.push(monitor.start(CHECK_INTERVAL_MS));

    const why = await waitForStop(stop.signal);
    const records = drain?.stats.records ?? 0;
    await cleanup();
    const note = engine.pinRoot
      ? "pinned programs keep running (aegisbpf uninstall removes them)"
      : "programs detached";
    lg.info(literal(`agent stopping (${why}): ${records} records read; ${note}`), { records });
    if (why === "STRICT_DEGRADE") {
      throw new AegisError(
        "STRICT_DEGRADE",
        `--strict-degrade: the agent degraded to ${sm.state}; exiting`,
      );
    }
  } finally {
    await cleanup();
  }
}

/** /events subscribers the hub cut off (every reason). */
function sseDropped(hub: SseHub): number {
  return Object.values(hub.stats().dropped_clients).reduce((a, b) => a + b, 0);
}
