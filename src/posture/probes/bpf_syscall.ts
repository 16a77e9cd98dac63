/**
 * Probe: the bpf() system call is compiled in (CONFIG_BPF_SYSCALL). The
 * sysctl /proc/sys/kernel/unprivileged_bpf_disabled exists exactly when it
 * is; reading it calls nothing.
 *
 * @module
 */
import { errorText, type ProbeFs, type ProbeResult, unknown, unsupported } from "../probe.ts";

export const UNPRIV_BPF_PATH = "/proc/sys/kernel/unprivileged_bpf_disabled";

export interface BpfSyscall {
  /** 0 unprivileged bpf allowed, 1 disabled for good, 2 disabled (admin may re-enable) */
  unprivileged_bpf_disabled: number | null;
}

export async function probeBpfSyscall(fs: ProbeFs): Promise<ProbeResult<BpfSyscall>> {
  try {
    const n = Number((await fs.readText(UNPRIV_BPF_PATH)).trim());
    return {
      status: "supported",
      value: { unprivileged_bpf_disabled: Number.isInteger(n) ? n : null },
    };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return unsupported(
        `${UNPRIV_BPF_PATH} does not exist: the kernel was built without ` +
          `CONFIG_BPF_SYSCALL; use a kernel with BPF`,
      );
    }
    return unknown(`cannot read ${UNPRIV_BPF_PATH}: ${errorText(e)}`);
  }
}
