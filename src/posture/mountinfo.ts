/**
 * /proc/self/mountinfo through a probe's injectable file system
 * (src/util/mountinfo.ts parses it).
 *
 * @module
 */
import { type Mount, MOUNTINFO_PATH, parseMountinfo } from "../util/mountinfo.ts";
import type { ProbeFs } from "./probe.ts";

/** The mounts of the calling process's mount namespace. */
export async function readMounts(fs: ProbeFs): Promise<Mount[]> {
  return parseMountinfo(await fs.readText(MOUNTINFO_PATH));
}
