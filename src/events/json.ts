/**
 * Kernel records → the JSON event lines operators consume (SPEC §8).
 *
 * @module
 */
import type { KernelRecord, ProcInfo } from "./decode.ts";

function procFields(p: ProcInfo): Record<string, unknown> {
  return {
    pid: p.pid,
    tid: p.tid,
    ppid: p.ppid,
    uid: p.uid,
    start_time: String(p.startTime),
    exec_id: `${p.startTime}-${p.pid}`,
    cgid: String(p.cgid),
    comm: p.comm,
  };
}

/** One event as a JSON object (u64 values as decimal strings). */
export function recordToEvent(r: KernelRecord): Record<string, unknown> {
  switch (r.kind) {
    case "exec":
      return { type: "exec", ktime_ns: String(r.ktimeNs), ...procFields(r) };
    case "open":
      return {
        type: "open",
        ktime_ns: String(r.ktimeNs),
        ...procFields(r),
        path: r.path,
        flags: r.flags,
        dfd: r.dfd,
      };
  }
}
