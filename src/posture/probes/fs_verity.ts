/**
 * Probe: fs-verity (CONFIG_FS_VERITY). Evidence, first found wins: the
 * kernel BTF has one of its functions (fsverity_ioctl_enable, or the
 * bpf_get_fsverity_digest kfunc), or the sysctl directory /proc/sys/fs/verity
 * exists (only with CONFIG_FS_VERITY_BUILTIN_SIGNATURES). Without a BTF
 * query and without that directory the answer is unknown: the directory's
 * absence alone proves nothing.
 *
 * @module
 */
import type { BtfFuncQuery, ProbeFs, ProbeResult } from "../probe.ts";
import { errorText, unknown, unsupported } from "../probe.ts";

export const FSVERITY_SYMBOLS = ["fsverity_ioctl_enable", "bpf_get_fsverity_digest"] as const;
export const FSVERITY_SYSCTL_DIR = "/proc/sys/fs/verity";

export async function probeFsVerity(
  fs: ProbeFs,
  hasBtfFunc: BtfFuncQuery,
): Promise<ProbeResult<{ evidence: string }>> {
  let btfError: string | null = null;
  if (hasBtfFunc) {
    try {
      for (const s of FSVERITY_SYMBOLS) {
        if (hasBtfFunc(s)) return { status: "supported", value: { evidence: `BTF ${s}` } };
      }
      return unsupported(
        `the kernel BTF has none of ${FSVERITY_SYMBOLS.join(", ")}: built without CONFIG_FS_VERITY`,
      );
    } catch (e) {
      btfError = `BTF query failed: ${errorText(e)}`;
    }
  }
  try {
    if ((await fs.stat(FSVERITY_SYSCTL_DIR)).isDirectory) {
      return { status: "supported", value: { evidence: FSVERITY_SYSCTL_DIR } };
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      return unknown(`cannot stat ${FSVERITY_SYSCTL_DIR}: ${errorText(e)}`);
    }
  }
  return unknown(
    `${btfError ?? "no BTF query available (needs root and the shim)"}; ` +
      `${FSVERITY_SYSCTL_DIR} is absent, which does not rule fs-verity out`,
  );
}
