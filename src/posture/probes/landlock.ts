/**
 * Probe: Landlock. Active when "landlock" is in the LSM list. Its ABI
 * version is only reported by the landlock_create_ruleset() system call
 * (LANDLOCK_CREATE_RULESET_VERSION, which creates nothing); the shim makes
 * that call (aegis_landlock_abi). Without the shim (not root) the ABI stays
 * null ("unknown") rather than guessed from the kernel version.
 *
 * @module
 */
import type { ProbeResult } from "../probe.ts";
import { errorText, unsupported } from "../probe.ts";

export interface Landlock {
  /** Landlock ABI version; null = not determined (no shim, or the call failed) */
  abi: number | null;
  /** why abi is null */
  abi_note?: string;
}

/**
 * The shim's landlock_create_ruleset(…VERSION) call: the ABI (>= 1) or a
 * negative errno. null: no shim to make the call with.
 */
export type LandlockAbiQuery = (() => number) | null;

const ENOSYS = 38;
const EOPNOTSUPP = 95;

export function probeLandlock(
  lsms: ProbeResult<string[]>,
  abiQuery: LandlockAbiQuery = null,
): ProbeResult<Landlock> {
  if (lsms.status !== "supported") return lsms;
  if (!lsms.value.includes("landlock")) {
    return unsupported(
      `landlock is not in the active LSM list (${lsms.value.join(",")}); ` +
        `boot with lsm=${
          [...lsms.value, "landlock"].join(",")
        } on a kernel with CONFIG_SECURITY_LANDLOCK`,
    );
  }
  if (!abiQuery) {
    return {
      status: "supported",
      value: { abi: null, abi_note: "no shim to ask landlock_create_ruleset (needs root)" },
    };
  }
  let r: number;
  try {
    r = abiQuery();
  } catch (e) {
    return { status: "supported", value: { abi: null, abi_note: errorText(e) } };
  }
  if (r >= 1) return { status: "supported", value: { abi: r } };
  const why = r === -ENOSYS
    ? "landlock_create_ruleset is not available to this process (ENOSYS: a seccomp filter?)"
    : r === -EOPNOTSUPP
    ? "landlock_create_ruleset says Landlock is disabled (EOPNOTSUPP)"
    : `landlock_create_ruleset failed (errno ${-r})`;
  return { status: "supported", value: { abi: null, abi_note: why } };
}
