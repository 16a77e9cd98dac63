/**
 * Probe: the active LSM list (/sys/kernel/security/lsm) and whether `bpf`
 * is in it. Being listed is one of the three facts BPF-LSM enforcement
 * needs (the others: an LSM program loads, and it attaches and denies).
 *
 * @module
 */
import type { ProbeFs, ProbeResult } from "../probe.ts";

export const LSM_LIST_PATH = "/sys/kernel/security/lsm";

/** The active LSMs, in order. */
export async function probeActiveLsms(fs: ProbeFs): Promise<ProbeResult<string[]>> {
  try {
    const text = await fs.readText(LSM_LIST_PATH);
    return { status: "supported", value: text.trim().split(",").filter((s) => s !== "") };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return {
        status: "unknown",
        error:
          `${LSM_LIST_PATH} is missing: securityfs is not mounted (mount -t securityfs none /sys/kernel/security)`,
      };
    }
    return { status: "unknown", error: `cannot read ${LSM_LIST_PATH}: ${e}` };
  }
}

/** Is `bpf` an active LSM? */
export async function probeBpfLsmActive(fs: ProbeFs): Promise<ProbeResult> {
  const lsms = await probeActiveLsms(fs);
  if (lsms.status !== "supported") return lsms;
  return lsms.value.includes("bpf") ? { status: "supported", value: true } : {
    status: "unsupported",
    reason: `bpf is not in the active LSM list (${lsms.value.join(",")}); boot with lsm=${
      [...lsms.value, "bpf"].join(",")
    }`,
  };
}
