/**
 * The daemon behind `aegisbpf run`: probe, gate, attach, then keep the
 * posture honest for the whole life of the process. `runDaemon` is the
 * start order (docs/architecture.md, "The daemon"): one phase a module,
 * each handing the next what it needs; every step can refuse, and a
 * refusal leaves nothing attached that this start attached.
 *
 * @module
 */
import { pinRoot } from "../bpf/engine.ts";
import { DEFAULT_PROOF_INTERVAL_SECONDS, SelfTestCounter } from "../proof/prover.ts";
import { aegisPaths } from "../contracts.ts";
import { breakGlassAtStart } from "./break_glass.ts";
import { startChecks } from "./checks.ts";
import { startEmergency, startEngineAtStart } from "./engine_start.ts";
import { EventRing } from "./event_ring.ts";
import { createPolicy, startControlSocket, startListeners } from "./listeners.ts";
import { type DaemonOptions, NO_FAULTS, TAMPER_DEGRADE_THRESHOLD } from "./options.ts";
import { openOutputs } from "./outputs.ts";
import { restoreAtStart, runPolicyReapply } from "./policy_phase.ts";
import { announceStart, createMachine, firstPosture, firstProof } from "./posture.ts";
import { probeAndGate } from "./probe_gate.ts";
import { armSelfProtectAtStart, installSeccomp, setNoNewPrivs } from "./self_protect.ts";
import { limitCapabilities, readThreadCaps } from "./caps.ts";
import { openNative } from "./shim_open.ts";
import { installSighup } from "./sighup.ts";
import { Cleanups, shutDown, waitForStop } from "./shutdown.ts";
import { StartClock } from "./start_clock.ts";
import { AgentStatus } from "./status.ts";
import { readStoredPolicy } from "./stored.ts";
import { daemonViews } from "./views.ts";

export { type DaemonOptions, type Faults, NO_FAULTS } from "./options.ts";
/** Where pins live: AEGIS_PIN_ROOT (tests) or /sys/fs/bpf/aegisbpf. */
export { pinRoot };

/**
 * Run the daemon until SIGINT/SIGTERM (or, with --strict-degrade, until the
 * posture degrades: then AegisError STRICT_DEGRADE, exit 1).
 */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const clock = new StartClock();
  clock.mark("load");
  const paths = aegisPaths();
  const faults = opts.faults ?? NO_FAULTS;
  const stop = new AbortController();
  const cleanups = new Cleanups();
  const outputs = openOutputs(opts, cleanups);
  const sighup = installSighup(outputs.sink, opts.policy, cleanups);
  try {
    const stored = await readStoredPolicy(paths.stateDir);
    const native = await openNative(outputs.bus.envelope, cleanups);
    const { shim, bytes, notifier } = native;
    const noNewPrivs = setNoNewPrivs(shim);
    clock.mark("native");
    const status = new AgentStatus({
      capabilitiesPath: paths.capabilities,
      needs: stored.applied.needs,
      policyStatus: stored.applied.status,
      enforceRequested: opts.audit !== true,
      strictMode: opts.strictDegrade === true,
      proofInterval: opts.proofIntervalSeconds ?? DEFAULT_PROOF_INTERVAL_SECONDS,
    });
    const selfTest = new SelfTestCounter();
    // 1. listeners first: a busy port or a running agent refuses early
    const views = daemonViews({
      status,
      outputs,
      paths,
      objectFacts: native.objectFacts,
      selfTest,
    });
    const { app, liveness } = await startListeners(opts, views, outputs.hub, cleanups);
    const { policy, rulePaths } = createPolicy(
      paths.stateDir,
      outputs.bus,
      status,
      cleanups,
      () => selfTest.total,
      outputs.cgroups,
    );
    await startControlSocket(paths.controlSocket, app, policy, status, cleanups);
    clock.mark("listeners");
    // 2. break-glass; 3, 4. probes, blockers and the gate
    const breakGlass = (await breakGlassAtStart(paths)).active;
    const { needs, mapSizes } = stored.applied;
    const gate = await probeAndGate({ opts, faults, shim, bytes, needs, breakGlass }, status);
    const { blockers } = gate;
    clock.mark("probes");
    // 5. the engine, with the agent in a cgroup of its own; 5b. the policy
    const eng = startEngineAtStart(
      { opts, faults, shim, bytes, decision: gate.decision, blockers, breakGlass, mapSizes },
      status,
      cleanups,
    );
    const { engine, cfg } = eng;
    clock.mark("engine");
    startEmergency(cfg, paths.stateDir, outputs.bus, status);
    const parse = stored.parse;
    const restore = { opts, policy, engine, cfg, parse, decision: eng.decision, blockers };
    const decision = await restoreAtStart(restore, status);
    sighup.reapplyWith(runPolicyReapply(policy, opts, status));
    clock.mark("policy");
    // 5c. run --self-protect: the kernel guards, now that pins and policy are in place
    const guards = armSelfProtectAtStart(
      {
        opts,
        shim,
        engine,
        self: eng.self,
        paths,
        decision,
        breakGlass,
        emergencyActive: status.emergencyActive(),
        exe: Deno.execPath(),
      },
      cleanups,
    );
    // 5d. user-space hardening, on every thread, before the first proof: the
    // capabilities the running daemon needs, then the seccomp allow list
    const capabilities = limitCapabilities({ shim, read: readThreadCaps }, opts.dropCaps !== false);
    const seccomp = installSeccomp(shim, opts.seccomp ?? "enforce");
    status.attach({
      selfProtection: { ...guards, no_new_privs: noNewPrivs, seccomp, capabilities },
    });
    clock.mark("self_protect");
    // 6, 7. events, the posture (the first proof where enforcing), READY
    const ring = new EventRing({ shim, engine, outputs, rulePaths, policy, status }, cleanups);
    const machine = createMachine(outputs.bus, notifier, status);
    const proof = decision.state === "ENFORCE" // the proof only where the kernel is meant to deny
      ? await firstProof(
        { opts, paths, engine, shim, canaryParent: eng.self.parent, selfTest, policy },
        status,
        cleanups,
      )
      : null;
    clock.mark("proof");
    firstPosture(machine, decision, proof?.problem ?? null, ring);
    ring.start();
    const hooks = announceStart(machine, engine, decision, blockers, notifier, cleanups, clock);
    // 8. runtime checks, every second
    startChecks(
      {
        engine,
        counters: eng.counters,
        hooks,
        healthyState: decision.state,
        machine,
        proofs: proof?.proofs ?? null,
        policy,
        ring,
        selfTest,
        liveness,
        notifier,
        denyRateThreshold: opts.denyRateThreshold,
        ...(opts.selfProtect
          ? { tamperThreshold: opts.tamperDegradeThreshold ?? TAMPER_DEGRADE_THRESHOLD }
          : {}),
        stop,
      },
      status,
      cleanups,
    );
    await shutDown(await waitForStop(stop.signal), ring.records, engine, machine, cleanups);
  } finally {
    await cleanups.run();
  }
}
