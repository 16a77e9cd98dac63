/**
 * The enforcement proof as the daemon runs it (docs/posture.md,
 * "Enforcement proof" and "Rule verification"): the canary of each surface
 * the engine attached (file, exec, network, and the kernel switches the
 * policy turns on), the verification of the operator's own file rules, and
 * the self-test accounting that keeps the probes' denies out of the block
 * counts. Wired once the engine enforces; the daemon runs the first round
 * before it claims ENFORCE and then ticks the prover every second.
 *
 * @module
 */
import { type Engine, type FileHookChoice, MAP_CONFIG, MAP_HOOK_STATS } from "../bpf/engine.ts";
import { resolveRulePath } from "../bpf/path_rule.ts";
import { inodeKey } from "../bpf/rule_codec.ts";
import type { KernelRecord } from "../events/decode.ts";
import { literal, log } from "../log.ts";
import { hookBlocks, visibleBlocks } from "../metrics/render.ts";
import type { Shim } from "../native/mod.ts";
import { probeConnect, probeKernel, probeOpenPaths } from "../native/probe.ts";
import type { CompiledEntry } from "../policy/compile.ts";
import { liveGeneration, setBuiltinRules } from "../policy/generations.ts";
import {
  CANARY_NET_ADDR,
  CANARY_NET_PORT,
  canaryCgroup,
  ensureExecSentinel,
  ensureHashSentinel,
  ensureInGeneration,
  ensureSentinel,
  EXEC_CANARY_FLAGS,
  execCanaryEntry,
  FILE_CANARY_FLAGS,
  fileCanaryEntry,
  HASH_CANARY_FLAGS,
  hashCanaryEntry,
  hashListsOn,
  isCanaryRuleId,
  judgeConnect,
  judgeKernel,
  KERNEL_SWITCHES,
  NET_CANARY_FLAGS,
  netCanaryEntry,
  policyFlags,
  probeExec,
  probeOpen,
  type ProbeOutcome,
  type SentinelId,
} from "../proof/canary.ts";
import { EnforcementProver, type ProofResults, type SelfTestCounter } from "../proof/prover.ts";
import {
  DEFAULT_VERIFY_LIMIT,
  describeRound,
  type FileRuleTarget,
  type RuleVerification,
  RuleVerifier,
  VERIFY_TIMEOUT_MS,
} from "../proof/verify.ts";
import { AEGIS_CFG_CANARY_CGID, type MapName } from "../bpf/abi_gen.ts";

export interface ProofWiring {
  /** the engine, enforcing */
  engine: Engine;
  shim: Shim;
  /** the file sentinel's home (a 0700 `proof` directory below it) */
  runtimeDir: string;
  /** the exec sentinel's home (not /run: it may be noexec) */
  stateDir: string;
  /** where the canary cgroup goes: the cgroup the agent was started in (SelfCgroup.parent) */
  canaryParent: string;
  /** which hook denies an open first (run --lsm-hook) */
  lsmHook: FileHookChoice;
  /** seconds between rounds (run --proof-interval); 0 = one round only */
  intervalSeconds: number;
  /** the proof's own denies, kept out of the block counts (metrics/render.ts) */
  selfTest: SelfTestCounter;
  /** while on, nothing is proven (the hooks only report) */
  emergencyActive: () => boolean;
  /** the operator's file rules to verify (DaemonPolicy.fileRuleTargets) */
  targets: () => FileRuleTarget[];
  /** after every round: rewrite the report */
  onRound: () => void;
}

export interface Proofs {
  prover: EnforcementProver;
  verifier: RuleVerifier;
  /** a record of the proof's own probes: a self_test event, never a block */
  isOwnRecord(r: KernelRecord): boolean;
  /** canary entries in the live aegis_deny_inode generation (left out of the entry count) */
  readonly liveCanaryEntries: number;
  /**
   * One round that includes every change made before the call (an apply,
   * a live edit), for the reply; null while emergency disable is on.
   */
  verifyNow(): Promise<RuleVerification | null>;
  /** stop carrying the canaries into new rule generations */
  close(): void;
}

/** Wire the proofs to an enforcing engine; nothing runs until the first round. */
export function wireProofs(w: ProofWiring): Proofs {
  const eng = w.engine;
  const shim = w.shim;
  const lg = log("run");
  const selfTest = w.selfTest;
  const emergencyActive = w.emergencyActive;
  let canaryCgid: number | null = null;
  /**
   * The probes' cgroup; made again every time if someone removed it. Its
   * id goes to AEGIS_CFG_CANARY_CGID before a probe runs: the hooks deny
   * the probes but never signal them (run --enforce-signal), so they live
   * to report the EPERM.
   */
  const canary = (): string => {
    const cg = canaryCgroup(w.canaryParent);
    if (cg.id !== canaryCgid) {
      eng.obj.map(MAP_CONFIG).setU64(AEGIS_CFG_CANARY_CGID, BigInt(cg.id));
    }
    canaryCgid = cg.id;
    return cg.path;
  };
  let canaryInLive = 0;
  const maps = { map: (n: MapName) => eng.obj.map(n) };
  let sentinel: SentinelId | null = null;
  // the exec and network canaries need their hooks: proven only where attached
  const execOn = eng.attachedSections().includes("lsm/bprm_check_security");
  const netOn = eng.attachedSections().includes("lsm/socket_connect");
  // exec identity by content: the sleepable exec program (optional: not every kernel loads it)
  const hashOn = eng.attachedSections().includes("lsm.s/bprm_check_security");
  const kernelSwitches = KERNEL_SWITCHES.filter((k) => eng.attachedSections().includes(k.section));
  const proofMs: Record<string, number> = {};
  /**
   * One surface: re-assert its canary in the live generation (an apply
   * carries it, setBuiltinRules; this repairs anything else), run the
   * probe, count its deny as self-test when it has its answer (the
   * kernel's counter already holds the deny; its ring record may not be
   * read yet) and hold the hook's visible count meanwhile (render.ts
   * visibleBlocks).
   */
  const proveWith = async (
    surface: string,
    hook: string,
    entry: CompiledEntry,
    flags: number,
    run: (cg: string) => Promise<ProbeOutcome>,
  ): Promise<ProbeOutcome | null> => {
    if (emergencyActive()) return null; // the hooks only report: nothing to prove
    const t0 = performance.now();
    const cg = canary();
    ensureInGeneration(maps, liveGeneration((n) => eng.obj.map(n)), entry, flags);
    const stats = eng.obj.map(MAP_HOOK_STATS);
    selfTest.pending = [{
      hook,
      floor: visibleBlocks(hookBlocks(stats, hook), hook, {
        byHook: selfTest.byHook,
        liveCanaryEntries: 0,
      }),
    }];
    try {
      const out = await run(cg);
      if (out.denied) selfTest.observe(hook);
      // switched on while the probe ran: its open may have been let through by design
      return !out.denied && emergencyActive() ? null : out;
    } finally {
      selfTest.pending = [];
      proofMs[surface] = Math.round(performance.now() - t0);
    }
  };
  // the hook that denies the probe's open: inode_permission runs first when attached
  const openHook = w.lsmHook === "file" ? "file_open" : "inode_permission";
  const fileProof = () => {
    const s = ensureSentinel(`${w.runtimeDir}/proof`);
    sentinel = s;
    canaryInLive = 1;
    return proveWith(
      "file",
      openHook,
      fileCanaryEntry(s),
      FILE_CANARY_FLAGS,
      (cg) => probeOpen(s.path, cg),
    );
  };
  const execProof = () => {
    const x = ensureExecSentinel(`${w.stateDir}/proof`);
    return proveWith(
      "exec",
      "bprm_check_security",
      execCanaryEntry(),
      EXEC_CANARY_FLAGS,
      (cg) => probeExec(x.path, cg),
    );
  };
  // the content lists' exec program: proven while the live policy has a list
  // (the canary entry sets no switch: it must not make every exec hash)
  const execHashProof = async (): Promise<ProbeOutcome | null | "inactive"> => {
    if (emergencyActive()) return null;
    if (!hashListsOn(policyFlags(maps, liveGeneration((n) => eng.obj.map(n))))) {
      return "inactive";
    }
    const x = ensureHashSentinel(`${w.stateDir}/proof`);
    return await proveWith(
      "exec_hash",
      "bprm_check_hash",
      hashCanaryEntry(),
      HASH_CANARY_FLAGS,
      (cg) => probeExec(x.path, cg),
    );
  };
  const netProof = () =>
    proveWith(
      "network",
      "socket_connect",
      netCanaryEntry(),
      NET_CANARY_FLAGS,
      async (cg) =>
        judgeConnect(
          await probeConnect(
            shim,
            `${cg}/cgroup.procs`,
            CANARY_NET_ADDR,
            CANARY_NET_PORT,
            VERIFY_TIMEOUT_MS,
          ),
        ),
    );
  // the kernel switches the live policy turns on (no canary rule: the operator's own)
  const kernelProof = async (): Promise<ProbeOutcome | null | "inactive"> => {
    if (emergencyActive()) return null;
    const on = policyFlags(maps, liveGeneration((n) => eng.obj.map(n)));
    const active = kernelSwitches.filter((k) => (on & k.flag) !== 0);
    if (active.length === 0) return "inactive";
    const t0 = performance.now();
    const cg = canary();
    const stats = eng.obj.map(MAP_HOOK_STATS);
    const before = new Map(active.map((k) => [k.op, hookBlocks(stats, k.hook)]));
    selfTest.pending = active.map((k) => ({
      hook: k.hook,
      floor: visibleBlocks(before.get(k.op)!, k.hook, {
        byHook: selfTest.byHook,
        liveCanaryEntries: 0,
      }),
    }));
    try {
      const res = await probeKernel(
        shim,
        `${cg}/cgroup.procs`,
        active.map((k) => k.op),
        VERIFY_TIMEOUT_MS,
      );
      const denies = Object.fromEntries(
        active.map((k) => [k.op, hookBlocks(stats, k.hook) - before.get(k.op)!]),
      );
      const out = judgeKernel(res, active, denies);
      for (const k of out.deniedBy) selfTest.observe(k.hook);
      return !out.denied && emergencyActive() ? null : out;
    } finally {
      selfTest.pending = [];
      proofMs.kernel = Math.round(performance.now() - t0);
    }
  };
  // the operator's own file rules, verified from the canary cgroup after the surfaces
  const v = new RuleVerifier({
    targets: w.targets,
    probe: (paths) => {
      const cg = canary();
      return probeOpenPaths(shim, `${cg}/cgroup.procs`, paths, VERIFY_TIMEOUT_MS);
    },
    heldNow: (path) => heldInLive(eng, path),
  });
  let lastUnenforced = "";
  const verifyRules = async () => {
    if (emergencyActive()) return; // the hooks only report: nothing to verify
    const t0 = performance.now();
    const stats = eng.obj.map(MAP_HOOK_STATS);
    const before = hookBlocks(stats, openHook);
    selfTest.pending = [{
      hook: openHook,
      floor: visibleBlocks(before, openHook, {
        byHook: selfTest.byHook,
        liveCanaryEntries: 0,
      }),
      count: DEFAULT_VERIFY_LIMIT,
    }];
    try {
      const r = await v.round();
      // a rule counts as denied on any EPERM (another LSM, a directory on the
      // way); only the hook's own new denies are the proof's, never more
      const own = Math.min(r.denied, Number(hookBlocks(stats, openHook) - before));
      for (let i = 0; i < own; i++) selfTest.observe(openHook);
      const ms = Math.round(performance.now() - t0);
      const now = JSON.stringify(v.unenforced);
      if (r.tried > 0) {
        // loud when the unenforced set changes, informative when new rules were tried
        const line = `rule verification: ${describeRound(r)} (${ms} ms)`;
        if (now !== lastUnenforced && v.unenforced.length > 0) {
          lg.error(literal(`${line}; ${v.problem()}`), { round: r, ms });
        } else if (now !== lastUnenforced || r.fresh > 0) {
          lg.info(literal(line), { round: r, ms });
        } else lg.debug(literal(line), { round: r, ms });
      }
      lastUnenforced = now;
    } catch (e) {
      lg.error(
        literal(`rule verification could not run: ${e instanceof Error ? e.message : e}`),
      );
      throw e;
    } finally {
      selfTest.pending = [];
    }
  };
  setBuiltinRules(() => {
    const entries: CompiledEntry[] = [];
    let flags = 0;
    if (sentinel) {
      entries.push(fileCanaryEntry(sentinel));
      flags |= FILE_CANARY_FLAGS;
    }
    if (execOn) {
      entries.push(execCanaryEntry());
      flags |= EXEC_CANARY_FLAGS;
    }
    if (hashOn) entries.push(hashCanaryEntry()); // no flags (HASH_CANARY_FLAGS)
    if (netOn) {
      entries.push(netCanaryEntry());
      flags |= NET_CANARY_FLAGS;
    }
    return { flags, entries };
  });
  const lastOk: Record<string, boolean> = {};
  const prover = new EnforcementProver({
    surfaces: {
      file: fileProof,
      ...(execOn ? { exec: execProof } : {}),
      ...(hashOn ? { exec_hash: execHashProof } : {}),
      ...(netOn ? { network: netProof } : {}),
      ...(kernelSwitches.length > 0 ? { kernel: kernelProof } : {}),
    },
    intervalSeconds: w.intervalSeconds,
    afterSurfaces: verifyRules,
    onRound: (res: ProofResults) => {
      for (const [surface, r] of Object.entries(res)) {
        if (!r || r.ok === lastOk[surface]) continue;
        lastOk[surface] = r.ok;
        const ms = proofMs[surface] ?? 0;
        const line = `enforcement proof (${surface})${r.ok ? "" : " FAILED"}: ${r.detail} ` +
          `(${ms} ms)`;
        if (r.ok) lg.info(literal(line), { proof: res, ms });
        else lg.error(literal(line), { proof: res, ms });
      }
      w.onRound();
    },
  });
  if (w.intervalSeconds === 0) {
    lg.warn(
      literal(
        "ENFORCEMENT PROOFS ARE OFF (--proof-interval 0): one proof at start, then nothing " +
          "shows that the kernel still denies; /health?require_enforce=1 answers 503",
      ),
    );
  }
  return {
    prover,
    verifier: v,
    isOwnRecord: (r) =>
      (r.kind === "file_block" || r.kind === "net_block" || r.kind === "kernel_block") &&
      ((r.kind !== "kernel_block" && isCanaryRuleId(r.ruleId)) ||
        (canaryCgid !== null && r.cgid === canaryCgid)),
    get liveCanaryEntries() {
      return canaryInLive;
    },
    verifyNow: async () => {
      if (emergencyActive()) return null;
      // after any round in flight (begun before the change); the canaries wait for their period
      await prover.afterSurfacesOnly();
      w.onRound();
      return v.summary();
    },
    close: () => setBuiltinRules(null),
  };
}

/**
 * Does the live generation of `engine` hold a global file rule for the
 * file `path` names now (resolved as a rule would be)? For the rule
 * verification's report; null when the path does not resolve any more.
 */
function heldInLive(engine: Engine, path: string): { held: boolean; identity: string } | null {
  try {
    const r = resolveRulePath(path);
    if (r.status !== "resolved") return null;
    const gen = liveGeneration((n) => engine.obj.map(n));
    const held = engine.obj.map("aegis_deny_inode").lookup(inodeKey(r.dev, r.ino, gen)) !== null;
    const identity = `dev ${r.dev >>> 20}:${r.dev & 0xfffff} inode ${r.ino}` +
      (r.fsType ? ` on ${r.fsType}` : "");
    return { held, identity };
  } catch {
    return null;
  }
}
