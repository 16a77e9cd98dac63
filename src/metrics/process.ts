/**
 * The standard Prometheus process metrics of the agent (docs/telemetry.md),
 * read from /proc at render time the way the Prometheus client libraries
 * read them (client_golang's procfs collector), so dashboards built for any
 * exporter's `process_*` work unchanged:
 *
 * | metric                           | from                                             |
 * | -------------------------------- | ------------------------------------------------ |
 * | `process_cpu_seconds_total`      | /proc/self/stat utime + stime, in USER_HZ ticks  |
 * | `process_resident_memory_bytes`  | /proc/self/status VmRSS (kB)                     |
 * | `process_virtual_memory_bytes`   | /proc/self/stat vsize (bytes)                    |
 * | `process_start_time_seconds`     | /proc/self/stat starttime (ticks since boot) + /proc/stat btime |
 * | `process_open_fds`               | entries of /proc/self/fd                         |
 * | `process_max_fds`                | /proc/self/limits "Max open files", soft limit   |
 *
 * A file that cannot be read or parsed leaves its metrics out (never a
 * made-up number).
 *
 * @module
 */

/**
 * Clock ticks per second of /proc's times: USER_HZ, 100 on every Linux
 * architecture the agent runs on (x86_64, arm64); the kernel converts to it
 * for user space whatever its own HZ. client_golang's procfs assumes the same.
 */
export const USER_HZ = 100;

/** Where the process facts are read (tests point at fixtures). */
export interface ProcFiles {
  /** The process's /proc directory: /proc/self for the agent itself. */
  self: string;
  /** The system-wide /proc/stat (its btime: boot time, unix seconds). */
  stat: string;
}

/** The agent's own process. */
export const PROC_SELF: ProcFiles = { self: "/proc/self", stat: "/proc/stat" };

export interface ProcessStats {
  cpuSeconds: number | null;
  residentBytes: number | null;
  virtualBytes: number | null;
  startTimeSeconds: number | null;
  openFds: number | null;
  maxFds: number | null;
}

function readOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/**
 * The fields of /proc/PID/stat after the command name, which is in
 * parentheses and may itself hold spaces and parentheses: field 3 (state)
 * is index 0, so field N is index N - 3 (proc(5)).
 */
export function statFields(text: string): string[] | null {
  const end = text.lastIndexOf(")");
  if (end < 0) return null;
  const fields = text.slice(end + 1).trim().split(/\s+/);
  return fields.length >= 22 ? fields : null;
}

function num(s: string | undefined): number | null {
  if (s === undefined || !/^\d+$/.test(s)) return null;
  return Number(s);
}

/** `Key:   value` of /proc/PID/status or /proc/stat (`key value`). */
function field(text: string, re: RegExp): number | null {
  const m = re.exec(text);
  return m ? Number(m[1]) : null;
}

/** Read the process facts (each null when its file cannot be read or parsed). */
export function readProcessStats(files: ProcFiles = PROC_SELF): ProcessStats {
  const out: ProcessStats = {
    cpuSeconds: null,
    residentBytes: null,
    virtualBytes: null,
    startTimeSeconds: null,
    openFds: null,
    maxFds: null,
  };
  const stat = readOrNull(`${files.self}/stat`);
  const f = stat === null ? null : statFields(stat);
  if (f) {
    const utime = num(f[14 - 3]);
    const stime = num(f[15 - 3]);
    if (utime !== null && stime !== null) out.cpuSeconds = (utime + stime) / USER_HZ;
    out.virtualBytes = num(f[23 - 3]);
    const start = num(f[22 - 3]);
    const sys = readOrNull(files.stat);
    const btime = sys === null ? null : field(sys, /^btime (\d+)$/m);
    if (start !== null && btime !== null) out.startTimeSeconds = btime + start / USER_HZ;
  }
  const status = readOrNull(`${files.self}/status`);
  if (status !== null) {
    const kb = field(status, /^VmRSS:\s+(\d+) kB$/m);
    // a kernel thread has no VmRSS line; the agent always has one
    if (kb !== null) out.residentBytes = kb * 1024;
  }
  try {
    let n = 0;
    for (const _ of Deno.readDirSync(`${files.self}/fd`)) n++;
    out.openFds = n;
  } catch {
    // left out
  }
  const limits = readOrNull(`${files.self}/limits`);
  if (limits !== null) {
    const m = /^Max open files\s+(\S+)/m.exec(limits);
    if (m && /^\d+$/.test(m[1])) out.maxFds = Number(m[1]);
  }
  return out;
}

/**
 * The text without the `process_*` families: what `aegisbpf metrics` prints
 * from the daemon (docs/telemetry.md). Its output is meant for
 * node-exporter's textfile collector, where they would collide with
 * node-exporter's own `process_*` metrics (same names, another process).
 */
export function withoutProcessMetrics(text: string): string {
  return text.split("\n").filter((l) => !/^(# (HELP|TYPE) )?process_/.test(l)).join("\n");
}
