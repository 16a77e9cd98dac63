/**
 * Probe: the unified cgroup hierarchy (cgroup v2), which cgroup rules and
 * the agent's own cgroup need. A cgroup2 mount must exist (preferably at
 * /sys/fs/cgroup; the hybrid layout's /sys/fs/cgroup/unified counts) and
 * its cgroup.controllers must be readable.
 *
 * @module
 */
import { readMounts } from "../mountinfo.ts";
import { MOUNTINFO_PATH } from "../../util/mountinfo.ts";
import { errorText, type ProbeFs, type ProbeResult, unknown, unsupported } from "../probe.ts";

export const CGROUP_ROOT = "/sys/fs/cgroup";

export interface CgroupV2 {
  mount_point: string;
  controllers: string[];
  /** cgroup v2 is mounted somewhere else than /sys/fs/cgroup (hybrid layout) */
  hybrid: boolean;
}

export async function probeCgroupV2(fs: ProbeFs): Promise<ProbeResult<CgroupV2>> {
  let points: string[];
  try {
    points = (await readMounts(fs)).filter((m) => m.fsType === "cgroup2").map((m) => m.mountPoint);
  } catch (e) {
    return unknown(`cannot read ${MOUNTINFO_PATH}: ${errorText(e)}`);
  }
  if (points.length === 0) {
    return unsupported(
      "no cgroup2 file system is mounted; boot with systemd.unified_cgroup_hierarchy=1 " +
        `or mount -t cgroup2 none ${CGROUP_ROOT}`,
    );
  }
  const mp = points.includes(CGROUP_ROOT) ? CGROUP_ROOT : points[0];
  const file = `${mp}/cgroup.controllers`;
  try {
    const text = await fs.readText(file);
    return {
      status: "supported",
      value: {
        mount_point: mp,
        controllers: text.trim().split(/\s+/).filter((s) => s !== ""),
        hybrid: mp !== CGROUP_ROOT,
      },
    };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return unsupported(`${file} is missing: the cgroup2 mount at ${mp} is not usable`);
    }
    return unknown(`cannot read ${file}: ${errorText(e)}`);
  }
}
