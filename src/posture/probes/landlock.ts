/**
 * Probe: Landlock. Active when "landlock" is in the LSM list. Its ABI
 * version is only reported by the landlock_create_ruleset() system call
 * (LANDLOCK_CREATE_RULESET_VERSION), which this agent cannot issue without
 * a native helper, so the ABI stays null ("unknown") rather than guessed
 * from the kernel version.
 *
 * @module
 */
import type { ProbeResult } from "../probe.ts";
import { unsupported } from "../probe.ts";

export interface Landlock {
  /** Landlock ABI version; null = not determinable without the syscall */
  abi: number | null;
}

export function probeLandlock(lsms: ProbeResult<string[]>): ProbeResult<Landlock> {
  if (lsms.status !== "supported") return lsms;
  if (lsms.value.includes("landlock")) return { status: "supported", value: { abi: null } };
  return unsupported(
    `landlock is not in the active LSM list (${lsms.value.join(",")}); ` +
      `boot with lsm=${
        [...lsms.value, "landlock"].join(",")
      } on a kernel with CONFIG_SECURITY_LANDLOCK`,
  );
}
