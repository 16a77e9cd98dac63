/**
 * Probe: BPF ring buffers (BPF_MAP_TYPE_RINGBUF), the agent's event path.
 * Evidence, best first: the kernel BTF has bpf_ringbuf_reserve; else the
 * kernel is 5.8 or later (where ring buffers arrived).
 *
 * @module
 */
import type { BtfFuncQuery, ProbeResult } from "../probe.ts";
import { errorText, unknown, unsupported } from "../probe.ts";
import { kernelAtLeast, type KernelVersion } from "./kernel_version.ts";

export interface Ringbuf {
  evidence: "btf" | "kernel_version";
}

export function probeRingbuf(
  kernel: ProbeResult<KernelVersion>,
  hasBtfFunc: BtfFuncQuery,
): ProbeResult<Ringbuf> {
  if (hasBtfFunc) {
    try {
      if (hasBtfFunc("bpf_ringbuf_reserve")) {
        return { status: "supported", value: { evidence: "btf" } };
      }
      return unsupported(
        "the kernel BTF has no bpf_ringbuf_reserve: no BPF ring buffers (kernel < 5.8)",
      );
    } catch (e) {
      if (kernel.status !== "supported") return unknown(`BTF query failed: ${errorText(e)}`);
    }
  }
  if (kernel.status !== "supported") {
    return unknown(
      `no BTF query and no kernel version (${
        kernel.status === "unknown" ? kernel.error : kernel.reason
      })`,
    );
  }
  return kernelAtLeast(kernel.value, 5, 8)
    ? { status: "supported", value: { evidence: "kernel_version" } }
    : unsupported(`kernel ${kernel.value.release} is older than 5.8: no BPF ring buffers`);
}
