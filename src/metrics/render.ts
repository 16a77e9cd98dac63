/**
 * `GET /metrics` and `aegisbpf metrics`: the agent's state in Prometheus
 * text format (docs/telemetry.md). docs/telemetry.md lists every metric.
 *
 * Everything comes through {@link MetricsSources} (injected; read at render
 * time), so the daemon renders from its live maps and its own state, the
 * CLI from the pinned maps with the runtime state unknown, and tests from
 * fakes. Kernel counters are per-CPU and summed here.
 *
 * @module
 */
import {
  ABI_LAYOUT,
  AEGIS_ACT_AUDIT,
  AEGIS_CFG_EMERGENCY_DISABLE,
  AEGIS_CFG_GENERATION,
  AEGIS_CNT_EVENTS,
  AEGIS_CNT_HASH_CACHED,
  AEGIS_CNT_HASH_UNKNOWN,
  AEGIS_CNT_KILL_ESCALATION,
  AEGIS_CNT_RINGBUF_DROPS,
  AEGIS_CNT_SIGNAL_FAILED,
  AEGIS_CNT_SIGNAL_SENT,
  AEGIS_CNT_SURVIVAL_ALLOW,
} from "../bpf/abi_gen.ts";
import { MAP_HOOK_STATS } from "../bpf/engine.ts";
import {
  BLOCKER_CODES,
  type BlockerCode,
  RUNTIME_STATES,
  type RuntimeState,
} from "../contracts.ts";
import type { KernelRecord } from "../events/decode.ts";
import { HOOK_NAMES, isSelfHook, RULE_TYPE_NAMES } from "../events/json.ts";
import { RULE_MAP_NAMES } from "../policy/generations.ts";
import { type PendingProbe, PROOF_SURFACES, type ProofResults } from "../proof/prover.ts";
import { BUILD } from "../assets/mod.ts";
import { readPerfSlo } from "./perf_slo.ts";
import { type ProcessStats, type ProcFiles, readProcessStats } from "./process.ts";
import { Exposition, type MetricType } from "./prom.ts";
import type { MapName } from "../bpf/abi_gen.ts";

/** What the renderer needs of a map (BpfMap has it). */
export interface MetricsMap {
  readonly maxEntries: number;
  readonly valueSize: number;
  /** values per lookup: possible CPUs for per-CPU maps, else 1 */
  readonly slots: number;
  lookup(key: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> | null;
  keys(): Uint8Array<ArrayBuffer>[];
  sumU64(index: number): bigint;
}

/**
 * Where the numbers come from. Read once per render; the daemon passes an
 * object whose fields are getters (or builds a fresh one per scrape).
 * `null` means "not known here" and leaves the metric out.
 */
export interface MetricsSources {
  /** A live map by name (the daemon's object or the pins), null if absent. */
  map(name: MapName): MetricsMap | null;
  /** Runtime state; null when unknown (CLI without a daemon). */
  runtimeState: RuntimeState | null;
  enforceCapable: boolean | null;
  /**
   * The enforce blockers that hold now (capabilities.json `enforce_blockers`
   * codes); null/absent leaves aegisbpf_enforce_blocker out (no daemon, or
   * the daemon before its first report).
   */
  blockers?: readonly BlockerCode[] | null;
  /** Kill-switch bookkeeping (the daemon's emergency module). */
  emergency: { active: boolean; transitions: number; stormActive: boolean } | null;
  /**
   * User-space event counts: `emitted` = events the agent published (kernel
   * records after decoding, state_change, control_change); the sink's
   * dropped and (optionally) written lines (EventSink.stats).
   */
  events: {
    emitted: number;
    sinkDropped: number;
    sinkWritten?: number;
    /** block events the volume controls kept off the lines (src/events/volume.ts) */
    volume?: { sampledOut: number; folded: number; untracked: number };
  } | null;
  /** Network blocks by action and rule type, counted from events (NetBlockCounter). */
  netBlocks?: Readonly<Record<BlockAction, Readonly<Record<string, number>>>> | null;
  /** /events subscribers cut off for being too slow. */
  sse?: { droppedClients: number } | null;
  /** Policy path rules whose file does not exist yet. */
  unresolvedPaths: number | null;
  /** perf-slo-summary.json (aegisPaths().perfSlo). */
  perfSloPath: string;
  /**
   * The agent's /proc files for the `process_*` metrics (PROC_SELF in the
   * daemon); null/absent leaves them out (the CLI: they would describe
   * itself, not the agent).
   */
  process?: ProcFiles | null;
  /** The labels of aegisbpf_build_info (agentBuildInfo()); null/absent leaves it out. */
  build?: BuildInfo | null;
  /**
   * The enforcement proof's own denies by hook (counted from its block
   * records) and its canary entries in the live deny_inode generation:
   * taken out of the user-visible block and entry counts.
   */
  selfTest?: {
    byHook: Readonly<Record<string, number>>;
    liveCanaryEntries: number;
    /**
     * A probe in flight: its denies (at most `count`, default 1) may already
     * be in the kernel's count of `hook` but not yet in byHook. The hook
     * then shows `count` less, never less than `floor` (what it showed when
     * the probe started), so a proof's deny never appears and the counter
     * never goes down.
     */
    pending?: readonly PendingProbe[];
  } | null;
  /**
   * The last enforcement proofs and the clock (unix seconds); rule
   * verification: rules found not denied, and denied (last round).
   */
  proof?: {
    results: ProofResults;
    now: number;
    unenforcedRules?: number;
    verifiedRules?: number;
  } | null;
}

/** The labels of `aegisbpf_build_info` (docs/telemetry.md). */
export interface BuildInfo {
  /** the agent's version (deno.json, recorded at build time) */
  version: string;
  /** the libbpf linked statically into the shim: its Debian source version (build manifest) */
  libbpf_version: string;
  /** the first 12 hex digits of the kernel ABI fingerprint (`aegisbpf version` has all 64) */
  abi_fingerprint: string;
  deno_version: string;
}

/**
 * This agent's build, as `aegisbpf version` prints it (libbpf: the full
 * source version, where the shim itself reports only major.minor).
 */
export function agentBuildInfo(): BuildInfo {
  return {
    version: BUILD.agentVersion,
    libbpf_version: BUILD.libbpfVersion,
    abi_fingerprint: BUILD.abiFingerprint.slice(0, 12),
    deno_version: Deno.version.deno,
  };
}

/** Sources with kernel facts only (no daemon: state, events, emergency unknown). */
export function kernelOnlySources(
  map: (name: MapName) => MetricsMap | null,
  perfSloPath: string,
): MetricsSources {
  return {
    map,
    runtimeState: null,
    enforceCapable: null,
    emergency: null,
    events: null,
    netBlocks: null,
    sse: null,
    unresolvedPaths: null,
    perfSloPath,
  };
}

export interface RenderOptions {
  /** Add per-hook blocks/audits, per-CPU drops, map entries, extra kernel counters. */
  detailed: boolean;
}

/** Rule types of aegisbpf_net_blocks_total{type} (docs/telemetry.md), always exported. */
export const NET_BLOCK_TYPES = ["ip", "cidr", "port", "ip_port", "identity", "cg_ip", "cg_port"];

/**
 * The `action` label of the block counters (docs/telemetry.md): `block` =
 * denied or signalled, `audit` = a rule matched but the hook only reported
 * (audit mode, emergency disable, break-glass): the would-be blocks.
 */
export const BLOCK_ACTIONS = ["block", "audit"] as const;
export type BlockAction = typeof BLOCK_ACTIONS[number];

/** Maps whose capacity and utilisation are exported. */
export const CAPACITY_MAPS: readonly MapName[] = [...RULE_MAP_NAMES, "aegis_survival_inode"];

/**
 * Network blocks by action and rule type, fed with every decoded record
 * (the kernel counts blocks per hook, not per rule type): AUDIT records
 * are would-be blocks (action `audit`), every other action a block.
 */
export class NetBlockCounter {
  readonly counts: Record<BlockAction, Record<string, number>> = {
    block: Object.fromEntries(NET_BLOCK_TYPES.map((t) => [t, 0])),
    audit: Object.fromEntries(NET_BLOCK_TYPES.map((t) => [t, 0])),
  };
  observe(r: KernelRecord): void {
    if (r.kind !== "net_block") return;
    const byType = this.counts[r.action === AEGIS_ACT_AUDIT ? "audit" : "block"];
    const t = RULE_TYPE_NAMES[r.ruleType] ?? "unknown";
    byType[t] = (byType[t] ?? 0) + 1;
  }
}

function u32Key(i: number): Uint8Array<ArrayBuffer> {
  const k = new Uint8Array(4);
  new DataView(k.buffer).setUint32(0, i, true);
  return k;
}

/** Per-CPU u64 fields of array slot `index`, summed over CPUs. */
function sumFields(m: MetricsMap, index: number, fields: number): bigint[] {
  const sums = new Array<bigint>(fields).fill(0n);
  const v = m.lookup(u32Key(index));
  if (!v) return sums;
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const stride = m.slots === 1 ? m.valueSize : (m.valueSize + 7) & ~7;
  for (let c = 0; c < m.slots; c++) {
    for (let f = 0; f < fields; f++) sums[f] += dv.getBigUint64(c * stride + f * 8, true);
  }
  return sums;
}

/**
 * Operations the hooks denied or signalled, summed over CPUs in one pass:
 * `policy` for the policy hooks, `tamper` for the self-protection guards
 * (tamper attempts are not policy blocks).
 */
export function blockTotals(hooks: MetricsMap): { policy: bigint; tamper: bigint } {
  const at = HOOK_STAT.fields.blocks.offset / 8;
  const totals = { policy: 0n, tamper: 0n };
  for (const [id, hook] of Object.entries(HOOK_NAMES)) {
    const n = sumFields(hooks, Number(id), HOOK_STAT.size / 8)[at];
    if (isSelfHook(hook)) totals.tamper += n;
    else totals.policy += n;
  }
  return totals;
}

/** A hook's blocks as the kernel counts them (the proof's canary denies included). */
export function hookBlocks(hooks: MetricsMap, hook: string): bigint {
  const id = Object.entries(HOOK_NAMES).find(([, n]) => n === hook)?.[0];
  if (id === undefined) return 0n;
  return sumFields(hooks, Number(id), HOOK_STAT.size / 8)[HOOK_STAT.fields.blocks.offset / 8];
}

/**
 * Operations a rule matched, every hook and CPU: denied or signalled plus
 * only reported (audit mode, emergency disable, break-glass). What
 * `policy apply --canary` watches (src/policy/canary.ts).
 */
export function totalMatches(hooks: MetricsMap): bigint {
  const f = HOOK_STAT.fields;
  let n = 0n;
  for (const [id, hook] of Object.entries(HOOK_NAMES)) {
    if (isSelfHook(hook)) continue; // tamper attempts are not policy matches
    const s = sumFields(hooks, Number(id), HOOK_STAT.size / 8);
    n += s[f.blocks.offset / 8] + s[f.audits.offset / 8];
  }
  return n;
}

/** A hook's kernel block count without the proof's canary denies (MetricsSources.selfTest). */
export function visibleBlocks(
  kernel: bigint,
  hook: string,
  selfTest: MetricsSources["selfTest"],
): bigint {
  const own = BigInt(selfTest?.byHook[hook] ?? 0);
  let v = kernel > own ? kernel - own : 0n;
  for (const p of selfTest?.pending ?? []) {
    if (p.hook !== hook) continue;
    const c = BigInt(p.count ?? 1);
    v = v > c ? v - c : 0n;
    if (v < p.floor) v = p.floor;
  }
  return v;
}

/** Per-CPU values of a u64 array slot. */
function perCpu(m: MetricsMap, index: number): bigint[] {
  const v = m.lookup(u32Key(index));
  if (!v) return [];
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const out: bigint[] = [];
  for (let c = 0; c < m.slots; c++) out.push(dv.getBigUint64(c * 8, true));
  return out;
}

/**
 * Nanoseconds (the kernel's unit) as seconds, the exposition's base unit
 * (docs/telemetry.md); a float64 like every Prometheus sample.
 */
export function nsToSeconds(ns: bigint): number {
  return Number(ns) / 1e9;
}

const HOOK_STAT = ABI_LAYOUT.structs.aegis_hook_stat;
const INODE_GEN = ABI_LAYOUT.structs.aegis_inode_key.fields.gen.offset;

/** Render the exposition text. */
export async function renderMetrics(src: MetricsSources, opts: RenderOptions): Promise<string> {
  const x = new Exposition();
  const counters = src.map("aegis_counters");
  const hooks = src.map(MAP_HOOK_STATS);
  const config = src.map("aegis_config");

  x.declare(
    "aegisbpf_build_info",
    "gauge",
    "Always 1; the labels say which agent build runs (version, libbpf, ABI fingerprint, Deno).",
  );
  if (src.build) x.sample("aegisbpf_build_info", 1, { ...src.build });

  x.declare(
    "aegisbpf_blocks_total",
    "counter",
    'Operations a rule matched, all hooks: denied or signalled (action="block"), or only ' +
      'reported by audit mode, emergency disable or break-glass (action="audit").',
  );
  x.declare(
    "aegisbpf_ringbuf_drops_total",
    "counter",
    "Event records lost because the ring buffer was full (decisions are unaffected).",
  );
  x.declare(
    "aegisbpf_events_emitted_total",
    "counter",
    "Event records the kernel put in the ring buffer.",
  );
  if (counters) {
    x.sample("aegisbpf_ringbuf_drops_total", counters.sumU64(AEGIS_CNT_RINGBUF_DROPS));
    x.sample("aegisbpf_events_emitted_total", counters.sumU64(AEGIS_CNT_EVENTS));
  }

  x.declare(
    "aegisbpf_hook_invocations_total",
    "counter",
    "Times each hook ran.",
  );
  x.declare(
    "aegisbpf_hook_latency_seconds_total",
    "counter",
    "Seconds each hook spent checking rules, summed (estimated: one call in 64 per CPU is timed).",
  );
  if (opts.detailed) {
    x.declare(
      "aegisbpf_hook_blocks_total",
      "counter",
      'Operations a rule matched, by hook: denied or signalled (action="block") or only ' +
        'reported (action="audit").',
    );
  }
  x.declare(
    "aegisbpf_tamper_blocks_total",
    "counter",
    'Tamper attempts on the agent the self-protection guards refused (action="block") or only ' +
      'reported (action="audit"); not in aegisbpf_blocks_total.',
  );
  if (hooks) {
    const f = HOOK_STAT.fields;
    let blocks = 0n;
    let audits = 0n;
    let tamper = 0n;
    let tamperAudits = 0n;
    for (const [id, hook] of Object.entries(HOOK_NAMES)) {
      const s = sumFields(hooks, Number(id), HOOK_STAT.size / 8);
      const inv = s[f.invocations.offset / 8];
      // the proof's canary denies are not user-visible blocks
      const blk = visibleBlocks(s[f.blocks.offset / 8], hook, src.selfTest);
      const aud = s[f.audits.offset / 8];
      if (isSelfHook(hook)) {
        tamper += blk;
        tamperAudits += aud;
      } else {
        blocks += blk;
        audits += aud;
      }
      x.sample("aegisbpf_hook_invocations_total", inv, { hook });
      x.sample("aegisbpf_hook_latency_seconds_total", nsToSeconds(s[f.latency_ns.offset / 8]), {
        hook,
      });
      if (opts.detailed) {
        x.sample("aegisbpf_hook_blocks_total", blk, { hook, action: "block" });
        x.sample("aegisbpf_hook_blocks_total", aud, { hook, action: "audit" });
      }
    }
    x.sample("aegisbpf_blocks_total", blocks, { action: "block" });
    x.sample("aegisbpf_blocks_total", audits, { action: "audit" });
    x.sample("aegisbpf_tamper_blocks_total", tamper, { action: "block" });
    x.sample("aegisbpf_tamper_blocks_total", tamperAudits, { action: "audit" });
  }
  x.declare(
    "aegisbpf_self_test_denies_total",
    "counter",
    "Denies of the enforcement proof's canary rules (not in aegisbpf_blocks_total).",
  );
  for (const [hook, n] of Object.entries(src.selfTest?.byHook ?? {})) {
    x.sample("aegisbpf_self_test_denies_total", n, { hook });
  }
  x.declare(
    "aegisbpf_enforcement_proof_ok",
    "gauge",
    "1 when the last enforcement proof of the surface passed (the kernel denied), else 0.",
  );
  x.declare(
    "aegisbpf_enforcement_proof_age_seconds",
    "gauge",
    "Seconds since the last enforcement proof of the surface.",
  );
  if (src.proof) {
    for (const surface of PROOF_SURFACES) {
      const r = src.proof.results[surface];
      if (!r) continue;
      x.sample("aegisbpf_enforcement_proof_ok", r.ok ? 1 : 0, { surface });
      x.sample(
        "aegisbpf_enforcement_proof_age_seconds",
        Math.max(0, src.proof.now - r.last_unix),
        { surface },
      );
    }
  }
  x.declare(
    "aegisbpf_unenforced_rules",
    "gauge",
    "File rules the rule verification found not denied by the kernel (capabilities.json " +
      "unenforced_rules).",
  );
  x.declare(
    "aegisbpf_verified_rules",
    "gauge",
    "File rules the last rule-verification round saw denied by the kernel.",
  );
  if (src.proof?.unenforcedRules !== undefined) {
    x.sample("aegisbpf_unenforced_rules", src.proof.unenforcedRules);
    x.sample("aegisbpf_verified_rules", src.proof.verifiedRules ?? 0);
  }

  x.declare(
    "aegisbpf_net_blocks_total",
    "counter",
    'Network operations a rule matched, by rule type: blocked (action="block") or only ' +
      'reported (action="audit").',
  );
  if (src.netBlocks) {
    for (const action of BLOCK_ACTIONS) {
      for (const [type, n] of Object.entries(src.netBlocks[action])) {
        x.sample("aegisbpf_net_blocks_total", n, { type, action });
      }
    }
  }

  // Rule maps: capacity and utilisation (entries of every generation: what
  // occupies the map), deny_inode entries of the live generation.
  x.declare(
    "aegisbpf_deny_inode_entries",
    "gauge",
    "deny_inode entries of the live rule generation.",
  );
  x.declare("aegisbpf_map_capacity", "gauge", "max_entries of each rule map.");
  x.declare("aegisbpf_map_utilization", "gauge", "Entries / capacity of each rule map (0..1).");
  if (opts.detailed) x.declare("aegisbpf_map_entries", "gauge", "Entries in each rule map.");
  const liveGen = config ? Number(config.sumU64(AEGIS_CFG_GENERATION)) : 0;
  for (const name of CAPACITY_MAPS) {
    const m = src.map(name);
    if (!m) continue;
    const keys = m.keys();
    x.sample("aegisbpf_map_capacity", m.maxEntries, { map: name });
    x.sample("aegisbpf_map_utilization", m.maxEntries ? keys.length / m.maxEntries : 0, {
      map: name,
    });
    if (opts.detailed) x.sample("aegisbpf_map_entries", keys.length, { map: name });
    if (name === "aegis_deny_inode") {
      let live = 0;
      for (const k of keys) {
        if (new DataView(k.buffer).getUint32(INODE_GEN, true) === liveGen) live++;
      }
      x.sample(
        "aegisbpf_deny_inode_entries",
        Math.max(0, live - (src.selfTest?.liveCanaryEntries ?? 0)),
      );
    }
  }

  x.declare(
    "aegisbpf_runtime_state",
    "gauge",
    "1 for the current runtime state, 0 for the others; UNKNOWN when not running as the daemon.",
  );
  for (const s of RUNTIME_STATES) {
    x.sample("aegisbpf_runtime_state", src.runtimeState === s ? 1 : 0, { state: s });
  }
  x.sample("aegisbpf_runtime_state", src.runtimeState === null ? 1 : 0, { state: "UNKNOWN" });

  x.declare("aegisbpf_enforce_capable", "gauge", "1 when the node can enforce (no blockers).");
  if (src.enforceCapable !== null) x.sample("aegisbpf_enforce_capable", src.enforceCapable);
  x.declare(
    "aegisbpf_enforce_blocker",
    "gauge",
    "1 for each enforce blocker that holds now (capabilities.json enforce_blockers), 0 for " +
      "every other known blocker code.",
  );
  if (src.blockers) {
    // every known code, always: an alert on one code never meets an absent series
    for (const code of BLOCKER_CODES) {
      x.sample("aegisbpf_enforce_blocker", src.blockers.includes(code), { code });
    }
  }

  x.declare(
    "aegisbpf_emergency_disable_active",
    "gauge",
    "1 while the emergency kill switch is on (hooks audit instead of deny).",
  );
  x.declare(
    "aegisbpf_emergency_toggle_transitions_total",
    "counter",
    "Emergency disable/enable transitions.",
  );
  x.declare(
    "aegisbpf_emergency_toggle_storm_active",
    "gauge",
    "1 while more than 10 emergency transitions happened in 60 s.",
  );
  // the kernel flag is the truth when the config map is at hand
  if (config) {
    x.sample(
      "aegisbpf_emergency_disable_active",
      config.sumU64(AEGIS_CFG_EMERGENCY_DISABLE) !== 0n,
    );
  } else if (src.emergency) {
    x.sample("aegisbpf_emergency_disable_active", src.emergency.active);
  }
  if (src.emergency) {
    x.sample("aegisbpf_emergency_toggle_transitions_total", src.emergency.transitions);
    x.sample("aegisbpf_emergency_toggle_storm_active", src.emergency.stormActive);
  }

  x.declare(
    "aegisbpf_events_published_total",
    "counter",
    "Events the agent published to its sink and /events (kernel and user-space events).",
  );
  x.declare("aegisbpf_events_written_total", "counter", "Event lines the agent's sink wrote.");
  x.declare(
    "aegisbpf_events_sink_dropped_total",
    "counter",
    "Event lines the sink dropped (slow or closed output, write errors).",
  );
  if (src.events) {
    x.sample("aegisbpf_events_published_total", src.events.emitted);
    if (src.events.sinkWritten !== undefined) {
      x.sample("aegisbpf_events_written_total", src.events.sinkWritten);
    }
    x.sample("aegisbpf_events_sink_dropped_total", src.events.sinkDropped);
  }
  x.declare(
    "aegisbpf_events_sampled_out_total",
    "counter",
    "Block events not written because --event-sample-rate left them out (still counted).",
  );
  x.declare(
    "aegisbpf_events_folded_total",
    "counter",
    "Block events written only as a count (folded) on another line (--event-dedup-window).",
  );
  x.declare(
    "aegisbpf_events_dedup_untracked_total",
    "counter",
    "Block events written unfolded because the dedup table was full.",
  );
  if (src.events?.volume) {
    x.sample("aegisbpf_events_sampled_out_total", src.events.volume.sampledOut);
    x.sample("aegisbpf_events_folded_total", src.events.volume.folded);
    x.sample("aegisbpf_events_dedup_untracked_total", src.events.volume.untracked);
  }
  x.declare(
    "aegisbpf_sse_clients_dropped_total",
    "counter",
    "GET /events clients cut off because they did not keep up.",
  );
  if (src.sse) x.sample("aegisbpf_sse_clients_dropped_total", src.sse.droppedClients);
  x.declare(
    "aegisbpf_policy_unresolved_paths",
    "gauge",
    "Policy path rules whose file does not exist yet (enforced once it appears).",
  );
  if (src.unresolvedPaths !== null) {
    x.sample("aegisbpf_policy_unresolved_paths", src.unresolvedPaths);
  }

  const slo = await readPerfSlo(src.perfSloPath);
  x.declare(
    "aegisbpf_perf_slo_file_present",
    "gauge",
    "1 when the perf-SLO summary file exists.",
  );
  x.declare(
    "aegisbpf_perf_slo_file_malformed",
    "gauge",
    "1 when the perf-SLO summary exists but cannot be trusted (never reported as passing).",
  );
  x.declare("aegisbpf_perf_slo_gate_pass", "gauge", "1 when the perf-SLO gate passed.");
  x.declare("aegisbpf_perf_slo_failed_rows", "gauge", "Rows of the perf-SLO summary that failed.");
  x.sample("aegisbpf_perf_slo_file_present", slo.present);
  x.sample("aegisbpf_perf_slo_file_malformed", slo.malformed);
  x.sample("aegisbpf_perf_slo_gate_pass", slo.gatePass);
  x.sample("aegisbpf_perf_slo_failed_rows", slo.failedRows);

  if (opts.detailed && counters) {
    x.declare(
      "aegisbpf_survival_allow_total",
      "counter",
      "Deny rules that matched a survival-allowlisted inode and were let through.",
    );
    x.declare(
      "aegisbpf_signals_sent_total",
      "counter",
      "Signals sent: by the signal fallback, or with a deny (run --enforce-signal).",
    );
    x.declare(
      "aegisbpf_kill_escalations_total",
      "counter",
      "SIGKILLs sent by kill escalation (also in aegisbpf_signals_sent_total).",
    );
    x.declare(
      "aegisbpf_signals_failed_total",
      "counter",
      "Signals of run --enforce-signal the kernel refused to send; the deny stood.",
    );
    x.declare(
      "aegisbpf_exec_hash_unknown_total",
      "counter",
      "Execs and executable mappings the exec-hash programs could not hash (no SHA-256 from " +
        "IMA): allowed, unnamed; denied under an [allow_binary_hash] allowlist or " +
        "[trusted_exec_hash] with [ima_fail_closed].",
    );
    x.declare(
      "aegisbpf_exec_hash_cached_total",
      "counter",
      "Execs and executable mappings of a file verified under the live policy and unchanged " +
        "since: answered from the verified-file cache, not hashed again.",
    );
    x.declare("aegisbpf_ringbuf_drops_per_cpu_total", "counter", "Ring-buffer drops per CPU.");
    x.sample("aegisbpf_survival_allow_total", counters.sumU64(AEGIS_CNT_SURVIVAL_ALLOW));
    x.sample("aegisbpf_signals_sent_total", counters.sumU64(AEGIS_CNT_SIGNAL_SENT));
    x.sample("aegisbpf_kill_escalations_total", counters.sumU64(AEGIS_CNT_KILL_ESCALATION));
    x.sample("aegisbpf_signals_failed_total", counters.sumU64(AEGIS_CNT_SIGNAL_FAILED));
    x.sample("aegisbpf_exec_hash_unknown_total", counters.sumU64(AEGIS_CNT_HASH_UNKNOWN));
    x.sample("aegisbpf_exec_hash_cached_total", counters.sumU64(AEGIS_CNT_HASH_CACHED));
    perCpu(counters, AEGIS_CNT_RINGBUF_DROPS).forEach((v, cpu) =>
      x.sample("aegisbpf_ringbuf_drops_per_cpu_total", v, { cpu: String(cpu) })
    );
  }

  if (src.process) renderProcess(x, src.process);
  return x.text();
}

/** The standard `process_*` families: ProcessStats field, name, type, HELP (client_golang's). */
const PROCESS_FAMILIES: readonly [keyof ProcessStats, string, MetricType, string][] = [
  [
    "cpuSeconds",
    "process_cpu_seconds_total",
    "counter",
    "Total user and system CPU time spent in seconds.",
  ],
  ["residentBytes", "process_resident_memory_bytes", "gauge", "Resident memory size in bytes."],
  ["virtualBytes", "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."],
  [
    "startTimeSeconds",
    "process_start_time_seconds",
    "gauge",
    "Start time of the process since unix epoch in seconds.",
  ],
  ["openFds", "process_open_fds", "gauge", "Number of open file descriptors."],
  ["maxFds", "process_max_fds", "gauge", "Maximum number of open file descriptors."],
];

/** The `process_*` metrics (process.ts), each left out when unreadable. */
function renderProcess(x: Exposition, files: ProcFiles): void {
  const p = readProcessStats(files);
  for (const [field, name, type, help] of PROCESS_FAMILIES) {
    x.declare(name, type, help);
    const v = p[field];
    if (v !== null) x.sample(name, v);
  }
}
