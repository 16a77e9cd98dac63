/**
 * Path rules resolve to inodes: a deny_path / protect_path entry becomes
 * the {ino, dev} of the file the canonical path names (symlinks followed),
 * so hard links, renames, bind mounts and /proc/self/fd aliases are the
 * same rule. A path that does not exist yet is reported as unresolved, not
 * as an error (rule packs name files many hosts lack).
 *
 * The identity is the one the hooks compare, `inode->i_sb->s_dev` and
 * `i_ino` (bpf/lib/inode.h): `dev` is the superblock's device as the kernel
 * reports it in /proc/self/mountinfo for the mount holding the path, NOT
 * stat()'s st_dev, which overlayfs (per-layer pseudo devices) and btrfs
 * (per-subvolume devices) report differently (docs/engine.md, "File
 * identity per file system"). File systems where the hooks cannot identify
 * a file are refused with an error naming the path and the file system.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { kernelDev } from "./rule_codec.ts";
import { type Mount, MOUNTINFO_PATH, parseMountinfo } from "../util/mountinfo.ts";

/** Linux PATH_MAX (bytes, with the NUL) and NAME_MAX. */
export const PATH_MAX = 4096;
export const NAME_MAX = 255;

export type ResolvedPath =
  | {
    status: "resolved";
    path: string;
    canonical: string;
    dev: number;
    ino: number;
    /** The file system type of the mount holding the file (mountinfo). */
    fsType?: string;
  }
  | { status: "unresolved"; path: string; reason: string };

/**
 * File systems whose files the inode hooks cannot identify (or whose
 * content a third party serves under identities of its choosing): a rule
 * there would be silently ineffective, so it is refused. docs/engine.md,
 * "File identity per file system", says why for each.
 */
const UNSUPPORTED_FS: Readonly<Record<string, string>> = Object.freeze({
  "9p": "a network file system (the host serves the content)",
  nfs: "a network file system (the server serves the content)",
  nfs4: "a network file system (the server serves the content)",
  cifs: "a network file system (the server serves the content)",
  smb3: "a network file system (the server serves the content)",
  ceph: "a network file system (the server serves the content)",
  afs: "a network file system (the server serves the content)",
  virtiofs: "a FUSE file system served by the host",
  fuse: "a FUSE file system (its daemon chooses the inode numbers)",
  fuseblk: "a FUSE file system (its daemon chooses the inode numbers)",
  btrfs: "btrfs inode numbers repeat in every subvolume and snapshot, and the loaded " +
    "programs cannot tell subvolumes apart: the btrfs module's BTF was not there when the " +
    "agent loaded them (restart the agent once the btrfs module is loaded)",
});

/**
 * Do the loaded programs key btrfs files on their subvolume's device
 * (bpf/lib/inode.h, aegis_inode_dev)? Set from the engine's config map
 * (AEGIS_CFG_BTRFS_IDENTITY) by whoever opens it; off until then, so a
 * btrfs rule is refused rather than keyed in a way the hooks do not match.
 */
let btrfsIdentity = false;

/** Tell path resolution whether the loaded programs key btrfs by subvolume. */
export function setBtrfsIdentity(on: boolean): void {
  btrfsIdentity = on;
}

/** Why a file system type cannot carry path rules, or null when it can. */
export function unsupportedFsReason(fsType: string): string | null {
  if (fsType === "btrfs" && btrfsIdentity) return null;
  if (Object.hasOwn(UNSUPPORTED_FS, fsType)) return UNSUPPORTED_FS[fsType];
  if (fsType.startsWith("fuse.")) return UNSUPPORTED_FS.fuse;
  return null;
}

/** A mount as mountOf() finds it (src/util/mountinfo.ts). */
export type MountOf = Mount;

/**
 * The mount holding the canonical path `path`, from mountinfo text (proc(5):
 * `id parent maj:min root mountpoint opts [optional...] - fstype source
 * superopts`): the longest mount point that is `path` or a parent of it;
 * of mounts stacked on the same point the last listed (the top one).
 * null when no line parses.
 */
export function mountOf(mountinfo: string, path: string): MountOf | null {
  let best: MountOf | null = null;
  for (const m of parsedMounts(mountinfo)) {
    const mp = m.mountPoint;
    const inside = mp === "/" || path === mp || path.startsWith(mp + "/");
    if (!inside || (best && mp.length < best.mountPoint.length)) continue;
    best = m;
  }
  return best;
}

/** Every mount whose superblock device is `dev` (mountinfo text). */
export function mountsOfDev(mountinfo: string, dev: number): MountOf[] {
  return parsedMounts(mountinfo).filter((m) => m.dev === dev);
}

let parsed: { text: string; mounts: Mount[] } | null = null;

/**
 * The mounts of a mountinfo text, parsed once for the last text seen: a
 * compile asks for the mount of every rule path against the same snapshot
 * (32,768 parses of a 24-line table took 120 ms; a node with hundreds of
 * mounts pays per line).
 */
function parsedMounts(text: string): Mount[] {
  if (parsed === null || parsed.text !== text) parsed = { text, mounts: parseMountinfo(text) };
  return parsed.mounts;
}

let snapshot: string | null = null;

/**
 * /proc/self/mountinfo, read once per synchronous run of JavaScript: a
 * compile resolving 65,536 paths reads and parses it once (it did so per
 * path: 17 s of a 65k-rule restore), and anything after the next await
 * reads it again, so a mount made meanwhile is seen.
 */
function currentMountinfo(): string {
  if (snapshot === null) {
    snapshot = Deno.readTextFileSync(MOUNTINFO_PATH);
    queueMicrotask(() => snapshot = null);
  }
  return snapshot;
}

/**
 * UTF-8 length of `s` as TextEncoder would encode it (an unpaired
 * surrogate becomes U+FFFD: 3 bytes), without allocating.
 */
function utf8Length(s: string, from = 0, to = s.length): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < to) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Check a rule path's form; throws UsageError naming the value and why. */
export function checkRulePath(path: string): void {
  const show = () => JSON.stringify(path.length > 80 ? path.slice(0, 77) + "..." : path);
  if (path.includes("\0")) throw new UsageError(`Invalid path ${show()}: contains a NUL byte`);
  if (!path.startsWith("/")) {
    throw new UsageError(`Invalid path ${show()}: must be absolute (start with "/")`);
  }
  // one pass: the total length and the longest component (path.split("/") parts)
  let bytes = 0, longest = 0;
  for (let start = 0; start <= path.length;) {
    let end = path.indexOf("/", start);
    if (end < 0) end = path.length;
    const n = utf8Length(path, start, end);
    bytes += n + (end < path.length ? 1 : 0);
    if (n > longest) longest = n;
    start = end + 1;
  }
  if (bytes >= PATH_MAX) {
    throw new UsageError(`Invalid path ${show()}: ${bytes} bytes, the limit is ${PATH_MAX - 1}`);
  }
  if (longest > NAME_MAX) {
    throw new UsageError(
      `Invalid path ${show()}: a component is longer than ${NAME_MAX} bytes`,
    );
  }
}

/**
 * Resolve a rule path to the inode it names today, as the hooks identify it.
 * Throws UsageError for a path on a file system the hooks cannot enforce
 * (UNSUPPORTED_FS) or whose identity cannot be established.
 */
export function resolveRulePath(
  path: string,
  mountinfo: () => string = currentMountinfo,
): ResolvedPath {
  checkRulePath(path);
  let canonical: string;
  let st: Deno.FileInfo;
  const fast = canonicalInKnownDir(path);
  if (fast !== null) {
    ({ canonical, st } = fast);
  } else {
    try {
      canonical = Deno.realPathSync(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        return { status: "unresolved", path, reason: "does not exist (yet)" };
      }
      throw new UsageError(`Cannot resolve path ${JSON.stringify(path)}: ${e}`, { cause: e });
    }
    st = Deno.statSync(canonical);
  }
  const where = () => `${JSON.stringify(path)}` + (canonical === path ? "" : ` (${canonical})`);
  const m = mountOf(mountinfo(), canonical);
  if (!m) throw new UsageError(`Cannot resolve path ${where()}: no mount holds it`);
  const why = unsupportedFsReason(m.fsType);
  if (why !== null) {
    throw new UsageError(
      `Cannot enforce a rule on ${where()}: it is on ${m.fsType} (mounted at ` +
        `${
          JSON.stringify(m.mountPoint)
        }), ${why}; see docs/engine.md "File identity per file system"`,
    );
  }
  const ino = st.ino!;
  if (!Number.isSafeInteger(ino)) {
    // overlayfs with xino=on puts the layer number in the high bits
    throw new UsageError(
      `Cannot enforce a rule on ${where()}: its inode number does not fit in 53 bits ` +
        `(${m.fsType}${m.fsType === "overlay" ? " with xino=on" : ""})`,
    );
  }
  if (m.fsType === "btrfs") {
    // the hooks key btrfs files on the subvolume's anonymous device, which is
    // stat()'s st_dev (aegis_inode_dev); mountinfo lists the superblock's. A
    // file-level mount of another file system over the path shows as a
    // device some other mount has.
    const dev = kernelDev(st.dev);
    const other = mountsOfDev(mountinfo(), dev).find((x) => x.fsType !== "btrfs");
    if (other) {
      throw new UsageError(
        `Cannot resolve path ${where()}: its device ${devName(dev)} is that of the ` +
          `${other.fsType} mount at ${JSON.stringify(other.mountPoint)}, not of the btrfs ` +
          `mount at ${JSON.stringify(m.mountPoint)}; a hidden or file-level mount?`,
      );
    }
    return { status: "resolved", path, canonical, dev, ino, fsType: m.fsType };
  }
  // Cross-check that the mount found is the one the path is on: on every
  // supported file system but overlayfs and btrfs, stat()'s st_dev of the file
  // is the superblock's; on overlayfs a directory's is (files get per-layer
  // pseudo devices), so the parent directory is asked.
  const probe = m.fsType === "overlay" ? parentDir(canonical) : canonical;
  const seen = m.fsType === "overlay" ? kernelDev(Deno.statSync(probe).dev) : kernelDev(st.dev);
  if (seen !== m.dev) {
    throw new UsageError(
      `Cannot resolve path ${where()}: its device ${devName(seen)} is not that of the ` +
        `${m.fsType} mount at ${JSON.stringify(m.mountPoint)} (${devName(m.dev)}); ` +
        `a hidden or file-level mount?`,
    );
  }
  return { status: "resolved", path, canonical, dev: m.dev, ino, fsType: m.fsType };
}

/** An absolute path with no empty, "." or ".." component and no trailing slash. */
const PLAIN_PATH = /^(?:\/(?!\.\.?(?:\/|$))[^/]+)+$/;

let realDirs: Map<string, string | null> | null = null;

/** realpath of a directory, cached for one synchronous run (like the mountinfo snapshot). */
function realDir(dir: string): string | null {
  if (realDirs === null) {
    realDirs = new Map();
    queueMicrotask(() => realDirs = null);
  }
  let r = realDirs.get(dir);
  if (r === undefined) {
    try {
      r = Deno.realPathSync(dir);
    } catch {
      r = null;
    }
    realDirs.set(dir, r);
  }
  return r;
}

/**
 * The canonical path and identity of `path` with one lstat when its last
 * component is not a symlink: the canonical path is then the parent
 * directory's (resolved once per directory and synchronous run) plus the
 * name, and lstat's answer is stat's. A policy naming 32,768 files in a few
 * directories costs one syscall per file instead of a realpath walk and a
 * stat (docs/benchmarks.md, policy apply). null: take the general path (a
 * symlink, a missing file, an odd form, an error — that path reports it).
 */
function canonicalInKnownDir(path: string): { canonical: string; st: Deno.FileInfo } | null {
  if (!PLAIN_PATH.test(path)) return null;
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch {
    return null;
  }
  if (st.isSymlink) return null;
  const slash = path.lastIndexOf("/");
  const dir = realDir(slash === 0 ? "/" : path.slice(0, slash));
  if (dir === null) return null;
  return { canonical: (dir === "/" ? "" : dir) + path.slice(slash), st };
}

function parentDir(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

/** "major:minor" of a kernel dev encoding (major << 20 | minor). */
export function devName(dev: number): string {
  return `${dev >>> 20}:${dev & 0xfffff}`;
}
