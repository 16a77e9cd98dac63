/**
 * The agent's own cgroup: the agent moves itself into a cgroup v2 directory
 * of its own and tells the hooks its id (AEGIS_CFG_AGENT_CGID), so no rule
 * ever denies the agent itself (its pins, its state, its control socket).
 *
 * The cgroup id the BPF helper reports is the inode number of the cgroup's
 * directory in the v2 hierarchy.
 *
 * @module
 */
import { AegisError } from "../errors.ts";

export const AGENT_CGROUP_NAME = "aegisbpf.agent";

/** Mount point of the cgroup v2 hierarchy, from a mountinfo text. */
export function cgroup2MountFrom(mountinfo: string): string | null {
  for (const line of mountinfo.split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!post) continue;
    if (post.split(" ")[0] === "cgroup2") return pre.split(" ")[4];
  }
  return null;
}

export interface SelfCgroup {
  path: string;
  id: bigint;
}

/**
 * Move this process into `<cgroup2>/aegisbpf.agent` (created 0755 if
 * missing) and return its path and id.
 */
export function enterOwnCgroup(mountinfo = "/proc/self/mountinfo"): SelfCgroup {
  const root = cgroup2MountFrom(Deno.readTextFileSync(mountinfo));
  if (!root) {
    throw new AegisError(
      "CGROUP2_UNAVAILABLE",
      "No cgroup v2 hierarchy is mounted; the agent cannot put itself in its own cgroup",
    );
  }
  const path = `${root}/${AGENT_CGROUP_NAME}`;
  Deno.mkdirSync(path, { recursive: true, mode: 0o755 });
  Deno.writeTextFileSync(`${path}/cgroup.procs`, `${Deno.pid}\n`);
  return { path, id: BigInt(Deno.statSync(path).ino!) };
}
