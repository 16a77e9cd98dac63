/**
 * The JSON line of an exec or exec_argv record, written straight from the
 * decoded record: the same text as stamping recordToEvent()'s object and
 * serializing it (./envelope.ts, ./json.ts), without building three objects
 * per event and walking them again in JSON.stringify.
 *
 * Why: an exec loop produces two telemetry lines per exec, every one of them
 * (they are not sampled), and on a one-CPU machine the agent's time per line
 * is taken from the workload. Measured on the host (bench/events/exec_line_bench.ts):
 * about a third of the generic path's time per exec. Nothing here decides
 * what is written: a record with a u64 beyond 2^53 (a bigint), any other
 * kind, or a daemon that needs the event objects (an /events subscriber, the
 * OCSF format) takes the generic path. tests: telemetry_line_test.ts holds
 * the two paths to the same text on random records.
 *
 * @module
 */
import type { ExecArgvRecord, ExecRecord, KernelRecord } from "./decode.ts";
import type { EventEnvelope } from "./envelope.ts";
import type { CgroupResolver } from "./json.ts";

const q = JSON.stringify;

/** Makes the fast lines of one agent (host and version quoted once). */
export function telemetryLineWriter(
  envelope: EventEnvelope,
  cgroups?: CgroupResolver,
): (r: KernelRecord) => string | null {
  const fixed = `,"host":${q(envelope.host)},"agent_version":${q(envelope.agentVersion)}`;
  // an exec_argv record follows its exec record: the process part is built once for both
  let last: ExecRecord | ExecArgvRecord | null = null;
  let lastCgPath = "";
  let lastText = "";
  const procOf = (r: ExecRecord | ExecArgvRecord): string => {
    const cgPath = (cgroups ? cgroups.resolve(r.cgid) : null) ?? "";
    if (last === null || cgPath !== lastCgPath || !sameProcess(last, r)) {
      last = r;
      lastCgPath = cgPath;
      lastText = procText(r, cgPath);
    }
    return lastText;
  };
  return (r) => {
    if (r.kind !== "exec" && r.kind !== "exec_argv") return null;
    if (
      typeof r.ktimeNs !== "number" || typeof r.startTime !== "number" ||
      typeof r.parentStartTime !== "number" || typeof r.cgid !== "number"
    ) return null;
    if (envelope.clockOffsetNs === null) return null; // stamped with "now": the generic path
    const common = `{"timestamp":"${envelope.wallTime(r.ktimeNs)}","type":"${r.kind}",` +
      `"event_id":"${envelope.nextId()}"${fixed}`;
    const proc = `,"ktime_ns":${r.ktimeNs}${procOf(r)}`;
    if (r.kind === "exec") return `${common}${proc}}`;
    return `${common}${proc}${argvText(r)}}`;
  };
}

function sameProcess(a: ExecRecord | ExecArgvRecord, b: ExecRecord | ExecArgvRecord): boolean {
  return a.pid === b.pid && a.tid === b.tid && a.startTime === b.startTime && a.ppid === b.ppid &&
    a.uid === b.uid && a.parentStartTime === b.parentStartTime && a.cgid === b.cgid &&
    a.comm === b.comm;
}

/** The process fields after `ktime_ns`, as procFields() in ./json.ts orders them. */
function procText(r: ExecRecord | ExecArgvRecord, cgPath: string): string {
  return `,"pid":${r.pid},"tid":${r.tid},"ppid":${r.ppid},` +
    `"uid":${r.uid},"start_time":${r.startTime},"exec_id":"${r.startTime}-${r.pid}",` +
    `"parent_start_time":${r.parentStartTime},"parent_exec_id":"${r.parentStartTime}-${r.ppid}",` +
    `"cgid":${r.cgid},"cgroup_path":${q(cgPath)},"comm":${q(r.comm)}`;
}

function argvText(r: ExecArgvRecord): string {
  return `,"argc":${r.argv.length},"argv":${q(r.argv)},"argv_truncated":${r.truncated},` +
    `"argv_bytes":${r.totalBytes}`;
}
