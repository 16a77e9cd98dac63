/**
 * Rule map sizes: what a fresh start creates the maps with (two
 * generations of the applied policy and a quarter more, never below what
 * bpf/include/aegis_maps.h declares), and the sizes failed applies asked
 * for (`<stateDir>/map_sizes.json`), used at the next fresh start.
 *
 * @module
 */
import { writeFileAtomic } from "./atomic.ts";
import type { CompiledPolicy } from "./compile.ts";
import { countByMap, RULE_MAPS } from "./generations.ts";
import type { MapName } from "../bpf/abi_gen.ts";

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
  aegis_deny_hash: 4096,
};

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
  liveRules: readonly { map: MapName }[],
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

export function mapSizesFile(stateDir: string): string {
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

export function recordMapSizeRequest(stateDir: string, map: string, needs: number): void {
  const cur = readMapSizeRequests(stateDir);
  cur[map] = Math.max(cur[map] ?? 0, needs);
  Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileAtomic(mapSizesFile(stateDir), new TextEncoder().encode(JSON.stringify(cur)), 0o600);
}
