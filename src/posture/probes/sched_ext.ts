/**
 * Probe: sched_ext (BPF schedulers, CONFIG_SCHED_CLASS_EXT, Linux 6.12+).
 * The kernel creates /sys/kernel/sched_ext exactly when it is built in; its
 * `state` file says whether a BPF scheduler is loaded now.
 *
 * @module
 */
import { errorText, type ProbeFs, type ProbeResult, unknown, unsupported } from "../probe.ts";

export const SCHED_EXT_DIR = "/sys/kernel/sched_ext";

export interface SchedExt {
  /** the `state` file (e.g. "disabled", "enabled"); null when unreadable */
  state: string | null;
}

export async function probeSchedExt(fs: ProbeFs): Promise<ProbeResult<SchedExt>> {
  try {
    const st = await fs.stat(SCHED_EXT_DIR);
    if (!st.isDirectory) return unsupported(`${SCHED_EXT_DIR} is not a directory`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return unsupported(
        `${SCHED_EXT_DIR} does not exist: the kernel was built without CONFIG_SCHED_CLASS_EXT ` +
          `(Linux 6.12 or later)`,
      );
    }
    return unknown(`cannot stat ${SCHED_EXT_DIR}: ${errorText(e)}`);
  }
  let state: string | null = null;
  try {
    state = (await fs.readText(`${SCHED_EXT_DIR}/state`)).trim() || null;
  } catch { /* the directory is the evidence; the state is a detail */ }
  return { status: "supported", value: { state } };
}
