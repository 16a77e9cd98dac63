/**
 * Probe: bpffs mounted at /sys/fs/bpf, where the agent pins its maps and
 * links. Decided from the mount table's file system type ("bpf", the name
 * of BPF_FS_MAGIC), never from the directory merely existing.
 *
 * @module
 */
import { readMounts } from "../mountinfo.ts";
import { fsTypeAt, MOUNTINFO_PATH } from "../../util/mountinfo.ts";
import { errorText, type ProbeFs, type ProbeResult, unknown, unsupported } from "../probe.ts";

export const BPFFS_PATH = "/sys/fs/bpf";

export async function probeBpffs(
  fs: ProbeFs,
  path = BPFFS_PATH,
): Promise<ProbeResult<{ mount_point: string }>> {
  let type: string | null;
  try {
    type = fsTypeAt(await readMounts(fs), path);
  } catch (e) {
    return unknown(`cannot read ${MOUNTINFO_PATH}: ${errorText(e)}`);
  }
  if (type === "bpf") return { status: "supported", value: { mount_point: path } };
  const fix = `mount -t bpf bpf ${path} (and add it to /etc/fstab or enable sys-fs-bpf.mount)`;
  if (type === null) return unsupported(`bpffs is not mounted at ${path}; ${fix}`);
  return unsupported(`${path} is a ${type} mount, not bpffs; ${fix}`);
}
