/**
 * Probe: fs-verity (CONFIG_FS_VERITY), evidenced by the kernel BTF having
 * its functions (fsverity_ioctl_enable, or the bpf_get_fsverity_digest
 * kfunc). Without a BTF query the answer is unknown.
 *
 * @module
 */
import type { BtfFuncQuery, ProbeResult } from "../probe.ts";
import { errorText, unknown, unsupported } from "../probe.ts";

export const FSVERITY_SYMBOLS = ["fsverity_ioctl_enable", "bpf_get_fsverity_digest"] as const;

export function probeFsVerity(hasBtfFunc: BtfFuncQuery): ProbeResult<{ symbol: string }> {
  if (!hasBtfFunc) return unknown("no BTF query available (needs root and the shim)");
  try {
    for (const s of FSVERITY_SYMBOLS) {
      if (hasBtfFunc(s)) return { status: "supported", value: { symbol: s } };
    }
  } catch (e) {
    return unknown(`BTF query failed: ${errorText(e)}`);
  }
  return unsupported(
    `the kernel BTF has none of ${FSVERITY_SYMBOLS.join(", ")}: built without CONFIG_FS_VERITY`,
  );
}
