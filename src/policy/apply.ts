/**
 * Atomic policy apply over the rule generations (docs/engine.md), and the
 * whole `policy apply` pipeline both the CLI and the daemon's control
 * socket call (verify → parse → compile → carry live edits → switch →
 * snapshots).
 *
 * The live generation g stays untouched while the new rules are written as
 * generation g' = 1 - g; one write of AEGIS_CFG_GENERATION switches every
 * hook from g to g'; then g is deleted. A hook reads the generation once
 * per call, so at no instant is a rule that is in both policies absent,
 * and a rule only in the new policy is enforced from the switch on. A
 * failure before the switch removes what was written for g' (unless
 * `keepFailed`: then it stays, never enforced, for inspection) and leaves g
 * enforcing; a failure after it leaves stale g entries, which the next
 * apply clears before writing.
 *
 * Capacity: both generations sit in a rule map during an apply. A policy
 * that does not fit beside the live one is refused before anything is
 * written (MapFullError), and the size it needs is recorded in
 * `<stateDir>/map_sizes.json` for the next fresh start (mapSizesFor).
 *
 * @module
 */
import { AegisError, NativeCallError } from "../errors.ts";
import { ABI_LAYOUT, AEGIS_CFG_GENERATION } from "../bpf/abi_gen.ts";
import type { BpfMap } from "../bpf/map.ts";
import { policyValue, u32Key } from "../bpf/rule_codec.ts";
import { readCounter, writeCounter, writeFileAtomic } from "./atomic.ts";
import { BUNDLE_MAGIC, verifyAppliedBundle, verifyBundleWithState } from "./bundle.ts";
import { type CompileEnv, compilePolicy, type Unresolved } from "./compile.ts";
import type { LiveRule, LiveRules } from "./live.ts";
import { mergeLive } from "./live.ts";
import { formatIssue, parsePolicy } from "./parse.ts";
import { sha256Hex, toHex } from "../util/bytes.ts";

/** Every map whose keys carry a generation, with its key struct. */
export const RULE_MAPS: Readonly<Record<string, keyof typeof ABI_LAYOUT.structs>> = {
  aegis_deny_inode: "aegis_inode_key",
  aegis_allow_cgroup: "aegis_cgroup_key",
  aegis_deny_comm: "aegis_comm_key",
  aegis_deny_ip4: "aegis_ip4_key",
  aegis_deny_ip6: "aegis_ip6_key",
  aegis_deny_cidr4: "aegis_lpm4_key",
  aegis_deny_cidr6: "aegis_lpm6_key",
  aegis_deny_port: "aegis_port_key",
  aegis_deny_ip4_port: "aegis_ip4_port_key",
  aegis_deny_ip6_port: "aegis_ip6_port_key",
  aegis_cg_deny_inode: "aegis_cg_inode_key",
  aegis_cg_deny_ip: "aegis_cg_ip_key",
  aegis_cg_deny_port: "aegis_cg_port_key",
};

/**
 * max_entries of every rule map as bpf/include/aegis_maps.h declares it
 * (apply_test.ts checks this table against the header).
 */
export const DEFAULT_RULE_MAP_SIZES: Readonly<Record<string, number>> = {
  aegis_deny_inode: 65536,
  aegis_allow_cgroup: 4096,
  aegis_deny_comm: 4096,
  aegis_deny_ip4: 16384,
  aegis_deny_ip6: 16384,
  aegis_deny_cidr4: 32768,
  aegis_deny_cidr6: 32768,
  aegis_deny_port: 4096,
  aegis_deny_ip4_port: 16384,
  aegis_deny_ip6_port: 16384,
  aegis_cg_deny_inode: 16384,
  aegis_cg_deny_ip: 16384,
  aegis_cg_deny_port: 4096,
};

/** One rule-map entry of a compiled policy; the key depends on the generation. */
export interface CompiledEntry {
  map: string;
  key: (gen: number) => Uint8Array<ArrayBuffer>;
  value: Uint8Array<ArrayBuffer>;
}

/** What the policy compiler produces (pure); what apply writes. */
export interface CompiledPolicy {
  /** aegis_policy flags of the new generation (enum aegis_policy_flag) */
  flags: number;
  entries: CompiledEntry[];
}

/**
 * Rules the agent itself keeps in every generation (the enforcement
 * proof's canary rules, src/proof/canary.ts): written after the policy's
 * entries (so they win a key both name) with their policy flags OR-ed in.
 * Set by the daemon; a CLI apply without a daemon carries none (the daemon
 * writes them again before its first proof).
 */
export interface BuiltinRules {
  flags: number;
  entries: CompiledEntry[];
}

let builtinRules: (() => BuiltinRules) | null = null;

/** Register (or with null, clear) the built-in rules every apply carries. */
export function setBuiltinRules(provider: (() => BuiltinRules) | null): void {
  builtinRules = provider;
}

/** Rule ids the built-in rules use ([from, to)); generationCounts leaves them out. */
export const BUILTIN_RULE_IDS: readonly [number, number] = [0x7f00_0000, 0x7f00_0100];

export interface ApplyResult {
  from: number;
  to: number;
  written: Record<string, number>;
  removed: number;
  /** Microseconds spent in the switch itself (one map write). */
  switchMicros: number;
}

export interface ApplyCompiledOptions {
  /**
   * On a failure before the switch, leave what was written to the inactive
   * generation in place (never enforced; the next apply clears it) instead
   * of removing it. `policy apply --no-rollback`.
   */
  keepFailed?: boolean;
}

/** A rule map cannot hold the new generation beside the live one. */
export class MapFullError extends AegisError {
  readonly map: string;
  readonly holds: number;
  readonly needs: number;
  constructor(map: string, holds: number, needs: number, live: number, fresh: number) {
    super(
      "MAP_FULL",
      `map full: ${map} holds ${holds}, needs ${needs} (${fresh} new entries beside the ${live} ` +
        `live ones during the switch); nothing was written and the previous policy is still ` +
        `enforcing. Pinned maps keep their size across agent restarts: stop the agent, run ` +
        `"aegisbpf uninstall" (rules are not enforced until the next start), start it again ` +
        `with "aegisbpf run" (it sizes ${map} for ${needs} entries, recorded in map_sizes.json ` +
        `of the state directory), then apply this policy again.`,
    );
    this.map = map;
    this.holds = holds;
    this.needs = needs;
  }
}

/** Offset of the generation field (u32) in each rule map's key. */
const GEN_OFFSET: Readonly<Record<string, number>> = Object.fromEntries(
  Object.entries(RULE_MAPS).map(([map, struct]) => [
    map,
    (ABI_LAYOUT.structs[struct] as { fields: Record<string, { offset: number }> }).fields.gen
      .offset,
  ]),
);

/** The generation field of a rule key. */
export function keyGeneration(map: string, key: Uint8Array): number {
  const o = GEN_OFFSET[map];
  if (o === undefined || o + 4 > key.byteLength) {
    // as before: a RangeError / TypeError for an unknown map or a short key
    const struct = ABI_LAYOUT.structs[RULE_MAPS[map]] as {
      fields: Record<string, { offset: number }>;
    };
    return new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(
      struct.fields.gen.offset,
      true,
    );
  }
  return (key[o] | (key[o + 1] << 8) | (key[o + 2] << 16) | (key[o + 3] << 24)) >>> 0;
}

/**
 * Real maps (BpfMap) write and delete many keys in one native call; the
 * in-memory stand-ins of the unit tests have no batch methods and take
 * them one by one (same result).
 */
function hasBatch(m: BpfMap): boolean {
  return typeof (m as Partial<BpfMap>).updateBatch === "function" &&
    typeof (m as Partial<BpfMap>).deleteBatch === "function";
}

/** Delete `keys` from `m`; returns how many were really deleted. */
function deleteKeys(m: BpfMap, keys: Uint8Array<ArrayBuffer>[]): number {
  if (keys.length === 0) return 0;
  if (hasBatch(m)) return m.deleteBatch(keys);
  let n = 0;
  for (const k of keys) if (m.delete(k)) n++;
  return n;
}

/**
 * Delete every key of generation `gen` from every rule map; returns how
 * many were deleted and the keys of the other generation per map (one
 * pass over each map).
 */
function clearGeneration(
  maps: (name: string) => BpfMap,
  gen: number,
): { deleted: number; others: Map<string, Uint8Array<ArrayBuffer>[]> } {
  let deleted = 0;
  const others = new Map<string, Uint8Array<ArrayBuffer>[]>();
  for (const name of Object.keys(RULE_MAPS)) {
    const m = maps(name);
    const keep: Uint8Array<ArrayBuffer>[] = [];
    const drop: Uint8Array<ArrayBuffer>[] = [];
    for (const k of m.keys()) (keyGeneration(name, k) !== gen ? keep : drop).push(k);
    deleted += deleteKeys(m, drop);
    others.set(name, keep);
  }
  return { deleted, others };
}

const RULE_ID_OFF = ABI_LAYOUT.structs.aegis_rule.fields.rule_id.offset;
/** Maps the built-in rules use (the others are not looked up by generationCounts). */
const BUILTIN_MAPS = new Set(["aegis_deny_inode", "aegis_deny_comm", "aegis_deny_ip4_port"]);

/** Is this aegis_rule value one of the built-in rules (BUILTIN_RULE_IDS)? */
function isBuiltinValue(v: Uint8Array | null): boolean {
  if (!v || v.byteLength < RULE_ID_OFF + 4) return false;
  const id = new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(RULE_ID_OFF, true);
  return id >= BUILTIN_RULE_IDS[0] && id < BUILTIN_RULE_IDS[1];
}

/**
 * Entries per generation of every rule map: {map: [gen0, gen1]}. The
 * built-in canary rules (aegis_deny_inode, aegis_deny_comm, aegis_deny_ip4_port) are not counted
 * (they are the agent's, not the policy's).
 */
export function generationCounts(maps: (name: string) => BpfMap): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const name of Object.keys(RULE_MAPS)) {
    const c: [number, number] = [0, 0];
    const m = maps(name);
    for (const k of m.keys()) {
      if (BUILTIN_MAPS.has(name) && isBuiltinValue(m.lookup(k))) continue;
      c[keyGeneration(name, k) & 1]++;
    }
    out[name] = c;
  }
  return out;
}

/** The live generation (0 or 1). */
export function liveGeneration(maps: (name: string) => BpfMap): number {
  return Number(maps("aegis_config").sumU64(AEGIS_CFG_GENERATION) & 1n);
}

/** Entries per map of a compiled policy. */
export function countByMap(entries: readonly { map: string }[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const e of entries) c[e.map] = (c[e.map] ?? 0) + 1;
  return c;
}

/** How the live generation of the rule maps differs from a desired policy. */
export interface LiveDiff {
  /** entries the desired policy has */
  expected: number;
  /** desired entries the maps lack */
  missing: number;
  /** entries of the live generation the desired policy does not have */
  extra: number;
  /** same key, another value (rule id, type, flags) */
  changed: number;
  /** aegis_policy flag bits the desired policy sets and the live generation lacks */
  flagsMissing: number;
}

/** True when the maps hold the desired policy exactly (diffLive). */
export function liveMatches(d: LiveDiff): boolean {
  return d.missing === 0 && d.extra === 0 && d.changed === 0 && d.flagsMissing === 0;
}

const POLICY_FLAGS_OFF = ABI_LAYOUT.structs.aegis_policy.fields.flags.offset;

/**
 * Compare the live generation of every rule map with `policy`, key by key
 * and value by value. The built-in canary rules are left out (the proof
 * re-asserts them), and their policy flags are allowed beside the
 * policy's.
 */
export function diffLive(maps: (name: string) => BpfMap, policy: CompiledPolicy): LiveDiff {
  const gen = liveGeneration(maps);
  const want = new Map<string, Map<string, string>>();
  for (const e of policy.entries) {
    let m = want.get(e.map);
    if (!m) want.set(e.map, m = new Map());
    m.set(toHex(e.key(gen)), toHex(e.value));
  }
  const d: LiveDiff = { expected: 0, missing: 0, extra: 0, changed: 0, flagsMissing: 0 };
  for (const name of Object.keys(RULE_MAPS)) {
    const m = maps(name);
    const w = want.get(name) ?? new Map<string, string>();
    d.expected += w.size;
    let found = 0;
    for (const k of m.keys()) {
      if (keyGeneration(name, k) !== gen) continue;
      const v = m.lookup(k);
      if (BUILTIN_MAPS.has(name) && isBuiltinValue(v)) continue;
      const exp = w.get(toHex(k));
      if (exp === undefined) d.extra++;
      else {
        found++;
        if (!v || toHex(v) !== exp) d.changed++;
      }
    }
    d.missing += w.size - found;
  }
  const pv = maps("aegis_policy").lookup(u32Key(gen));
  const actual = pv
    ? Number(
      new DataView(pv.buffer, pv.byteOffset, pv.byteLength).getBigUint64(POLICY_FLAGS_OFF, true),
    )
    : 0;
  d.flagsMissing = policy.flags & ~actual;
  return d;
}

/**
 * Apply `policy` atomically. `maps` returns a map of the live object (the
 * engine's, or opened from the pins). Throws MapFullError (nothing
 * written) when a map cannot hold the new generation beside the live one,
 * POLICY_APPLY_FAILED (previous policy still enforcing) when anything else
 * fails before the switch.
 */
export function applyCompiled(
  maps: (name: string) => BpfMap,
  policy: CompiledPolicy,
  opts: ApplyCompiledOptions = {},
): ApplyResult {
  const builtin = builtinRules?.();
  if (builtin && builtin.entries.length > 0) {
    policy = {
      flags: policy.flags | builtin.flags,
      entries: [...policy.entries, ...builtin.entries],
    };
  }
  for (const e of policy.entries) {
    if (!(e.map in RULE_MAPS)) {
      throw new AegisError("POLICY_APPLY_FAILED", `Compiled entry for unknown rule map "${e.map}"`);
    }
  }
  const from = liveGeneration(maps);
  const to = 1 - from;
  // leftovers of an earlier apply that failed after its switch (or --no-rollback)
  const { others } = clearGeneration(maps, to);
  const fresh = countByMap(policy.entries);
  for (const [map, n] of Object.entries(fresh)) {
    const holds = maps(map).maxEntries;
    const live = others.get(map)!.length;
    if (n + live > holds) throw new MapFullError(map, holds, n + live, live, n);
  }
  const written: Record<string, number> = {};
  try {
    // one batch per map (entries keep their order within a map); maps
    // without batch methods (test stand-ins) are written entry by entry
    // in policy order
    const byMap = new Map<string, CompiledEntry[]>();
    for (const e of policy.entries) {
      const l = byMap.get(e.map);
      if (l) l.push(e);
      else byMap.set(e.map, [e]);
    }
    if ([...byMap.keys()].every((n) => hasBatch(maps(n)))) {
      for (const [name, list] of byMap) {
        maps(name).updateBatch(list.map((e) => e.key(to)), list.map((e) => e.value));
        written[name] = list.length;
      }
    } else {
      for (const e of policy.entries) {
        maps(e.map).update(e.key(to), e.value);
        written[e.map] = (written[e.map] ?? 0) + 1;
      }
    }
    maps("aegis_policy").update(u32Key(to), policyValue(policy.flags));
  } catch (e) {
    // nothing of `to` is live: remove it (unless kept for inspection); `from` keeps enforcing
    if (!opts.keepFailed) {
      clearGeneration(maps, to);
      maps("aegis_policy").update(u32Key(to), policyValue(0));
    }
    const full = e instanceof NativeCallError && (e.errno === 7 || e.errno === 28);
    throw new AegisError(
      "POLICY_APPLY_FAILED",
      `Policy apply failed before the switch; the previous policy is still enforcing` +
        (opts.keepFailed
          ? ` (the partial generation ${to} was kept for inspection, never enforced)`
          : "") +
        `: ${full ? "map full (the kernel refused a new entry): " : ""}${(e as Error).message}`,
      { cause: e },
    );
  }
  // the switch: one map write
  const t0 = performance.now();
  maps("aegis_config").setU64(AEGIS_CFG_GENERATION, BigInt(to));
  const switchMicros = Math.round((performance.now() - t0) * 1000);
  // the old generation: the keys found by the first pass (nothing else writes
  // generation `from` during this call)
  let removed = 0;
  for (const [name, keys] of others) {
    removed += deleteKeys(maps(name), keys.filter((k) => keyGeneration(name, k) === from));
  }
  maps("aegis_policy").update(u32Key(from), policyValue(0));
  return { from, to, written, removed, switchMicros };
}

// --- map sizing ----------------------------------------------------------------

/** Rule-map sizes are rounded up to a multiple of this. */
export const MAP_SIZE_STEP = 4096;

/**
 * max_entries for every rule map so the policy and the live edits fit
 * twice (both generations during an apply) plus 25 % headroom, rounded up
 * to a multiple of 4096, never below the compiled-in default, and never
 * below a size a failed apply asked for (`requested`, from
 * readMapSizeRequests). Pass the result as EngineOptions.mapSizes: it only
 * takes effect when the maps are created (a fresh start, no pins).
 */
export function mapSizesFor(
  compiled: CompiledPolicy | null,
  liveRules: readonly { map: string }[],
  requested: Readonly<Record<string, number>> = {},
): Record<string, number> {
  const n = countByMap([...(compiled?.entries ?? []), ...liveRules]);
  const out: Record<string, number> = {};
  for (const [map, def] of Object.entries(DEFAULT_RULE_MAP_SIZES)) {
    const want = Math.max(Math.ceil(2 * (n[map] ?? 0) * 1.25), requested[map] ?? 0);
    out[map] = Math.max(def, Math.ceil(want / MAP_SIZE_STEP) * MAP_SIZE_STEP);
  }
  return out;
}

/**
 * The applied policy (`<stateDir>/policy.applied`) compiled again: for the
 * daemon's start (map sizes, the unresolved paths to watch). Null when
 * none was applied or it no longer parses.
 */
export function loadAppliedPolicy(
  stateDir: string,
  env: CompileEnv,
): { compiled: CompiledPolicy; unresolved: Unresolved[] } | null {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(`${stateDir}/policy.applied`);
  } catch {
    return null;
  }
  const parsed = parsePolicy(bytes, `${stateDir}/policy.applied`);
  return parsed.policy ? compilePolicy(parsed.policy, env) : null;
}

function mapSizesFile(stateDir: string): string {
  return `${stateDir}/map_sizes.json`;
}

/** Sizes failed applies asked for (map_sizes.json); {} when none. */
export function readMapSizeRequests(stateDir: string): Record<string, number> {
  let text: string;
  try {
    text = Deno.readTextFileSync(mapSizesFile(stateDir));
  } catch {
    return {};
  }
  const out: Record<string, number> = {};
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    for (const [k, v] of Object.entries(j)) {
      if (k in RULE_MAPS && Number.isSafeInteger(v) && (v as number) > 0) out[k] = v as number;
    }
  } catch { /* a damaged file asks for nothing */ }
  return out;
}

function recordMapSizeRequest(stateDir: string, map: string, needs: number): void {
  const cur = readMapSizeRequests(stateDir);
  cur[map] = Math.max(cur[map] ?? 0, needs);
  Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileAtomic(mapSizesFile(stateDir), new TextEncoder().encode(JSON.stringify(cur)), 0o600);
}

// --- the apply pipeline ------------------------------------------------------

/** What `policy apply` needs, injected (CLI: pinned maps; daemon: its engine). */
export interface PolicyApplyDeps {
  maps: (name: string) => BpfMap;
  /** /var/lib/aegisbpf: snapshots, counter, map_sizes.json */
  stateDir: string;
  /** trusted keys folder (/etc/aegisbpf/keys) */
  keysDir: string;
  /** owner the keys folder must have (default 0: root; tests use their own uid) */
  keysOwnerUid?: number;
  compileEnv: CompileEnv;
  /** the live edits, carried into the new generation (or dropped by reset) */
  live: LiveRules;
}

export interface PolicyApplyRequest {
  /** name used in messages */
  file: string;
  bytes: Uint8Array;
  sha256?: string;
  requireSignature?: boolean;
  dryRun?: boolean;
  /** drop the live edits: the policy file alone defines the rules */
  reset?: boolean;
  /** keep a failed apply's partial generation for inspection */
  noRollback?: boolean;
}

export interface PolicyApplyReport {
  file: string;
  /** of the file as given (a bundle: the whole bundle) */
  sha256: string;
  /** of the policy body now applied (policy.sha256; = sha256 for a plain file) */
  body_sha256?: string;
  version: number;
  flags: number;
  entries: Record<string, number>;
  unresolved: Unresolved[];
  warnings: string[];
  dry_run: boolean;
  signed: { policy_version: number; signer: string } | null;
  live: { carried: number; dropped: LiveRule[]; expired: LiveRule[] };
  generation?: { from: number; to: number };
  removed?: number;
  switch_us?: number;
}

/** The policy (or bundle) was refused; `issues` are "file:line: error: …" lines. */
export class PolicyRejectedError extends AegisError {
  readonly issues: string[];
  constructor(code: string, message: string, issues: string[] = []) {
    super(code, message);
    this.issues = issues;
  }
}

function isBundle(bytes: Uint8Array): boolean {
  return new TextDecoder().decode(bytes.subarray(0, BUNDLE_MAGIC.length)) === BUNDLE_MAGIC;
}

/** Anti-rollback counter of signed bundles. */
export function counterPath(stateDir: string): string {
  return `${stateDir}/policy_version.json`;
}

/** The signed bundle a body was applied from: `policy.bundle-<body sha256>`. */
export function bundleFileFor(stateDir: string, bodySha: string): string {
  return `${stateDir}/policy.bundle-${bodySha}`;
}

/**
 * policy.applied (now), policy.prev (before), policy.sha256; 0600 in a 0700
 * dir. A body applied from a signed bundle also keeps that bundle, named by
 * the body's hash, so the restore at start can check the signature again.
 * policy.sha256 is written last: it is the commit point (a bundle file of a
 * body that never got there is ignored and removed by the next apply).
 */
export function keepSnapshots(
  stateDir: string,
  body: Uint8Array,
  sha: string,
  bundle: Uint8Array | null = null,
): void {
  Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  try {
    const prev = Deno.readFileSync(`${stateDir}/policy.applied`);
    writeFileAtomic(`${stateDir}/policy.prev`, prev, 0o600);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const keep = bundleFileFor(stateDir, sha);
  if (bundle) writeFileAtomic(keep, bundle, 0o600);
  writeFileAtomic(`${stateDir}/policy.applied`, body, 0o600);
  writeFileAtomic(`${stateDir}/policy.sha256`, new TextEncoder().encode(`${sha}\n`), 0o600);
  for (const e of Deno.readDirSync(stateDir)) {
    const path = `${stateDir}/${e.name}`;
    if (e.name.startsWith("policy.bundle-") && (path !== keep || !bundle)) Deno.removeSync(path);
  }
}

/**
 * Verify (bundles), parse, compile, carry the live edits, apply, keep
 * snapshots. Throws PolicyRejectedError (nothing changed) for a refused
 * file, MapFullError / POLICY_APPLY_FAILED (previous policy enforcing)
 * when the maps refuse it.
 */
export async function applyPolicyBytes(
  deps: PolicyApplyDeps,
  req: PolicyApplyRequest,
): Promise<PolicyApplyReport> {
  const { file, bytes } = req;
  const sha = await sha256Hex(new Uint8Array(bytes));
  if (req.sha256 && req.sha256.toLowerCase() !== sha) {
    throw new PolicyRejectedError(
      "POLICY_HASH_MISMATCH",
      `${file} has SHA-256 ${sha}, not ${req.sha256}; nothing changed`,
    );
  }
  const warnings: string[] = [];
  let body: Uint8Array = bytes;
  let signed: PolicyApplyReport["signed"] = null;
  if (isBundle(bytes)) {
    const { result, warnings: w } = await verifyBundleWithState(bytes, {
      keysDir: deps.keysDir,
      counterPath: counterPath(deps.stateDir),
      ownerUid: deps.keysOwnerUid ?? 0,
    });
    warnings.push(...w);
    if (!result.ok) {
      throw new PolicyRejectedError(result.code, `${file}: ${result.message}; nothing changed`);
    }
    body = result.body;
    signed = { policy_version: result.policyVersion, signer: result.signer };
  } else if (req.requireSignature) {
    throw new PolicyRejectedError(
      "BUNDLE_REQUIRED",
      `${file} is not a signed bundle and --require-signature was given; nothing changed`,
    );
  }
  const parsed = parsePolicy(body, file);
  warnings.push(...parsed.warnings.map((i) => formatIssue(i)));
  if (parsed.errors.length > 0 || !parsed.policy) {
    throw new PolicyRejectedError(
      "POLICY_INVALID",
      `${file}: ${parsed.errors.length} error(s); the policy was rejected as a whole and ` +
        `nothing changed`,
      parsed.errors.map((i) => formatIssue({ ...i, message: `error: ${i.message}` })),
    );
  }
  const { compiled, unresolved } = compilePolicy(parsed.policy, deps.compileEnv);
  const expired = req.dryRun ? [] : deps.live.sweep();
  const carried = req.reset ? [] : deps.live.rules();
  const merged = mergeLive(compiled, carried);
  const report: PolicyApplyReport = {
    file,
    sha256: sha,
    version: parsed.policy.version,
    flags: merged.policy.flags,
    entries: countByMap(compiled.entries),
    unresolved,
    warnings,
    dry_run: !!req.dryRun,
    signed,
    live: { carried: carried.length, dropped: req.reset ? deps.live.rules() : [], expired },
  };
  if (req.dryRun) return report;
  // from here to the snapshots nothing awaits: two applies (the control
  // socket, a SIGHUP) cannot interleave between the switch and the files
  const bodySha = body === bytes ? sha : await sha256Hex(new Uint8Array(body));
  if (signed) {
    const counter = readCounter(counterPath(deps.stateDir));
    if (signed.policy_version <= counter) {
      throw new PolicyRejectedError(
        "BUNDLE_ROLLBACK",
        `${file}: policy_version ${signed.policy_version} is not newer than ${counter}, applied ` +
          `while this one was being verified; nothing changed`,
      );
    }
  }
  let result: ApplyResult;
  try {
    result = applyCompiled(deps.maps, merged.policy, { keepFailed: req.noRollback });
  } catch (e) {
    if (e instanceof MapFullError) recordMapSizeRequest(deps.stateDir, e.map, e.needs);
    throw e;
  }
  if (req.reset) deps.live.clear();
  else deps.live.setShadows(merged.shadows);
  keepSnapshots(deps.stateDir, body, bodySha, signed ? bytes : null);
  if (signed && signed.policy_version > readCounter(counterPath(deps.stateDir))) {
    writeCounter(counterPath(deps.stateDir), signed.policy_version);
  }
  report.body_sha256 = bodySha;
  report.generation = { from: result.from, to: result.to };
  report.removed = result.removed;
  report.switch_us = result.switchMicros;
  return report;
}

/**
 * Whether `bytes` (a policy file or a signed bundle) is what is applied
 * now: the same plain file, or the very bundle the applied body came from.
 * With `requireSignature`, a plain file equal to the applied body is not
 * "the same" (it must come as a bundle).
 */
export async function isAppliedPolicy(
  stateDir: string,
  bytes: Uint8Array,
  requireSignature: boolean,
): Promise<boolean> {
  let recorded: string;
  try {
    recorded = Deno.readTextFileSync(`${stateDir}/policy.sha256`).trim().toLowerCase();
  } catch {
    return false;
  }
  if (!isBundle(bytes)) {
    return !requireSignature && (await sha256Hex(new Uint8Array(bytes))) === recorded;
  }
  try {
    const kept = Deno.readFileSync(bundleFileFor(stateDir, recorded));
    return kept.length === bytes.length && kept.every((b, i) => b === bytes[i]);
  } catch {
    return false;
  }
}

/** What a restore at start did. */
export interface RestoreReport {
  /** policy.applied, or null when only live rules were stored */
  file: string | null;
  sha256: string | null;
  entries: Record<string, number>;
  /** live rules carried (their TTLs still running) */
  live: number;
  /** live rules whose TTL ran out while the agent was down (removed) */
  expired: LiveRule[];
  unresolved: Unresolved[];
  /** the switch made; null when re-adopted maps held the stored state already */
  generation: { from: number; to: number } | null;
  /** re-adopted maps only: how they differed from the stored state before the repair */
  diff: LiveDiff | null;
  /** the bundle it was applied from, verified again; null for a plain policy file */
  signed: { policy_version: number; signer: string } | null;
  /** skipped key files, an expired bundle kept enforcing */
  warnings: string[];
}

/**
 * The stored policy's body, checked: against policy.sha256 and, when it was
 * applied from a signed bundle, that bundle's signature, trusted key and
 * counter again (verifyAppliedBundle). Throws POLICY_RESTORE_FAILED.
 */
export async function readAppliedPolicy(
  stateDir: string,
  keys: { dir: string; ownerUid?: number },
  requireSignature: boolean,
): Promise<
  {
    file: string;
    body: Uint8Array;
    sha: string;
    signed: RestoreReport["signed"];
    warnings: string[];
  } | null
> {
  const file = `${stateDir}/policy.applied`;
  const refuse = (why: string, issues: string[] = []) =>
    new PolicyRejectedError("POLICY_RESTORE_FAILED", why, issues);
  let body: Uint8Array;
  try {
    body = Deno.readFileSync(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw refuse(`cannot read the applied policy ${file}: ${e instanceof Error ? e.message : e}`);
  }
  const sha = await sha256Hex(new Uint8Array(body));
  let recorded: string | null = null;
  try {
    recorded = Deno.readTextFileSync(`${stateDir}/policy.sha256`).trim().toLowerCase();
  } catch { /* judged below */ }
  if (recorded !== sha) {
    throw refuse(
      `${file} has SHA-256 ${sha} but ${stateDir}/policy.sha256 records ${
        recorded === null ? "nothing" : recorded
      }: the stored policy was changed or damaged since it was applied; apply a good policy ` +
        `again (aegisbpf policy apply)`,
    );
  }
  const bundleFile = bundleFileFor(stateDir, sha);
  let bundle: Uint8Array | null = null;
  try {
    bundle = Deno.readFileSync(bundleFile);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw refuse(`cannot read ${bundleFile}: ${e instanceof Error ? e.message : e}`);
    }
  }
  if (!bundle) {
    if (requireSignature) {
      throw refuse(
        `${file} was applied from a plain policy file, not a signed bundle, and ` +
          `--require-signature was given: apply a signed bundle`,
      );
    }
    return { file, body, sha, signed: null, warnings: [] };
  }
  const { result, warnings } = await verifyAppliedBundle(bundle, {
    keysDir: keys.dir,
    ownerUid: keys.ownerUid ?? 0,
    counterPath: counterPath(stateDir),
  });
  if (!result.ok) {
    throw refuse(`the bundle ${bundleFile} the policy was applied from: ${result.message}`);
  }
  if ((await sha256Hex(new Uint8Array(result.body))) !== sha) {
    throw refuse(`${bundleFile} does not hold the body of ${file}`);
  }
  return {
    file,
    body,
    sha,
    signed: { policy_version: result.policyVersion, signer: result.signer },
    warnings,
  };
}

/**
 * Bring the rule maps to the stored desired state: the applied policy
 * (readAppliedPolicy: hash and, for a bundle, signature and counter checked
 * again; parsed and compiled again so paths resolve to this boot's devices
 * and inodes) plus the stored live rules whose TTL has not run out.
 *
 * - Fresh (empty) maps, a first start or pins gone with a reboot: written
 *   as one new generation.
 * - Re-adopted maps (`readopted`): compared key by key with that state
 *   (diffLive), and repaired through one new generation only when they
 *   differ (an edit behind the agent's back, a file replaced since).
 *
 * Writes no state file: what is restored is what was applied. Null when
 * neither a policy nor a live rule was ever stored. A stored policy that
 * cannot be restored throws PolicyRejectedError POLICY_RESTORE_FAILED (or
 * MapFullError); the maps are then left as they were.
 */
export async function restoreAppliedPolicy(
  deps: PolicyApplyDeps,
  opts: { requireSignature?: boolean; readopted?: boolean } = {},
): Promise<RestoreReport | null> {
  const stored = await readAppliedPolicy(
    deps.stateDir,
    { dir: deps.keysDir, ownerUid: deps.keysOwnerUid },
    !!opts.requireSignature,
  );
  let compiled: CompiledPolicy = { flags: 0, entries: [] };
  let unresolved: Unresolved[] = [];
  if (stored) {
    const parsed = parsePolicy(stored.body, stored.file);
    if (parsed.errors.length > 0 || !parsed.policy) {
      throw new PolicyRejectedError(
        "POLICY_RESTORE_FAILED",
        `${stored.file} no longer parses (${parsed.errors.length} error(s)); apply a good ` +
          `policy again`,
        parsed.errors.map((i) => formatIssue({ ...i, message: `error: ${i.message}` })),
      );
    }
    ({ compiled, unresolved } = compilePolicy(parsed.policy, deps.compileEnv));
  }
  const expired = deps.live.sweep();
  const carried = deps.live.rules();
  if (!stored && carried.length === 0 && !opts.readopted) return null;
  const merged = mergeLive(compiled, carried);
  let diff: LiveDiff | null = null;
  let generation: RestoreReport["generation"] = null;
  if (opts.readopted) diff = diffLive(deps.maps, merged.policy);
  if (!diff || !liveMatches(diff)) {
    const result = applyCompiled(deps.maps, merged.policy, {});
    generation = { from: result.from, to: result.to };
  }
  deps.live.setShadows(merged.shadows);
  return {
    file: stored?.file ?? null,
    sha256: stored?.sha ?? null,
    entries: countByMap(compiled.entries),
    live: carried.length,
    expired,
    unresolved,
    generation,
    diff,
    signed: stored?.signed ?? null,
    warnings: stored?.warnings ?? [],
  };
}

/** `policy show`: live generation, entries per map and generation, applied file, live edits. */
export interface PolicyShow {
  generation: number;
  rule_entries: Record<string, number>;
  /** entries of the inactive generation (left by a failed --no-rollback apply) */
  inactive_entries: Record<string, number>;
  policy: string;
  live_rules: number;
}

export function policyShow(
  maps: (name: string) => BpfMap,
  stateDir: string,
  live: LiveRules,
): PolicyShow {
  const gen = liveGeneration(maps);
  const counts = generationCounts(maps);
  const active: Record<string, number> = {};
  const inactive: Record<string, number> = {};
  for (const [m, c] of Object.entries(counts)) {
    active[m] = c[gen];
    if (c[1 - gen] > 0) inactive[m] = c[1 - gen];
  }
  let policy = "";
  try {
    policy = Deno.readTextFileSync(`${stateDir}/policy.applied`);
  } catch { /* none applied yet */ }
  return {
    generation: gen,
    rule_entries: active,
    inactive_entries: inactive,
    policy,
    live_rules: live.rules().length,
  };
}
