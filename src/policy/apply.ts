/**
 * Atomic policy apply over the rule generations (docs/engine.md).
 *
 * The live generation g stays untouched while the new rules are written as
 * generation g' = 1 - g; one write of AEGIS_CFG_GENERATION switches every
 * hook from g to g'; then g is deleted. A hook reads the generation once
 * per call, so at no instant is a rule that is in both policies absent,
 * and a rule only in the new policy is enforced from the switch on. A
 * failure before the switch removes what was written for g' and leaves g
 * enforcing; a failure after it leaves stale g entries, which the next
 * apply clears before writing.
 *
 * @module
 */
import { AegisError } from "../errors.ts";
import { ABI_LAYOUT, AEGIS_CFG_GENERATION } from "../bpf/abi_gen.ts";
import type { BpfMap } from "../bpf/map.ts";
import { policyValue, u32Key } from "../bpf/rule_codec.ts";

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

export interface ApplyResult {
  from: number;
  to: number;
  written: Record<string, number>;
  removed: number;
}

/** The generation field of a rule key. */
function genOf(map: string, key: Uint8Array): number {
  const struct = ABI_LAYOUT.structs[RULE_MAPS[map]] as {
    fields: Record<string, { offset: number }>;
  };
  return new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(
    struct.fields.gen.offset,
    true,
  );
}

/** Delete every key of generation `gen` from every rule map. */
function clearGeneration(maps: (name: string) => BpfMap, gen: number): number {
  let n = 0;
  for (const name of Object.keys(RULE_MAPS)) {
    const m = maps(name);
    for (const k of m.keys()) {
      if (genOf(name, k) === gen && m.delete(k)) n++;
    }
  }
  return n;
}

/** The live generation (0 or 1). */
export function liveGeneration(maps: (name: string) => BpfMap): number {
  return Number(maps("aegis_config").sumU64(AEGIS_CFG_GENERATION) & 1n);
}

/**
 * Apply `policy` atomically. `maps` returns a map of the live object (the
 * engine's, or opened from the pins). Throws POLICY_APPLY_FAILED, with the
 * previous policy still enforcing, when anything fails before the switch.
 */
export function applyCompiled(
  maps: (name: string) => BpfMap,
  policy: CompiledPolicy,
): ApplyResult {
  for (const e of policy.entries) {
    if (!(e.map in RULE_MAPS)) {
      throw new AegisError("POLICY_APPLY_FAILED", `Compiled entry for unknown rule map "${e.map}"`);
    }
  }
  const from = liveGeneration(maps);
  const to = 1 - from;
  // leftovers of an earlier apply that failed after its switch
  clearGeneration(maps, to);
  const written: Record<string, number> = {};
  try {
    for (const e of policy.entries) {
      maps(e.map).update(e.key(to), e.value);
      written[e.map] = (written[e.map] ?? 0) + 1;
    }
    maps("aegis_policy").update(u32Key(to), policyValue(policy.flags));
  } catch (e) {
    // nothing of `to` is live: remove it; `from` keeps enforcing
    clearGeneration(maps, to);
    maps("aegis_policy").update(u32Key(to), policyValue(0));
    throw new AegisError(
      "POLICY_APPLY_FAILED",
      `Policy apply failed before the switch; the previous policy is still enforcing: ${
        (e as Error).message
      }`,
      { cause: e },
    );
  }
  // the switch: one map write
  maps("aegis_config").setU64(AEGIS_CFG_GENERATION, BigInt(to));
  const removed = clearGeneration(maps, from);
  maps("aegis_policy").update(u32Key(from), policyValue(0));
  return { from, to, written, removed };
}
