/**
 * Test helper: a fake /proc for readProcessStats (the unit tier cannot read
 * the real one: Deno wants --allow-all for /proc, build/permissions.flags).
 */
import type { ProcFiles } from "./process.ts";

/** A /proc/PID/stat line (proc(5)) with the given fields (by number) set. */
export function statLine(comm: string, f: Record<number, number>): string {
  const fields: string[] = ["S"];
  for (let n = 4; n <= 52; n++) fields.push(String(f[n] ?? 0));
  return `4242 (${comm}) ${fields.join(" ")}\n`;
}

export const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                524288               files
Max locked memory         8388608              8388608              bytes
`;

/** The files of a typical process: 3 s of CPU, 117212 kB resident, 5 fds. */
export const TYPICAL: Record<string, string> = {
  // utime 14, stime 15, starttime 22, vsize 23, rss 24 (pages: not used, VmRSS is)
  "self/stat": statLine("deno (x) y", { 14: 250, 15: 50, 22: 123456, 23: 987654321, 24: 7 }),
  "self/status": "Name:\tdeno\nVmSize:\t  964504 kB\nVmRSS:\t  117212 kB\nThreads:\t9\n",
  "self/limits": LIMITS,
  "stat": "cpu  1 2 3\ncpu0 1 2 3\nintr 5\nctxt 99\nbtime 1796000000\nprocesses 7\n",
};

/** Write `files` (paths under the root) and `fds` entries of self/fd into a temp dir. */
export function procFixture(
  files: Record<string, string> = TYPICAL,
  fds = 5,
): ProcFiles & { root: string } {
  const root = Deno.makeTempDirSync({ prefix: "aegis-proc-" });
  Deno.mkdirSync(`${root}/self/fd`, { recursive: true });
  for (let i = 0; i < fds; i++) Deno.writeTextFileSync(`${root}/self/fd/${i}`, "");
  for (const [name, text] of Object.entries(files)) Deno.writeTextFileSync(`${root}/${name}`, text);
  return { root, self: `${root}/self`, stat: `${root}/stat` };
}
