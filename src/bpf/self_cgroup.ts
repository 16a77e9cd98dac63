/**
 * The agent's own cgroup: the agent moves itself into a cgroup v2 directory
 * of its own and tells the hooks its id (AEGIS_CFG_AGENT_CGID), so no rule
 * ever denies the agent itself (its pins, its state, its control socket).
 *
 * The directory is a child of the cgroup the agent was started in —
 * `<its cgroup>/aegisbpf.agent` — so the limits and accounting of its
 * supervisor (a systemd unit, a pod) still apply, and the exemption covers
 * the agent alone, never the other processes of the cgroup it came from
 * (a shell's session, say). Processes found in that child at start are
 * not the agent: they are moved back to the parent. A clean stop moves the
 * agent back and removes the child. The cgroup id the BPF helper reports is
 * the inode number of the directory in the v2 hierarchy.
 *
 * @module
 */
import { AegisError } from "../errors.ts";
import { cgroup2MountFrom } from "../util/mountinfo.ts";

export const AGENT_CGROUP_NAME = "aegisbpf.agent";

/**
 * The v2 cgroup path ("/system.slice/x.service") from a /proc/PID/cgroup
 * text: the "0::" line. Null when there is none (a v1-only system).
 */
export function cgroup2PathFrom(procCgroup: string): string | null {
  for (const line of procCgroup.split("\n")) {
    if (!line.startsWith("0::")) continue;
    const p = line.slice(3);
    // "(deleted)" is appended when the cgroup was removed under the process
    return p.startsWith("/") ? p.replace(/ \(deleted\)$/, "") : null;
  }
  return null;
}

/**
 * Where the agent's cgroup goes: below the cgroup it runs in, or that cgroup
 * itself when it is already the agent's (a start inside it).
 */
export function agentCgroupDir(mount: string, current: string): { dir: string; parent: string } {
  const here = current === "/" ? mount : `${mount}${current}`;
  if (current.split("/").at(-1) === AGENT_CGROUP_NAME) {
    return { dir: here, parent: here.slice(0, here.lastIndexOf("/")) };
  }
  return { dir: `${here}/${AGENT_CGROUP_NAME}`, parent: here };
}

export interface SelfCgroup {
  /** the agent's own cgroup directory */
  path: string;
  /** the cgroup it was started in (its supervisor's); the canary cgroup goes here too */
  parent: string;
  id: bigint;
  /** pids that were in the agent's cgroup and were moved to the parent */
  movedOut: number[];
}

function cgroup2Mount(mountinfo: string): string {
  const root = cgroup2MountFrom(Deno.readTextFileSync(mountinfo));
  if (!root) {
    throw new AegisError(
      "CGROUP2_UNAVAILABLE",
      "No cgroup v2 hierarchy is mounted; the agent cannot put itself in its own cgroup",
    );
  }
  return root;
}

/** Pids listed in `<dir>/cgroup.procs`. */
function procsOf(dir: string): number[] {
  return Deno.readTextFileSync(`${dir}/cgroup.procs`).split("\n").filter(Boolean).map(Number);
}

/**
 * Move this process into its own cgroup (agentCgroupDir; created 0755 if
 * missing), first moving any other process out of it, and return where.
 */
export function enterOwnCgroup(
  mountinfo = "/proc/self/mountinfo",
  procCgroup = "/proc/self/cgroup",
): SelfCgroup {
  const mount = cgroup2Mount(mountinfo);
  const current = cgroup2PathFrom(Deno.readTextFileSync(procCgroup));
  if (current === null) {
    throw new AegisError(
      "CGROUP2_UNAVAILABLE",
      `${procCgroup} names no cgroup v2 path; the agent cannot put itself in its own cgroup`,
    );
  }
  const { dir, parent } = agentCgroupDir(mount, current);
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const movedOut: number[] = [];
  for (const pid of procsOf(dir)) {
    if (pid === Deno.pid) continue;
    try {
      Deno.writeTextFileSync(`${parent}/cgroup.procs`, `${pid}\n`);
      movedOut.push(pid);
    } catch (e) {
      // gone meanwhile: nothing to move
      if (!(e instanceof Deno.errors.NotFound) && procsOf(dir).includes(pid)) {
        throw new AegisError(
          "CGROUP_NOT_OWN",
          `process ${pid} is in the agent's cgroup ${dir} and cannot be moved out ` +
            `(${e instanceof Error ? e.message : e}); it would be exempt from every rule`,
        );
      }
    }
  }
  Deno.writeTextFileSync(`${dir}/cgroup.procs`, `${Deno.pid}\n`);
  return { path: dir, parent, id: BigInt(Deno.statSync(dir).ino!), movedOut };
}

/**
 * A clean stop: back to the parent cgroup, and the agent's cgroup removed
 * (left in place, and said so, when something else is in it now).
 */
export function leaveOwnCgroup(self: SelfCgroup): string | null {
  try {
    Deno.writeTextFileSync(`${self.parent}/cgroup.procs`, `${Deno.pid}\n`);
    Deno.removeSync(self.path);
    return null;
  } catch (e) {
    return `cannot remove the agent's cgroup ${self.path}: ${e instanceof Error ? e.message : e}`;
  }
}
