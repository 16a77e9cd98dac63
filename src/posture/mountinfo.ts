/**
 * /proc/self/mountinfo, parsed: which file system type is mounted where.
 * The file system type is the kernel's own answer (a bpffs mount reports
 * "bpf", the statfs magic's name), so a plain directory at /sys/fs/bpf is
 * never mistaken for bpffs.
 *
 * @module
 */
import type { ProbeFs } from "./probe.ts";

export const MOUNTINFO_PATH = "/proc/self/mountinfo";

export interface Mount {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** Octal escapes of mountinfo (\040 for a space…) decoded. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Parse mountinfo text (proc(5)): `id parent maj:min root mountpoint opts
 * [optional fields...] - fstype source superopts`. Malformed lines are
 * skipped.
 */
export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (f.length < 7 || sep < 0 || sep + 2 >= f.length) continue;
    out.push({ mountPoint: unescape(f[4]), fsType: f[sep + 1], source: unescape(f[sep + 2]) });
  }
  return out;
}

/** The mounts of the calling process's mount namespace. */
export async function readMounts(fs: ProbeFs): Promise<Mount[]> {
  return parseMountinfo(await fs.readText(MOUNTINFO_PATH));
}

/**
 * The file system type visible at `path` (the last mount on it wins, as the
 * kernel stacks them), or null when nothing is mounted exactly there.
 */
export function fsTypeAt(mounts: Mount[], path: string): string | null {
  let t: string | null = null;
  for (const m of mounts) if (m.mountPoint === path) t = m.fsType;
  return t;
}
