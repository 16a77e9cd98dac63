/**
 * Probe: kernel BTF (/sys/kernel/btf/vmlinux), which CO-RE relocation and
 * every LSM/tracing program of the agent need.
 *
 * @module
 */
import { errorText, type ProbeFs, type ProbeResult, unknown, unsupported } from "../probe.ts";

export const VMLINUX_BTF_PATH = "/sys/kernel/btf/vmlinux";

export async function probeBtf(fs: ProbeFs): Promise<ProbeResult<{ path: string; size: number }>> {
  try {
    const st = await fs.stat(VMLINUX_BTF_PATH);
    if (!st.isFile) return unsupported(`${VMLINUX_BTF_PATH} is not a file`);
    // sysfs reports the real size of the BTF blob; an empty one is useless
    if (st.size === 0) return unsupported(`${VMLINUX_BTF_PATH} is empty`);
    return { status: "supported", value: { path: VMLINUX_BTF_PATH, size: st.size } };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return unsupported(
        `${VMLINUX_BTF_PATH} does not exist: the kernel was built without ` +
          `CONFIG_DEBUG_INFO_BTF=y; use a kernel with BTF`,
      );
    }
    return unknown(`cannot stat ${VMLINUX_BTF_PATH}: ${errorText(e)}`);
  }
}
