/**
 * Probe: syscall tracepoints (tracefs events/syscalls/sys_enter_openat),
 * which audit mode and the signal fallback attach to.
 *
 * @module
 */
import { readMounts } from "../mountinfo.ts";
import { MOUNTINFO_PATH } from "../../util/mountinfo.ts";
import { errorText, type ProbeFs, type ProbeResult, unknown, unsupported } from "../probe.ts";

export const TRACEFS_PATH = "/sys/kernel/tracing";
export const OPENAT_EVENT = "events/syscalls/sys_enter_openat";

export async function probeTracepoints(fs: ProbeFs): Promise<ProbeResult<{ tracefs: string }>> {
  let roots: string[];
  try {
    const mounts = await readMounts(fs);
    roots = [
      ...mounts.filter((m) => m.fsType === "tracefs").map((m) => m.mountPoint),
      // debugfs exposes tracefs below it on older setups
      ...mounts.filter((m) => m.fsType === "debugfs").map((m) => `${m.mountPoint}/tracing`),
    ];
  } catch (e) {
    return unknown(`cannot read ${MOUNTINFO_PATH}: ${errorText(e)}`);
  }
  if (roots.length === 0) {
    return unknown(
      `tracefs is not mounted, so syscall tracepoints cannot be checked or used; ` +
        `mount -t tracefs tracefs ${TRACEFS_PATH}`,
    );
  }
  const errors: string[] = [];
  for (const root of roots) {
    const dir = `${root}/${OPENAT_EVENT}`;
    try {
      if ((await fs.stat(dir)).isDirectory) {
        return { status: "supported", value: { tracefs: root } };
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) errors.push(`${dir}: ${errorText(e)}`);
    }
  }
  if (errors.length > 0) return unknown(`cannot check syscall tracepoints: ${errors.join("; ")}`);
  return unsupported(
    `tracefs (${roots.join(", ")}) has no ${OPENAT_EVENT}: the kernel was built without ` +
      `CONFIG_FTRACE_SYSCALLS`,
  );
}
