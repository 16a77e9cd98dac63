/**
 * The live maps, opened from their pins (what the CLI uses when it changes
 * rules without going through the daemon).
 *
 * @module
 */
import { AegisError } from "../errors.ts";
import type { Shim } from "../native/mod.ts";
import { BpfMap } from "./map.ts";
import type { MapName } from "./abi_gen.ts";

/** The file whose presence means an agent's pins are under `root`: its pinned config map. */
export function pinnedConfigPath(root: string): string {
  return `${root}/maps/aegis_config`;
}

/**
 * Whether an agent's pins are under `root`; null when that cannot be told
 * (anything but "not found", e.g. no permission to look).
 */
export function pinsPresent(root: string): boolean | null {
  try {
    Deno.lstatSync(pinnedConfigPath(root));
    return true;
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? false : null;
  }
}

/** Whether an agent's pins are under `root`; throws when that cannot be told. */
export function pinsExist(root: string): boolean {
  const p = pinsPresent(root);
  if (p === null) Deno.lstatSync(pinnedConfigPath(root)); // throws the reason
  return p === true;
}

/** Maps under `<root>/maps/`, opened on first use; close() releases the fds. */
export class PinnedMaps implements Disposable {
  readonly root: string;
  #shim: Shim;
  #open = new Map<string, BpfMap>();

  constructor(shim: Shim, root: string) {
    this.#shim = shim;
    this.root = root;
    if (pinsPresent(root) !== true) {
      throw new AegisError(
        "NOT_RUNNING",
        `No aegisbpf pins under ${root}: nothing is loaded. Start the agent ("aegisbpf run") first.`,
      );
    }
  }

  /** A pinned map by name. */
  map(name: MapName): BpfMap {
    let m = this.#open.get(name);
    if (!m) {
      m = new BpfMap(this.#shim, name, this.#shim.getPinned(`${this.root}/maps/${name}`));
      this.#open.set(name, m);
    }
    return m;
  }

  close(): void {
    for (const m of this.#open.values()) this.#shim.closeFd(m.fd);
    this.#open.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
