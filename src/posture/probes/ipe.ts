/**
 * Probe: IPE (Integrity Policy Enforcement, Linux 6.12+), an LSM: active
 * exactly when "ipe" is in the active LSM list (/sys/kernel/security/lsm).
 *
 * @module
 */
import type { ProbeFs, ProbeResult } from "../probe.ts";
import { unsupported } from "../probe.ts";
import { probeActiveLsms } from "./lsm.ts";

/** IPE from an LSM list already read (unknown when the list is). */
export function ipeFromLsms(lsms: ProbeResult<string[]>): ProbeResult {
  if (lsms.status !== "supported") return lsms;
  if (lsms.value.includes("ipe")) return { status: "supported", value: true };
  return unsupported(
    `ipe is not in the active LSM list (${lsms.value.join(",")}); it needs a kernel >= 6.12 ` +
      `with CONFIG_SECURITY_IPE and lsm=${[...lsms.value, "ipe"].join(",")}`,
  );
}

export async function probeIpe(fs: ProbeFs): Promise<ProbeResult> {
  return ipeFromLsms(await probeActiveLsms(fs));
}
