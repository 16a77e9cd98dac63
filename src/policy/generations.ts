/**
 * The rule generations (docs/engine.md): every rule map's key carries a
 * generation; the live one g stays untouched while a new policy is written
 * as g' = 1 - g, one write of AEGIS_CFG_GENERATION switches every hook from
 * g to g', then g is deleted. A hook reads the generation once per call, so
 * at no instant is a rule that is in both policies absent, and a rule only
 * in the new policy is enforced from the switch on. A failure before the
 * switch removes what was written for g' (unless `keepFailed`: then it
 * stays, never enforced, for inspection) and leaves g enforcing; a failure
 * after it leaves stale g entries, which the next apply clears first.
 *
 * Capacity: both generations sit in a rule map during an apply. A policy
 * that does not fit beside the live one is refused before anything is
 * written (MapFullError); sizing.ts records what it needs.
 *
 * Also here: what the live generation holds (generationCounts, diffLive)
 * and the agent's built-in rules every generation carries.
 *
 * @module
 */
import { AegisError, NativeCallError } from "../errors.ts";
import {
  ABI_LAYOUT,
  AEGIS_CFG_GENERATION,
  AEGIS_CFG_HASH_EPOCH,
  type MapName,
} from "../bpf/abi_gen.ts";
import type { BpfMap } from "../bpf/map.ts";
import { policyValue, u32Key } from "../bpf/rule_codec.ts";
import type { CompiledEntry, CompiledPolicy } from "./compile.ts";
import { bytesEqual, toHex } from "../util/bytes.ts";

/** Every map whose keys carry a generation, with its key struct. */
export const RULE_MAPS: Readonly<Partial<Record<MapName, keyof typeof ABI_LAYOUT.structs>>> = {
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
  aegis_deny_hash: "aegis_hash_key",
};

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

/** The names of RULE_MAPS. */
export const RULE_MAP_NAMES: readonly MapName[] = Object.keys(RULE_MAPS) as MapName[];

/** Offset of the generation field (u32) in each rule map's key. */
const GEN_OFFSET: Readonly<Record<string, number>> = Object.fromEntries(
  Object.entries(RULE_MAPS).map(([map, struct]) => [
    map,
    (ABI_LAYOUT.structs[struct] as { fields: Record<string, { offset: number }> }).fields.gen
      .offset,
  ]),
);

/** The generation field of a rule key. */
export function keyGeneration(map: MapName, key: Uint8Array): number {
  const o = GEN_OFFSET[map];
  if (o === undefined || o + 4 > key.byteLength) {
    // as before: a RangeError / TypeError for an unknown map or a short key
    const struct = ABI_LAYOUT.structs[RULE_MAPS[map]!] as {
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
  maps: (name: MapName) => BpfMap,
  gen: number,
): { deleted: number; others: Map<MapName, Uint8Array<ArrayBuffer>[]> } {
  let deleted = 0;
  const others = new Map<MapName, Uint8Array<ArrayBuffer>[]>();
  for (const name of RULE_MAP_NAMES) {
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
const BUILTIN_MAPS = new Set([
  "aegis_deny_inode",
  "aegis_deny_comm",
  "aegis_deny_ip4_port",
  "aegis_deny_hash",
]);

/** Is this aegis_rule value one of the built-in rules (BUILTIN_RULE_IDS)? */
function isBuiltinValue(v: Uint8Array | null): boolean {
  if (!v || v.byteLength < RULE_ID_OFF + 4) return false;
  const id = new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(RULE_ID_OFF, true);
  return id >= BUILTIN_RULE_IDS[0] && id < BUILTIN_RULE_IDS[1];
}

/**
 * Entries per generation of every rule map: {map: [gen0, gen1]}. The
 * built-in canary rules (aegis_deny_inode, aegis_deny_comm, aegis_deny_ip4_port,
 * aegis_deny_hash) are not counted
 * (they are the agent's, not the policy's).
 */
export function generationCounts(
  maps: (name: MapName) => BpfMap,
): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const name of RULE_MAP_NAMES) {
    const c: [number, number] = [0, 0];
    const m = maps(name);
    if (BUILTIN_MAPS.has(name)) {
      const { keys, values } = m.entries();
      keys.forEach((k, i) => {
        if (!isBuiltinValue(values[i])) c[keyGeneration(name, k) & 1]++;
      });
    } else {
      for (const k of m.keys()) c[keyGeneration(name, k) & 1]++;
    }
    out[name] = c;
  }
  return out;
}

/** The live generation (0 or 1). */
/**
 * A new value of AEGIS_CFG_HASH_EPOCH, written after a generation switch:
 * the mprotect program takes a verified file (aegis_hash_verified) only
 * when it was verified under the live generation and the current epoch, so
 * entries of an earlier policy that had the same generation bit are misses.
 */
export function bumpHashEpoch(maps: (name: MapName) => BpfMap): void {
  const cfg = maps("aegis_config");
  cfg.setU64(AEGIS_CFG_HASH_EPOCH, cfg.sumU64(AEGIS_CFG_HASH_EPOCH) + 1n);
}

export function liveGeneration(maps: (name: MapName) => BpfMap): number {
  return Number(maps("aegis_config").sumU64(AEGIS_CFG_GENERATION) & 1n);
}

/** Entries per map of a compiled policy. */
export function countByMap(entries: readonly { map: MapName }[]): Record<string, number> {
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
export function diffLive(maps: (name: MapName) => BpfMap, policy: CompiledPolicy): LiveDiff {
  const gen = liveGeneration(maps);
  const want = new Map<string, Map<string, Uint8Array>>();
  for (const e of policy.entries) {
    let m = want.get(e.map);
    if (!m) want.set(e.map, m = new Map());
    m.set(toHex(e.key(gen)), e.value);
  }
  const d: LiveDiff = { expected: 0, missing: 0, extra: 0, changed: 0, flagsMissing: 0 };
  for (const name of RULE_MAP_NAMES) {
    const m = maps(name);
    const w = want.get(name) ?? new Map<string, Uint8Array>();
    d.expected += w.size;
    let found = 0;
    const { keys, values } = m.entries();
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (keyGeneration(name, k) !== gen) continue;
      const v = values[i];
      if (BUILTIN_MAPS.has(name) && isBuiltinValue(v)) continue;
      const exp = w.get(toHex(k));
      if (exp === undefined) d.extra++;
      else {
        found++;
        if (!v || !bytesEqual(v, exp)) d.changed++;
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
  maps: (name: MapName) => BpfMap,
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
  for (const [map, n] of Object.entries(fresh) as [MapName, number][]) {
    const holds = maps(map).maxEntries;
    const live = others.get(map)!.length;
    if (n + live > holds) throw new MapFullError(map, holds, n + live, live, n);
  }
  const written: Record<string, number> = {};
  try {
    // one batch per map (entries keep their order within a map); maps
    // without batch methods (test stand-ins) are written entry by entry
    // in policy order
    const byMap = new Map<MapName, CompiledEntry[]>();
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
  // files verified under the old policy are not verified under this one
  // (bpf/lib/hash_verified.h: an entry needs the live generation and this epoch)
  bumpHashEpoch(maps);
  // the old generation: the keys found by the first pass (nothing else writes
  // generation `from` during this call)
  let removed = 0;
  for (const [name, keys] of others) {
    removed += deleteKeys(maps(name), keys.filter((k) => keyGeneration(name, k) === from));
  }
  maps("aegis_policy").update(u32Key(from), policyValue(0));
  return { from, to, written, removed, switchMicros };
}
