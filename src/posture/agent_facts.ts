/**
 * What `health` says about the agent's own BPF object and pins
 * (docs/posture.md, "Compatibility with the C++ agent: health and doctor"):
 * the embedded object and its SHA-256 check, the maps it defines, and
 * whether the maps are pinned. The daemon gathers the object facts once at
 * start and the pin facts on every answer; the CLI gathers both when no
 * daemon runs.
 *
 * @module
 */
import { pinnedConfigPath } from "../bpf/pins.ts";
import { GROUP_MAPS } from "../policy/live.ts";

/** Where health says the object comes from: it is embedded in the agent, not a file. */
export const EMBEDDED_OBJECT_PATH = "embedded:aegis.bpf.o";

/** Maps every program set needs (the C++ health's "required maps"). */
export const REQUIRED_MAPS = [
  "aegis_events",
  "aegis_counters",
  "aegis_config",
  "aegis_policy",
  "aegis_hook_stats",
  "aegis_deny_inode",
  "aegis_allow_cgroup",
  "aegis_survival_inode",
  "aegis_task_state",
] as const;

/** The global network rule maps (the live rules' network group). */
export const NETWORK_MAPS = GROUP_MAPS.network;

export interface ObjectFacts {
  path: string;
  /** the embedded bytes are there */
  found: boolean;
  /** the build recorded a SHA-256 for them (always, for an embedded object) */
  hash_found: boolean;
  /** their SHA-256 is the recorded one */
  hash_verified: boolean;
  /** the verified object defines every REQUIRED_MAPS map */
  required_maps: boolean;
  /** the verified object defines the NETWORK_MAPS maps */
  network_maps: boolean;
}

export interface PinFacts {
  /** an agent's pins are there (its config map); null = cannot tell */
  present: boolean | null;
  /** every REQUIRED_MAPS map is pinned; null = cannot tell */
  required: boolean | null;
  /** every NETWORK_MAPS map is pinned; null = cannot tell */
  network: boolean | null;
}

export interface AgentFacts {
  object: ObjectFacts;
  pins: PinFacts;
}

/**
 * Does the ELF object define these map names? Each map's name is a
 * NUL-terminated string of its symbol table (and BTF), so the names are
 * looked for with a NUL on both sides.
 */
export function objectDefinesMaps(elf: Uint8Array, names: readonly string[]): boolean {
  const text = new TextDecoder("latin1").decode(elf);
  return names.every((n) => text.includes(`\0${n}\0`));
}

/** The object facts from the embedded-object check (assets/mod.ts checkBpfObject). */
export function objectFacts(
  check: { found: boolean; hashVerified: boolean; bytes: Uint8Array | null },
): ObjectFacts {
  const b = check.bytes;
  return {
    path: EMBEDDED_OBJECT_PATH,
    found: check.found,
    hash_found: true,
    hash_verified: check.hashVerified,
    required_maps: b !== null && objectDefinesMaps(b, REQUIRED_MAPS),
    network_maps: b !== null && objectDefinesMaps(b, NETWORK_MAPS),
  };
}

/** Are all these files there? null when one cannot be checked (not NotFound). */
function allExist(paths: string[], lstat: (p: string) => unknown): boolean | null {
  let unknown = false;
  for (const p of paths) {
    try {
      lstat(p);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      unknown = true;
    }
  }
  return unknown ? null : true;
}

/** Which maps are pinned under `root` (`<root>/maps/<name>`). */
export function pinFacts(
  root: string,
  lstat: (p: string) => unknown = (p) => Deno.lstatSync(p),
): PinFacts {
  const maps = (names: readonly string[]) => names.map((n) => `${root}/maps/${n}`);
  return {
    present: allExist([pinnedConfigPath(root)], lstat),
    required: allExist(maps(REQUIRED_MAPS), lstat),
    network: allExist(maps(NETWORK_MAPS), lstat),
  };
}

/** Object and pin facts of this host (the CLI, when no daemon answers). */
export async function hostAgentFacts(pinRoot: string): Promise<AgentFacts> {
  const { checkBpfObject } = await import("../assets/mod.ts");
  return { object: objectFacts(await checkBpfObject()), pins: pinFacts(pinRoot) };
}
