/**
 * /proc/self/mountinfo, parsed once for the whole agent: what is mounted
 * where, from which device, of which type. The file system type is the
 * kernel's own answer (a bpffs mount reports "bpf"), so a plain directory
 * is never mistaken for a mount.
 *
 * proc(5): `id parent maj:min root mountpoint opts [optional fields...] -
 * fstype source superopts`; mount points and sources escape space, tab,
 * newline and backslash as `\ooo`.
 *
 * @module
 */

export const MOUNTINFO_PATH = "/proc/self/mountinfo";

export interface Mount {
  mountPoint: string;
  /** Kernel encoding (major << 20 | minor) of the superblock's s_dev. */
  dev: number;
  fsType: string;
  source: string;
}

/** Octal escapes of mountinfo (\040 for a space...) decoded. */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** One mountinfo line, or null when it does not parse. */
function parseLine(line: string): Mount | null {
  const f = line.split(" ");
  const sep = f.indexOf("-", 6);
  if (f.length < 7 || sep < 0 || sep + 1 >= f.length) return null;
  const mm = /^(\d+):(\d+)$/.exec(f[2]);
  if (!mm) return null;
  return {
    mountPoint: unescapeMountField(f[4]),
    dev: ((Number(mm[1]) << 20) | Number(mm[2])) >>> 0,
    fsType: f[sep + 1],
    source: unescapeMountField(f[sep + 2] ?? ""),
  };
}

/** The last text parsed and its mounts: a policy compile asks once per rule path. */
let last: { text: string; mounts: Mount[] } | null = null;

/** The mounts of a mountinfo text, in its order; lines that do not parse are skipped. */
export function parseMountinfo(text: string): Mount[] {
  if (last?.text !== text) {
    const mounts: Mount[] = [];
    for (const line of text.split("\n")) {
      const m = parseLine(line);
      if (m) mounts.push(m);
    }
    last = { text, mounts };
  }
  return last.mounts;
}

/**
 * The file system type visible at `path` (the last mount on it wins, as the
 * kernel stacks them), or null when nothing is mounted exactly there.
 */
export function fsTypeAt(mounts: readonly Mount[], path: string): string | null {
  let t: string | null = null;
  for (const m of mounts) if (m.mountPoint === path) t = m.fsType;
  return t;
}

/**
 * The first cgroup v2 mount point of a mountinfo text (hybrid hosts mount
 * it at /sys/fs/cgroup/unified), or null.
 */
export function cgroup2MountFrom(text: string): string | null {
  return parseMountinfo(text).find((m) => m.fsType === "cgroup2")?.mountPoint ?? null;
}
