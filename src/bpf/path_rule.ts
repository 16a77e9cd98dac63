/**
 * Path rules resolve to inodes: a deny_path / protect_path entry becomes
 * the {ino, dev} of the file the canonical path names (symlinks followed),
 * so hard links, renames, bind mounts and /proc/self/fd aliases are the
 * same rule. A path that does not exist yet is reported as unresolved, not
 * as an error (rule packs name files many hosts lack).
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { kernelDev } from "./rule_codec.ts";

/** Linux PATH_MAX (bytes, with the NUL) and NAME_MAX. */
export const PATH_MAX = 4096;
export const NAME_MAX = 255;

export type ResolvedPath =
  | { status: "resolved"; path: string; canonical: string; dev: number; ino: number }
  | { status: "unresolved"; path: string; reason: string };

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

/** Resolve a rule path to the inode it names today. */
export function resolveRulePath(path: string): ResolvedPath {
  checkRulePath(path);
  let canonical: string;
  try {
    canonical = Deno.realPathSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { status: "unresolved", path, reason: "does not exist (yet)" };
    }
    throw new UsageError(`Cannot resolve path ${JSON.stringify(path)}: ${e}`, { cause: e });
  }
  const st = Deno.statSync(canonical);
  return { status: "resolved", path, canonical, dev: kernelDev(st.dev), ino: st.ino! };
}
